"""The mixture weights of an update: the one home of alpha, beta and their schedules.

Entity k's update at generation t trains on its private data D~k, the public data D* and
the synthetic pools of the previous generation's models, with loss (or sampling) weights

    private (1 - a) b,   public (1 - a)(1 - b),   pool j  a W[k, j]

where a = alpha[t, k], b = beta[t, k] and W is the interaction matrix (rows sum to 1; the
paper's complete graph is W = 1/K everywhere, so each pool gets a / K). Generation 0 has no
synthetic data: alpha[0] is 0 by definition, whatever a schedule says.

A weight is given as a scalar (every generation and entity), one value per generation
t = 0..T (shared by the entities), or a (T+1, K) array; `weight_schedule` turns any of them
into the (T+1, K) array that the theory, the Monte Carlo twin and the workflow loop all read.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from crossgen.errors import FRACTION, InputError, check_fraction, check_int


class MixtureWeights(NamedTuple):
    """Weights of one entity's update: private, public, and one per synthetic pool."""

    private: float
    public: float
    pools: tuple[float, ...]


def mixture_weights(alpha: float, beta: float, K: int, generation: int = 1) -> MixtureWeights:
    """(1-a)b, (1-a)(1-b) and a/K for each of the K pools (no pools' weight at generation 0)."""
    a = 0.0 if generation == 0 else float(alpha)
    b = float(beta)
    return MixtureWeights((1.0 - a) * b, (1.0 - a) * (1.0 - b), (a / K,) * K if generation else ())


def mixture_coefficients(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrays (abar*beta, abar*bbar, alpha): the private, public and total synthetic weights."""
    abar = 1.0 - alpha
    return abar * beta, abar * (1.0 - beta), alpha


def fraction_array(name: str, arr: np.ndarray) -> None:
    """Raise InputError naming the first entry outside [0, 1] (NaN included), e.g. alpha[3,1]."""
    bad = ~((arr >= 0.0) & (arr <= 1.0))
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{name}[{','.join(map(str, idx))}]", float(arr[idx]), FRACTION)


def _as_float_array(name: str, value: Any, allowed: str) -> np.ndarray:
    try:
        return np.array(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(name, value, allowed) from None


def weight_schedule(name: str, value: Any, generations: int, K: int, *, zero_at_start: bool = False) -> np.ndarray:
    """A weight (alpha or beta) as a (T+1, K) array, row t = generation t, column k = entity.

    value: a scalar, a length-(T+1) sequence (one value per generation, t = 0 first, shared by
    all entities) or a (T+1, K) array. When K == T+1 a 1-D sequence is read per generation.
    Every entry must lie in [0, 1]; the error names the entry, e.g. ``alpha[3]`` or
    ``alpha[3,1]``. ``zero_at_start`` sets row 0 to 0 (alpha: generation 0 sees real data only).
    """
    T = check_int("generations", generations, 0)
    allowed = f"{FRACTION}, {T + 1} such numbers (one per generation t = 0..{T}), or a ({T + 1}, {K}) array"
    arr = _as_float_array(name, value, allowed)
    if arr.ndim == 0:
        out = np.full((T + 1, K), check_fraction(name, float(arr)))
    elif arr.ndim == 1 and arr.shape[0] == T + 1:
        fraction_array(name, arr)
        out = np.repeat(arr[:, None], K, axis=1)
    elif arr.ndim == 2 and arr.shape == (T + 1, K):
        fraction_array(name, arr)
        out = arr.copy()
    else:
        raise InputError(name, f"shape {arr.shape}", allowed)
    if zero_at_start:
        out[0] = 0.0
    return out


def entity_weights(name: str, value: Any, K: int) -> np.ndarray:
    """A stationary weight as a (K,) array: a scalar or one value per entity, each in [0, 1]."""
    allowed = f"{FRACTION} or {K} such numbers (one per entity)"
    arr = _as_float_array(name, value, allowed)
    if arr.ndim == 0:
        return np.full(K, check_fraction(name, float(arr)))
    if arr.shape == (K,):
        fraction_array(name, arr)
        return arr.copy()
    raise InputError(name, f"shape {arr.shape}", allowed)
