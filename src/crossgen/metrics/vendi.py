"""Embedding diversity: the Vendi score (Friedman & Dieng 2023) of a set of completions.

With X the (n, d) embeddings scaled to unit norm, K = X Xᵀ (cosine similarity) and
λ_1..λ_n the eigenvalues of K / n (they sum to 1):

    vendi = exp(−Σ_k λ_k log λ_k)

the effective number of distinct completions: 1 when all are the same, n when they are
mutually orthogonal. Computed in numpy (the `vendi-score` package's `score_K` is the same
formula; its last release calls a scipy module that current scipy lacks).

Interval: the entropy is exactly a mean over the items, H = (1/n) Σ_i h_i with
h_i = −n Σ_k U_ik² λ_k log λ_k (U the eigenvectors of K/n); h_i is, up to a constant, the
influence function of the von Neumann entropy at item i. low/high are exp of the percentile
bootstrap interval of that mean over prompts (the spectrum held at the full set). Resampling
items and recomputing would count a duplicated completion as a distinct-less copy and
understate the score.

Rows per dataset: every model; `all` (every model's completions pooled: the K completions of
a prompt are resampled together); `reference` (the real answers).
"""

from __future__ import annotations

import numpy as np

from crossgen.metrics.families import POOLED, REFERENCE, GenerationInputs, register_family
from crossgen.metrics.table import interval, row, stable_seed

FAMILY = "vendi"
EPS = 1e-12


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), EPS)


def vendi_terms(embeddings: np.ndarray) -> np.ndarray:
    """(n,) per-item entropy terms h_i; their mean is log(vendi)."""
    x = _unit(embeddings)
    n = x.shape[0]
    if n == 0:
        return np.zeros(0)
    lam, U = np.linalg.eigh(x @ x.T / n)
    lam = np.clip(lam, 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(lam > EPS, lam * np.log(np.where(lam > EPS, lam, 1.0)), 0.0)
    return -n * (U**2) @ plogp


def vendi_score(embeddings: np.ndarray) -> float:
    """exp of the entropy of the eigenvalues of K/n, K the cosine-similarity matrix; NaN if empty."""
    x = _unit(embeddings)
    n = x.shape[0]
    if n == 0:
        return float("nan")
    lam = np.clip(np.linalg.eigvalsh(x @ x.T / n), 0.0, None)
    lam = lam[lam > EPS]
    return float(np.exp(-(lam * np.log(lam)).sum()))


def vendi_row(t: int, model: str, dataset: str, terms: np.ndarray) -> dict:
    """`terms`: (n,) per-prompt mean of h over the prompt's items."""
    h, low, high = interval(terms, seed=stable_seed(FAMILY, model, dataset))
    return row(t, model, dataset, "vendi", float(np.exp(h)), float(np.exp(low)), float(np.exp(high)))


@register_family(FAMILY, needs_embeddings=True)
def vendi(inputs: GenerationInputs) -> list[dict]:
    rows = []
    t = inputs.t
    for ds in inputs.datasets:
        per_model = {m: e for m in inputs.models if (e := inputs.embedding(m, ds)) is not None and len(e)}
        for m, e in per_model.items():
            rows.append(vendi_row(t, m, ds, vendi_terms(e)))
        if len(per_model) > 1:
            models = list(per_model)
            n = len(per_model[models[0]])
            pooled = vendi_terms(np.concatenate([per_model[m] for m in models]))
            rows.append(vendi_row(t, POOLED, ds, pooled.reshape(len(models), n).mean(axis=0)))
        ref = inputs.embedding(REFERENCE, ds)
        reused = inputs.previous_reference_rows(FAMILY, ds)
        if reused is not None:
            rows += reused
        elif ref is not None and len(ref):
            rows.append(vendi_row(t, REFERENCE, ds, vendi_terms(ref)))
    return rows
