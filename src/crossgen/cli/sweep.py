"""`crossgen sweep SWEEP.yaml --out DIR`: every cell x seed as a run directory under DIR,
then the aggregated table and the sweep report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from crossgen.cli.common import parse_overrides, stderr, stdout


def sweep(
    sweep_file: Path = typer.Argument(..., help="sweep YAML: base config, axes, seeds"),
    out_dir: Path = typer.Option(..., "--out", help="sweep directory (created, or continued if it holds this sweep)"),
    executor: str = typer.Option(
        "local",
        "--executor",
        help="local (one run after another; with --workers N > 1 a "
        "process pool), process (a pool sized to the machine), or ray",
    ),
    workers: Optional[int] = typer.Option(
        None, "--workers", help="parallel runs (process pool size / CPUs of a local Ray)"
    ),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="join this Ray cluster (default: start Ray here)"
    ),
    batch: Optional[int] = typer.Option(
        None, "--batch", help="runs of a cell per task (default: 1 for language models, a few for the linear backend)"
    ),
    report: bool = typer.Option(True, "--report/--no-report", help="write aggregate.csv and report.html at the end"),
    overrides: Optional[list[str]] = typer.Option(
        None, "--set", help="override a setting of the base config: key.path=value"
    ),
) -> None:
    """Run a parameter sweep (resumable: finished runs are skipped), then aggregate and report."""
    from crossgen.errors import InputError
    from crossgen.sweep import load_sweep, run_sweep

    if executor not in ("local", "process", "ray"):
        raise InputError("--executor", executor, "local, process or ray")
    if ray_address and executor != "ray":
        raise InputError("--ray-address", ray_address, "only with --executor ray")
    spec = load_sweep(sweep_file, parse_overrides(overrides))
    stderr.print(
        f"sweep [bold]{spec.name}[/]: {len(spec.cells)} cells, {len(spec.runs)} runs -> {out_dir}", highlight=False
    )
    result = run_sweep(
        spec,
        out_dir,
        executor=executor,
        workers=workers,
        ray_address=ray_address,
        batch=batch,
        report=report,
        console=stderr,
    )
    stderr.print(
        f"{result.ran} runs executed, {result.skipped} already complete, {len(result.failed)} failed "
        f"in {result.seconds:.1f} s",
        highlight=False,
    )
    if result.failed:
        stderr.print(
            f"[red]{len(result.failed)} runs failed[/]: see {out_dir / 'failures.jsonl'}; "
            "rerun the same command to retry them",
            highlight=False,
        )
    stdout.print(str(result.report or out_dir), highlight=False, soft_wrap=True)
    if result.failed:
        raise typer.Exit(1)
