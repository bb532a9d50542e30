"""What a limit is made of: the result types of Theorem 3 (`Asymptote`, `Growth`) and the
Stein solve, shared by the complete-graph engine (`limit`) and the general-graph one
(`network`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from crossgen.theory.recursion import sym, tr

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

    @classmethod
    def converged(cls, rho: float, theta: np.ndarray, mean: np.ndarray, var: np.ndarray, mspe=None) -> Asymptote:
        """The limit of a converging system from its mean (K, d) and variance (K,)."""
        e = mean - theta
        bias2 = np.einsum("ki,ki->k", e, e)
        return cls(rho, True, bias2 + var, mean, bias2, var, None, mspe)

    @classmethod
    def diverged(cls, rho: float, theta: np.ndarray, growth: Growth, mean: Optional[np.ndarray]) -> Asymptote:
        """A non-converging system: how it grows, and the limit of its mean if it has one."""
        bias2 = None if mean is None else np.sum((mean - theta) ** 2, axis=-1)
        return cls(rho, False, None, mean, bias2, None, growth)


def cesaro_increment(lam: np.ndarray, V: np.ndarray, Vi: np.ndarray, unit: np.ndarray, R: np.ndarray) -> np.ndarray:
    """sum_g P_g R P_g^H (real part) over the groups g of equal unit-modulus eigenvalues of a
    matrix A = V diag(lam) V^-1, P_g = V[:, g] Vi[g, :] its spectral projectors: the Cesaro
    limit of A^t R A^t' (the cross terms between distinct unit eigenvalues average out)."""
    n = V.shape[0]
    out = np.zeros((n, n))
    idx = list(np.nonzero(unit)[0])
    while idx:
        i = idx[0]
        g = [j for j in idx if abs(lam[j] - lam[i]) < 1e-6]
        idx = [j for j in idx if j not in g]
        Pg = V[:, g] @ Vi[g, :]
        out += (Pg @ R @ Pg.conj().T).real
    return out
