"""Homogenization: do the entities' estimates collapse onto one consensus? (paper section 5)

The paper reads homogenization off the rows of M_t: when the K row blocks agree, every entity
has the same mean. Two per-generation numbers measure it here:
  consensus_distance_t = (1/K) sum_k ||E theta_tk - mean_l E theta_tl||^2, the spread of the
    means around their consensus;
  error_correlation_t[k, l] = E[e_k . e_l] / sqrt(E||e_k||^2 E||e_l||^2), e_k = theta_tk -
    theta, the correlation of the entities' errors (1 = they err identically), and
    mean_error_correlation_t, its average over pairs k < l (NaN when K = 1).
E[e_k . e_l] = tr Cov(theta_tk, theta_tl) + bias_k . bias_l uses the cross blocks of the
covariance as traces of Frobenius products, O(K d^3 + K^2 d^2) per generation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Optional, cast

import numpy as np

from crossgen.theory import network
from crossgen.theory.graphs import GraphSpec, interaction
from crossgen.theory.recursion import cross_traces, iterate_states, schedule_grams, weights
from crossgen.theory.system import FeatureSystem


@dataclass(frozen=True)
class Homogenization:
    """Per generation t = 0..T: consensus_distance (T+1,), error_correlation (T+1, K, K),
    mean_error_correlation (T+1,). A zero-error entity makes its correlations NaN."""

    consensus_distance: np.ndarray
    error_correlation: np.ndarray
    mean_error_correlation: np.ndarray


def homogenization(
    system: FeatureSystem,
    alpha: Any,
    beta: Any,
    generations: int,
    synthetic_schedule: Optional[Sequence[Sequence[np.ndarray]]] = None,
    *,
    graph: GraphSpec = None,
    fresh_real: bool = False,
) -> Homogenization:
    """Consensus distance and error correlations of the entities, per generation.

    Runs the recursion of `recursion`, O(T (K d^3 + K^2 d^2)); on a graph other than the
    complete one the block recursion of `network`, O(T (K^2 d^3 + K^3 d^2)).

    Parameters
    ----------
    system : FeatureSystem
    alpha, beta : float, sequence (T+1,) or array (T+1, K)
        Weights, as for `trajectory`.
    generations : int
        T >= 0.
    synthetic_schedule : sequence of T sequences of K arrays (m_tk, d), optional
        As for `trajectory`.
    graph, fresh_real
        The interaction matrix and fresh real data, as for `trajectory`.

    Returns
    -------
    Homogenization

    Raises
    ------
    InputError
        As `trajectory`.
    """
    a, b = weights(system, alpha, beta, generations)
    schedule = schedule_grams(system, synthetic_schedule, a.shape[0] - 1)
    K = system.K
    W = interaction(graph, K)
    fresh = bool(fresh_real)
    if W is None:
        states = cast(Iterator[Any], iterate_states(system, a, b, schedule, fresh))
        traces = cast(Callable[..., np.ndarray], cross_traces)
    else:
        states = cast(Iterator[Any], network.iterate_states(system, W, a, b, schedule, fresh))
        traces = cast(Callable[..., np.ndarray], network.cross_traces)
    iu = np.triu_indices(K, 1)
    dist, corr, mean_corr = [], [], []
    for s in states:
        spread = s.mean - s.mean.mean(axis=0)
        dist.append(np.sum(spread**2) / K)
        e = s.mean - system.theta
        E = traces(system, s) + e @ e.T
        with np.errstate(divide="ignore", invalid="ignore"):
            c = E / np.sqrt(np.outer(np.diag(E), np.diag(E)))
        corr.append(c)
        mean_corr.append(float(np.mean(c[iu])) if K > 1 else np.nan)
    return Homogenization(
        consensus_distance=np.array(dist), error_correlation=np.array(corr), mean_error_correlation=np.array(mean_corr)
    )
