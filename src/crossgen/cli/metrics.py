"""`crossgen metrics RUN_DIR [--only NAME]`: compute the metric families of a run's complete
generations from its saved completions and embeddings (no retraining), then DIR/metrics.csv."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from crossgen.cli.common import stderr, stdout
from crossgen.errors import InputError

RUN_DIR_ALLOWED = "a crossgen run directory (with manifest.json and config.yaml)"


def metrics(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR", help="a run directory (finished or stopped)"),
    only: Optional[str] = typer.Option(
        None, "--only", metavar="NAME", help="compute only this family, replacing its files"
    ),
) -> None:
    """Compute missing metric families (lexical, vendi, manifold, mauve) of every complete generation
    (a family the run's config switches off, such as evaluation.mauve: false, only with --only)."""
    from crossgen.io import DirectoryLock
    from crossgen.metrics.families import families, switched_off
    from crossgen.workflow.store import CONFIG, MANIFEST, RunStore

    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).is_file() or not (run_dir / CONFIG).is_file():
        raise InputError("RUN_DIR", str(run_dir), RUN_DIR_ALLOWED)
    registry = families()
    if only is not None:
        if only not in registry:
            raise InputError("--only", only, "one of " + ", ".join(registry))
        why = registry[only].missing()
        if why is not None:
            raise InputError("--only", only, f"a family whose package is installed ({why})")
    store = RunStore(run_dir)
    with DirectoryLock(run_dir, field="RUN_DIR"):
        names = [only] if only else [n for n in registry if n not in switched_off(store)]
        written, notes = _compute(store, names, force=only is not None)
        store.refresh_tables()
    for note in notes:
        stderr.print(note, highlight=False, soft_wrap=True)
    stderr.print(f"{written} family files written", highlight=False)
    table = run_dir / "metrics.csv"
    what = str(table) if table.is_file() else "no metrics (no text completions in this run)"
    stdout.print(what, highlight=False, soft_wrap=True)


def _compute(store, names: list[str], force: bool) -> tuple[int, list[str]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from crossgen.backends.registry import get_backend
    from crossgen.metrics.families import families, write_families
    from crossgen.metrics.generation import EMBEDDINGS, evaluate_generation, generation_inputs

    registry = families()
    if not get_backend(store.config().model.backend).TEXT:
        return 0, ["this run's backend writes no text: there is nothing to measure"]
    gens = store.completed_generations()
    notes: dict[str, None] = {}
    written = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=stderr, transient=True) as progress:
        task = progress.add_task("metrics", total=len(gens) * len(names))
        for t in gens:
            progress.update(task, description=f"generation {t}")
            if any(registry[n].needs_embeddings for n in names) and not (store.gen_dir(t) / EMBEDDINGS).is_file():
                evaluate_generation(store, t)  # embeds the saved completions (and writes missing tables)
            inputs = generation_inputs(store, t)
            if inputs is None:
                notes[f"generation {t} has no text completions: skipped"] = None
                progress.advance(task, len(names))
                continue

            def advance(name: str, t: int = t) -> None:
                progress.update(task, advance=1, description=f"generation {t}: {name}")

            result = write_families(store, t, inputs, names, force=force, on_family=advance)
            written += len(result.written)
            notes.update(dict.fromkeys(result.skipped.values()))
    return written, list(notes)
