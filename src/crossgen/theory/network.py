"""The exact dynamics on any interaction graph W: a block method over K x K blocks of d x d.

With an interaction matrix W (`graphs`; row k splits entity k's synthetic share alpha_k over
the pools j), entity k's update at generation t >= 1 is

  G_tk = ab_k S~_k + ac_k S* + a_k sum_j W_kj S_tj,           H_tk = G_tk^+
  theta_tk = H_tk (ab_k S~_k b_k + ac_k S* b* + a_k sum_j W_kj S_tj (theta_{t-1,j} + X_tj^+ w_tj))

(ab = abar beta, ac = abar bbar, a = alpha), so Q_t[k, j] = a_k W_kj H_tk S_tj. The complete
graph W = 1 1'/K gives Q = U V' of rank <= d, which the structured engine (`recursion`,
`stationary`, `limit`, `dynamics`) exploits; any other W makes Q a general Kd x Kd matrix
(W = I: block diagonal), so this module keeps the K x K blocks of d x d matrices:

  Mh_t[k, c] (c = 0..K-1 private, K public): M_t[k, c] = Mh_t[k, c] S_c (as in `recursion`, so
    sigma^2 M B M' = sigma^2 sum_c Mh[k, c] S_c Mh[l, c]' needs no pseudo-inverse)
    Mh_t = Ph_t + Q_t Mh_{t-1},  Ph_t[k, k] = ab_k H_k,  Ph_t[k, K] = ac_k H_k;
  C_t[k, l] = a_k a_l H_k (sum_{j,m} W_kj W_lm S_j C_{t-1}[j, m] S_m + sigma^2 sum_j W_kj W_lj S_j) H_l
    (correction 2: C_t = Q_t (sigma^2 S_t^+ + C_{t-1}) Q_t', with S_j S_j^+ S_j = S_j);
  Cov_t[k, l] = sigma^2 sum_c Mh[k, c] S_c Mh[l, c]' + C_t[k, l]        (Theorem 2, correction 3)
  E theta_tk = H_k ((ab_k S~_k + ac_k S*) theta + a_k sum_j W_kj S_j E theta_{t-1,j})  (correction 4).

Fresh real data (`fresh_real=True`: the private and public responses are drawn anew every
generation): b_t is independent of theta_{t-1}, so nothing real is carried (Mh is not kept)
and the state's C is the covariance minus the current real part,
  Cov_t = sigma^2 R_t + C_t,  R_t[k, l] = d_kl ab_k^2 H_k S~_k H_k + ac_k ac_l H_k S* H_l,
  C_t = Q_t (sigma^2 S_t^+ + sigma^2 R_{t-1} + C_{t-1}) Q_t'.

Cost per generation: O(K^2 d^3 + K^3 d^2) time (K (K+1) products S_j Mh[j, c], K^2 products
S_j C[j, m] S_m and H_k X H_l, and the mixes over j, m with W, which are K x K matrix products
on d x d blocks), O(K^2 d^2) memory; the spectral radius of Q_t, O((Kd)^3), once per distinct
(weights, synthetic features). The limit (Theorem 3) works on the Kd x Kd matrix Q:
M = (I - Q)^-1 P (a solve with (K+1)d right-hand sides) and the Kd x Kd Stein equation
C = Q C Q' + sigma^2 Q S^+ Q' (eigenvectors of Q, scipy's solver as the fallback), so
O((Kd)^3) time and O((Kd)^2) memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from crossgen.mixture import mixture_coefficients
from crossgen.theory.asymptote import COND_MAX, Asymptote, Growth, cesaro_increment, solve_stein
from crossgen.theory.recursion import real_part_of_mean, sym, tr
from crossgen.theory.stationary import RHO_TOL
from crossgen.theory.system import FeatureSystem, mixture_grams, psd_pinv


@dataclass(eq=False)
class NetState:
    """Generation t on a general graph (see the module docstring).

    ab, ac, a: (K,) weights; H: (K, d, d) G_tk^+; syn: (K, d, d) the synthetic Grams of
    generation t (those Q_t multiplies); Mh: (K, K+1, d, d) or None (fresh real data);
    C: (K, K, d, d); mean: (K, d); rho: spectral radius of Q_t (0 at t = 0).
    """

    t: int
    ab: np.ndarray
    ac: np.ndarray
    a: np.ndarray
    H: np.ndarray
    Mh: Optional[np.ndarray]
    C: np.ndarray
    mean: np.ndarray
    rho: float
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def fresh_real(self) -> bool:
        return self.Mh is None


# ============================================================================ helpers
def _ph(ab: np.ndarray, ac: np.ndarray, H: np.ndarray) -> np.ndarray:
    """(K, K+1, d, d) Ph: Ph[k, k] = ab_k H_k, Ph[k, K] = ac_k H_k, zero elsewhere."""
    K, d = H.shape[0], H.shape[-1]
    out = np.zeros((K, K + 1, d, d))
    out[np.arange(K), np.arange(K)] = ab[:, None, None] * H
    out[:, K] = ac[:, None, None] * H
    return out


def _mix(W: np.ndarray, X: np.ndarray) -> np.ndarray:
    """sum_j W[k, j] X[j, ...] over the leading axis (a K x K product on blocks)."""
    return np.tensordot(W, X, axes=(1, 0))


def _mix2(W: np.ndarray, X: np.ndarray) -> np.ndarray:
    """sum_{j,m} W[k, j] W[l, m] X[j, m] for X (K, K, d, d)."""
    left = np.tensordot(W, X, axes=(1, 0))  # (k, m, d, d)
    return np.swapaxes(np.tensordot(W, left, axes=(1, 1)), 0, 1)  # (k, l, d, d)


def _pair_noise(W: np.ndarray, F: np.ndarray) -> np.ndarray:
    """sum_j W[k, j] W[l, j] F[j] for F (K, d, d): (K, K, d, d)."""
    return np.einsum("kj,lj,jab->klab", W, W, F, optimize=True)


def _sandwich(Aw: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Aw_k X[k, l] Aw_l' for Aw (K, d, d), X (K, K, d, d); symmetrised over (k, l)."""
    out = Aw[:, None] @ X @ tr(Aw)[None, :]
    return 0.5 * (out + np.swapaxes(tr(out), 0, 1))


