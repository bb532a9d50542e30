"""Exact per-generation errors of every entity: `trajectory` (Theorems 1-2, corrected).

Any weights: the recursion of `recursion`, O(K d^3) time per generation. Stationary weights
(alpha and beta the same at every t >= 1, the system's synthetic features): G_t^+ = H and
A_t = A for t >= 2, so every time-dependent quantity is a d x d matrix polynomial in A, and
the trajectory costs O(K d^3) once (shared with the limit: `trajectory_with_limit`) plus
O(d^3 + K d^2) per generation. With c_k = ab_k S_k H_k, Wh_1[k] = ab0_k S_k H0_k (H0 = G_0^+)
and P_t = sum_{s<t-1} A^s:
  Wh_t[k] = P_t c_k + A^{t-1} Wh_1[k], so <Wh_t[k], H2_k S~_k> = ab_k <P_t, E_k>
            + ab0_k <A^{t-1}, E0_k> with E = H2 S~ H S, E0 = H2 S~ H0 S (d x d per entity, once);
  Zp_t = sum_k Wh_t[k] S~_k Wh_t[k]' = C0 + A X_{t-1} + (A X_{t-1})' + A Zp_{t-1} A' and
  X_t = sum_k Wh_t[k] S~_k c_k' = C0 + A X_{t-1}, C0 = sum_k c_k S~_k c_k' (t >= 2);
  Wh_t[pub], Y_t and omega_t = sum_k S_k mean_{t-1,k} follow their d x d recursions,
  and mean_t = H (p + u omega_t).
Each entity's trace is then a Frobenius product of a per-entity matrix (E, E0, H2) with a
d x d matrix of generation t: one (K, d^2) x (d^2, T) matrix product for all generations.
With fresh real data only Y_t remains (`_fresh_stationary`). An interaction graph other than
the complete one runs the block recursion of `network` (`_network_trajectory`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Optional

import numpy as np

from crossgen.errors import InputError, check_int
from crossgen.mixture import entity_weights
from crossgen.theory import network
from crossgen.theory.graphs import GraphSpec, interaction
from crossgen.theory.limit import Asymptote, limit_of
from crossgen.theory.recursion import (
    cov_blocks,
    iterate_states,
    mspe,
    real_data_variance,
    schedule_grams,
    sym,
    variance,
    weights,
)
from crossgen.theory.stationary import Stationary, factorise, generation0
from crossgen.theory.system import FeatureSystem, frob


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Exact per-generation errors of every entity, t = 0..T (unconditional over all data).

    Attributes
    ----------
    alpha, beta : array (T+1, K)
        The weights used (alpha[0] = 0).
    mean : array (T+1, K, d)
        E[theta_tk].
    bias2, variance, mse : array (T+1, K)
        ||E theta_tk - theta||^2, tr Cov(theta_tk) and their sum, the MSE.
    spectral_radius : array (T+1,)
        rho(Q_t), 0 at t = 0.
    mspe : array (T+1, K, K)
        mspe[t, k, m] = E||X~_m (theta_tk - theta)||^2 (entity k's estimate on entity m's
        private features); computed on first access, O(T (K d^3 + K^2 d^2)).
    graph : array (K, K) or None
        The interaction matrix W (None: the complete graph, the paper's).
    fresh_real : bool
        Whether the real data were drawn anew every generation.
    """

    alpha: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    bias2: np.ndarray
    variance: np.ndarray
    mse: np.ndarray
    spectral_radius: np.ndarray
    _system: FeatureSystem = field(repr=False)
    _schedule: Optional[list] = field(repr=False)
    graph: Optional[np.ndarray] = None
    fresh_real: bool = False

    @property
    def generations(self) -> int:
        return self.alpha.shape[0] - 1

    @cached_property
    def mspe(self) -> np.ndarray:
        of = mspe if self.graph is None else network.mspe
        return np.array([of(self._system, s) for s in self._states()])

    def cov_blocks(self, t: int) -> np.ndarray:
        """(K, K, d, d) all blocks of Cov(theta_t), recomputed on request by rerunning the
        recursion to generation t: O(t K d^3 + K^2 d^3) time and K^2 d^2 memory, so meant for
        small K (tests, plots)."""
        T = self.generations
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t <= T:
            raise InputError("t", t, f"an integer in [0, {T}]")
        of = cov_blocks if self.graph is None else network.cov_blocks
        for s in self._states():
            if s.t == t:
                return of(self._system, s)
        raise AssertionError("unreachable")

    def _states(self):
        if self.graph is None:
            return iterate_states(self._system, self.alpha, self.beta, self._schedule, self.fresh_real)
        return network.iterate_states(self._system, self.graph, self.alpha, self.beta, self._schedule, self.fresh_real)


