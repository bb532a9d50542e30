"""Dense Kd x Kd reference: the paper's matrices G, P, Q, M, C, literally (with corrections).

For tests and benchmarks only: memory O((Kd)^2), time O((Kd)^3) per generation, and
`eq2_covariance` is O((Kd)^6). The structured engine in `dynamics` must agree with this.

Paper section 5 and appendix E, with the corrections of docs/DESIGN.md:
  G_t = D_ab S~ + D_ac (I_K kron S*) + D_a (I_K kron Sbar_t)      (D_x = diag(x) kron I_d)
  P_t = G_t^+ [D_ab S~, D_ac (1_K kron S*)]                        (correction 1)
  Q_t = G_t^+ D_a Pi S_t, Pi = (1/K)(1 1' kron I_d)
  M_0 = P_0, M_t = P_t + Q_t M_{t-1}; C_0 = 0, C_t = Q_t (s2 S_t^+ + C_{t-1}) Q_t'  (corr. 2)
  E[theta_t] = M_t E[b], Cov(theta_t) = s2 M_t blockdiag(S~^+, S*^+) M_t' + C_t     (corr. 3-4)
  limits: M = (I - Q)^-1 P (correction 5), C from the Lyapunov equation C = Q C Q' + s2 Q S^+ Q'
  or from eq. (2) with the transpose: vec C = s2 (I - Q kron Q)^-1 vec(Q S^+ Q').
Weights per entity enter as the diagonal scalings D_x (not in the paper).

Interaction graph W (not in the paper; `graphs`): D_a (I_K kron Sbar_t) becomes
D_a blockdiag(sum_j W_kj S_tj) and Pi becomes W kron I_d. Fresh real data (`fresh_real`, a new
draw every generation): Cov(theta_t) = s2 P_t B P_t' + Q_t (s2 S_t^+ + Cov(theta_{t-1})) Q_t',
and in the limit Cov = Q Cov Q' + s2 (P B P' + Q S^+ Q').
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Optional

import numpy as np
import scipy.linalg

from crossgen.mixture import entity_weights
from crossgen.theory.recursion import schedule_grams, weights
from crossgen.theory.system import PINV_RTOL, FeatureSystem


def _pinv(X: np.ndarray) -> np.ndarray:
    return np.linalg.pinv(X, rcond=PINV_RTOL, hermitian=True)


def _D(x: np.ndarray, d: int) -> np.ndarray:
    return np.kron(np.diag(x), np.eye(d))


def matrices(
    system: FeatureSystem,
    alpha: np.ndarray,
    beta: np.ndarray,
    synthetic_grams: Optional[np.ndarray] = None,
    W: Optional[np.ndarray] = None,
):
    """(G, P, Q, S) of one generation for weights (K,), synthetic Grams (K, d, d) and an
    interaction matrix W (K, K) (None: the complete graph)."""
    K, d = system.K, system.d
    syn = system.synthetic_grams if synthetic_grams is None else synthetic_grams
    alpha, beta = np.asarray(alpha, float), np.asarray(beta, float)
    ab, ac, a = (1 - alpha) * beta, (1 - alpha) * (1 - beta), alpha
    St = scipy.linalg.block_diag(*system.private_grams)
    S = scipy.linalg.block_diag(*syn)
    Ss = system.public_gram
    if W is None:
        Sbar = syn.mean(axis=0)
        synthetic = np.kron(np.eye(K), Sbar)
        Pi = np.kron(np.ones((K, K)) / K, np.eye(d))
    else:
        synthetic = scipy.linalg.block_diag(*np.einsum("kj,jab->kab", W, syn))
        Pi = np.kron(W, np.eye(d))
    G = _D(ab, d) @ St + _D(ac, d) @ np.kron(np.eye(K), Ss) + _D(a, d) @ synthetic
    Gp = _pinv(G)
    P = Gp @ np.hstack([_D(ab, d) @ St, _D(ac, d) @ np.kron(np.ones((K, 1)), Ss)])
    Q = Gp @ _D(a, d) @ Pi @ S
    return G, P, Q, S


def initial_moments(system: FeatureSystem):
    """E[b] ((K+1)d,) and B = blockdiag(S~^+, S*^+) with Cov(b) = s2 B (paper eq. 5)."""
    Sp = [_pinv(S) for S in system.private_grams] + [_pinv(system.public_gram)]
    Sg = list(system.private_grams) + [system.public_gram]
    Eb = np.concatenate([S @ Spi @ system.theta for S, Spi in zip(Sg, Sp)])
    return Eb, scipy.linalg.block_diag(*Sp)


def _summaries(system: FeatureSystem, mean: np.ndarray, cov: np.ndarray):
    K, d = system.K, system.d
    e = mean - system.theta
    blocks = [cov[k * d : (k + 1) * d, k * d : (k + 1) * d] for k in range(K)]
    bias2 = np.sum(e**2, axis=1)
    var = np.array([np.trace(c) for c in blocks])
    mspe = np.array(
        [[np.trace(Sm @ (c + np.outer(ek, ek))) for Sm in system.private_grams] for c, ek in zip(blocks, e)]
    )
    return bias2, var, bias2 + var, mspe


def trajectory(
    system: FeatureSystem,
    alpha: Any,
    beta: Any,
    generations: int,
    synthetic_schedule=None,
    W: Optional[np.ndarray] = None,
    fresh_real: bool = False,
) -> SimpleNamespace:
    """Theorems 1-2 with dense matrices: mean (T+1,K,d), bias2, variance, mse (T+1,K),
    mspe (T+1,K,K), cov (T+1,Kd,Kd), M and C (lists), Q (list), G (list). W: interaction
    matrix; fresh_real: real data drawn anew every generation (then C is the whole
    covariance minus s2 P_t B P_t')."""
    a, b = weights(system, alpha, beta, generations)
    T = a.shape[0] - 1
    schedule = schedule_grams(system, synthetic_schedule, T)
    K, d, s2 = system.K, system.d, system.sigma2
    Eb, B = initial_moments(system)
    out = SimpleNamespace(mean=[], bias2=[], variance=[], mse=[], mspe=[], cov=[], M=[], C=[], Q=[], G=[])
    M: Any = None
    C: Any = None
    P_prev: Any = None
    for t in range(T + 1):
        syn = system.synthetic_grams if (t == 0 or schedule is None) else schedule[t - 1]
        G, P, Q, S = matrices(system, a[t], b[t], syn, W)
        if t == 0:
            M, C = P, np.zeros((K * d, K * d))
        elif fresh_real:  # Cov(theta_{t-1}) = s2 P_{t-1} B P_{t-1}' + C_{t-1}; M_t = P_t + Q_t M_{t-1} for the mean
            C = Q @ (s2 * _pinv(S) + s2 * P_prev @ B @ P_prev.T + C) @ Q.T
            M = P + Q @ M
        else:
            M = P + Q @ M
            C = Q @ (s2 * _pinv(S) + C) @ Q.T
        P_prev = P
        mean = (M @ Eb).reshape(K, d)
        cov = s2 * (P if fresh_real else M) @ B @ (P if fresh_real else M).T + C
        for name, v in zip(("bias2", "variance", "mse", "mspe"), _summaries(system, mean, cov)):
            getattr(out, name).append(v)
        out.mean.append(mean)
        out.cov.append(cov)
        out.M.append(M)
        out.C.append(C)
        out.Q.append(Q)
        out.G.append(G)
    for name in ("mean", "bias2", "variance", "mse", "mspe", "cov"):
        setattr(out, name, np.array(getattr(out, name)))
    return out


def theorem2_mean(system: FeatureSystem, alpha: Any, beta: Any, generations: int) -> np.ndarray:
    """Theorem 2's closed form (I - Q_t..Q_1 (I - G_0 G_0^+))(1_K kron theta), (T+1, K, d).

    Valid only when G_1..G_t are full rank (correction 4)."""
    tr = trajectory(system, alpha, beta, generations)
    K, d = system.K, system.d
    one_theta = np.tile(system.theta, K)
    G0 = tr.G[0]
    prod = np.eye(K * d) - G0 @ _pinv(G0)
    out = []
    for t in range(len(tr.G)):
        if t > 0:
            prod = tr.Q[t] @ prod
        out.append(((np.eye(K * d) - prod) @ one_theta).reshape(K, d))
    return np.array(out)


def _stationary(system: FeatureSystem, alpha: Any, beta: Any, W: Optional[np.ndarray] = None):
    K = system.K
    a = entity_weights("alpha", alpha, K)
    b = entity_weights("beta", beta, K)
    return matrices(system, a, b, None, W)


def lyapunov_covariance(system: FeatureSystem, alpha: Any, beta: Any, W: Optional[np.ndarray] = None) -> np.ndarray:
    """Limit C of C_t by the dense discrete Lyapunov solver: C = Q C Q' + s2 Q S^+ Q'."""
    _, _, Q, S = _stationary(system, alpha, beta, W)
    return scipy.linalg.solve_discrete_lyapunov(Q, system.sigma2 * Q @ _pinv(S) @ Q.T)


def eq2_covariance(system: FeatureSystem, alpha: Any, beta: Any, W: Optional[np.ndarray] = None) -> np.ndarray:
    """Paper eq. (2) with the transpose fix: vec C = s2 (I - Q kron Q)^-1 vec(Q S^+ Q')."""
    _, _, Q, S = _stationary(system, alpha, beta, W)
    n = Q.shape[0]
    rhs = (system.sigma2 * Q @ _pinv(S) @ Q.T).reshape(-1, order="F")
    vecC = np.linalg.solve(np.eye(n * n) - np.kron(Q, Q), rhs)
    return vecC.reshape(n, n, order="F")


def asymptotic(
    system: FeatureSystem,
    alpha: Any,
    beta: Any,
    method: str = "lyapunov",
    W: Optional[np.ndarray] = None,
    fresh_real: bool = False,
):
    """Theorem 3 (corrected) with dense matrices: spectral_radius, mean (K,d), bias2,
    variance, mse (K,), mspe (K,K), cov (Kd,Kd). method: 'lyapunov' or 'eq2' (fixed real
    data); W: interaction matrix; fresh_real: Cov = Q Cov Q' + s2 (P B P' + Q S^+ Q')."""
    _, P, Q, S = _stationary(system, alpha, beta, W)
    K, d, s2 = system.K, system.d, system.sigma2
    rho = float(np.max(np.abs(np.linalg.eigvals(Q))))
    Eb, B = initial_moments(system)
    M = np.linalg.solve(np.eye(K * d) - Q, P)  # M = P + Q M
    mean = (M @ Eb).reshape(K, d)
    if fresh_real:
        cov = scipy.linalg.solve_discrete_lyapunov(Q, s2 * (P @ B @ P.T + Q @ _pinv(S) @ Q.T))
        C = cov - s2 * P @ B @ P.T
    else:
        C = (eq2_covariance if method == "eq2" else lyapunov_covariance)(system, alpha, beta, W)
        cov = s2 * M @ B @ M.T + C
    bias2, var, mse, mspe = _summaries(system, mean, cov)
    return SimpleNamespace(
        spectral_radius=rho, mean=mean, bias2=bias2, variance=var, mse=mse, mspe=mspe, cov=cov, M=M, C=C, Q=Q, P=P
    )