def _real_blocks(system: FeatureSystem, ab: np.ndarray, ac: np.ndarray, H: np.ndarray) -> np.ndarray:
    """(K, K, d, d) R[k, l] = d_kl ab_k^2 H_k S~_k H_k + ac_k ac_l H_k S* H_l (without sigma^2):
    the covariance of the real-data part of one generation's estimates."""
    K = H.shape[0]
    HS = H @ system.public_gram
    out = np.einsum("k,l,kab,lcb->klac", ac, ac, HS, H, optimize=True)
    out[np.arange(K), np.arange(K)] += (ab**2)[:, None, None] * (H @ system.private_grams @ H)
    return out


def _gram_columns(system: FeatureSystem) -> np.ndarray:
    """(K+1, d, d): S~_0 .. S~_{K-1}, S*, the Grams of the real data sets c."""
    return np.concatenate([system.private_grams, system.public_gram[None]])


def dense_q(W: np.ndarray, a: np.ndarray, H: np.ndarray, syn: np.ndarray) -> np.ndarray:
    """The Kd x Kd matrix Q, Q[k, j] = a_k W_kj H_k S_j."""
    K, d = H.shape[0], H.shape[-1]
    blocks = (a[:, None, None, None] * W[:, :, None, None]) * (H[:, None] @ syn[None, :])
    return blocks.transpose(0, 2, 1, 3).reshape(K * d, K * d)


def _to_blocks(X: np.ndarray, K: int, d: int) -> np.ndarray:
    """Kd x Kd -> (K, K, d, d)."""
    return X.reshape(K, d, K, d).transpose(0, 2, 1, 3)


def _to_dense(X: np.ndarray) -> np.ndarray:
    """(K, K, d, d) -> Kd x Kd."""
    K, _, d, _ = X.shape
    return X.transpose(0, 2, 1, 3).reshape(K * d, K * d)


def _grams(system: FeatureSystem, W: np.ndarray, syn: np.ndarray, ab, ac, a) -> np.ndarray:
    """H_k = G_k^+ with G_k = ab_k S~_k + ac_k S* + a_k sum_j W_kj S_j."""
    return psd_pinv(mixture_grams(system.private_grams, system.public_gram, _mix(W, syn), ab, ac, a))


