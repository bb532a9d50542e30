"""One pass over the entities for stationary weights: everything the limit and the closed-form
trajectory need from the K blocks G_k, in O(K d^3) time.

Stationary weights (the same alpha_k, beta_k at every generation t >= 1, the system's
synthetic features) make G_t^+ = H and A_t = A for t >= 2 (notation of `recursion`). The
limit (`limit`) and the trajectory (`dynamics`) then need, per entity k, only G_k^+ and a few
products with the Grams, and, over the entities, a few d x d sums. `factorise` computes them
block by block of entities (`system.blocks`), so that the per-block temporaries stay small
and only H, H2 = H H and E = H2 S~ H S (and E0 for generation 0) are kept whole.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

import numpy as np

from crossgen.mixture import mixture_coefficients
from crossgen.theory.recursion import real_data_variance, real_part_of_mean, tr
from crossgen.theory.system import FeatureSystem, blocks, mixture_grams, psd_pinv, stack_sum

RHO_TOL = 1e-9
"""|rho - 1| <= RHO_TOL counts as rho == 1 (linear growth); rho < 1 - RHO_TOL converges."""


@dataclass(eq=False)
class Stationary:
    """The factorisation of B rows of stationary weights (leading axis B).

    Per row: ab, ac, a, u (B, K) weights (u = a/K); H (B, K, d, d) G_k^+; H2 = H_k H_k and
    E = H2_k S~_k H_k S_k (B, K, d, d); p (B, K, d) = H_k (ab S~_k + ac S*) theta, the mean
    without synthetic data; A = sum_k u_k S_k H_k (whose spectral radius is rho(Q), Lemma 1),
    N = sum_k ac_k S_k H_k and C0 = sum_k ab_k^2 S_k H_k S~_k H_k S_k (B, d, d); lam (B, d)
    and V (B, d, d) the eigenvalues and eigenvectors of A; rho and converges (B,).

    With generation 0 (one row, `factorise(..., beta0=...)`): g0 holds its mean0 (K, d) and
    var0 (K,), and what generation 1 inherits from it, with Wh_1[k] = ab0_k S_k H0_k:
    E0 = H2_k S~_k H0_k S_k (K, d, d), Zp = sum_k Wh_1[k] S~_k Wh_1[k]', X = sum_k Wh_1[k]
    S~_k (ab_k S_k H_k)' and Wpub = sum_k ac0_k S_k H0_k (d, d), and ab0 (K,).
    """

    a: np.ndarray
    ab: np.ndarray
    ac: np.ndarray
    u: np.ndarray
    H: np.ndarray
    H2: np.ndarray
    E: np.ndarray
    p: np.ndarray
    A: np.ndarray
    N: np.ndarray
    C0: np.ndarray
    lam: np.ndarray
    V: np.ndarray
    rho: np.ndarray
    converges: np.ndarray
    g0: Optional[dict] = None

    def rows(self, mask: np.ndarray) -> Stationary:
        """The rows where mask is True (without generation 0)."""
        return Stationary(**{f.name: getattr(self, f.name)[mask] for f in fields(self) if f.name != "g0"})

    def SH(self, system: FeatureSystem, row: int = 0) -> np.ndarray:
        """(K, d, d) S_k H_k of one row (recomputed: only the rare paths need it)."""
        return system.synthetic_grams @ self.H[row]


def factorise(system: FeatureSystem, a: np.ndarray, b: np.ndarray, beta0: Optional[np.ndarray] = None) -> Stationary:
    """The factorisation of (B, K) stationary weight rows a (alpha), b (beta); beta0 (K,)
    adds generation 0 (B must be 1). One pass over blocks of entities."""
    St, Ss, Syn = system.private_grams, system.public_gram, system.synthetic_grams
    B, K, d = a.shape[0], system.K, system.d
    ab, ac, a = mixture_coefficients(a, b)
    u = a / K
    Sbar = Syn.mean(axis=0)
    c = real_part_of_mean(system, ab, ac)
    H, H2, E = (np.empty((B, K, d, d)) for _ in range(3))
    p = np.empty((B, K, d))
    A, N, C0 = (np.zeros((B, d, d)) for _ in range(3))
    g0 = None if beta0 is None else _Generation0(system, beta0, ab[0])
    e = (Ellipsis, None, None)
    for r, k in blocks(B, K, d):
        Hb = H[r, k] = psd_pinv(mixture_grams(St[k], Ss, Sbar, ab[r, k], ac[r, k], a[r, k]))
        p[r, k] = np.einsum("bkij,bkj->bki", Hb, c[r, k])
        H2b = np.matmul(Hb, Hb, out=H2[r, k])
        if g0 is None:
            SH = Syn[k] @ Hb  # S_k H_k
            F = St[k] @ tr(SH)  # S~_k H_k S_k
            np.matmul(H2b, F, out=E[r, k])
        else:  # B = 1: generation 0 rides along, each product twice as wide
            H0 = g0.inverse(k)
            SH, SH0 = _halves(Syn[k] @ np.concatenate([Hb[0], H0], axis=-1))
            F, F0 = _halves(St[k] @ np.concatenate([tr(SH), tr(SH0)], axis=-1))
            E[r, k], E0 = _halves(H2b[0] @ np.concatenate([F, F0], axis=-1))
            g0.add(k, H0, SH0, F0, E0, SH)
            SH, F = SH[None], F[None]
        A[r] += _entity_sum(u[r, k], SH)
        N[r] += _entity_sum(ac[r, k], SH)
        C0[r] += stack_sum((ab[r, k] ** 2)[e] * SH, F)
    lam, V = np.linalg.eig(A)
    rho = np.max(np.abs(lam), axis=-1)
    return Stationary(
        a=a,
        ab=ab,
        ac=ac,
        u=u,
        H=H,
        H2=H2,
        E=E,
        p=p,
        A=A,
        N=N,
        C0=C0,
        lam=lam,
        V=V,
        rho=rho,
        converges=rho < 1.0 - RHO_TOL,
        g0=None if g0 is None else g0.out,
    )


def _halves(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The left and right d columns of a stack of d x 2d matrices."""
    d = X.shape[-2]
    return X[..., :d], X[..., d:]


