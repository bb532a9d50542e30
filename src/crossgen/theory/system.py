"""The feature system of the linear theory: features, Gram blocks, weights, pseudo-inverses.

Paper section 5: K entities fit linear regressions in dimension d on deterministic features,
private X~_k (n_k x d), public X* (n* x d) and the synthetic features X_k (m_k x d) at which
every entity publishes responses from generation 1 on (default X_k = X~_k, as in the paper's
experiments, where prompts come from the entity's own private data). Everything the theory
needs is a function of the Gram matrices S~_k = X~_k'X~_k, S* = X*'X*, S_k = X_k'X_k, so a
`FeatureSystem` validates the features once and caches the Grams.

Weights may vary per generation and per entity (`crossgen.mixture.weight_schedule` turns a
scalar, one value per generation, or a (T+1, K) array into a (T+1, K) array). The per-entity
generalisation is not in the paper; the paper's case is a weight constant over entities.

One pseudo-inverse cut-off serves the one estimator (weighted min-norm least squares)
wherever it is computed: here on Gram matrices G = D'D (`psd_pinv`: eigenvalues <=
`PINV_RTOL` x the largest count as zero), and on design matrices D in the Monte Carlo twin and
the linear backend (`design_pinv`, numpy's `pinv`/`lstsq` with `rcond=PINV_RCOND`: singular
values <= `PINV_RCOND` x the largest count as zero). Since the eigenvalues of D'D are the
squared singular values of D, PINV_RCOND = sqrt(PINV_RTOL) drops exactly the same directions.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Optional

import numpy as np

from crossgen.errors import InputError
from crossgen.io import write_bytes

PINV_RTOL = 1e-10
"""Eigenvalue cut-off of every pseudo-inverse of a Gram matrix G = D'D, relative to the largest
eigenvalue of G (eigenvalues <= PINV_RTOL * largest count as zero)."""

PINV_RCOND = math.sqrt(PINV_RTOL)
"""The same cut-off on the singular values of the design D (1e-5): singular values <=
PINV_RCOND * largest count as zero, as numpy's ``pinv(D, rcond=...)`` and ``lstsq(rcond=...)``."""


# ----------------------------------------------------------------------------- features
def _feature_matrix(field_name: str, value: Any, d: Optional[int], d_source: str) -> np.ndarray:
    """A finite 2-D float array with d columns (d=None: any d >= 1), as a read-only copy."""
    try:
        arr = np.array(value, dtype=float, copy=True)
    except (TypeError, ValueError):
        raise InputError(field_name, value, "a 2-D array of numbers") from None
    if arr.ndim != 2:
        raise InputError(field_name, f"shape {arr.shape}", "a 2-D array (rows x d)")
    if arr.shape[1] < 1:
        raise InputError(field_name, f"shape {arr.shape}", "at least one column (d >= 1)")
    if d is not None and arr.shape[1] != d:
        raise InputError(field_name, f"{arr.shape[1]} columns", f"{d} columns, the d of {d_source}")
    if not np.all(np.isfinite(arr)):
        raise InputError(field_name, "non-finite values (NaN or inf)", "finite numbers")
    arr.setflags(write=False)
    return arr


def _feature_list(prefix: str, arrays: Any, K: int, d: int) -> tuple[np.ndarray, ...]:
    """K validated feature matrices named prefix_0 .. prefix_{K-1}."""
    if isinstance(arrays, np.ndarray) and arrays.ndim != 3:
        raise InputError(prefix, f"array of shape {arrays.shape}", f"a sequence of {K} 2-D arrays")
    try:
        items = list(arrays)
    except TypeError:
        raise InputError(prefix, arrays, f"a sequence of {K} 2-D arrays") from None
    if len(items) != K:
        raise InputError(prefix, f"{len(items)} arrays", f"{K} arrays, one per entity")
    return tuple(_feature_matrix(f"{prefix}_{k}", x, d, "private_0") for k, x in enumerate(items))