def trajectory(
    system: FeatureSystem,
    alpha: Any,
    beta: Any,
    generations: int,
    synthetic_schedule: Optional[Sequence[Sequence[np.ndarray]]] = None,
    *,
    graph: GraphSpec = None,
    fresh_real: bool = False,
) -> Trajectory:
    """Theorems 1-2 (corrected): exact mean, variance and MSE of every entity, t = 0..T.

    O(T K d^3) time and O(K d^2) memory; with stationary weights and no schedule,
    O(K d^3 + T (d^3 + K d^2)) (see the module docstring). The MSPE is computed on request.
    Any interaction graph other than the complete one: the block method of `network`,
    O(T (K^2 d^3 + K^3 d^2)) time and O(K^2 d^2) memory, plus O((Kd)^3) for each distinct
    spectral radius.

    Parameters
    ----------
    system : FeatureSystem
    alpha, beta : float, sequence (T+1,) or array (T+1, K)
        Weights of every generation (and entity), see `crossgen.mixture.weight_schedule`;
        alpha at t = 0 is ignored (generation 0 sees real data only).
    generations : int
        T >= 0, the number of updates after the initial fit.
    synthetic_schedule : sequence of T sequences of K arrays (m_tk, d), optional
        The synthetic features of generations t = 1..T (default: the system's synthetic
        features every generation).
    graph : None, str or array (K, K), optional
        The interaction matrix W (`crossgen.theory.graphs`): None or 'complete' (the paper),
        a name ('ring', 'directed-ring', 'star', 'isolated') or a matrix.
    fresh_real : bool, default False
        Draw the private and public real data anew every generation (their noise independent
        across generations) instead of the paper's one draw reused by every generation.

    Returns
    -------
    Trajectory

    Raises
    ------
    InputError
        A weight outside [0, 1] or of the wrong shape, a negative T, a malformed schedule, or
        an invalid graph.
    """
    a, b = weights(system, alpha, beta, generations)
    schedule = schedule_grams(system, synthetic_schedule, a.shape[0] - 1)
    W = interaction(graph, system.K)
    fresh = bool(fresh_real)
    if W is not None:
        return _network_trajectory(system, W, a, b, schedule, fresh)
    if schedule is None and np.all(a[1:] == a[-1]) and np.all(b[1:] == b[-1]):
        return _stationary_trajectory(system, a, b, fresh_real=fresh)
    return _recursive_trajectory(system, a, b, schedule, fresh)


def trajectory_with_limit(
    system: FeatureSystem,
    alpha: Any,
    beta: Any,
    generations: int,
    *,
    graph: GraphSpec = None,
    fresh_real: bool = False,
) -> tuple[Trajectory, Asymptote]:
    """`trajectory` and `asymptotic` for stationary weights, sharing one factorisation.

    The numbers of the two calls (the limit up to rounding, ~1e-15), for about the cost of
    the trajectory alone: G^+ and the products behind the limit are computed once
    (`crossgen theory mse` uses this).

    Parameters
    ----------
    system : FeatureSystem
    alpha, beta : float or array (K,)
        Weights of every generation (beta also at t = 0): a scalar or one per entity.
    generations : int
        T >= 0.
    graph, fresh_real
        As for `trajectory` (a graph other than the complete one runs `network`'s trajectory
        and limit).

    Returns
    -------
    (Trajectory, Asymptote)

    Raises
    ------
    InputError
        A weight outside [0, 1] or of the wrong shape, a negative T, or an invalid graph.
    """
    K = system.K
    a1 = entity_weights("alpha", alpha, K)
    b1 = entity_weights("beta", beta, K)
    T = check_int("generations", generations, 0)
    W = interaction(graph, K)
    fresh = bool(fresh_real)
    a, b = weights(system, np.tile(a1, (T + 1, 1)), np.tile(b1, (T + 1, 1)), T)
    if W is not None:
        traj = _network_trajectory(system, W, a, b, None, fresh)
        return traj, network.limit(system, W, a1, b1, b1, fresh_real=fresh, mean0=traj.mean[0])
    st = factorise(system, a1[None], b1[None], beta0=b1 if T and np.any(a1) else None)
    traj = _stationary_trajectory(system, a, b, st if T else None, fresh_real=fresh)
    return traj, limit_of(system, st, b1, mean0=traj.mean[0], fresh_real=fresh)


