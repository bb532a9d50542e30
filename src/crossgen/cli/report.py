"""`crossgen report RUN_DIR... [--out FILE] [--theory-dir DIR]`: rebuild the HTML report from
saved results, without retraining."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from crossgen.cli.common import stderr, stdout
from crossgen.errors import InputError

RUN_DIR_ALLOWED = "a crossgen run directory (with manifest.json)"


def report(
    run_dirs: list[Path] = typer.Argument(
        ..., metavar="RUN_DIR", help="one or more run directories (e.g. the runs of several alphas)"
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="HTML file to write (default: <first run>/report.html)"),
    theory_dir: Optional[Path] = typer.Option(
        None, "--theory-dir", help="folder with figure2.png / figure4.png to embed"
    ),
    metrics: bool = typer.Option(
        True,
        "--metrics/--no-metrics",
        help="first compute missing embedding metrics from saved completions (no retraining)",
    ),
) -> None:
    """Write the report of saved runs: tables, figures and the paper's claims checked on the data."""
    for path in run_dirs:
        if not (Path(path) / "manifest.json").is_file():
            raise InputError("RUN_DIR", str(path), RUN_DIR_ALLOWED)
    if theory_dir is not None and not Path(theory_dir).is_dir():
        raise InputError("--theory-dir", str(theory_dir), "an existing folder (with figure2.png / figure4.png)")
    if metrics:
        fill_metrics(run_dirs)
    from crossgen.report import write_run_report

    target = out if out is not None else Path(run_dirs[0]) / "report.html"
    written = write_run_report(list(run_dirs), target, theory_dir=theory_dir)
    stdout.print(str(written), highlight=False, soft_wrap=True)


def fill_metrics(run_dirs: list[Path]) -> None:
    """Embedding metrics and metric families of complete generations that have completions but
    miss some of their files; the run's top-level tables are rebuilt when any was written."""
    from crossgen.metrics.generation import evaluate_generation
    from crossgen.workflow.store import RunStore

    for path in run_dirs:
        store = RunStore(Path(path))
        wrote = False
        for t in store.completed_generations():
            if evaluate_generation(store, t):
                stderr.print(f"embedded the completions of {path} generation {t}")
                wrote = True
        if wrote:
            store.refresh_tables()  # similarity, homogenization, semantic and the metric families