def gram_stack(features: Sequence[np.ndarray]) -> np.ndarray:
    """(K, d, d) stack of the Grams X_k' X_k, read-only, written in place (no K temporaries).

    np.dot(x.T, x) runs BLAS syrk (half the flops of matmul's gemm, and exactly symmetric):
    about 5x faster than np.matmul here, and the Grams are most of reading a feature file."""
    d = features[0].shape[1]
    out = np.empty((len(features), d, d))
    for k, x in enumerate(features):
        np.dot(x.T, x, out=out[k])
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class FeatureSystem:
    """Deterministic features of K entities in dimension d, plus noise level and truth.

    Arrays are copied, validated and made read-only; an array may have zero rows (an entity
    without data of that kind). The Gram matrices are computed once, on first use.

    Parameters
    ----------
    private : sequence of K arrays (n_k, d)
        X~_k, entity k's private features. Their number is K, the first one's columns d.
    public : array (n*, d)
        X*, the public features every entity sees.
    synthetic : sequence of K arrays (m_k, d), optional
        X_k, the features at which entity k publishes its responses from generation 1 on;
        default the private features (the paper's prompts come from the private data).
    sigma2 : float, default 1.0
        Variance (> 0) of the response noise, in the initial and in the synthetic data.
    theta : array (d,), optional
        The true parameter; default ones(d)/sqrt(d) (unit norm, so the bias of an estimator
        that ignores theta entirely is 1).

    Raises
    ------
    InputError
        Naming the offending array (e.g. ``private_1``), its value and what is allowed.

    Attributes
    ----------
    K, d : int
    private_grams, synthetic_grams : array (K, d, d)
        S~_k and S_k (the same array when no synthetic features are given).
    public_gram : array (d, d)
        S*.
    """

    private: Any  # after __post_init__: a tuple of read-only arrays
    public: Any
    synthetic: Any = None
    sigma2: float = 1.0
    theta: Any = None
    _synthetic_given: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.private, np.ndarray) and self.private.ndim == 2:
            raise InputError(
                "private", f"one array of shape {self.private.shape}", "a sequence of K 2-D arrays, one per entity"
            )
        try:
            private = list(self.private)
        except TypeError:
            raise InputError("private", self.private, "a sequence of K 2-D arrays") from None
        if len(private) < 1:
            raise InputError("K", 0, "an integer >= 1 (at least one private feature matrix)")
        first = _feature_matrix("private_0", private[0], None, "")
        K, d = len(private), first.shape[1]
        priv = (first,) + tuple(
            _feature_matrix(f"private_{k}", x, d, "private_0") for k, x in enumerate(private) if k > 0
        )
        pub = _feature_matrix("public", self.public, d, "private_0")
        given = self.synthetic is not None
        syn = _feature_list("synthetic", self.synthetic, K, d) if given else priv
        try:
            sigma2 = float(self.sigma2)
        except (TypeError, ValueError):
            raise InputError("sigma2", self.sigma2, "a finite number > 0") from None
        if not (np.isfinite(sigma2) and sigma2 > 0):
            raise InputError("sigma2", sigma2, "a finite number > 0")
        if self.theta is None:
            theta = np.ones(d) / np.sqrt(d)
        else:
            try:
                theta = np.array(self.theta, dtype=float, copy=True)
            except (TypeError, ValueError):
                raise InputError("theta", self.theta, f"a vector of {d} numbers") from None
            if theta.shape != (d,):
                raise InputError("theta", f"shape {theta.shape}", f"a vector of {d} numbers")
            if not np.all(np.isfinite(theta)):
                raise InputError("theta", "non-finite values (NaN or inf)", "finite numbers")
        theta.setflags(write=False)
        for name, value in (
            ("private", priv),
            ("public", pub),
            ("synthetic", syn),
            ("sigma2", sigma2),
            ("theta", theta),
            ("_synthetic_given", given),
        ):
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ shape
    @property
    def K(self) -> int:
        return len(self.private)

    @property
    def d(self) -> int:
        return self.public.shape[1]

    # ------------------------------------------------------------------ Grams
    @cached_property
    def private_grams(self) -> np.ndarray:
        """(K, d, d) S~_k = X~_k' X~_k."""
        return gram_stack(self.private)

    @cached_property
    def public_gram(self) -> np.ndarray:
        """(d, d) S* = X*' X*."""
        g = np.dot(self.public.T, self.public)  # syrk, see gram_stack
        g.setflags(write=False)
        return g

    @cached_property
    def synthetic_grams(self) -> np.ndarray:
        """(K, d, d) S_k = X_k' X_k, the same array as `private_grams` by default."""
        return gram_stack(self.synthetic) if self._synthetic_given else self.private_grams

    @cached_property
    def synthetic_hstack(self) -> np.ndarray:
        """(d, K d) [S_1 .. S_K], for sums sum_k S_k Y_k as one matrix product."""
        return hstack_blocks(self.synthetic_grams)

    # ------------------------------------------------------------------ files
    @classmethod
    def from_npz(cls, path: str | os.PathLike) -> FeatureSystem:
        """Read the theory feature file (docs/DESIGN.md, "Contracts").

        Arrays: private_0 .. private_{K-1} (n_k x d), public (n* x d), optional
        synthetic_0 .. synthetic_{K-1} (all or none), optional theta (d,) and sigma2 (scalar).
        A missing array raises an InputError naming it; other arrays are ignored.
        """
        p = Path(path)
        if not p.is_file():
            raise InputError("file", str(path), "an existing .npz feature file")
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files}
        except Exception:  # not a zip, corrupt member, pickled objects ...
            raise InputError("file", str(path), "a readable .npz file of numeric arrays") from None
        return cls._from_arrays(arrays)

    @classmethod
    def _from_arrays(cls, arrays: dict) -> FeatureSystem:
        def indices(prefix: str) -> list[int]:
            pat = re.compile(rf"^{prefix}_(\d+)$")
            return sorted(int(m.group(1)) for m in map(pat.match, arrays) if m)

        priv_idx = indices("private")
        if not priv_idx:
            raise InputError(
                "private_0", "missing", "an array named 'private_0' in the .npz file (private_0 .. private_{K-1})"
            )
        K = max(priv_idx) + 1
        for k in range(K):
            if f"private_{k}" not in arrays:
                raise InputError(f"private_{k}", "missing", f"arrays private_0 .. private_{K - 1} without gaps")
        if "public" not in arrays:
            raise InputError("public", "missing", "an array named 'public' in the .npz file")
        syn_idx = indices("synthetic")
        synthetic = None
        if syn_idx:
            for k in range(K):
                if f"synthetic_{k}" not in arrays:
                    raise InputError(f"synthetic_{k}", "missing", f"all of synthetic_0 .. synthetic_{K - 1}, or none")
            if max(syn_idx) >= K:
                raise InputError(
                    f"synthetic_{max(syn_idx)}", "present", f"synthetic_0 .. synthetic_{K - 1}, one per private array"
                )
            synthetic = [arrays[f"synthetic_{k}"] for k in range(K)]
        sigma2 = 1.0
        if "sigma2" in arrays:
            s = np.asarray(arrays["sigma2"])
            if s.size != 1:
                raise InputError("sigma2", f"array of shape {s.shape}", "a finite number > 0")
            sigma2 = s.reshape(()).item()
        return cls(
            private=[arrays[f"private_{k}"] for k in range(K)],
            public=arrays["public"],
            synthetic=synthetic,
            sigma2=sigma2,
            theta=arrays.get("theta"),
        )

    def to_npz(self, path: str | os.PathLike) -> None:
        """Write the feature file (atomically: a temporary file renamed into place)."""
        arrays = {f"private_{k}": x for k, x in enumerate(self.private)}
        arrays["public"] = self.public
        if self._synthetic_given:
            arrays.update({f"synthetic_{k}": x for k, x in enumerate(self.synthetic)})
        arrays["theta"] = self.theta
        arrays["sigma2"] = np.array(self.sigma2)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_bytes(Path(path), buf.getvalue())


