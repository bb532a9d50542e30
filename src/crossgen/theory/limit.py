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

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from crossgen.mixture import entity_weights
from crossgen.theory.recursion import GenerationState, initial_state, sym, tr
from crossgen.theory.recursion import mspe as mspe_of
from crossgen.theory.stationary import RHO_TOL, Stationary, factorise
from crossgen.theory.system import FeatureSystem, frob

STEIN_RTOL = 1e-10
"""Relative residual above which the eigenvector Stein solve falls back to scipy's solver."""

COND_MAX = 1e10
"""Condition number of A's eigenvectors above which a unit spectral radius counts as defective."""


def solve_stein(
    A: np.ndarray, Q: np.ndarray, lam: Optional[np.ndarray] = None, V: Optional[np.ndarray] = None
) -> np.ndarray:
    """X = A X A' + Q for a stack of A (..., d, d) with rho(A) < 1; Q broadcasts.

    Batched eigenvector solve (A = V diag(lam) V^-1 gives X~_ij = Q~_ij / (1 - lam_i lam_j)),
    accepted where the relative residual is below STEIN_RTOL; elsewhere (defective or badly
    conditioned A) scipy.linalg.solve_discrete_lyapunov, one matrix at a time.
    """
    A = np.asarray(A, dtype=float)
    Qb = np.broadcast_to(Q, A.shape)
    X = np.full(A.shape, np.nan)
    if lam is None or V is None:
        lam, V = np.linalg.eig(A)
    try:
        Vi = np.linalg.inv(V)
        Qt = Vi @ Qb @ tr(Vi)
        with np.errstate(all="ignore"):
            X = sym((V @ (Qt / (1.0 - lam[..., :, None] * lam[..., None, :])) @ tr(V)).real)
            res = np.linalg.norm(X - A @ X @ tr(A) - Qb, axis=(-2, -1))
            bad = ~(res <= STEIN_RTOL * (np.linalg.norm(X, axis=(-2, -1)) + np.linalg.norm(Qb, axis=(-2, -1))))
    except np.linalg.LinAlgError:
        bad = np.ones(A.shape[:-2], dtype=bool)
    if bad.any():
        import scipy.linalg  # only here: importing scipy.linalg costs ~0.3 s

        for idx in zip(*np.nonzero(bad)) if bad.ndim else [()]:
            X[idx] = sym(scipy.linalg.solve_discrete_lyapunov(A[idx], Qb[idx]))
    return X


# ============================================================================ the limit
def _limit_errors(system: FeatureSystem, st: Stationary, want_state: bool = False):
    """Limits (Theorem 3, corrected) for converging rows: mean (B, K, d), variance (B, K).

    With J = (I - A)^-1 the fixed points are Wh[k] = J ab_k S_k H_k, Wh[pub] = J N and
    Zh = J (C0 + N S* N') J'; in the trace formula of `recursion`,
    <Wh[k], H2 S~_k> = ab_k <J, E_k> and <Wh[pub] S*, H2> = <S* N' J', H2>.
    """
    Ss, Syn, s2 = system.public_gram, system.synthetic_grams, system.sigma2
    A, H, H2, u, ab, ac, N = st.A, st.H, st.H2, st.u, st.ab, st.ac, st.N
    J = np.linalg.inv(np.eye(system.d) - A)
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
    states = [
        GenerationState(
            t=-1,
            ab=ab[i],
            ac=ac[i],
            u=u[i],
            H=H[i],
            Wpriv=J[i] @ (ab[i][:, None, None] * st.SH(system, i)),
            Wpub=J[i] @ N[i],
            Y=Y[i],
            mean=mean[i],
            rho=float(st.rho[i]),
        )
        for i in range(A.shape[0])
    ]
    return mean, var, states


def stationary_mse(system: FeatureSystem, alpha: np.ndarray, beta: np.ndarray):
    """Asymptotic MSE for a batch of stationary weights (..., K) -> (mse (..., K), rho (...)).

    Rows whose Q does not converge (rho >= 1 - RHO_TOL) get mse = inf. Used by the
    alpha-beta grids; everything is vectorised over the rows. The weights are not validated
    here (efficiency_grid and asymptotic do that).
    """
    alpha, beta = np.broadcast_arrays(np.asarray(alpha, float), np.asarray(beta, float))
    shape = alpha.shape[:-1]
    K = system.K
    st = factorise(system, alpha.reshape(-1, K), beta.reshape(-1, K))
    mse = np.full((st.rho.shape[0], K), np.inf)
    ok = st.converges
    if ok.any():
        mean, var, _ = _limit_errors(system, st if ok.all() else st.rows(ok))
        mse[ok] = np.sum((mean - system.theta) ** 2, axis=-1) + var
    return mse.reshape(shape + (K,)), st.rho.reshape(shape)


@dataclass(frozen=True)
class Growth:
    """How a diverging MSE grows for large t.

    kind: 'linear' (rho(Q) == 1: per_generation = the limit of MSE_{t+1} - MSE_t per entity,
    Cesaro-averaged if Q has unit-modulus eigenvalues other than 1), 'geometric' (rho > 1:
    per_generation = rho^2, the factor per generation; 1 for entities with alpha = 0, whose
    estimate never sees the synthetic data), or 'superlinear' (rho == 1 but the unit-modulus
    part of A is defective or is fed by the real data, so the MSE grows at least
    quadratically: per_generation None; not seen on any tested design).
    """

    kind: str
    per_generation: Optional[np.ndarray]


