"""Exact mean and covariance of every entity's estimate, per generation and in the limit.

Paper section 5 (Theorems 1-3, Lemma 1) with the corrections of docs/DESIGN.md, computed in O(K d^3)
time and O(K d^2) memory per generation, never forming a Kd x Kd matrix.

Structure used (notation of the paper; U_tk = (alpha_tk / K) G_tk^+, block k of U_t):
  Q_t = U_t V_t'  with V_t' = [S_t1 .. S_tK], so Q_t has rank <= d;
  theta_tk = P_t[k,:] b + U_tk zeta_t, where zeta_t = sum_j S_tj theta_{t-1,j} + X_t' w_t is
  the d-vector through which entities see each other;
  zeta_t = L_t b + A_t zeta_{t-1} + noise, A_t = V_t' U_{t-1} = sum_j S_tj U_{t-1,j}.
Every column block c of M_t ends in the real Gram of its data set (S~_c, or S* for the
public column, correction 1), M_t[k,c] = Mh_t[k,c] S_c, and Cov(b_c) = sigma^2 S_c^+, so
sigma^2 M B M' = sigma^2 sum_c Mh[k,c] S_c Mh[l,c]': no pseudo-inverse of a real Gram is
needed. With Wh_t[c] = V_t' Mh_{t-1}[:, c] (d x d, K+1 of them):
  Wh_t[c]   = S_tc abar_c b_c G_{t-1,c}^+ + A_t Wh_{t-1}[c]            (private c)
  Wh_t[pub] = sum_j S_tj abar_j bbar_j G_{t-1,j}^+ + A_t Wh_{t-1}[pub]
  Y_t       = sigma^2 sum_j S_tj + A_t Y_{t-1} A_t'          (C_t = U_t Y_t U_t', correction 2)
  Cov_t[k,l] = sigma^2 sum_c Mh[k,c] S_c Mh[l,c]' + U_k Y U_l'  (Theorem 2, correction 3)
             = sigma^2 (d_kl ab_k^2 H_k S~_k H_k + ac_k ac_l H_k S* H_l + R_k U_l + U_k R_l')
               + U_k (sigma^2 Zh + Y) U_l,
  with H = G^+, ab = abar b, ac = abar bbar, Zh = sum_c Wh[c] S_c Wh[c]' (one d x d matrix per
  generation) and R_k = ab_k H_k S~_k Wh[k]' + ac_k H_k S* Wh[pub]'.
The mean follows the vector recursion mean_tk = H_tk (ab S~_k + ac S*) theta + U_tk omega_t,
omega_t = sum_j S_tj mean_{t-1,j}, which is M_t E[b] (correction 4: valid for any rank).

Stationary weights and features (t >= 1): rho(Q) = rho(A) with A = sum_k S_k U_k (Lemma 1);
when rho < 1 the limits are the fixed points (correction 5) Wh = (I-A)^{-1} Lh and
Y = sigma^2 X with X = A X A' + sum_k S_k (a d x d Stein equation). When rho >= 1 (within
`RHO_TOL`) the MSE diverges; see `asymptotic` for how the growth is reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import scipy.linalg

from crossgen.errors import InputError
from crossgen.mixture import entity_weights, mixture_coefficients, weight_schedule
from crossgen.theory.system import (
    FeatureSystem, _feature_matrix, _uniform, frob,
    gram_stack, hstack_blocks, mixture_grams, psd_pinv, stack_sum,
    schedule_steps, weighted_stack_sum,
)

RHO_TOL = 1e-9
"""|rho - 1| <= RHO_TOL counts as rho == 1 (linear growth); rho < 1 - RHO_TOL converges."""

STEIN_RTOL = 1e-10
"""Relative residual above which the eigenvector Stein solve falls back to scipy's solver."""


def _sym(X: np.ndarray) -> np.ndarray:
    return 0.5 * (X + np.swapaxes(X, -1, -2))


def _T(X: np.ndarray) -> np.ndarray:
    return np.swapaxes(X, -1, -2)


