"""Theorem 3: the t -> infinity limit for stationary weights and features (t >= 1).

rho(Q) = rho(A) with A = sum_k S_k U_k (Lemma 1). When rho < 1 the limits are the fixed points
(correction 5) of the recursion in `recursion`: Wh[k] = (I-A)^{-1} ab_k S_k H_k, Wh[pub] =
(I-A)^{-1} sum_k ac_k S_k H_k and Y = sigma^2 X with X = A X A' + sum_k S_k (a d x d Stein
equation). When rho >= 1 (within `RHO_TOL`) the MSE diverges; `asymptotic` says how.

Everything runs batched over rows of weights (a grid of alpha-beta cells), in O(K d^3) per
row for the factorisation (`stationary.factorise`, shared with the closed-form trajectory of
`dynamics`) and O(d^3 + K d^2) per row here.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from crossgen.mixture import entity_weights
from crossgen.theory import network
from crossgen.theory.asymptote import COND_MAX, STEIN_RTOL, Asymptote, Growth, cesaro_increment, solve_stein
from crossgen.theory.graphs import GraphSpec, interaction
from crossgen.theory.recursion import GenerationState, initial_state, sym, tr
from crossgen.theory.recursion import mspe as mspe_of
from crossgen.theory.stationary import RHO_TOL, Stationary, factorise
from crossgen.theory.system import FeatureSystem, frob

__all__ = [
    "COND_MAX",
    "RHO_TOL",
    "STEIN_RTOL",
    "Asymptote",
    "Growth",
    "asymptotic",
    "limit_of",
    "solve_stein",
    "stationary_mse",
]


# ============================================================================ the limit
def _limit_errors(system: FeatureSystem, st: Stationary, want_state: bool = False, fresh_real: bool = False):
    """Limits (Theorem 3, corrected) for converging rows: mean (B, K, d), variance (B, K).

    With J = (I - A)^-1 the fixed points are Wh[k] = J ab_k S_k H_k, Wh[pub] = J N and
    Zh = J (C0 + N S* N') J'; in the trace formula of `recursion`,
    <Wh[k], H2 S~_k> = ab_k <J, E_k> and <Wh[pub] S*, H2> = <S* N' J', H2>.

    fresh_real (real data drawn anew every generation): no Wh, and Y = sigma^2 X with
    X = A X A' + sum_k S_k + C0 + N S* N' (docs/theory.md, "Fresh real data").
    """
    Ss, Syn, s2 = system.public_gram, system.synthetic_grams, system.sigma2
    A, H, H2, u, ab, ac, N = st.A, st.H, st.H2, st.u, st.ab, st.ac, st.N
    J = np.linalg.inv(np.eye(system.d) - A)
    if fresh_real:
        Y = s2 * solve_stein(A, Syn.sum(axis=0) + st.C0 + N @ Ss @ tr(N), st.lam, st.V)
        var = s2 * ((ab**2) * frob(system.private_grams, H2) + (ac**2) * frob(Ss, H2)) + (u**2) * frob(
            sym(Y)[:, None], H2
        )
    else:
        Zh = J @ (st.C0 + N @ Ss @ tr(N)) @ tr(J)
        Y = s2 * solve_stein(A, Syn.sum(axis=0), st.lam, st.V)
        Ztot = sym(s2 * Zh + Y)
        pub_cross = Ss @ tr(N) @ tr(J)  # S* Wh[pub]'
        ab2 = ab**2
        var = s2 * (
            ab2 * frob(system.private_grams, H2)
            + (ac**2) * frob(Ss, H2)
            + 2 * u * (ab2 * frob(J[:, None], st.E) + ac * frob(pub_cross[:, None], H2))
        ) + (u**2) * frob(Ztot[:, None], H2)
    omega = np.einsum("bij,bj->bi", J, np.einsum("kij,bkj->bi", Syn, st.p))
    mean = st.p + u[..., None] * np.einsum("bkij,bj->bki", H, omega)
    if not want_state:
        return mean, var, None
    K, d = system.K, system.d
    states = [
        GenerationState(
            t=-1,
            ab=ab[i],
            ac=ac[i],
            u=u[i],
            H=H[i],
            Wpriv=np.zeros((K, d, d)) if fresh_real else J[i] @ (ab[i][:, None, None] * st.SH(system, i)),
            Wpub=np.zeros((d, d)) if fresh_real else J[i] @ N[i],
            Y=Y[i],
            mean=mean[i],
            rho=float(st.rho[i]),
        )
        for i in range(A.shape[0])
    ]
    return mean, var, states


def stationary_mse(system: FeatureSystem, alpha: np.ndarray, beta: np.ndarray, fresh_real: bool = False):
    """Asymptotic MSE for a batch of stationary weights (..., K) -> (mse (..., K), rho (...)).

    Rows whose Q does not converge (rho >= 1 - RHO_TOL) get mse = inf. Used by the
    alpha-beta grids; everything is vectorised over the rows. The weights are not validated
    here (efficiency_grid and asymptotic do that). Complete graph only (`network` has the
    general one).
    """
    alpha, beta = np.broadcast_arrays(np.asarray(alpha, float), np.asarray(beta, float))
    shape = alpha.shape[:-1]
    K = system.K
    st = factorise(system, alpha.reshape(-1, K), beta.reshape(-1, K))
    mse = np.full((st.rho.shape[0], K), np.inf)
    ok = st.converges
    if ok.any():
        mean, var, _ = _limit_errors(system, st if ok.all() else st.rows(ok), fresh_real=fresh_real)
        mse[ok] = np.sum((mean - system.theta) ** 2, axis=-1) + var
    return mse.reshape(shape + (K,)), st.rho.reshape(shape)


def asymptotic(
    system: FeatureSystem,
    alpha: Any,
    beta: Any,
    *,
    beta0: Any = None,
    mspe: bool = False,
    graph: GraphSpec = None,
    fresh_real: bool = False,
) -> Asymptote:
    """Theorem 3 (corrected): the limit of every entity's errors as t -> infinity.

    Complete graph (the paper's): O(K d^3) time and O(K d^2) memory (no Kd x Kd matrix); see
    `limit` for the method. Any other interaction graph: the Kd x Kd method of `network`,
    O((Kd)^3) time and O((Kd)^2) memory.

    Parameters
    ----------
    system : FeatureSystem
    alpha, beta : float or array (K,)
        Stationary weights (generations t >= 1): a scalar or one value per entity, in [0, 1].
    beta0 : float or array (K,), optional
        Weight of generation 0 (default beta); it matters only for the limit of the mean
        when rho == 1.
    mspe : bool, default False
        Also compute the (K, K) asymptotic MSPE (O(K d^3 + K^2 d^2) more work).
    graph : None, str or array (K, K), optional
        The interaction matrix W (`crossgen.theory.graphs`): None or 'complete' (the paper),
        a name ('ring', 'directed-ring', 'star', 'isolated') or a matrix.
    fresh_real : bool, default False
        Real data drawn anew every generation (independent real-data noise across
        generations) instead of the paper's one draw reused by every generation.

    Returns
    -------
    Asymptote
        spectral_radius, converges, and either mse/mean/bias2/variance (converging) or growth
        (diverging).

    Raises
    ------
    InputError
        A weight outside [0, 1] or of the wrong shape, or an invalid graph.
    """
    K = system.K
    a = entity_weights("alpha", alpha, K)
    b = entity_weights("beta", beta, K)
    b0 = b if beta0 is None else entity_weights("beta0", beta0, K)
    W = interaction(graph, K)
    if W is not None:
        return network.limit(system, W, a, b, b0, mspe=mspe, fresh_real=bool(fresh_real))
    return limit_of(system, factorise(system, a[None], b[None]), b0, mspe=mspe, fresh_real=bool(fresh_real))


def limit_of(
    system: FeatureSystem,
    st: Stationary,
    beta0: np.ndarray,
    *,
    mspe: bool = False,
    mean0: Optional[np.ndarray] = None,
    fresh_real: bool = False,
) -> Asymptote:
    """`asymptotic` from a one-row factorisation; mean0: (K, d) generation 0's mean, if known."""
    rho = float(st.rho[0])
    if st.converges[0]:
        mean, var, states = _limit_errors(system, st, want_state=mspe, fresh_real=fresh_real)
        return Asymptote.converged(rho, system.theta, mean[0], var[0], mspe_of(system, states[0]) if mspe else None)
    growth, mean = _divergence(system, st, beta0, mean0, fresh_real)
    return Asymptote.diverged(rho, system.theta, growth, mean)


def _divergence(
    system: FeatureSystem, st: Stationary, beta0: np.ndarray, mean0: Optional[np.ndarray], fresh_real: bool = False
):
    """Growth of a non-converging system (row 0 of st) and the limit of its mean, if any.

    rho > 1: geometric, factor rho^2. rho == 1: with P_g = V[:, g] V^-1[g, :] the spectral
    projector of each group g of unit-modulus eigenvalues of A, Y_{t+1} - Y_t =
    sigma^2 A^t (sum_k S_k) A^t' has Cesaro limit sigma^2 sum_g P_g (sum_k S_k) P_g^H (cross
    terms between distinct unit eigenvalues average out), and the MSE increment of entity k is
    u_k^2 <that, H_k^2>; the rest of the covariance stays bounded provided the real data do
    not feed the unit eigenspace: P_unit L[c] = 0 for L[c] = V' P[:, c] = Lh[c] S_c (checked;
    for beta = 0 and full-rank G a left unit eigenvector u of A satisfies u' S* = 0).

    fresh_real: the real data's noise is new every generation, so it accumulates like the
    synthetic noise (linearly): the increment's source is sigma^2 (sum_k S_k + C0 + N S* N'),
    and only a mean fed along the unit eigenspace (P_unit s != 0) makes the growth superlinear.
    """
    d, s2 = system.d, system.sigma2
    rho = float(st.rho[0])
    u, H = st.u[0], st.H[0]
    if rho > 1.0 + RHO_TOL:
        return Growth("geometric", np.where(u > 0, rho**2, 1.0)), None
    lam, V, A = st.lam[0], st.V[0], st.A[0]
    unit = np.abs(lam) >= 1.0 - RHO_TOL
    try:
        Vi = np.linalg.inv(V)
        cond = np.linalg.cond(V)
    except np.linalg.LinAlgError:
        cond = np.inf
    if not np.isfinite(cond) or cond > COND_MAX:
        return Growth("superlinear", None), None
    Syn, St, Ss = system.synthetic_grams, system.private_grams, system.public_gram
    Pu = V[:, unit] @ Vi[unit, :]
    s = np.einsum("kij,kj->i", Syn, st.p[0])
    if fresh_real:
        fed = np.array([np.linalg.norm(Pu @ s) > 1e-8 * (1 + np.linalg.norm(s))])
    else:
        L = np.concatenate(
            [
                st.ab[0][:, None, None] * st.SH(system) @ St,  # L[c] = V' P[:, c]
                (st.N[0] @ Ss)[None],
            ]
        )
        fed = np.linalg.norm(Pu @ L, axis=(1, 2)) > 1e-8 * (1 + np.linalg.norm(L, axis=(1, 2)))
    if fed.any():
        return Growth("superlinear", None), None
    Sigma = Syn.sum(axis=0)
    if fresh_real:
        Sigma = Sigma + st.C0[0] + st.N[0] @ Ss @ st.N[0].T
    Yinc = s2 * sym(cesaro_increment(lam, V, Vi, unit, Sigma))
    inc = u**2 * frob(Yinc, st.H2[0])
    # Mean: omega_t = s + A omega_{t-1} (t >= 2), omega_1 = sum_j S_j mean_0j; with P1 s = 0
    # the limit is P1 omega_1 + (I - A(I - P1))^-1 (I - P1) s, if 1 is the only unit eigenvalue.
    mean = None
    if np.all(np.abs(lam[unit] - 1.0) < 1e-6):
        mean0 = initial_state(system, beta0).mean if mean0 is None else mean0
        omega1 = np.einsum("kij,kj->i", Syn, mean0)
        Pr = np.eye(d) - Pu.real
        omega = Pu.real @ omega1 + np.linalg.solve(np.eye(d) - A @ Pr, Pr @ s)
        mean = st.p[0] + u[:, None] * np.einsum("kij,j->ki", H, omega)
    return Growth("linear", inc), mean
