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
from collections.abc import Callable
from pathlib import Path
from typing import Optional, Union

from crossgen.config import RunConfig
from crossgen.workflow.executors import Executor, make_executor
from crossgen.workflow.loop import ModelMetrics
from crossgen.workflow.progress import Progress
from crossgen.workflow.run import run_workflow
from crossgen.workflow.store import RunStore

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