def spectral_radius(A: np.ndarray) -> np.ndarray:
    """max |eigenvalue| of each d x d matrix of a stack."""
    return np.max(np.abs(np.linalg.eigvals(A)), axis=-1)


# ============================================================================ one generation
@dataclass(eq=False)
class GenerationState:
    """What the structured recursion keeps of generation t (see the module docstring).

    ab, ac, u: (K,) abar b, abar bbar, alpha/K; H: (K, d, d) G_tk^+; Wpriv: (K, d, d)
    Wh_t[c] for the private columns; Wpub: (d, d) Wh_t[pub]; Y: (d, d); mean: (K, d);
    rho: spectral radius of Q_t.
    """

    t: int
    ab: np.ndarray
    ac: np.ndarray
    u: np.ndarray
    H: np.ndarray
    Wpriv: np.ndarray
    Wpub: np.ndarray
    Y: np.ndarray
    mean: np.ndarray
    rho: float
    _cache: dict = field(default_factory=dict, repr=False)


def _real_part_of_mean(system: FeatureSystem, ab: np.ndarray, ac: np.ndarray) -> np.ndarray:
    """(K, d) vectors (ab_k S~_k + ac_k S*) theta: P_t[k,:] E[b] before the G^+."""
    th = system.theta
    return ab[:, None] * (system.private_grams @ th) + ac[:, None] * (system.public_gram @ th)


def initial_state(system: FeatureSystem, beta0: np.ndarray) -> GenerationState:
    """Generation 0: alpha_0 = 0, G_0k = b0 S~_k + (1-b0) S*, M_0 = P_0, C_0 = 0."""
    K, d = system.K, system.d
    zero = np.zeros(K)
    ab, ac, _ = mixture_coefficients(zero, beta0)
    H = psd_pinv(mixture_grams(system.private_grams, system.public_gram, np.zeros((d, d)),
                               ab, ac, zero))
    mean = np.einsum("kij,kj->ki", H, _real_part_of_mean(system, ab, ac))
    return GenerationState(t=0, ab=ab, ac=ac, u=zero, H=H, Wpriv=np.zeros((K, d, d)),
                           Wpub=np.zeros((d, d)), Y=np.zeros((d, d)), mean=mean, rho=0.0)


def next_state(system: FeatureSystem, prev: GenerationState, syn: np.ndarray,
               alpha: np.ndarray, beta: np.ndarray,
               syn_h: Optional[np.ndarray] = None) -> GenerationState:
    """Generation t = prev.t + 1 with synthetic Grams syn (K, d, d) and weights (K,);
    syn_h = hstack_blocks(syn) if already known."""
    K = system.K
    syn_h = hstack_blocks(syn) if syn_h is None else syn_h
    ab, ac, a = mixture_coefficients(alpha, beta)
    u = a / K
    H = psd_pinv(mixture_grams(system.private_grams, system.public_gram, syn.mean(axis=0),
                               ab, ac, a))
    A = weighted_stack_sum(syn_h, prev.u, prev.H)                     # V_t' U_{t-1}
    Wpriv = syn @ (prev.ab[:, None, None] * prev.H)
    Wpriv += A @ prev.Wpriv
    Wpub = weighted_stack_sum(syn_h, prev.ac, prev.H) + A @ prev.Wpub
    Y = system.sigma2 * syn.sum(axis=0) + A @ prev.Y @ A.T
    omega = syn_h @ prev.mean.reshape(-1)                              # V_t' E[theta_{t-1}]
    p = _real_part_of_mean(system, ab, ac)
    mean = np.einsum("kij,kj->ki", H, p + u[:, None] * omega)
    rho = float(spectral_radius(weighted_stack_sum(syn_h, u, H)))     # rho(V_t' U_t)
    return GenerationState(t=prev.t + 1, ab=ab, ac=ac, u=u, H=H, Wpriv=Wpriv, Wpub=Wpub,
                           Y=Y, mean=mean, rho=rho)


