"""Run one experiment the way the CLI and sweeps do: the workflow plus its metrics.

`run_experiment` is `crossgen.workflow.run.run_workflow` with the per-generation embedding
metrics (`crossgen.metrics`) as its evaluate hook and the model-based metrics (task accuracy,
reference perplexity: `crossgen.metrics.accuracy.model_metrics`) as its model_metrics
callback. It lives above both, so that the workflow never imports the metrics that read its
output.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Optional

from crossgen.config import RunConfig
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
) -> RunStore:
    """`run_workflow` with the embedding metrics after every generation and the model-based
    metrics of every model (see there for the parameters); `evaluate_hook` and
    `model_metrics` replace them when given."""
    if evaluate_hook is None:
        evaluate_hook = metrics_hook(cfg)
    if model_metrics is None:
        model_metrics = model_metrics_hook(cfg)
    return run_workflow(
        cfg,
        out,
        resume=resume,
        progress=progress,
        generation0_from=generation0_from,
        evaluate_hook=evaluate_hook,
        model_metrics=model_metrics,
    )


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