# ============================================================================ the recursion
def initial_state(system: FeatureSystem, beta0: np.ndarray, fresh_real: bool = False) -> NetState:
    """Generation 0 (no synthetic data, whatever the graph)."""
    K, d = system.K, system.d
    zero = np.zeros(K)
    ab, ac, _ = mixture_coefficients(zero, beta0)
    H = psd_pinv(mixture_grams(system.private_grams, system.public_gram, np.zeros((d, d)), ab, ac, zero))
    mean = np.einsum("kij,kj->ki", H, real_part_of_mean(system, ab, ac))
    return NetState(
        t=0,
        ab=ab,
        ac=ac,
        a=zero,
        H=H,
        Mh=None if fresh_real else _ph(ab, ac, H),
        C=np.zeros((K, K, d, d)),
        mean=mean,
        rho=0.0,
    )


def next_state(
    system: FeatureSystem,
    W: np.ndarray,
    prev: NetState,
    syn: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    rho: Optional[float] = None,
) -> NetState:
    """Generation prev.t + 1 with synthetic Grams syn (K, d, d) and weights (K,); rho: the
    spectral radius of Q_t if known (else computed, O((Kd)^3))."""
    s2 = system.sigma2
    ab, ac, a = mixture_coefficients(alpha, beta)
    H = _grams(system, W, syn, ab, ac, a)
    Aw = a[:, None, None] * H  # a_k H_k
    # mean
    Sm = np.einsum("jab,jb->ja", syn, prev.mean)
    mean = np.einsum("kab,kb->ka", H, real_part_of_mean(system, ab, ac) + a[:, None] * (W @ Sm))
    # what generation t - 1 hands on through the synthetic data: S_j Sigma[j, m] S_m, mixed
    inner = syn[:, None] @ prev.C @ syn[None, :]
    if prev.fresh_real:
        SH = syn @ prev.H
        F = (prev.ab**2)[:, None, None] * (SH @ system.private_grams @ tr(SH))  # S H S~ H S
        Np = _mix(W, prev.ac[:, None, None] * SH)  # sum_j W_kj ac_j S_j H_j
        carried = _mix2(W, inner) + s2 * (
            _pair_noise(W, syn + F) + np.einsum("kab,lcb->klac", Np @ system.public_gram, Np, optimize=True)
        )
        Mh = None
    else:
        carried = _mix2(W, inner) + s2 * _pair_noise(W, syn)
        Mh = Aw[:, None] @ _mix(W, syn[:, None] @ prev.Mh)
        Mh += _ph(ab, ac, H)
    C = _sandwich(Aw, carried)
    if rho is None:
        rho = spectral_radius(W, a, H, syn)
    return NetState(t=prev.t + 1, ab=ab, ac=ac, a=a, H=H, Mh=Mh, C=C, mean=mean, rho=float(rho))


def spectral_radius(W: np.ndarray, a: np.ndarray, H: np.ndarray, syn: np.ndarray) -> float:
    """rho(Q) of one generation, from the Kd x Kd matrix (O((Kd)^3))."""
    if not np.any(a):
        return 0.0
    return float(np.max(np.abs(np.linalg.eigvals(dense_q(W, a, H, syn)))))


def iterate_states(
    system: FeatureSystem,
    W: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    schedule: Optional[Sequence[np.ndarray]] = None,
    fresh_real: bool = False,
) -> Iterator[NetState]:
    """Generations 0..T for (T+1, K) weights on graph W; schedule: T synthetic Gram stacks."""
    state = initial_state(system, beta[0], fresh_real)
    yield state
    last: Optional[tuple] = None
    for t in range(1, alpha.shape[0]):
        syn = system.synthetic_grams if schedule is None else schedule[t - 1]
        key = (id(syn), alpha[t].tobytes(), beta[t].tobytes())
        rho = last[1] if last is not None and last[0] == key else None
        state = next_state(system, W, state, syn, alpha[t], beta[t], rho)
        last = (key, state.rho)
        yield state


# ============================================================================ moments
def _mh(s: NetState) -> np.ndarray:
    """Mh of a state with fixed real data."""
    assert s.Mh is not None
    return s.Mh


