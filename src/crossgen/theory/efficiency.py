"""How good is the workflow's limit? Pooled-OLS benchmark, relative efficiency, weight grids.

Paper section 5, "MSE and relative efficiency" and Figure 2: the benchmark is ordinary least
squares on all real data pooled (every private set and the public set, unweighted), the
estimator an entity would use if it could see everybody's data. Relative efficiency of
entity k = pooled-OLS MSE / asymptotic MSE of entity k (Theorem 3); 1 is optimal when every
G is full rank, and a biased limit can exceed 1 when the data are rank-deficient
(correction 7). A diverging workflow (rho(Q) >= 1) has efficiency 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from crossgen.errors import InputError
from crossgen.theory.dynamics import asymptotic, stationary_mse
from crossgen.mixture import fraction_array
from crossgen.theory.system import FeatureSystem, psd_pinv


def pooled_ols_mse(system: FeatureSystem) -> float:
    """MSE of min-norm OLS on all real data pooled: s2 tr(S^+) + ||(I - S^+ S) theta||^2,
    S = sum_k S~_k + S*. The bias term is nonzero only when S is rank-deficient."""
    S = system.private_grams.sum(axis=0) + system.public_gram
    Sp = psd_pinv(S)
    r = system.theta - Sp @ (S @ system.theta)
    return float(system.sigma2 * np.trace(Sp) + r @ r)


def relative_efficiency(system: FeatureSystem, alpha: Any, beta: Any) -> np.ndarray:
    """(K,) pooled-OLS MSE / asymptotic MSE of each entity; zeros when the workflow diverges.

    alpha, beta: stationary weights, a scalar or one per entity (see `asymptotic`)."""
    asym = asymptotic(system, alpha, beta)
    if not asym.converges:
        return np.zeros(system.K)
    return pooled_ols_mse(system) / asym.mse


def _grid_axis(name: str, values: Any) -> np.ndarray:
    try:
        arr = np.array(values, dtype=float)
    except (TypeError, ValueError):
        raise InputError(name, values, "a non-empty list of numbers in [0, 1]") from None
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(name, values, "a non-empty list of numbers in [0, 1]")
    fraction_array(name, arr)
    return arr


def efficiency_grid(system: FeatureSystem, alphas: Any, betas: Any) -> np.ndarray:
    """(len(alphas), len(betas), K) relative efficiencies, weights shared by all entities.

    Vectorised over the grid: one batched pseudo-inverse, eigen-decomposition and Stein
    solve for all cells (see `dynamics.stationary_mse`), no Python loop over cells."""
    a = _grid_axis("alphas", alphas)
    b = _grid_axis("betas", betas)
    K = system.K
    A = np.broadcast_to(a[:, None, None], (a.size, b.size, K))
    B = np.broadcast_to(b[None, :, None], (a.size, b.size, K))
    mse, _ = stationary_mse(system, A, B)
    with np.errstate(divide="ignore"):
        return np.where(np.isfinite(mse), pooled_ols_mse(system) / mse, 0.0)


@dataclass(frozen=True)
class OptimalWeights:
    """Best stationary weights on a grid.

    entity_alpha/entity_beta/entity_efficiency (K,): each entity's own argmax; group_alpha,
    group_beta, group_efficiency: argmax of the mean efficiency over entities; efficiency:
    the full (len(alphas), len(betas), K) grid. Ties go to the smallest alpha, then beta.
    """

    alphas: np.ndarray
    betas: np.ndarray
    efficiency: np.ndarray
    entity_alpha: np.ndarray
    entity_beta: np.ndarray
    entity_efficiency: np.ndarray
    group_alpha: float
    group_beta: float
    group_efficiency: float


def optimal_weights(system: FeatureSystem, alphas: Any, betas: Any) -> OptimalWeights:
    """Per-entity and group (mean over entities) argmax of `efficiency_grid`."""
    eff = efficiency_grid(system, alphas, betas)
    a, b = _grid_axis("alphas", alphas), _grid_axis("betas", betas)
    nb, K = b.size, system.K
    flat = eff.reshape(-1, K)
    best = np.argmax(flat, axis=0)
    group = flat.mean(axis=1)
    g = int(np.argmax(group))
    return OptimalWeights(alphas=a, betas=b, efficiency=eff,
                          entity_alpha=a[best // nb], entity_beta=b[best % nb],
                          entity_efficiency=flat[best, np.arange(K)],
                          group_alpha=float(a[g // nb]), group_beta=float(b[g % nb]),
                          group_efficiency=float(group[g]))