def iterate_states(system: FeatureSystem, alpha: np.ndarray, beta: np.ndarray,
                   schedule: Optional[Sequence[np.ndarray]] = None) -> Iterator[GenerationState]:
    """Generations 0..T for (T+1, K) weights; schedule: T synthetic Gram stacks (t = 1..T)."""
    state = initial_state(system, beta[0])
    yield state
    for t in range(1, alpha.shape[0]):
        if schedule is None:
            syn, syn_h = system.synthetic_grams, system.synthetic_hstack
        else:
            syn, syn_h = schedule[t - 1], None
        state = next_state(system, state, syn, alpha[t], beta[t], syn_h)
        yield state


# ============================================================================ covariance pieces
def _pieces(system: FeatureSystem, s: GenerationState):
    """Ztot = sigma^2 Zh + Y and R_k (K, d, d), cached on the state."""
    if "R" not in s._cache:
        St, Ss, s2 = system.private_grams, system.public_gram, system.sigma2
        Zh = stack_sum(s.Wpriv @ St, _T(s.Wpriv)) + s.Wpub @ Ss @ s.Wpub.T
        HS = s.H @ St
        R = (s.ab[:, None, None] * HS) @ _T(s.Wpriv) + s.ac[:, None, None] * (
            s.H @ (Ss @ s.Wpub.T))
        s._cache.update(Ztot=_sym(s2 * Zh + s.Y), R=R, HS=HS)
    return s._cache["Ztot"], s._cache["R"]


def cov_diag(system: FeatureSystem, s: GenerationState) -> np.ndarray:
    """(K, d, d) Cov(theta_tk), unconditional (Theorem 2 with corrections 2-3)."""
    Ztot, R = _pieces(system, s)
    H, HS, s2 = s.H, s._cache["HS"], system.sigma2
    e = (slice(None), None, None)
    HSs = H @ system.public_gram
    RU = s.u[e] * (R @ H)
    cov = s2 * ((s.ab ** 2)[e] * (HS @ H) + (s.ac ** 2)[e] * (HSs @ H) + RU + _T(RU)) \
        + (s.u ** 2)[e] * (H @ Ztot @ H)
    return _sym(cov)


def cross_traces(system: FeatureSystem, s: GenerationState) -> np.ndarray:
    """(K, K) tr Cov(theta_tk, theta_tl) for all pairs, without forming the blocks.

    Each term of the cross block is a Frobenius product of two per-entity d x d matrices,
    so the cost is O(K d^3 + K^2 d^2).
    """
    K = system.K
    Ztot, R = _pieces(system, s)
    H, s2 = s.H, system.sigma2
    Hf = H.reshape(K, -1)
    T_pub = (H @ system.public_gram).reshape(K, -1) @ Hf.T          # tr(H_k S* H_l)
    T_R = R.reshape(K, -1) @ Hf.T                                   # tr(R_k H_l)
    T_Z = (H @ Ztot).reshape(K, -1) @ Hf.T                          # tr(H_k Z H_l)
    priv = np.einsum("kij,kji->k", s._cache["HS"], H)               # tr(H_k S~_k H_k)
    out = s2 * (np.outer(s.ac, s.ac) * T_pub + T_R * s.u[None, :] + (T_R * s.u[None, :]).T
                + np.diag(s.ab ** 2 * priv)) + np.outer(s.u, s.u) * T_Z
    return 0.5 * (out + out.T)


def cov_blocks(system: FeatureSystem, s: GenerationState) -> np.ndarray:
    """(K, K, d, d) every block Cov(theta_tk, theta_tl); O(K^2 d^3) time, K^2 d^2 memory."""
    Ztot, R = _pieces(system, s)
    H, s2 = s.H, system.sigma2
    HSs = H @ system.public_gram
    out = s2 * (np.einsum("k,l,kij,ljm->klim", s.ac, s.ac, HSs, H)
                + np.einsum("l,kij,ljm->klim", s.u, R, H)
                + np.einsum("k,kij,lmj->klim", s.u, H, R))
    out += np.einsum("k,l,kij,ljm->klim", s.u, s.u, H @ Ztot, H)
    diag = cov_diag(system, s)
    out[np.arange(system.K), np.arange(system.K)] = diag
    return out