# ============================================================================ any weights
def _recursive_trajectory(
    system: FeatureSystem, a: np.ndarray, b: np.ndarray, schedule: Optional[list], fresh_real: bool = False
) -> Trajectory:
    """The recursion generation by generation; only the traces of the covariance."""
    means, var, rho = [], [], []
    for s in iterate_states(system, a, b, schedule, fresh_real):
        means.append(s.mean)
        var.append(variance(system, s))
        rho.append(s.rho)
    return _result(system, a, b, schedule, np.array(means), np.array(var), np.array(rho), fresh_real=fresh_real)


def _network_trajectory(
    system: FeatureSystem, W: np.ndarray, a: np.ndarray, b: np.ndarray, schedule: Optional[list], fresh_real: bool
) -> Trajectory:
    """Any interaction graph: the block recursion of `network`."""
    means, var, rho = [], [], []
    for s in network.iterate_states(system, W, a, b, schedule, fresh_real):
        means.append(s.mean)
        var.append(network.variance(system, s))
        rho.append(s.rho)
    return _result(
        system, a, b, schedule, np.array(means), np.array(var), np.array(rho), graph=W, fresh_real=fresh_real
    )


def _result(system, a, b, schedule, mean, var, rho, graph=None, fresh_real=False) -> Trajectory:
    e = mean - system.theta
    bias2 = np.einsum("tki,tki->tk", e, e)
    return Trajectory(
        alpha=a,
        beta=b,
        mean=mean,
        bias2=bias2,
        variance=var,
        mse=bias2 + var,
        spectral_radius=rho,
        _system=system,
        _schedule=schedule,
        graph=graph,
        fresh_real=fresh_real,
    )


