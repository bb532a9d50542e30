"""How alike the models' outputs are (across models) and how varied one model is (across prompts).

spread: for each prompt, the mean squared Euclidean distance of the K models' embeddings to
  their centroid; averaged over prompts. 0 when all models wrote the same thing; it shrinks as
  the models homogenize. (On unit-norm embeddings it equals 1 - |centroid|^2 per prompt.)
diversity: 1 - the mean cosine similarity between one model's completions of different prompts
  (all ordered pairs i != j). 0 when the model answers every prompt the same way (collapse).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crossgen.metrics.similarity import EPS


def spread(embeddings: Sequence[np.ndarray] | np.ndarray) -> float:
    """Mean over prompts of mean_k ||e_k[i] - mean_k e_k[i]||^2 for K (n, d) arrays (or (K, n, d))."""
    stack = np.asarray(embeddings, dtype=np.float64)
    if stack.ndim != 3:
        raise ValueError(f"spread needs K arrays of shape (n, d), got shape {stack.shape}")
    if stack.shape[1] == 0:
        return float("nan")
    centroid = stack.mean(axis=0, keepdims=True)
    return float(((stack - centroid) ** 2).sum(axis=2).mean())


def diversity(embeddings: np.ndarray) -> float:
    """1 - mean cos(e[i], e[j]) over pairs of different prompts i != j; NaN for fewer than 2."""
    e = np.asarray(embeddings, dtype=np.float64)
    n = e.shape[0]
    if n < 2:
        return float("nan")
    u = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), EPS)
    total = u.sum(axis=0)
    # sum_{i != j} u_i . u_j = |sum u|^2 - sum |u_i|^2, in O(n d)
    off_diagonal = float(total @ total - np.einsum("ij,ij->", u, u))
    return 1.0 - off_diagonal / (n * (n - 1))
