"""Run one experiment the way the CLI and sweeps do: the workflow plus its metrics.

`run_experiment` is `crossgen.workflow.run.run_workflow` with the per-generation embedding
metrics (`crossgen.metrics`) as its evaluate hook and the model-based metrics (task accuracy,
reference perplexity: `crossgen.metrics.accuracy.model_metrics`) as its model_metrics
callback. It lives above both, so that the workflow never imports the metrics that read its
output. With `tracking.backend` set, `crossgen.tracking` wraps both the evaluate hook (every
generation's numbers logged after it) and the progress (each update's training curve).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Union

from crossgen.config import RunConfig
from crossgen.workflow.executors import Executor, make_executor
from crossgen.workflow.loop import ModelMetrics
from crossgen.workflow.progress import Progress
from crossgen.workflow.run import run_workflow
from crossgen.workflow.store import MANIFEST, RunStore

Hook = Callable[[RunStore, int], object]  # its return value is ignored


def run_experiment(
    cfg: RunConfig,
    out: Path,
    resume: bool = False,
    progress: Optional[Progress] = None,
    generation0_from: Optional[Path] = None,
    evaluate_hook: Optional[Hook] = None,
    model_metrics: Optional[ModelMetrics] = None,
    executor: Union[str, Executor] = "sequential",
    ray_address: Optional[str] = None,
) -> RunStore:
    """`run_workflow` with the embedding metrics after every generation and the model-based
    metrics of every model (see there for the parameters); `evaluate_hook` and
    `model_metrics` replace them when given.

    `executor` runs the K entities of each phase: an executor (kept open for the caller), or
    the name of one ('sequential', 'process', 'ray' at `ray_address`), made for this run and
    closed after it; its workers compute the model metrics with `model_metrics_hook`.

    With `tracking.backend` set, every generation's numbers and (with the sequential executor,
    where the updates run in this process) the training curves go to the tracker as well
    (`crossgen.tracking`); a missing tracker package fails first, before anything is written."""
    from crossgen.tracking import open_tracker

    tracker = open_tracker(cfg, Path(out))
    if evaluate_hook is None:
        evaluate_hook = metrics_hook(cfg)
    if model_metrics is None:
        model_metrics = model_metrics_hook(cfg)
    owned = isinstance(executor, str)
    runner = make_executor(executor, cfg, ray_address, model_metrics_hook) if isinstance(executor, str) else executor
    if tracker is not None:
        evaluate_hook = tracker.hook(evaluate_hook)
        progress = tracker.progress(progress)
        if runner.name != "sequential":
            logging.getLogger("crossgen.tracking").warning(
                "tracking: the %s executor trains in worker processes, so only the per-generation numbers "
                "are tracked, not the training curves",
                runner.name,
            )
    try:
        with tracker if tracker is not None else contextlib.nullcontext():
            return run_workflow(
                cfg,
                out,
                resume=resume,
                progress=progress,
                generation0_from=generation0_from,
                evaluate_hook=evaluate_hook,
                model_metrics=model_metrics,
                executor=runner,
            )
    finally:
        if owned:
            runner.close()


def run_sharing_generation0(
    configs: Sequence[RunConfig],
    dirs: Sequence[Path],
    executor: Executor,
    progress: Callable[[int], Optional[Progress]] = lambda i: None,
) -> list[RunStore]:
    """Runs whose generation 0 is the same (equal `RunConfig.generation0_key`, e.g. a run at
    several alphas): the first computes generation 0, the others copy it (`generation0_from`).

    With a parallel executor the others start as soon as generation 0 is complete and all run
    side by side: their entity tasks queue on the same workers, so no core waits while one
    run's last metrics are computed. Their embedding metrics take turns in this process (the
    text families redirect its stderr and share one tokenizer). With the sequential executor
    (whose training seeds torch's global RNG in this process) or `checkpoints: latest` (which
    would delete generation 0 while it is copied) they run one after another. Where a run
    computes its entity tasks does not change its numbers (`crossgen.workflow.executors`).
    A run directory that exists is resumed; `progress(i)` is run i's progress."""

    side_by_side = executor.name != "sequential" and all(c.checkpoints != "latest" for c in configs)
    turns = threading.Lock()

    def start(i: int) -> RunStore:
        source = dirs[0] if i and not Path(dirs[i]).exists() else None
        hook = _taking_turns(metrics_hook(configs[i]), turns) if side_by_side else None
        return run_experiment(
            configs[i],
            dirs[i],
            resume=True,
            progress=progress(i),
            generation0_from=source,
            evaluate_hook=hook,
            executor=executor,
        )

    if not side_by_side:
        return [start(i) for i in range(len(configs))]
    with ThreadPoolExecutor(len(configs), thread_name_prefix="crossgen-run") as pool:
        try:
            first = pool.submit(start, 0)
            while not first.done() and not _generation0_complete(Path(dirs[0])):
                time.sleep(0.2)
            if first.done():
                first.result()  # raises its error: it failed before generation 0 was complete
            others = [pool.submit(start, i) for i in range(1, len(configs))]
            return [future.result() for future in [first, *others]]
        except BaseException:
            executor.close()  # the other runs' queued tasks are cancelled and no new worker starts: they stop
            raise


def _generation0_complete(run_dir: Path) -> bool:
    return (run_dir / MANIFEST).is_file() and RunStore(run_dir).is_complete(0)


def _taking_turns(hook: Optional[Hook], lock: threading.Lock) -> Optional[Hook]:
    if hook is None:
        return None

    def serialised(store: RunStore, t: int) -> object:
        with lock:
            return hook(store, t)

    return serialised


def model_metrics_hook(cfg: RunConfig) -> Optional[ModelMetrics]:
    """Task accuracy and reference perplexity (evaluation.accuracy / reference_perplexity) of
    text backends; a bad evaluation.reference_model fails here, before anything is written."""
    from crossgen.metrics.accuracy import model_metrics

    return model_metrics(cfg)


def metrics_hook(cfg: RunConfig) -> Optional[Hook]:
    """The embedding metrics of text backends; a bad evaluation.embedding_model fails here,
    before anything is written (the loaded model is cached for every generation)."""
    from crossgen.backends.registry import get_backend

    if not get_backend(cfg.model.backend).TEXT or cfg.evaluation.embedding_prompts == 0:
        return None
    from crossgen.backends.device import resolve_device
    from crossgen.metrics import evaluate_generation
    from crossgen.metrics.embeddings import load_embedding_model

    load_embedding_model(cfg.evaluation.embedding_model, resolve_device(cfg.device))
    return evaluate_generation