def _real_terms(system: FeatureSystem, s: NetState) -> np.ndarray:
    """(K, K+1, d, d) Mh[k, c] S_c (fixed real data), cached."""
    if "MS" not in s._cache:
        s._cache["MS"] = _mh(s) @ _gram_columns(system)[None]
    return s._cache["MS"]


def variance(system: FeatureSystem, s: NetState) -> np.ndarray:
    """(K,) tr Cov(theta_tk)."""
    s2 = system.sigma2
    trC = np.einsum("kkaa->k", s.C)
    if s.fresh_real:
        HSt = s.H @ system.private_grams
        HSs = s.H @ system.public_gram
        real = (s.ab**2) * np.einsum("kab,kba->k", HSt, s.H) + (s.ac**2) * np.einsum("kab,kba->k", HSs, s.H)
        return s2 * real + trC
    return s2 * np.einsum("kcab,kcab->k", _real_terms(system, s), _mh(s)) + trC


def cov_blocks(system: FeatureSystem, s: NetState) -> np.ndarray:
    """(K, K, d, d) every block Cov(theta_tk, theta_tl); O(K^3 d^3) with fixed real data."""
    if s.fresh_real:
        out = system.sigma2 * _real_blocks(system, s.ab, s.ac, s.H) + s.C
    else:
        out = system.sigma2 * np.einsum("kcab,lcdb->klad", _real_terms(system, s), _mh(s), optimize=True) + s.C
    return 0.5 * (out + np.swapaxes(tr(out), 0, 1))


def cov_diag(system: FeatureSystem, s: NetState) -> np.ndarray:
    """(K, d, d) Cov(theta_tk)."""
    K = system.K
    diag = s.C[np.arange(K), np.arange(K)]
    if s.fresh_real:
        H = s.H
        real = (s.ab**2)[:, None, None] * (H @ system.private_grams @ H) + (s.ac**2)[:, None, None] * (
            H @ system.public_gram @ H
        )
    else:
        real = np.einsum("kcab,kcdb->kad", _real_terms(system, s), _mh(s))
    return sym(system.sigma2 * real + diag)


def cross_traces(system: FeatureSystem, s: NetState) -> np.ndarray:
    """(K, K) tr Cov(theta_tk, theta_tl), O(K^2 (K+1) d^2) after the products Mh S."""
    trC = np.einsum("klaa->kl", s.C)
    if s.fresh_real:
        R = _real_blocks(system, s.ab, s.ac, s.H)
        out = system.sigma2 * np.einsum("klaa->kl", R) + trC
    else:
        out = system.sigma2 * np.einsum("kcab,lcab->kl", _real_terms(system, s), _mh(s), optimize=True) + trC
    return 0.5 * (out + out.T)


def mspe(system: FeatureSystem, s: NetState) -> np.ndarray:
    """(K, K) E||X~_m (theta_tk - theta)||^2 [k = estimator, m = features]."""
    e = s.mean - system.theta
    second = cov_diag(system, s) + e[:, :, None] * e[:, None, :]
    K = system.K
    return second.reshape(K, -1) @ system.private_grams.reshape(K, -1).T


_mspe = mspe  # `limit` has a parameter of that name


