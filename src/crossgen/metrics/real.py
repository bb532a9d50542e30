"""Distance of a model's completions to real text: MAUVE and k-NN precision/recall/density/coverage.

The real text of a dataset is its reference answers to the same prompts (embeddings
`reference/<dataset>` in embeddings.npz); a model's text is its completions
(`completion/<model>/<dataset>`). Both are all-MiniLM-L6-v2 sentence embeddings (unit norm).

mauve     `mauve.compute_mauve(p_features=completions, q_features=references)` of the
          mauve-text package with its defaults (L2-normalised features, PCA keeping 90% of the
          variance, k-means with n/10 buckets, 5 restarts of at most 500 iterations, scaling
          factor 5), once per k-means seed in MAUVE_SEEDS; value = the mean over the seeds,
          low/high = the smallest and largest of them (the spread due to clustering, not a
          sampling interval). 1 = indistinguishable from the real text. Needs at least
          MAUVE_MIN_POINTS prompts; skipped (family not written) without mauve-text.
precision, recall, density, coverage  (Kynkäänniemi et al. 2019; Naeem et al. 2020, as in
          the `prdc` package): Euclidean distances; the real manifold is the union of balls
          around each reference with radius its distance to its k-th nearest other reference
          (k = NEAREST_K), the model's manifold likewise. precision = share of completions
          inside the real manifold; recall = share of references inside the model's manifold;
          density = mean over completions of (number of real balls containing it) / k;
          coverage = share of references whose ball contains a completion. low/high:
          percentile bootstrap over prompts of these per-item means, the manifolds held at
          the full sets.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from crossgen.metrics.families import REFERENCE, GenerationInputs, register_family
from crossgen.metrics.table import interval, row, stable_seed

NEAREST_K = 5
MAUVE_SEEDS = (1, 2, 3)
MAUVE_MIN_POINTS = 20


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    sq = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.clip(sq, 0.0, None))


def _kth_radius(d_self: np.ndarray, k: int) -> np.ndarray:
    """Distance of each point to its k-th nearest other point (column k of the sorted row, 0 = itself)."""
    k = min(k, d_self.shape[0] - 1)
    return np.partition(d_self, k, axis=1)[:, k]


def manifold_terms(real: np.ndarray, fake: np.ndarray, k: int = NEAREST_K) -> dict[str, np.ndarray]:
    """Per-item indicators whose means are precision, density (over fakes), recall, coverage (over reals)."""
    r_radius = _kth_radius(_distances(real, real), k)
    f_radius = _kth_radius(_distances(fake, fake), k)
    d = _distances(real, fake)  # (n_real, n_fake)
    inside_real = d < r_radius[:, None]
    return {
        "precision": inside_real.any(axis=0).astype(float),
        "recall": (d < f_radius[None, :]).any(axis=1).astype(float),
        "density": inside_real.sum(axis=0) / float(k),
        "coverage": (d.min(axis=1) < r_radius).astype(float),
    }


def manifold_scores(real: np.ndarray, fake: np.ndarray, k: int = NEAREST_K) -> dict[str, float]:
    return {name: float(v.mean()) for name, v in manifold_terms(real, fake, k).items()}


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """faiss prints clustering warnings from C++ straight to file descriptor 2."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def mauve_scores(p: np.ndarray, q: np.ndarray, seeds=MAUVE_SEEDS) -> list[float]:
    """MAUVE(p, q) of the mauve-text package with its defaults, once per k-means seed."""
    from mauve import compute_mauve

    p, q = np.asarray(p, dtype=np.float32), np.asarray(q, dtype=np.float32)
    out = []
    with _quiet_stderr():
        for seed in seeds:
            out.append(float(compute_mauve(p_features=p, q_features=q, seed=int(seed), verbose=False).mauve))
    return out


@register_family("manifold", needs_embeddings=True)
def manifold(inputs: GenerationInputs) -> list[dict]:
    rows = []
    for ds in inputs.datasets:
        real = inputs.embedding(REFERENCE, ds)
        if real is None or len(real) < 2:
            continue
        for m in inputs.models:
            fake = inputs.embedding(m, ds)
            if fake is None or len(fake) < 2:
                continue
            for metric, values in manifold_terms(real, fake).items():
                seed = stable_seed("manifold", m, ds, metric)
                rows.append(row(inputs.t, m, ds, metric, *interval(values, seed=seed)))
    return rows


@register_family("mauve", needs_embeddings=True, requires="mauve", install="pip install 'crossgen[mauve]'")
def mauve(inputs: GenerationInputs) -> list[dict]:
    rows = []
    for ds in inputs.datasets:
        real = inputs.embedding(REFERENCE, ds)
        if real is None or len(real) < MAUVE_MIN_POINTS:
            continue
        for m in inputs.models:
            fake = inputs.embedding(m, ds)
            if fake is None or len(fake) < MAUVE_MIN_POINTS:
                continue
            scores = mauve_scores(fake, real)
            rows.append(row(inputs.t, m, ds, "mauve", float(np.mean(scores)), min(scores), max(scores)))
    return rows
