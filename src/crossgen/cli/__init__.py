"""The `crossgen` command: theory, simulate, run, demo, report, metrics, sweep.

Exit codes (docs/DESIGN.md, "Contracts"): 0 success; 2 invalid input, with one line naming
the field, the value and what is allowed, and no traceback; 1 anything else (a failed write
says which path). Each command module imports its heavy dependencies inside the command,
so `crossgen --help` loads neither torch nor matplotlib.
"""

from __future__ import annotations

import os
from typing import Optional

# Before numpy loads: numpy advises transparent huge pages for arrays of 4 MB and more, and on
# kernels whose THP defrag is 'madvise' (a common default) the first touch of such an array may
# wait for memory compaction. A CLI process touches its large arrays once: at K = 1000, d = 100
# `crossgen theory mse` took 0.4 s longer with the advice (2.08 s against 1.67 s), the Monte
# Carlo the same either way. Set NUMPY_MADVISE_HUGEPAGE=1 to keep numpy's default.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

import typer

from crossgen import __version__
from crossgen.cli import experiments, metrics, report, sweep, theory
from crossgen.cli.common import stderr
from crossgen.errors import EntityTaskError, InputError, StorageError
from crossgen.io import durable
from crossgen.malloc import keep_freed_memory

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Generative models trained, generation after generation, on each other's outputs.",
)
app.add_typer(theory.theory_app, name="theory")
app.command("simulate")(theory.simulate)
app.command("run")(experiments.run)
app.command("demo")(experiments.demo)
app.command("report")(report.report)
app.command("metrics")(metrics.metrics)
app.command("sweep")(sweep.sweep)


def _version(value: bool) -> None:
    if value:
        print(f"crossgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Generative models trained, generation after generation, on each other's outputs."""


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the exit code (the console script passes it to sys.exit).

    Click handles usage errors itself (message and exit code 2); crossgen's own errors
    propagate out of it and are turned into one line here."""
    keep_freed_memory()  # torch's freed tensors reused, not faulted in again: here and in children
    try:
        durable()  # a bad CROSSGEN_FSYNC is refused before any command starts
        app(args=argv, prog_name="crossgen")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except InputError as exc:
        stderr.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except (StorageError, EntityTaskError) as exc:
        stderr.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        stderr.print("aborted")
        return 1
    return 0
