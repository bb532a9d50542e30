"""Start or resume one run: validate everything first, then touch the disk."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from crossgen.backends.base import Backend
from crossgen.backends.registry import get_backend
from crossgen.config import RunConfig
from crossgen.data import ExperimentData, derive_seed
from crossgen.errors import InputError
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
    initial = None
    if resume and out.exists() and any(out.iterdir()):
        store = RunStore.resume(out, cfg)
    else:
        if generation0_from is None:
            # Building the initial model checks the model path before the run directory exists.
            initial = backend.initial_model(Workflow.real_texts(data), derive_seed(cfg.seed, INIT))
            check_disk(cfg, initial, out)
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
        )
        return workflow.run(initial)


def _check_generation0(cfg: RunConfig, source: Path) -> None:
    """A generation 0 may be copied only from a run whose generation-0 settings are equal."""
    if RunStore.resume(source).config().generation0_key() != cfg.generation0_key():
        raise InputError(
            "generation0_from",
            str(source),
            "a run whose generation-0 settings (data, model, seed, sampling, evaluation, beta at t = 0, "
            "initial training) equal this run's",
        )


def checkpoints_kept(cfg: RunConfig) -> int:
    """Most model checkpoints on disk at once: the initial model plus K per generation kept
    (all generations; or generation 0, the newest complete one and the one being written)."""
    generations = cfg.generations + 1 if cfg.checkpoints == "all" else min(3, cfg.generations + 1)
    return 1 + cfg.K * generations


def check_disk(cfg: RunConfig, initial: object, out: Path) -> None:
    """Refuse up front a run whose checkpoints will not fit on the disk of `out`.

    A model's size is its own estimate (`checkpoint_bytes()`, when the backend has one)."""
    size = getattr(initial, "checkpoint_bytes", None)
    if size is None:
        return
    need = checkpoints_kept(cfg) * size()
    folder = next(p for p in [Path(out).absolute(), *Path(out).absolute().parents] if p.exists())
    free = shutil.disk_usage(folder).free
    if need > free:
        raise InputError(
            "checkpoints",
            cfg.checkpoints,
            f"a setting whose checkpoints fit: about {need / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free "
            f"on {folder} (checkpoints: needed keeps 3 generations instead of all; or free space)",
        )
