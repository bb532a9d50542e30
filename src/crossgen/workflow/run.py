"""Start or resume one run: validate everything first, then touch the disk."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from crossgen.backends.base import Backend
from crossgen.backends.registry import get_backend
from crossgen.config import RunConfig
from crossgen.data import ExperimentData, derive_seed
from crossgen.errors import InputError
from crossgen.workflow.entities import entity_backends, initial_models, owners
from crossgen.workflow.loop import INIT, EntityExecutor, ModelMetrics, Workflow, prepare
from crossgen.workflow.progress import Progress
from crossgen.workflow.store import RunStore, copy_generation0


def build(cfg: RunConfig) -> tuple[ExperimentData, Backend]:
    """The data and the backend of a run, from the backend registered as ``model.backend``.

    Parameters
    ----------
    cfg
        The run config.

    Returns
    -------
    (ExperimentData, Backend)

    Raises
    ------
    InputError
        An unknown backend name (``model.backend``), a bad task, model path or device, a
        dataset too small for ``fresh_real``, a pool filter the data or backend cannot run:
        all before anything is written.
    """
    data, backend = get_backend(cfg.model.backend).from_config(cfg)
    return prepare(cfg, data, backend), backend


def run_workflow(
    cfg: RunConfig,
    out: Path,
    resume: bool = False,
    progress: Optional[Progress] = None,
    generation0_from: Optional[Path] = None,
    evaluate_hook: Optional[Callable[[RunStore, int], object]] = None,  # return value ignored
    model_metrics: Optional[ModelMetrics] = None,
    executor: Optional[EntityExecutor] = None,
) -> RunStore:
    """Run `cfg` into `out`, or with `resume` continue the run there (start it if absent).

    The workflow alone: `crossgen.experiment.run_experiment` adds the embedding metrics.

    Parameters
    ----------
    cfg
        The run config.
    out
        The run directory.
    resume
        Continue an existing run directory instead of creating one.
    progress
        Receives progress events (None: silent).
    generation0_from
        A finished run whose generation-0 settings equal this one's; its initial model and
        generation 0 are copied instead of recomputed (they do not depend on alpha).
    evaluate_hook
        Called as hook(store, t) after each generation's losses (None: nothing more).
    model_metrics
        Called with a `crossgen.workflow.loop.ModelEvaluation` for every model of every
        generation, after its losses and completions (None: nothing).
    executor
        Where the K entities of each phase run (`crossgen.workflow.executors`; None: one
        after another in this process). The caller owns it (and closes it).

    Returns
    -------
    RunStore
        The finished run directory.
    """
    out = Path(out)
    if generation0_from is not None:
        _check_generation0(cfg, Path(generation0_from))
    data, backend = build(cfg)
    backends = entity_backends(cfg, backend)  # refuses backends that cannot mix, before any write
    initial = None
    if resume and out.exists() and any(out.iterdir()):
        store = RunStore.resume(out, cfg)
    else:
        if generation0_from is None:
            # Building the initial models checks the model paths before the run directory exists.
            seed = derive_seed(cfg.seed, INIT)
            initial = initial_models(cfg, backends, Workflow.real_texts(data), seed, set(owners(cfg)))
            estimate = check_disk(cfg, initial, out)
            if estimate and progress is not None:
                progress.notice(estimate)
        store = RunStore.create(out, cfg)
    with store.lock():  # one writer: a second `--resume` of this directory gets exit 2
        if generation0_from is not None and not store.is_complete(0):
            copy_generation0(RunStore.resume(generation0_from), store)
        workflow = Workflow(
            cfg,
            data,
            backend,
            store,
            progress=progress,
            evaluate_hook=evaluate_hook,
            model_metrics=model_metrics,
            executor=executor,
            backends=backends,
        )
        return workflow.run(initial)


def _check_generation0(cfg: RunConfig, source: Path) -> None:
    """A generation 0 may be copied only from a run whose generation 0 is complete and whose
    generation-0 settings are equal."""
    store = RunStore.resume(source)
    if store.config().generation0_key() != cfg.generation0_key() or not store.is_complete(0):
        raise InputError(
            "generation0_from",
            str(source),
            "a run whose generation-0 settings (data, model, seed, sampling, evaluation, mixing, beta at t = 0, "
            "initial training) equal this run's, with generation 0 complete",
        )
    if any(not store.model_dir(0, e.name).is_dir() for e in cfg.entities):
        raise InputError(
            "generation0_from",
            str(source),
            "a run that still holds its generation-0 checkpoints (checkpoints: all or needed; 'latest' deletes them)",
        )


def generations_kept(cfg: RunConfig) -> int:
    """Most checkpoints of one entity on disk at once: every generation ('all'); generation 0,
    the newest complete one and the one being written ('needed'); the newest complete one and
    the one being written ('latest')."""
    most = {"all": cfg.generations + 1, "needed": 3, "latest": 2}[cfg.checkpoints]
    return min(most, cfg.generations + 1)


def check_disk(cfg: RunConfig, initial: dict[Optional[str], Any], out: Path) -> Optional[str]:
    """The run's peak checkpoint disk as a line to print, after refusing up front a run whose
    checkpoints will not fit on the disk of `out`: every starting model (by owner,
    `entities.owners`) once, plus each entity's checkpoints of its own model.

    A model's size is its own estimate (`checkpoint_bytes()`, when the backend has one)."""
    sizes = {owner: getattr(model, "checkpoint_bytes", None) for owner, model in initial.items()}
    if any(size is None for size in sizes.values()):
        return None
    per_owner = {owner: size() for owner, size in sizes.items()}  # type: ignore[misc]
    # a starting model may be saved smaller (a pretrained one: a reference, `initial_bytes`)
    starts = sum(getattr(model, "initial_bytes", sizes[owner])() for owner, model in initial.items())  # type: ignore[misc]
    need = starts + generations_kept(cfg) * sum(per_owner[o] for o in owners(cfg))
    folder = next(p for p in [Path(out).absolute(), *Path(out).absolute().parents] if p.exists())
    free = shutil.disk_usage(folder).free
    if need > free:
        raise InputError(
            "checkpoints",
            cfg.checkpoints,
            f"a setting whose checkpoints fit: about {need / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free "
            f"on {folder} (checkpoints: latest keeps 2 generations, needed 3, all every one; or free space)",
        )
    return (
        f"checkpoints: about {need / 1e9:.2g} GB on disk at most (checkpoints: {cfg.checkpoints}), "
        f"{free / 1e9:.0f} GB free"
    )
