"""The exact per-generation recursion for any weights: mean and covariance of every estimate.

Paper section 5 (Theorems 1-2) with the corrections of docs/DESIGN.md, computed in O(K d^3)
time and O(K d^2) memory per generation, never forming a Kd x Kd matrix. `dynamics` builds the
public `trajectory` on it (and has a faster closed form when the weights are stationary),
`limit` the t -> infinity limit, `homogenization` the cross-entity moments.

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
Its trace, with H2 = H H and <X, Y> = tr(X'Y), needs no d x d block per entity beyond H2:
  tr Cov_t[k,k] = sigma^2 (ab^2 <S~_k, H2> + ac^2 <S*, H2>
                           + 2u (ab <Wh[k], H2 S~_k> + ac <Wh[pub] S*, H2>)) + u^2 <Ztot, H2>,
  Ztot = sigma^2 Zh + Y.
The mean follows the vector recursion mean_tk = H_tk (ab S~_k + ac S*) theta + U_tk omega_t,
omega_t = sum_j S_tj mean_{t-1,j}, which is M_t E[b] (correction 4: valid for any rank).

Fresh real data (`fresh_real=True`, the real responses drawn anew every generation): b_t is
independent of theta_{t-1}, so Wh_t = 0 and generation t-1's real-data covariance joins the
synthetic noise in Y (see `next_state`); every formula above then holds with Wh = 0.
This module is the complete graph (the paper's); any other interaction graph is `network`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from crossgen.errors import InputError
from crossgen.mixture import mixture_coefficients, weight_schedule
from crossgen.theory.system import (
    FeatureSystem,
    _feature_matrix,
    frob,
    gram_stack,
    hstack_blocks,
    mixture_grams,
    psd_pinv,
    schedule_steps,
    stack_sum,
    weighted_stack_sum,
)


def sym(X: np.ndarray) -> np.ndarray:
    """(X + X')/2 over the last two axes."""
    return 0.5 * (X + np.swapaxes(X, -1, -2))


def tr(X: np.ndarray) -> np.ndarray:
    """Transpose of the last two axes (a view)."""
    return np.swapaxes(X, -1, -2)


def spectral_radius(A: np.ndarray) -> np.ndarray:
    """max |eigenvalue| of each d x d matrix of a stack."""
    return np.max(np.abs(np.linalg.eigvals(A)), axis=-1)


# ============================================================================ inputs
def weights(system: FeatureSystem, alpha: Any, beta: Any, generations: Any):
    """(T+1, K) alpha (row 0 set to 0) and beta, validated."""
    a = weight_schedule("alpha", alpha, generations, system.K, zero_at_start=True)
    b = weight_schedule("beta", beta, generations, system.K)
    return a, b


def schedule_grams(system: FeatureSystem, schedule: Any, T: int) -> Optional[list]:
    """The Gram stacks (K, d, d) of a synthetic_schedule's T generations, validated; None
    for no schedule."""
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
        feats = [_feature_matrix(f"{name}[{k}]", x, system.d, "private_0") for k, x in enumerate(arrays)]
        out.append(gram_stack(feats))
    return out


# ============================================================================ one generation
@dataclass(eq=False)
class GenerationState:
    """What the recursion keeps of generation t (see the module docstring).

    ab, ac, u: (K,) abar b, abar bbar, alpha/K; H: (K, d, d) G_tk^+; Wpriv: (K, d, d)
    Wh_t[c] for the private columns; Wpub: (d, d) Wh_t[pub]; Y: (d, d); mean: (K, d);
    rho: spectral radius of Q_t; AU: (d, d) sum_k S_tk U_tk (whose spectral radius is rho),
    which is A_{t+1} when generation t+1 has the same synthetic features.
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
    AU: Optional[np.ndarray] = None
    _cache: dict = field(default_factory=dict, repr=False)


def real_part_of_mean(system: FeatureSystem, ab: np.ndarray, ac: np.ndarray) -> np.ndarray:
    """(..., K, d) vectors (ab_k S~_k + ac_k S*) theta: P_t[k,:] E[b] before the G^+."""
    th = system.theta
    return ab[..., None] * (system.private_grams @ th) + ac[..., None] * (system.public_gram @ th)


def initial_state(system: FeatureSystem, beta0: np.ndarray) -> GenerationState:
    """Generation 0: alpha_0 = 0, G_0k = b0 S~_k + (1-b0) S*, M_0 = P_0, C_0 = 0."""
    K, d = system.K, system.d
    zero = np.zeros(K)
    ab, ac, _ = mixture_coefficients(zero, beta0)
    H = psd_pinv(mixture_grams(system.private_grams, system.public_gram, np.zeros((d, d)), ab, ac, zero))
    mean = np.einsum("kij,kj->ki", H, real_part_of_mean(system, ab, ac))
    return GenerationState(
        t=0,
        ab=ab,
        ac=ac,
        u=zero,
        H=H,
        Wpriv=np.zeros((K, d, d)),
        Wpub=np.zeros((d, d)),
        Y=np.zeros((d, d)),
        mean=mean,
        rho=0.0,
        AU=np.zeros((d, d)),
    )


def next_state(
    system: FeatureSystem,
    prev: GenerationState,
    syn: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    syn_h: np.ndarray,
    same_features: bool,
    fresh_real: bool = False,
) -> GenerationState:
    """Generation t = prev.t + 1 with synthetic Grams syn (K, d, d), syn_h =
    hstack_blocks(syn), and weights (K,); same_features: generation t - 1 used the same
    synthetic Grams, so that A_t is prev.AU.

    fresh_real: the real data are drawn anew at generation t, independent of everything
    before, so nothing of the real data is carried through the synthetic data (Wh = 0) and
    generation t - 1's real-data covariance enters Y instead:
    Y_t = sigma^2 (sum_j S_tj + sum_k Wh_k S~_k Wh_k' + Wp S* Wp') + A_t Y_{t-1} A_t' with
    Wh_k = ab_{t-1,k} S_tk H_{t-1,k} and Wp = sum_k ac_{t-1,k} S_tk H_{t-1,k} (the innovations
    of the fixed-data recursion for Wh)."""
    K = system.K
    ab, ac, a = mixture_coefficients(alpha, beta)
    u = a / K
    H = psd_pinv(mixture_grams(system.private_grams, system.public_gram, syn.mean(axis=0), ab, ac, a))
    A = prev.AU if same_features and prev.AU is not None else weighted_stack_sum(syn_h, prev.u, prev.H)  # V_t' U_{t-1}
    Wpriv = syn @ (prev.ab[:, None, None] * prev.H)
    Wpub = weighted_stack_sum(syn_h, prev.ac, prev.H)
    if fresh_real:
        St, Ss = system.private_grams, system.public_gram
        inno = stack_sum(Wpriv @ St, tr(Wpriv)) + Wpub @ Ss @ Wpub.T
        Y = system.sigma2 * (syn.sum(axis=0) + inno) + A @ prev.Y @ A.T
        Wpriv, Wpub = np.zeros_like(Wpriv), np.zeros_like(Wpub)
    else:
        Wpriv += A @ prev.Wpriv
        Wpub = Wpub + A @ prev.Wpub
        Y = system.sigma2 * syn.sum(axis=0) + A @ prev.Y @ A.T
    omega = syn_h @ prev.mean.reshape(-1)  # V_t' E[theta_{t-1}]
    p = real_part_of_mean(system, ab, ac)
    mean = np.einsum("kij,kj->ki", H, p + u[:, None] * omega)
    AU = weighted_stack_sum(syn_h, u, H)  # V_t' U_t
    return GenerationState(
        t=prev.t + 1,
        ab=ab,
        ac=ac,
        u=u,
        H=H,
        Wpriv=Wpriv,
        Wpub=Wpub,
        Y=Y,
        mean=mean,
        rho=float(spectral_radius(AU)),
        AU=AU,
    )


def iterate_states(
    system: FeatureSystem,
    alpha: np.ndarray,
    beta: np.ndarray,
    schedule: Optional[Sequence[np.ndarray]] = None,
    fresh_real: bool = False,
) -> Iterator[GenerationState]:
    """Generations 0..T for (T+1, K) weights; schedule: T synthetic Gram stacks (t = 1..T);
    fresh_real: real data drawn anew every generation (see `next_state`)."""
    state = initial_state(system, beta[0])
    yield state
    prev_syn = None
    for t in range(1, alpha.shape[0]):
        if schedule is None:
            syn, syn_h = system.synthetic_grams, system.synthetic_hstack
        else:
            syn = schedule[t - 1]
            syn_h = hstack_blocks(syn)
        # A_1 = 0 whatever the features (alpha_0 = 0), so state 0's AU serves it
        state = next_state(system, state, syn, alpha[t], beta[t], syn_h, t == 1 or syn is prev_syn, fresh_real)
        prev_syn = syn
        yield state


# ============================================================================ covariance
def real_data_variance(
    H: np.ndarray,
    St: np.ndarray,
    Ss: np.ndarray,
    ab: np.ndarray,
    ac: np.ndarray,
    s2: float,
    StH: Optional[np.ndarray] = None,
) -> np.ndarray:
    """(K,) s2 (ab_k^2 tr(H_k S~_k H_k) + ac_k^2 tr(H_k S* H_k)) for stacks H, St (K, d, d):
    the variance without synthetic data (generation 0, alpha = 0), where H_k = G_k^+ with
    G_k = ab_k S~_k + ac_k S*. StH: S~_k H_k if known.

    H G H = H (a pseudo-inverse property) gives ac_k tr(H_k S* H_k) = tr H_k - ab_k tr(H_k S~_k
    H_k), so one d x d product per entity (S~_k H_k, none if given) instead of two."""
    if not np.any(ab):
        HSs = (np.reshape(H, (-1, H.shape[-1])) @ Ss).reshape(H.shape)  # one product for all k
        return s2 * ac**2 * np.einsum("kij,kji->k", HSs, H)
    StH = St @ H if StH is None else StH
    priv = np.einsum("kij,kji->k", StH, H)  # tr(H S~ H)
    return s2 * (ab**2 * priv + ac * (np.trace(H, axis1=-2, axis2=-1) - ab * priv))


def variance(system: FeatureSystem, s: GenerationState) -> np.ndarray:
    """(K,) tr Cov(theta_tk) from the trace formula of the module docstring: a few batched
    d x d products per entity, no covariance block."""
    if not np.any(s.u):
        return real_data_variance(s.H, system.private_grams, system.public_gram, s.ab, s.ac, system.sigma2)
    St, Ss, s2 = system.private_grams, system.public_gram, system.sigma2
    H2 = s.H @ s.H
    Zh = stack_sum(s.Wpriv @ St, tr(s.Wpriv)) + s.Wpub @ Ss @ s.Wpub.T
    Ztot = sym(s2 * Zh + s.Y)
    cross = s.ab * frob(s.Wpriv, H2 @ St) + s.ac * frob(s.Wpub @ Ss, H2)
    return s2 * (s.ab**2 * frob(St, H2) + s.ac**2 * frob(Ss, H2) + 2 * s.u * cross) + s.u**2 * frob(Ztot, H2)


def _pieces(system: FeatureSystem, s: GenerationState):
    """Ztot = sigma^2 Zh + Y and R_k (K, d, d), cached on the state."""
    if "R" not in s._cache:
        St, Ss, s2 = system.private_grams, system.public_gram, system.sigma2
        Zh = stack_sum(s.Wpriv @ St, tr(s.Wpriv)) + s.Wpub @ Ss @ s.Wpub.T
        HS = s.H @ St
        R = (s.ab[:, None, None] * HS) @ tr(s.Wpriv) + s.ac[:, None, None] * (s.H @ (Ss @ s.Wpub.T))
        s._cache.update(Ztot=sym(s2 * Zh + s.Y), R=R, HS=HS)
    return s._cache["Ztot"], s._cache["R"]


def cov_diag(system: FeatureSystem, s: GenerationState) -> np.ndarray:
    """(K, d, d) Cov(theta_tk), unconditional (Theorem 2 with corrections 2-3)."""
    Ztot, R = _pieces(system, s)
    H, HS, s2 = s.H, s._cache["HS"], system.sigma2
    e = (slice(None), None, None)
    HSs = H @ system.public_gram
    RU = s.u[e] * (R @ H)
    cov = s2 * ((s.ab**2)[e] * (HS @ H) + (s.ac**2)[e] * (HSs @ H) + RU + tr(RU)) + (s.u**2)[e] * (H @ Ztot @ H)
    return sym(cov)


def cross_traces(system: FeatureSystem, s: GenerationState) -> np.ndarray:
    """(K, K) tr Cov(theta_tk, theta_tl) for all pairs, without forming the blocks.

    Each term of the cross block is a Frobenius product of two per-entity d x d matrices,
    so the cost is O(K d^3 + K^2 d^2).
    """
    K = system.K
    Ztot, R = _pieces(system, s)
    H, s2 = s.H, system.sigma2
    Hf = H.reshape(K, -1)
    T_pub = (H @ system.public_gram).reshape(K, -1) @ Hf.T  # tr(H_k S* H_l)
    T_R = R.reshape(K, -1) @ Hf.T  # tr(R_k H_l)
    T_Z = (H @ Ztot).reshape(K, -1) @ Hf.T  # tr(H_k Z H_l)
    priv = np.einsum("kij,kji->k", s._cache["HS"], H)  # tr(H_k S~_k H_k)
    out = (
        s2 * (np.outer(s.ac, s.ac) * T_pub + T_R * s.u[None, :] + (T_R * s.u[None, :]).T + np.diag(s.ab**2 * priv))
        + np.outer(s.u, s.u) * T_Z
    )
    return 0.5 * (out + out.T)


def cov_blocks(system: FeatureSystem, s: GenerationState) -> np.ndarray:
    """(K, K, d, d) every block Cov(theta_tk, theta_tl); O(K^2 d^3) time, K^2 d^2 memory."""
    Ztot, R = _pieces(system, s)
    H, s2 = s.H, system.sigma2
    HSs = H @ system.public_gram
    out = s2 * (
        np.einsum("k,l,kij,ljm->klim", s.ac, s.ac, HSs, H)
        + np.einsum("l,kij,ljm->klim", s.u, R, H)
        + np.einsum("k,kij,lmj->klim", s.u, H, R)
    )
    out += np.einsum("k,l,kij,ljm->klim", s.u, s.u, H @ Ztot, H)
    out[np.arange(system.K), np.arange(system.K)] = cov_diag(system, s)
    return out


def mspe(system: FeatureSystem, s: GenerationState) -> np.ndarray:
    """(K, K) E||X~_m (theta_tk - theta)||^2 [k = estimator, m = features]: <S~_m, E e_k e_k'>,
    from the full (K, d, d) covariance: O(K d^3 + K^2 d^2)."""
    e = s.mean - system.theta
    second = cov_diag(system, s) + e[:, :, None] * e[:, None, :]  # E[e_k e_k']
    K = system.K
    return second.reshape(K, -1) @ system.private_grams.reshape(K, -1).T
