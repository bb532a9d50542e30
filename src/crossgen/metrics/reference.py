"""Perplexity of a model's completions under a fixed reference model (family "reference_perplexity").

`reference_rows(reference, completions, t, name, cfg)` reads the rows of
gen_NNN/completions/<entity>.jsonl (dataset, index, prompt, reference, completion) and, per
dataset, scores every completion given its prompt under `reference` (the optional
``continuation_logprobs`` of a text model: the prompt tokenised with special tokens, the
completion without, as for losses.csv). With ``nll_i`` the summed negative log-likelihood of
completion i's tokens and ``n_i`` their number::

    value = exp(sum_i nll_i / sum_i n_i)          (per-token perplexity, metric "reference_perplexity")

over the prompts whose completion has at least one token (no end-of-sequence token is
added). ``low``/``high`` are the 95% percentile bootstrap interval of the same ratio over
prompts (`table.interval` on the prompt indices, seed 0). A model's perplexity under itself
is exp of its own token-average loss on the completions.

The reference is each entity's generation-0 model by default (``evaluation.reference_model:
generation0``; `checkpoints: needed` keeps it), or one model for every entity, named by a
model folder or hub id (`load_reference`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from crossgen.errors import InputError
from crossgen.metrics.table import interval, row

if TYPE_CHECKING:
    from crossgen.config import RunConfig

GENERATION0 = "generation0"
METRIC = "reference_perplexity"


def token_perplexity(nll: np.ndarray, tokens: np.ndarray) -> tuple[float, float, float]:
    """(exp(sum nll / sum tokens), low, high) with the bootstrap interval over units."""
    nll, tokens = np.asarray(nll, dtype=float), np.asarray(tokens, dtype=float)

    def statistic(index: np.ndarray) -> float:
        i = index.astype(int)
        return float(np.exp(nll[i].sum() / tokens[i].sum()))

    return interval(np.arange(len(nll), dtype=float), statistic)


def reference_rows(reference: Any, completions: Sequence[dict], t: int, name: str, cfg: RunConfig) -> list[dict]:
    """One row per dataset of `completions` (in order of first appearance): the per-token
    perplexity of model `name`'s completions under `reference`; see the module doc. Empty
    for a reference without ``continuation_logprobs``."""
    if not hasattr(reference, "continuation_logprobs"):
        return []
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in completions):
        chosen = [r for r in completions if r["dataset"] == dataset]
        scored = reference.continuation_logprobs(
            [r["prompt"] for r in chosen], [r["completion"] for r in chosen], cfg.evaluation.batch_size
        )
        kept = [(-logp, n) for logp, n in scored if n > 0]
        if not kept:
            continue
        nll, tokens = np.array(kept, dtype=float).T
        rows.append(row(t, name, dataset, METRIC, *token_perplexity(nll, tokens)))
    return rows


def load_reference(cfg: RunConfig) -> Any:
    """The model named by evaluation.reference_model (a folder or hub id), loaded by the
    run's backend as a pretrained model on the run's device."""
    from crossgen.backends.registry import get_backend

    name = cfg.evaluation.reference_model
    model_cfg = cfg.model.model_copy(update={"name_or_path": name, "scratch": None})
    try:
        backend = get_backend(cfg.model.backend)(model_cfg, device=cfg.device)
        return backend.initial_model([], seed=0)
    except InputError as exc:
        raise InputError(
            "evaluation.reference_model",
            name,
            f"{GENERATION0}, or a local model folder or a hub id available in the local cache (offline)",
        ) from exc