# ============================================================================ the limit
def limit(
    system: FeatureSystem,
    W: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    beta0: np.ndarray,
    *,
    mspe: bool = False,
    fresh_real: bool = False,
    mean0: Optional[np.ndarray] = None,
) -> Asymptote:
    """Theorem 3 on graph W for stationary weights alpha, beta (K,) (see the module docstring).

    Converging (rho(Q) < 1 - RHO_TOL): E theta -> (I - Q)^-1 p with p_k = H_k (ab_k S~_k +
    ac_k S*) theta; fixed real data: Mh = (I - Q)^-1 Ph and C = Q C Q' + sigma^2 Q S^+ Q';
    fresh real data: Cov = Q Cov Q' + sigma^2 (R + Q S^+ Q'), one Stein equation.
    Diverging: `Growth` as for the complete graph, per entity: geometric with factor rho_k^2,
    rho_k the largest |eigenvalue| of Q whose eigenvector has a nonzero block k (1 when
    rho_k <= 1: that entity does not read the diverging part); linear (rho = 1) with the
    Cesaro increment of the diagonal blocks of Q^t R Q^t'.
    """
    K, d, s2 = system.K, system.d, system.sigma2
    syn = system.synthetic_grams
    ab, ac, a = mixture_coefficients(alpha, beta)
    H = _grams(system, W, syn, ab, ac, a)
    Q = dense_q(W, a, H, syn)
    lam, V = np.linalg.eig(Q)
    rho = float(np.max(np.abs(lam))) if lam.size else 0.0
    p = np.einsum("kij,kj->ki", H, real_part_of_mean(system, ab, ac))
    Aw = a[:, None, None] * H
    noise = _sandwich(Aw, _pair_noise(W, syn))  # Q S^+ Q' in blocks (without sigma^2)
    n = K * d
    eye = np.eye(n)
    if rho < 1.0 - RHO_TOL:
        mean = np.linalg.solve(eye - Q, p.reshape(-1)).reshape(K, d)
        if fresh_real:
            R = _real_blocks(system, ab, ac, H)
            cov = solve_stein(Q, s2 * _to_dense(R + noise), lam, V)
            C = _to_blocks(cov, K, d) - s2 * R
            Mh = None
        else:
            Ph = _ph(ab, ac, H).transpose(0, 2, 1, 3).reshape(n, (K + 1) * d)
            Mh = np.linalg.solve(eye - Q, Ph).reshape(K, d, K + 1, d).transpose(0, 2, 1, 3)
            C = _to_blocks(solve_stein(Q, s2 * _to_dense(noise), lam, V), K, d)
        state = NetState(t=-1, ab=ab, ac=ac, a=a, H=H, Mh=Mh, C=np.ascontiguousarray(C), mean=mean, rho=rho)
        var = variance(system, state)
        return Asymptote.converged(rho, system.theta, mean, var, _mspe(system, state) if mspe else None)
    growth, mean = _divergence(system, lam, V, Q, p, rho, ab, ac, H, noise, fresh_real, beta0, mean0)
    return Asymptote.diverged(rho, system.theta, growth, mean)


def _divergence(system, lam, V, Q, p, rho, ab, ac, H, noise, fresh_real, beta0, mean0):
    """Growth and the limit of the mean (if any) of a diverging graph system; see `limit`."""
    K, d, s2 = system.K, system.d, system.sigma2
    n = K * d
    if rho > 1.0 + RHO_TOL:
        size = np.linalg.norm(V.reshape(K, d, n), axis=1)  # (K, n): block k of each eigenvector
        reach = size > 1e-8 * np.linalg.norm(V, axis=0)
        rho_k = np.max(np.where(reach, np.abs(lam)[None, :], 0.0), axis=1)
        return Growth("geometric", np.where(rho_k > 1.0 + RHO_TOL, rho_k**2, 1.0)), None
    unit = np.abs(lam) >= 1.0 - RHO_TOL
    try:
        Vi = np.linalg.inv(V)
        cond = np.linalg.cond(V)
    except np.linalg.LinAlgError:
        cond = np.inf
    if not np.isfinite(cond) or cond > COND_MAX:
        return Growth("superlinear", None), None
    Pu = V[:, unit] @ Vi[unit, :]
    if fresh_real:
        drift = p.reshape(-1)
        fed = np.linalg.norm(Pu @ drift) > 1e-8 * (1 + np.linalg.norm(drift))
        source = noise + _real_blocks(system, ab, ac, H)
    else:
        L = (_ph(ab, ac, H) @ _gram_columns(system)[None]).transpose(0, 2, 1, 3).reshape(n, (K + 1) * d)
        fed = np.linalg.norm(Pu @ L) > 1e-8 * (1 + np.linalg.norm(L))
        source = noise
    if fed:
        return Growth("superlinear", None), None
    inc_blocks = _to_blocks(cesaro_increment(lam, V, Vi, unit, s2 * _to_dense(source)), K, d)
    inc = np.einsum("kkaa->k", inc_blocks)
    mean = None
    if np.all(np.abs(lam[unit] - 1.0) < 1e-6):
        m0 = initial_state(system, beta0, fresh_real).mean if mean0 is None else mean0
        Pr = np.eye(n) - Pu.real
        m = Pu.real @ m0.reshape(-1) + np.linalg.solve(np.eye(n) - Q @ Pr, Pr @ p.reshape(-1))
        mean = m.reshape(K, d)
    return Growth("linear", inc), mean
