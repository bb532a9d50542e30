"""The `crossgen` command: theory, simulate, run, report, sweep, demo.

Exit codes (DESIGN.md contract): 0 success; 2 invalid input, with one line naming the
field, the value and what is allowed, and no traceback; 1 anything else.
"""
from __future__ import annotations

from typing import Optional

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError  # typer >= 0.20 vendors click
from rich.console import Console

from crossgen.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Generative models trained, generation after generation, on each other's outputs.")
err = Console(stderr=True)


def _register() -> None:
    if app.registered_commands:  # main() may be called more than once in one process
        return
    from crossgen import cli_experiments, cli_report, cli_sweep, cli_theory

    app.add_typer(cli_theory.theory_app, name="theory")
    app.command("simulate")(cli_theory.simulate)
    app.command("run")(cli_experiments.run)
    app.command("demo")(cli_experiments.demo)
    app.command("report")(cli_report.report)
    app.command("sweep")(cli_sweep.sweep)


def parse_overrides(pairs: Optional[list[str]]) -> dict:
    """`--set key.path=value` pairs; values are parsed as YAML (numbers, lists, ...)."""
    import yaml

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError("--set", pair, "key.path=value")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the exit code (the console script passes it to sys.exit)."""
    _register()
    try:
        result = app(args=argv, standalone_mode=False)
    except InputError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except NoArgsIsHelpError as exc:
        exc.show()
        return 0
    except ClickException as exc:  # usage errors: bad option, missing argument
        exc.show()
        return 2
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        return 1
    return result if isinstance(result, int) else 0