def _entity_sum(w: np.ndarray, X: np.ndarray) -> np.ndarray:
    """sum_k w_k X_k for w (B, K) and X (B, K, d, d): (B, d, d), one matrix-vector product."""
    B, K, d = X.shape[:3]
    return (w[:, None, :] @ X.reshape(B, K, d * d)).reshape(B, d, d)


def generation0(system: FeatureSystem, beta0: np.ndarray) -> dict:
    """Generation 0 alone, block by block: ab0 (K,), mean0 (K, d) and var0 (K,)."""
    g0 = _Generation0(system, beta0, None)
    for _, k in blocks(1, system.K, system.d):
        H0 = g0.inverse(k)
        g0.out["var0"][k] = real_data_variance(
            H0, system.private_grams[k], system.public_gram, g0.ab0[k], g0.ac0[k], system.sigma2
        )
    return g0.out


class _Generation0:
    """Generation 0's part of the pass (see `Stationary`), block by block."""

    def __init__(self, system: FeatureSystem, beta0: np.ndarray, ab: Optional[np.ndarray]):
        K, d = system.K, system.d
        self.system, self.ab = system, ab
        self.zero = np.zeros(K)
        self.ab0, self.ac0, _ = mixture_coefficients(self.zero, beta0)
        self.c0 = real_part_of_mean(system, self.ab0, self.ac0)
        self.same = system.synthetic_grams is system.private_grams  # S_k = S~_k
        self.out = dict(ab0=self.ab0, mean0=np.empty((K, d)), var0=np.empty(K))
        if ab is not None:
            self.out.update(E0=np.empty((K, d, d)), Zp=np.zeros((d, d)), X=np.zeros((d, d)), Wpub=np.zeros((d, d)))

    def inverse(self, k: slice) -> np.ndarray:
        """G_0k^+ of entities k (and their mean0)."""
        s, d = self.system, self.system.d
        H0 = psd_pinv(
            mixture_grams(s.private_grams[k], s.public_gram, np.zeros((d, d)), self.ab0[k], self.ac0[k], self.zero[k])
        )
        self.out["mean0"][k] = np.einsum("kij,kj->ki", H0, self.c0[k])
        return H0

    def add(self, k: slice, H0: np.ndarray, SH0: np.ndarray, F0: np.ndarray, E0: np.ndarray, SH: np.ndarray) -> None:
        """var0 and what generation 1 inherits, for entities k: S_k H0_k, S~_k H0_k S_k,
        H2_k S~_k H0_k S_k and S_k H_k given."""
        s, out, d = self.system, self.out, self.system.d
        assert self.ab is not None  # made by factorise
        ab0, ac0, e = self.ab0[k], self.ac0[k], (slice(None), None, None)
        out["var0"][k] = real_data_variance(
            H0, s.private_grams[k], s.public_gram, ab0, ac0, s.sigma2, SH0 if self.same else None
        )
        out["E0"][k] = E0
        left = np.concatenate([(ab0**2)[e] * SH0, (ab0 * self.ab[k])[e] * SH], axis=1)
        ZX = stack_sum(left, np.ascontiguousarray(F0))  # [Zp; X'] of these entities
        out["Zp"] += ZX[:d]
        out["X"] += ZX[d:].T
        out["Wpub"] += _entity_sum(ac0[None], SH0[None])[0]
