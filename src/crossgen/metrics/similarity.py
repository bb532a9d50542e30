"""Cosine similarity between models' outputs on the same prompts (the paper's Table 3).

For two models a and b that completed the same n prompts of a dataset, the similarity is
mean_i cos(emb_a[i], emb_b[i]): the two completions of one prompt are compared, then averaged
over prompts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np

EPS = 1e-12


def paired_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n,) cos(a[i], b[i]) for two (n, d) arrays (0 where a row is zero)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"paired_cosine needs two (n, d) arrays of one shape, got {a.shape} and {b.shape}")
    num = np.einsum("ij,ij->i", a, b)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.maximum(den, EPS)


def mean_paired_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """mean over prompts i of cos(a[i], b[i]); NaN when there are no prompts."""
    c = paired_cosine(a, b)
    return float(c.mean()) if c.size else float("nan")


def pairwise_similarity(
    embeddings: Mapping[str, np.ndarray], order: Sequence[str] | None = None
) -> list[tuple[str, str, float]]:
    """(model_a, model_b, cosine) for every unordered pair, a before b in `order` (default: dict order)."""
    names = list(order) if order is not None else list(embeddings)
    return [(a, b, mean_paired_cosine(embeddings[a], embeddings[b])) for a, b in combinations(names, 2)]
