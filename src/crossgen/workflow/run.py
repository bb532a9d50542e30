"""Start or resume one run: validate everything first, then touch the disk."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from crossgen.config import RunConfig
from crossgen.errors import InputError
from crossgen.workflow.loop import ExperimentData, Workflow, derive_seed, INIT
from crossgen.workflow.progress import Progress
from crossgen.workflow.store import RunStore, copy_generation0


def build(cfg: RunConfig):
    """(data, backend) of a config; raises InputError for bad tasks before anything is written."""
    if cfg.model.backend == "linear":
        from crossgen.backends.linear import LinearBackend
        from crossgen.workflow.linear_data import linear_data

        data, system = linear_data(cfg)
        return data, LinearBackend(system.d, system.sigma2)
    from crossgen.backends.hf.model import HFBackend
    from crossgen.tasks import load_task

    private = [_load(load_task, e.task, cfg.seed, f"entities.{i}.") for i, e in enumerate(cfg.entities)]
    public = _load(load_task, cfg.public, cfg.seed, "public.")
    threads = cfg.resources.threads or max(1, int(cfg.resources.cpus))
    return ExperimentData(private, public), HFBackend(cfg.model, device=cfg.device, threads=threads)


def _load(load_task, task_cfg, seed: int, where: str):
    """Load a task; its errors name the field by its full config path (entities.0.task.path)."""
    try:
        return load_task(task_cfg, seed)
    except InputError as exc:
        if exc.field.startswith("task."):
            field = where + (exc.field if where.startswith("entities") else exc.field[len("task."):])
            raise InputError(field, exc.value, exc.allowed) from None
        raise


def run_experiment(cfg: RunConfig, out: Path, resume: bool = False, progress: Optional[Progress] = None,
                   generation0_from: Optional[Path] = None,
                   evaluate_hook: Optional[Callable[[RunStore, int], None]] = None) -> RunStore:
    """Run `cfg` into `out`. With `resume`, continue the run there (or start it if absent).

    `generation0_from`: a finished run whose config differs only in alpha; its initial
    model and generation 0 are copied instead of recomputed (they do not depend on alpha).
    """
    out = Path(out)
    data, backend = build(cfg)
    if evaluate_hook is None:
        evaluate_hook = _metrics_hook(cfg)
    initial = None
    if resume and out.exists() and any(out.iterdir()):
        store = RunStore.resume(out, cfg)
    else:
        if generation0_from is None:
            # Building the initial model checks the model path before the run directory exists.
            initial = backend.initial_model(Workflow.real_texts(data), derive_seed(cfg.seed, INIT))
        store = RunStore.create(out, cfg)
    with store.lock():  # one writer: a second `--resume` of this directory gets exit 2
        if generation0_from is not None and not store.is_complete(0):
            copy_generation0(RunStore.resume(generation0_from), store)
        workflow = Workflow(cfg, data, backend, store, progress=progress, evaluate_hook=evaluate_hook)
        return workflow.run(initial)


def _metrics_hook(cfg: RunConfig) -> Optional[Callable[[RunStore, int], None]]:
    """The embedding metrics of language-model runs; a bad evaluation.embedding_model fails
    here, before anything is written (the loaded model is cached for every generation)."""
    if cfg.model.backend != "hf" or cfg.evaluation.embedding_prompts == 0:
        return None
    from crossgen.metrics import evaluate_generation
    from crossgen.metrics.embeddings import load_embedding_model
    from crossgen.backends.device import resolve_device

    load_embedding_model(cfg.evaluation.embedding_model, resolve_device(cfg.device))
    return evaluate_generation