# ----------------------------------------------------------------------------- weights
def mixture_grams(
    private_grams: np.ndarray,
    public_gram: np.ndarray,
    synthetic_mean: np.ndarray,
    ab: np.ndarray,
    ac: np.ndarray,
    a: np.ndarray,
) -> np.ndarray:
    """G_k = abar b S~_k + abar bbar S* + alpha Sbar, batched over the weights' leading axes.

    ab, ac, a have shape (..., K); the result has shape (..., K, d, d). Paper section 5
    (block k of the block-diagonal G_t), with weights per entity. One (..., K, d, d)
    allocation when ac and a are shared by the entities (the common case).
    """
    e = (Ellipsis, None, None)
    G = ab[e] * private_grams
    if _uniform(ac) and _uniform(a):
        G += ac[..., :1][e] * public_gram + a[..., :1][e] * synthetic_mean
    else:
        G += ac[e] * public_gram
        G += a[e] * synthetic_mean
    return G


BLOCK_ELEMENTS = 2**17
"""Size (in float64 numbers, 1 MiB) of the blocks of d x d matrices that the structured
engine processes at a time: a block's temporaries stay in cache (batched products of 100 x 100
matrices ran ~1.2x faster per matrix in blocks of 13 than of 52, on 1 MiB of L2 per core) and
only the arrays that outlive the pass are allocated whole."""