@dataclass(frozen=True)
class Asymptote:
    """Limit of the errors as t -> infinity with weights and features fixed for t >= 1.

    spectral_radius: rho(Q) = rho(A); converges: rho < 1 - RHO_TOL. When it converges: mean
    (K, d), bias2, variance, mse (K,), mspe (K, K) if requested, growth None. Otherwise mse,
    variance and mspe are None, growth says how the MSE grows, and mean/bias2 are the limit of
    the mean when it exists (rho == 1 with 1 the only unit-modulus eigenvalue, e.g. alpha = 1),
    else None.
    """

    spectral_radius: float
    converges: bool
    mse: Optional[np.ndarray]
    mean: Optional[np.ndarray]
    bias2: Optional[np.ndarray]
    variance: Optional[np.ndarray]
    growth: Optional[Growth]
    mspe: Optional[np.ndarray] = None


def asymptotic(system: FeatureSystem, alpha: Any, beta: Any, *, beta0: Any = None, mspe: bool = False) -> Asymptote:
    """Theorem 3 (corrected): the limit of every entity's errors as t -> infinity.

    O(K d^3) time and O(K d^2) memory (no Kd x Kd matrix); see `limit` for the method.

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

    Returns
    -------
    Asymptote
        spectral_radius, converges, and either mse/mean/bias2/variance (converging) or growth
        (diverging).

    Raises
    ------
    InputError
        A weight outside [0, 1] or of the wrong shape.
    """
    K = system.K
    a = entity_weights("alpha", alpha, K)
    b = entity_weights("beta", beta, K)
    b0 = b if beta0 is None else entity_weights("beta0", beta0, K)
    return limit_of(system, factorise(system, a[None], b[None]), b0, mspe=mspe)


def limit_of(
    system: FeatureSystem, st: Stationary, beta0: np.ndarray, *, mspe: bool = False, mean0: Optional[np.ndarray] = None
) -> Asymptote:
    """`asymptotic` from a one-row factorisation; mean0: (K, d) generation 0's mean, if known."""
    rho = float(st.rho[0])
    if st.converges[0]:
        mean, var, states = _limit_errors(system, st, want_state=mspe)
        mean, var = mean[0], var[0]
        e = mean - system.theta
        bias2 = np.einsum("ki,ki->k", e, e)
        return Asymptote(
            spectral_radius=rho,
            converges=True,
            mse=bias2 + var,
            mean=mean,
            bias2=bias2,
            variance=var,
            growth=None,
            mspe=mspe_of(system, states[0]) if mspe else None,
        )
    growth, mean = _divergence(system, st, beta0, mean0)
    bias2 = None if mean is None else np.sum((mean - system.theta) ** 2, axis=-1)
    return Asymptote(
        spectral_radius=rho, converges=False, mse=None, mean=mean, bias2=bias2, variance=None, growth=growth
    )


def _divergence(system: FeatureSystem, st: Stationary, beta0: np.ndarray, mean0: Optional[np.ndarray]):
    """Growth of a non-converging system (row 0 of st) and the limit of its mean, if any.

    rho > 1: geometric, factor rho^2. rho == 1: with P_g = V[:, g] V^-1[g, :] the spectral
    projector of each group g of unit-modulus eigenvalues of A, Y_{t+1} - Y_t =
    sigma^2 A^t (sum_k S_k) A^t' has Cesaro limit sigma^2 sum_g P_g (sum_k S_k) P_g^H (cross
    terms between distinct unit eigenvalues average out), and the MSE increment of entity k is
    u_k^2 <that, H_k^2>; the rest of the covariance stays bounded provided the real data do
    not feed the unit eigenspace: P_unit L[c] = 0 for L[c] = V' P[:, c] = Lh[c] S_c (checked;
    for beta = 0 and full-rank G a left unit eigenvector u of A satisfies u' S* = 0).
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
    Yinc = np.zeros((d, d))
    idx = list(np.nonzero(unit)[0])
    while idx:
        i = idx[0]
        g = [j for j in idx if abs(lam[j] - lam[i]) < 1e-6]
        idx = [j for j in idx if j not in g]
        Pg = V[:, g] @ Vi[g, :]
        Yinc += (Pg @ Sigma @ Pg.conj().T).real
    Yinc = s2 * sym(Yinc)
    inc = u**2 * frob(Yinc, st.H2[0])
    # Mean: omega_t = s + A omega_{t-1} (t >= 2), omega_1 = sum_j S_j mean_0j; with P1 s = 0
    # the limit is P1 omega_1 + (I - A(I - P1))^-1 (I - P1) s, if 1 is the only unit eigenvalue.
    mean = None
    if np.all(np.abs(lam[unit] - 1.0) < 1e-6):
        mean0 = initial_state(system, beta0).mean if mean0 is None else mean0
        omega1 = np.einsum("kij,kj->i", Syn, mean0)
        s = np.einsum("kij,kj->i", Syn, st.p[0])
        Pr = np.eye(d) - Pu.real
        omega = Pu.real @ omega1 + np.linalg.solve(np.eye(d) - A @ Pr, Pr @ s)
        mean = st.p[0] + u[:, None] * np.einsum("kij,j->ki", H, omega)
    return Growth("linear", inc), mean