# ============================================================================ stationary weights
def _stationary_trajectory(
    system: FeatureSystem, a: np.ndarray, b: np.ndarray, st: Optional[Stationary] = None, fresh_real: bool = False
) -> Trajectory:
    """Generations 0..T when a[t], b[t] are the same for all t >= 1 (see the module
    docstring); st: their factorisation, with generation 0 if alpha > 0 (made if None and
    T >= 1; None when T = 0).

    fresh_real: no real data is carried through the synthetic data, and
    Y_1 = sigma^2 (sum_k S_k + Zp_1 + Wpub_1 S* Wpub_1'), Y_t = sigma^2 (sum_k S_k + C0 +
    N S* N') + A Y_{t-1} A' (t >= 2), var_t = const + u^2 <Y_t, H2>."""
    T, K, d, s2 = a.shape[0] - 1, system.K, system.d, system.sigma2
    if T and st is None:
        st = factorise(system, a[1][None], b[1][None], beta0=b[0] if np.any(a[1]) else None)
    g0 = st.g0 if st is not None and st.g0 is not None else generation0(system, b[0])
    mean = np.empty((T + 1, K, d))
    var = np.empty((T + 1, K))
    mean[0], var[0] = g0["mean0"], g0["var0"]
    if st is None:  # T = 0
        return _result(system, a, b, None, mean, var, np.zeros(1), fresh_real=fresh_real)
    rho = np.r_[0.0, np.full(T, st.rho[0])]
    Ss, Syn = system.public_gram, system.synthetic_grams
    H, H2, E, A, N, C0 = st.H[0], st.H2[0], st.E[0], st.A[0], st.N[0], st.C0[0]
    u, ab, ac, p = st.u[0], st.ab[0], st.ac[0], st.p[0]
    if not np.any(u):  # alpha = 0: nothing synthetic, G_t = G_1
        mean[1:] = p
        var[1:] = real_data_variance(H, system.private_grams, Ss, ab, ac, s2)
        return _result(system, a, b, None, mean, var, rho, fresh_real=fresh_real)
    const = s2 * (ab**2 * frob(system.private_grams, H2) + ac**2 * frob(Ss, H2))
    ab0, Zp, X, Wpub = g0["ab0"], g0["Zp"], g0["X"], g0["Wpub"]
    Sigma = Syn.sum(axis=0)
    Y = s2 * Sigma
    P, Apow = np.zeros((d, d)), np.eye(d)
    omega = np.einsum("kij,kj->i", Syn, g0["mean0"])  # sum_k S_k mean0_k
    drift = np.einsum("kij,kj->i", Syn, p)  # sum_k S_k p_k
    if fresh_real:
        return _fresh_stationary(system, a, b, st, g0, mean, var, rho, omega, drift)
    Ps, Apows, Mpubs, Ztots, omegas = [], [], [], [], []
    for t in range(1, T + 1):
        if t > 1:
            AX = A @ X
            Zp = C0 + AX + AX.T + A @ Zp @ A.T
            X = C0 + AX
            Wpub = N + A @ Wpub
            Y = s2 * Sigma + A @ Y @ A.T
            P = np.eye(d) + A @ P
            Apow = A @ Apow
            omega = drift + A @ omega
        Mpub = Wpub @ Ss
        Ps.append(P)
        Apows.append(Apow)
        Mpubs.append(Mpub)
        Ztots.append(sym(s2 * (Zp + Mpub @ Wpub.T) + Y))
        omegas.append(omega)

    def cols(mats):  # T matrices -> (d^2, T)
        return np.stack(mats).reshape(T, d * d).T

    priv = ab[:, None] * (E.reshape(K, -1) @ cols(Ps)) + ab0[:, None] * (
        g0["E0"].reshape(K, -1) @ cols(Apows)
    )  # <Wh_t[k], H2_k S~_k>
    HZ = H2.reshape(K, -1) @ np.concatenate([cols(Mpubs), cols(Ztots)], axis=1)
    cross = ab[:, None] * priv + ac[:, None] * HZ[:, :T]
    var[1:] = (const[:, None] + 2 * s2 * u[:, None] * cross + (u**2)[:, None] * HZ[:, T:]).T
    Hw = (H.reshape(K * d, d) @ np.stack(omegas, axis=1)).reshape(K, d, T)
    mean[1:] = p + u[:, None] * np.moveaxis(Hw, -1, 0)
    return _result(system, a, b, None, mean, var, rho)


def _fresh_stationary(system, a, b, st, g0, mean, var, rho, omega, drift) -> Trajectory:
    """`_stationary_trajectory` for fresh real data and alpha > 0 (see its docstring): the
    mean as with fixed real data, the variance from the d x d recursion of Y alone."""
    T, K, d, s2 = a.shape[0] - 1, system.K, system.d, system.sigma2
    Ss, Syn = system.public_gram, system.synthetic_grams
    H, H2, A, N, C0 = st.H[0], st.H2[0], st.A[0], st.N[0], st.C0[0]
    u, ab, ac, p = st.u[0], st.ab[0], st.ac[0], st.p[0]
    const = s2 * (ab**2 * frob(system.private_grams, H2) + ac**2 * frob(Ss, H2))
    Sigma = Syn.sum(axis=0)
    Y = s2 * (Sigma + g0["Zp"] + g0["Wpub"] @ Ss @ g0["Wpub"].T)
    source = s2 * (Sigma + C0 + N @ Ss @ N.T)
    Ys, omegas = [], []
    for t in range(1, T + 1):
        if t > 1:
            Y = source + A @ Y @ A.T
            omega = drift + A @ omega
        Ys.append(sym(Y))
        omegas.append(omega)
    HY = H2.reshape(K, -1) @ np.stack(Ys).reshape(T, d * d).T  # <Y_t, H2_k>
    var[1:] = (const[:, None] + (u**2)[:, None] * HY).T
    Hw = (H.reshape(K * d, d) @ np.stack(omegas, axis=1)).reshape(K, d, T)
    mean[1:] = p + u[:, None] * np.moveaxis(Hw, -1, 0)
    return _result(system, a, b, None, mean, var, rho, fresh_real=True)
