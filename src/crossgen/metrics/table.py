"""The tidy metric table: one row per (generation, model, dataset, metric), with a 95% interval.

Every metric family writes gen_NNN/metrics/<family>.csv with exactly `COLUMNS`; the run-level
metrics.csv concatenates them over complete generations. `value` is the statistic on the full
sample; `low` and `high` bound its bootstrap interval over the sample's units (prompts), or are
empty where a metric has no per-unit decomposition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

COLUMNS = ["generation", "model", "dataset", "metric", "value", "low", "high"]
METRICS_DIR = "metrics"
N_RESAMPLES = 1000
LEVEL = 0.95


def family_path(gen_dir: Path, family: str) -> Path:
    """Where one family's rows of one generation live."""
    return Path(gen_dir) / METRICS_DIR / f"{family}.csv"


def interval(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
) -> tuple[float, float, float]:
    """(statistic, low, high): the percentile bootstrap interval over the units of `values`.

    scipy.stats.bootstrap does the resampling; the percentile method because BCa is undefined
    for a sample whose resamples all agree (a model that is always right), which is common
    here. A single unit, or a constant sample, gives a zero-width interval.
    """
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"interval needs a non-empty 1-d sample, got shape {x.shape}")
    value = float(statistic(x))
    if x.size == 1 or np.all(x == x[0]):
        return value, value, value
    res = bootstrap(
        (x,),
        lambda s, axis=-1: np.apply_along_axis(statistic, axis, s) if statistic is not np.mean else s.mean(axis=axis),
        n_resamples=n_resamples,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return value, float(res.confidence_interval.low), float(res.confidence_interval.high)


def row(
    generation: int,
    model: str,
    dataset: str,
    metric: str,
    value: float,
    low: Optional[float] = None,
    high: Optional[float] = None,
) -> dict:
    return {
        "generation": generation,
        "model": model,
        "dataset": dataset,
        "metric": metric,
        "value": value,
        "low": low,
        "high": high,
    }


def frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as a table with exactly COLUMNS, in that order."""
    return pd.DataFrame(rows, columns=COLUMNS)


def ratio_interval(
    numerators: Sequence[float] | np.ndarray,
    denominators: Sequence[float] | np.ndarray,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
    level: float = LEVEL,
) -> tuple[float, float, float]:
    """(sum(num) / sum(den), low, high): the percentile bootstrap of a ratio of sums over units.

    The units (prompts) are resampled in pairs (num_i, den_i), vectorised in scipy. A single
    unit, or units whose ratios all agree, give a zero-width interval.
    """
    from scipy.stats import bootstrap

    num, den = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    if num.ndim != 1 or num.shape != den.shape or num.size == 0:
        raise ValueError(f"ratio_interval needs two non-empty 1-d samples of one length, got {num.shape}, {den.shape}")
    total = den.sum()
    value = float(num.sum() / total) if total > 0 else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = num / den
    if num.size == 1 or not np.isfinite(value) or np.allclose(ratios[den > 0], value, rtol=0, atol=1e-15):
        return value, value, value

    def statistic(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return a.sum(axis=axis) / b.sum(axis=axis)

    res = bootstrap(
        (num, den),
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=level,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return value, float(res.confidence_interval.low), float(res.confidence_interval.high)


def stable_seed(*keys: object) -> int:
    """A bootstrap seed from names (family, generation, model, dataset, metric): the same on
    every machine and in every process, so a recomputed table is identical."""
    import zlib

    return zlib.crc32("\x1f".join(map(str, keys)).encode())
