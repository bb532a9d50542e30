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
from crossgen.mixture import entity_weights, fraction_array
from crossgen.theory import network
from crossgen.theory.graphs import GraphSpec, interaction
from crossgen.theory.limit import asymptotic, stationary_mse
from crossgen.theory.system import FeatureSystem, psd_pinv


def pooled_ols_mse(system: FeatureSystem) -> float:
    """MSE of min-norm OLS on all real data pooled, the benchmark of the relative efficiency.

    s2 tr(S^+) + ||(I - S^+ S) theta||^2 with S = sum_k S~_k + S*: O(K d^2 + d^3) given the
    Grams. The bias term is nonzero only when S is rank-deficient.

    Parameters
    ----------
    system : FeatureSystem

    Returns
    -------
    float
    """
    S = system.private_grams.sum(axis=0) + system.public_gram
    Sp = psd_pinv(S)
    r = system.theta - Sp @ (S @ system.theta)
    return float(system.sigma2 * np.trace(Sp) + r @ r)


def relative_efficiency(
    system: FeatureSystem, alpha: Any, beta: Any, *, graph: GraphSpec = None, fresh_real: bool = False
) -> np.ndarray:
    """Pooled-OLS MSE / asymptotic MSE of each entity (Theorem 3; paper's Figure 2).

    The benchmark is one draw of all real data pooled, whatever the graph; with fresh real
    data the workflow sees a new draw every generation, so its efficiency can exceed 1.

    Parameters
    ----------
    system : FeatureSystem
    alpha, beta : float or array (K,)
        Stationary weights: a scalar or one value per entity, in [0, 1] (see `asymptotic`).
    graph, fresh_real
        Interaction matrix and fresh real data, as for `asymptotic`.

    Returns
    -------
    array (K,)
        The efficiencies; zeros when the workflow diverges (rho(Q) >= 1).

    Raises
    ------
    InputError
        A weight outside [0, 1] or of the wrong shape.
    """
    asym = asymptotic(system, alpha, beta, graph=graph, fresh_real=fresh_real)
    if asym.mse is None:  # diverges
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


def efficiency_grid(
    system: FeatureSystem, alphas: Any, betas: Any, *, graph: GraphSpec = None, fresh_real: bool = False
) -> np.ndarray:
    """Relative efficiency of every entity on an alpha x beta grid (weights shared by all
    entities), vectorised over the cells (`limit.stationary_mse`): O(cells K d^3). On a graph
    other than the complete one, one `network.limit` per cell: O(cells (Kd)^3).

    Parameters
    ----------
    system : FeatureSystem
    alphas, betas : sequence of float
        Non-empty lists of weights in [0, 1].
    graph, fresh_real
        Interaction matrix and fresh real data, as for `asymptotic`.

    Returns
    -------
    array (len(alphas), len(betas), K)
        0 where the workflow diverges.

    Raises
    ------
    InputError
        An empty list or a value outside [0, 1], named like ``alphas[1]``.
    """
    a = _grid_axis("alphas", alphas)
    b = _grid_axis("betas", betas)
    K = system.K
    W = interaction(graph, K)
    A = np.broadcast_to(a[:, None, None], (a.size, b.size, K))
    B = np.broadcast_to(b[None, :, None], (a.size, b.size, K))
    if W is None:
        mse, _ = stationary_mse(system, A, B, fresh_real=bool(fresh_real))
    else:
        mse = np.full((a.size, b.size, K), np.inf)
        for i in range(a.size):
            for j in range(b.size):
                ai, bj = entity_weights("alpha", a[i], K), entity_weights("beta", b[j], K)
                lim = network.limit(system, W, ai, bj, bj, fresh_real=bool(fresh_real))
                if lim.mse is not None:
                    mse[i, j] = lim.mse
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
    """The best stationary (alpha, beta) of every entity and of the group (mean efficiency
    over the entities) on a grid, by relative efficiency.

    Parameters
    ----------
    system : FeatureSystem
    alphas, betas : sequence of float
        The grid's axes, as for `efficiency_grid`.

    Returns
    -------
    OptimalWeights
        Ties go to the smallest alpha, then the smallest beta.

    Raises
    ------
    InputError
        As `efficiency_grid`.
    """
    eff = efficiency_grid(system, alphas, betas)
    a, b = _grid_axis("alphas", alphas), _grid_axis("betas", betas)
    nb, K = b.size, system.K
    flat = eff.reshape(-1, K)
    best = np.argmax(flat, axis=0)
    group = flat.mean(axis=1)
    g = int(np.argmax(group))
    return OptimalWeights(
        alphas=a,
        betas=b,
        efficiency=eff,
        entity_alpha=a[best // nb],
        entity_beta=b[best % nb],
        entity_efficiency=flat[best, np.arange(K)],
        group_alpha=float(a[g // nb]),
        group_beta=float(b[g % nb]),
        group_efficiency=float(group[g]),
    )