def _errors(system: FeatureSystem, s: GenerationState, cov: np.ndarray):
    """bias2 (K,), variance (K,), mse (K,), mspe (K, K) [k = estimator, m = features]."""
    e = s.mean - system.theta
    bias2 = np.einsum("ki,ki->k", e, e)
    variance = np.trace(cov, axis1=1, axis2=2)
    second = cov + e[:, :, None] * e[:, None, :]                     # E[e_k e_k']
    K = system.K
    mspe = second.reshape(K, -1) @ system.private_grams.reshape(K, -1).T
    return bias2, variance, bias2 + variance, mspe


# ============================================================================ trajectory
def _schedule_grams(system: FeatureSystem, schedule: Any, T: int) -> Optional[list]:
    if schedule is None:
        return None
    items = schedule_steps(schedule, T, system.K)
    out = []
    for t, gen in enumerate(items, start=1):
        name = f"synthetic_schedule[{t - 1}]"
        try:
            arrays = list(gen)
        except TypeError:
            raise InputError(name, gen, f"{system.K} feature arrays") from None
        if len(arrays) != system.K:
            raise InputError(name, f"{len(arrays)} arrays", f"{system.K} arrays, one per entity")
        feats = [_feature_matrix(f"{name}[{k}]", x, system.d, "private_0")
                 for k, x in enumerate(arrays)]
        out.append(gram_stack(feats))
    return out


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Exact per-generation errors of every entity, t = 0..T (unconditional over all data).

    alpha, beta: (T+1, K) weights used (alpha[0] = 0); mean: (T+1, K, d) E[theta_tk];
    bias2, variance, mse: (T+1, K), mse = ||E theta_tk - theta||^2 + tr Cov(theta_tk);
    mspe: (T+1, K, K), mspe[t, k, m] = E||X~_m (theta_tk - theta)||^2 (entity k's estimate on
    entity m's private features); spectral_radius: (T+1,) rho(Q_t), 0 at t = 0.
    """

    alpha: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    bias2: np.ndarray
    variance: np.ndarray
    mse: np.ndarray
    mspe: np.ndarray
    spectral_radius: np.ndarray
    _system: FeatureSystem = field(repr=False)
    _schedule: Optional[list] = field(repr=False)

    @property
    def generations(self) -> int:
        return self.alpha.shape[0] - 1

    def cov_blocks(self, t: int) -> np.ndarray:
        """(K, K, d, d) all blocks of Cov(theta_t), recomputed on request by rerunning the
        recursion to generation t: O(t K d^3 + K^2 d^3) time and K^2 d^2 memory, so meant for
        small K (tests, plots)."""
        T = self.generations
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t <= T:
            raise InputError("t", t, f"an integer in [0, {T}]")
        for s in iterate_states(self._system, self.alpha, self.beta, self._schedule):
            if s.t == t:
                return cov_blocks(self._system, s)
        raise AssertionError("unreachable")


def _weights(system: FeatureSystem, alpha: Any, beta: Any, generations: Any):
    a = weight_schedule("alpha", alpha, generations, system.K, zero_at_start=True)
    b = weight_schedule("beta", beta, generations, system.K)
    return a, b


def trajectory(system: FeatureSystem, alpha: Any, beta: Any, generations: int,
               synthetic_schedule: Optional[Sequence[Sequence[np.ndarray]]] = None) -> Trajectory:
    """Theorems 1-2 (corrected) for generations 0..T, O(T K d^3) time, O(K d^2) memory.

    alpha, beta: see `crossgen.mixture.weight_schedule` (scalar, per generation, or per generation and
    entity); alpha at t = 0 is ignored. synthetic_schedule: optional T lists of K feature
    arrays, the synthetic features of generations t = 1..T (default: the system's synthetic
    features every generation). MSPE costs K^2 d^2 per generation on top.
    """
    a, b = _weights(system, alpha, beta, generations)
    schedule = _schedule_grams(system, synthetic_schedule, a.shape[0] - 1)
    rows = []
    for s in iterate_states(system, a, b, schedule):
        rows.append((s.mean, *_errors(system, s, cov_diag(system, s)), s.rho))
    mean, bias2, var, mse, mspe, rho = (np.array(x) for x in zip(*rows))
    return Trajectory(alpha=a, beta=b, mean=mean, bias2=bias2, variance=var, mse=mse, mspe=mspe,
                      spectral_radius=rho, _system=system, _schedule=schedule)


# ============================================================================ stationary limit
def solve_stein(A: np.ndarray, Q: np.ndarray, lam: Optional[np.ndarray] = None,
                V: Optional[np.ndarray] = None) -> np.ndarray:
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
        Qt = Vi @ Qb @ _T(Vi)
        with np.errstate(all="ignore"):
            X = _sym((V @ (Qt / (1.0 - lam[..., :, None] * lam[..., None, :])) @ _T(V)).real)
            res = np.linalg.norm(X - A @ X @ _T(A) - Qb, axis=(-2, -1))
            bad = ~(res <= STEIN_RTOL * (np.linalg.norm(X, axis=(-2, -1))
                                         + np.linalg.norm(Qb, axis=(-2, -1))))
    except np.linalg.LinAlgError:
        bad = np.ones(A.shape[:-2], dtype=bool)
    for idx in zip(*np.nonzero(bad)) if bad.ndim else ([()] if bad else []):
        X[idx] = _sym(scipy.linalg.solve_discrete_lyapunov(A[idx], Qb[idx]))
    return X


@dataclass(eq=False)
class _Stationary:
    """Batched stationary quantities (leading axis B = cells of a weight grid)."""

    a: np.ndarray
    ab: np.ndarray
    ac: np.ndarray
    u: np.ndarray
    H: np.ndarray          # (B, K, d, d)
    A: np.ndarray          # (B, d, d)
    lam: np.ndarray        # (B, d) eigenvalues of A
    V: np.ndarray          # (B, d, d) eigenvectors of A
    rho: np.ndarray        # (B,)
    converges: np.ndarray  # (B,) bool
    p: np.ndarray          # (B, K, d) H_k (ab S~_k + ac S*) theta


def _stationary_setup(system: FeatureSystem, a: np.ndarray, b: np.ndarray) -> _Stationary:
    """G^+, A = sum_k S_k U_k and its eigen-decomposition for (B, K) weight rows."""
    K = system.K
    ab, ac, a = mixture_coefficients(a, b)
    u = a / K
    H = psd_pinv(mixture_grams(system.private_grams, system.public_gram,
                               system.synthetic_grams.mean(axis=0), ab, ac, a))
    A = weighted_stack_sum(system.synthetic_hstack, u, H)
    lam, V = np.linalg.eig(A)
    rho = np.max(np.abs(lam), axis=-1)
    th = system.theta
    c = ab[..., None] * (system.private_grams @ th) + ac[..., None] * (system.public_gram @ th)
    p = np.einsum("bkij,bkj->bki", H, c)
    return _Stationary(a=a, ab=ab, ac=ac, u=u, H=H, A=A, lam=lam, V=V, rho=rho,
                       converges=rho < 1.0 - RHO_TOL, p=p)


def _stationary_errors(system: FeatureSystem, st: _Stationary, want_state: bool = False):
    """Limits (Theorem 3, corrected) for the converging rows: mean (B,K,d), variance (B,K).

    Per row and entity: one inverse (G^+) and four d x d products; the K-sums run as single
    matrix products. Trace identities, H = G_k^+, H2 = H H, J = (I - A)^-1:
      Var_k = s2 [ab^2 <S~_k, H2> + ac^2 <S*, H2> + 2u (ab^2 <F_k, H2 J> + ac <S* N' J', H2>)]
              + u^2 <sigma^2 Zh + Y, H2>
    with F_k = S~_k H S_k, N = sum_j ac_j S_j H_j, Zh = J (sum_k ab_k^2 S_k H F_k + N S* N') J'.
    """
    St, Ss, Syn, s2 = (system.private_grams, system.public_gram, system.synthetic_grams,
                       system.sigma2)
    d = system.d
    A, H, u, ab, ac = st.A, st.H, st.u, st.ab, st.ac
    e = (Ellipsis, None, None)
    J = np.linalg.inv(np.eye(d) - A)
    SH = Syn @ H                                              # (B, K, d, d) S_k H_k
    F = St @ _T(SH)                                           # E_k' = S~_k H_k S_k
    N = weighted_stack_sum(system.synthetic_hstack, ac, H)
    ab2 = ab ** 2
    LBL = ab2[..., :1, None] * stack_sum(SH, F) if _uniform(ab2) else stack_sum(ab2[e] * SH, F)
    Zh = J @ (LBL + N @ Ss @ _T(N)) @ _T(J)
    Y = s2 * solve_stein(A, Syn.sum(axis=0), st.lam, st.V)
    Ztot = _sym(s2 * Zh + Y)
    H2 = H @ H
    pub_cross = Ss @ _T(N) @ _T(J)                            # S* Wh[pub]'
    var = s2 * (ab2 * frob(St, H2) + (ac ** 2) * frob(Ss, H2)
                + 2 * u * (ab2 * frob(F, H2 @ J[:, None]) + ac * frob(pub_cross[:, None], H2))) \
        + (u ** 2) * frob(Ztot[:, None], H2)
    omega = np.einsum("bij,bj->bi", J, np.einsum("kij,bkj->bi", Syn, st.p))
    mean = st.p + u[..., None] * np.einsum("bkij,bj->bki", H, omega)
    if not want_state:
        return mean, var, None
    Wpriv = J[:, None] @ (ab[e] * SH)
    states = [GenerationState(t=-1, ab=ab[i], ac=ac[i], u=u[i], H=H[i], Wpriv=Wpriv[i],
                              Wpub=J[i] @ N[i], Y=Y[i], mean=mean[i], rho=float(st.rho[i]))
              for i in range(A.shape[0])]
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
    st = _stationary_setup(system, alpha.reshape(-1, K), beta.reshape(-1, K))
    mse = np.full((st.rho.shape[0], K), np.inf)
    ok = st.converges
    if ok.any():
        sub = _Stationary(**{k: (v[ok] if isinstance(v, np.ndarray) else v)
                             for k, v in vars(st).items()})
        mean, var, _ = _stationary_errors(system, sub)
        bias2 = np.sum((mean - system.theta) ** 2, axis=-1)
        mse[ok] = bias2 + var
    return mse.reshape(shape + (K,)), st.rho.reshape(shape)


@dataclass(frozen=True)
class Growth:
    """How a diverging MSE grows for large t.

    kind: 'linear' (rho(Q) == 1: per_generation = the limit of MSE_{t+1} - MSE_t per entity,
    Cesaro-averaged if Q has unit-modulus eigenvalues other than 1), 'geometric' (rho > 1:
    per_generation = rho^2, the factor per generation; 1 for entities with alpha = 0, whose
    estimate never sees the synthetic data), or 'superlinear' (rho == 1 but the unit-modulus
    part of A is defective or is fed by the real data, so the MSE grows at least
    quadratically: per_generation None). Not seen on any tested design; kept for honesty.
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


def asymptotic(system: FeatureSystem, alpha: Any, beta: Any, *, beta0: Any = None,
               mspe: bool = False) -> Asymptote:
    """Theorem 3 (corrected) for stationary weights alpha, beta (scalar or one per entity).

    O(K d^3) time and O(K d^2) memory: no Kd x Kd matrix. beta0: weight of generation 0
    (default beta); it matters only for the limit of the mean when rho == 1. mspe=True adds
    the (K, K) asymptotic MSPE (K^2 d^2 more work).
    """
    K = system.K
    a = entity_weights("alpha", alpha, K)
    b = entity_weights("beta", beta, K)
    b0 = b if beta0 is None else entity_weights("beta0", beta0, K)
    st = _stationary_setup(system, a[None], b[None])
    rho = float(st.rho[0])
    if st.converges[0]:
        mean, var, states = _stationary_errors(system, st, want_state=mspe)
        mean, var = mean[0], var[0]
        e = mean - system.theta
        bias2 = np.einsum("ki,ki->k", e, e)
        mspe_out = None
        if mspe:
            s = states[0]
            mspe_out = _errors(system, s, cov_diag(system, s))[3]
        return Asymptote(spectral_radius=rho, converges=True, mse=bias2 + var, mean=mean,
                         bias2=bias2, variance=var, growth=None, mspe=mspe_out)
    growth, mean = _divergence(system, st, b0)
    bias2 = None if mean is None else np.sum((mean - system.theta) ** 2, axis=-1)
    return Asymptote(spectral_radius=rho, converges=False, mse=None, mean=mean, bias2=bias2,
                     variance=None, growth=growth)


def _divergence(system: FeatureSystem, st: _Stationary, beta0: np.ndarray):
    """Growth of a non-converging system (row 0 of st) and the limit of its mean, if any.

    rho > 1: geometric, factor rho^2. rho == 1: with P_g = V[:, g] V^-1[g, :] the spectral
    projector of each group g of unit-modulus eigenvalues of A, Y_{t+1} - Y_t =
    sigma^2 A^t (sum_k S_k) A^t' has Cesaro limit sigma^2 sum_g P_g (sum_k S_k) P_g^H (cross
    terms between distinct unit eigenvalues average out), and the MSE increment of entity k is
    u_k^2 <that, H_k^2>; the rest of the covariance stays bounded provided the real data do
    not feed the unit eigenspace: P_unit L[c] = 0 for L[c] = V' P[:, c] = Lh[c] S_c (checked;
    for beta = 0 and full-rank G a left unit eigenvector u of A satisfies u' S* = 0).
    """
    K, d, s2 = system.K, system.d, system.sigma2
    rho = float(st.rho[0])
    u, H = st.u[0], st.H[0]
    if rho > 1.0 + RHO_TOL:
        return Growth("geometric", np.where(u > 0, rho ** 2, 1.0)), None
    lam, V, A = st.lam[0], st.V[0], st.A[0]
    unit = np.abs(lam) >= 1.0 - RHO_TOL
    try:
        Vi = np.linalg.inv(V)
        cond = np.linalg.cond(V)
    except np.linalg.LinAlgError:
        cond = np.inf
    if not np.isfinite(cond) or cond > 1e10:
        return Growth("superlinear", None), None
    Syn, St, Ss = system.synthetic_grams, system.private_grams, system.public_gram
    Pu = (V[:, unit] @ Vi[unit, :])
    ab, ac = st.ab[0], st.ac[0]
    SH = Syn @ H
    L = np.concatenate([ab[:, None, None] * SH @ St,                 # L[c] = V' P[:, c]
                        (stack_sum(Syn, ac[:, None, None] * H) @ Ss)[None]])
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
    Yinc = s2 * _sym(Yinc)
    inc = u ** 2 * frob(Yinc[None], H @ H)
    # Mean: omega_t = s + A omega_{t-1} (t >= 2), omega_1 = sum_j S_j mean_0j; with P1 s = 0
    # the limit is P1 omega_1 + (I - A(I - P1))^-1 (I - P1) s, if 1 is the only unit eigenvalue.
    mean = None
    if np.all(np.abs(lam[unit] - 1.0) < 1e-6):
        s0 = initial_state(system, beta0)
        omega1 = np.einsum("kij,kj->i", Syn, s0.mean)
        s = np.einsum("kij,kj->i", Syn, st.p[0])
        Pr = np.eye(d) - Pu.real
        omega = Pu.real @ omega1 + np.linalg.solve(np.eye(d) - A @ Pr, Pr @ s)
        mean = st.p[0] + u[:, None] * np.einsum("kij,j->ki", H, omega)
    return Growth("linear", inc), mean