def blocks(rows: int, K: int, d: int):
    """(row slice, entity slice) pairs covering a (rows, K) grid of d x d matrices in blocks
    of about BLOCK_ELEMENTS numbers: whole rows of entities when a row fits, else pieces of
    one row."""
    per_row = K * d * d
    if per_row <= BLOCK_ELEMENTS:
        step = max(1, BLOCK_ELEMENTS // per_row)
        for r in range(0, rows, step):
            yield slice(r, r + step), slice(0, K)
        return
    step = max(1, BLOCK_ELEMENTS // (d * d))
    for r in range(rows):
        for k in range(0, K, step):
            yield slice(r, r + 1), slice(k, k + step)


def _uniform(w: np.ndarray) -> bool:
    """True when a (..., K) weight array is the same for every entity."""
    return bool(np.all(w == w[..., :1]))


# ----------------------------------------------------------------------------- linear algebra
def psd_pinv(G: np.ndarray) -> np.ndarray:
    """Pseudo-inverse of a stack (..., d, d) of symmetric PSD matrices, symmetric output.

    Eigenvalues <= PINV_RTOL * (largest eigenvalue of the same matrix) count as zero. Fast
    path: a batched inverse, accepted where the Frobenius condition number ||G|| ||G^-1|| (an
    upper bound of the 2-norm one) is below 1/PINV_RTOL, so that the pseudo-inverse is the
    inverse; the other matrices (rank-deficient or nearly so) go through one eigendecomposition
    each.
    """
    G = np.asarray(G, dtype=float)
    flat = G.reshape((-1,) + G.shape[-2:])
    try:
        out = np.linalg.inv(flat)
    except np.linalg.LinAlgError:  # an exactly singular matrix: the rest one by one
        out = _inv_each(flat)
    with np.errstate(all="ignore"):
        cond = np.sqrt(np.einsum("kij,kij->k", flat, flat) * np.einsum("kij,kij->k", out, out))
    slow = ~(np.isfinite(cond) & (cond < 1.0 / PINV_RTOL))
    # into a new array: in place, numpy would buffer the overlapping operand (2x slower)
    out = np.add(out, np.swapaxes(out, -1, -2), out=np.empty_like(out))
    out *= 0.5
    if slow.any():
        w, V = np.linalg.eigh(flat[slow])
        top = np.max(np.abs(w), axis=-1, keepdims=True)
        keep = w > PINV_RTOL * top
        winv = np.where(keep, 1.0 / np.where(keep, w, 1.0), 0.0)
        out[slow] = (V * winv[:, None, :]) @ V.transpose(0, 2, 1)
    return out.reshape(G.shape)


def _inv_each(flat: np.ndarray) -> np.ndarray:
    """Inverses of a stack, NaN where a matrix is exactly singular (then pseudo-inverted by
    psd_pinv's slow path), so that a singular matrix does not send the others there too."""
    out = np.empty_like(flat)
    for i, g in enumerate(flat):
        try:
            out[i] = np.linalg.inv(g)
        except np.linalg.LinAlgError:
            out[i] = np.nan
    return out


def design_pinv(D: np.ndarray) -> np.ndarray:
    """Moore-Penrose pseudo-inverse (d x rows) of a design matrix D (rows x d), by SVD.

    Singular values <= PINV_RCOND * the largest count as zero, which is `psd_pinv`'s cut-off
    on D'D; a design without rows gives a d x 0 matrix.
    """
    rows, d = D.shape
    if rows == 0:
        return np.zeros((d, 0))
    u, s, vt = np.linalg.svd(D, full_matrices=False)
    keep = s > PINV_RCOND * s[0]
    return (vt[keep].T / s[keep]) @ u[:, keep].T


def hstack_blocks(X: np.ndarray) -> np.ndarray:
    """(K, p, q) -> (p, K q) = [X_1 .. X_K], contiguous."""
    K, p, q = X.shape
    return np.ascontiguousarray(np.swapaxes(X, 0, 1).reshape(p, K * q))


def weighted_stack_sum(Xh: np.ndarray, w: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """sum_k w_k X_k @ Y_k with Xh = hstack_blocks(X) (p, K q), w (..., K), Y (..., K, q, r).

    One BLAS product [X_1 .. X_K] @ [w_1 Y_1; ..; w_K Y_K]; no (..., K, q, r) temporary when
    w is the same for every entity.
    """
    *b, K, q, r = Y.shape
    if _uniform(w):
        return w[..., :1, None] * (Xh @ Y.reshape(*b, K * q, r))
    return Xh @ (w[..., None, None] * Y).reshape(*b, K * q, r)


def stack_sum(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """sum_k X_k @ Y_k for stacks (..., K, p, q), (..., K, q, r) as one matrix product.

    [X_1 .. X_K] @ [Y_1; ..; Y_K] runs as a single BLAS call instead of K small ones.
    """
    *b, K, p, q = X.shape
    r = Y.shape[-1]
    Xh = np.swapaxes(X, -3, -2).reshape(*b, p, K * q)
    Yv = Y.reshape(*Y.shape[:-3], K * q, r)
    return Xh @ Yv


def frob(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Frobenius inner products <X, Y> = tr(X' Y) over the last two axes (broadcasting)."""
    return np.einsum("...ij,...ij->...", X, Y)


def schedule_steps(schedule: Any, T: int, K: int) -> list:
    """The T per-generation entries of a synthetic_schedule (validated: a list of length T)."""
    try:
        steps = list(schedule)
    except TypeError:
        raise InputError("synthetic_schedule", schedule, f"a list of {T} lists of {K} feature arrays") from None
    if len(steps) != T:
        raise InputError(
            "synthetic_schedule", f"{len(steps)} generations", f"{T} generations (t = 1..{T}), each {K} feature arrays"
        )
    return steps
