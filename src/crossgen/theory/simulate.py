"""Monte Carlo simulation of the linear-Gaussian interactive workflow (paper, section 5).

The simulator replays the workflow on raw data and never uses the theory's algebra (no
G, P, Q or M matrices), so that it can check the theory independently:

* generation 0: entity k fits weighted least squares with weight beta_{0,k} on its private
  data (X~_k, y~_k) and 1 - beta_{0,k} on the public data (X*, y*);
* generation t >= 1: every entity j publishes y_tj = X_tj thetahat_{t-1,j} + N(0, sigma2 I);
  the K synthetic sets are pooled and entity k refits, minimising
  (1-a) b ||y~_k - X~_k th||^2 + (1-a)(1-b) ||y* - X* th||^2 + (a/K) sum_j ||y_tj - X_tj th||^2
  with a = alpha_{t,k}, b = beta_{t,k};
* on an interaction graph W (`graph=`, `crossgen.theory.graphs`) pool j gets a W[k, j]
  instead of a/K (pools of zero weight are left out of the fit);
* with ``fresh_real=True`` the private and public responses are drawn anew at every
  generation t >= 1 (same features, new noise), instead of once at generation 0;
* with a pool filter (``pool_filter=PoolFilter(kind, threshold)``, the analogue of the
  loop's pool filters) a synthetic row is kept only if its label's deviation is within the
  threshold: ``residual`` |y_tj - x' thetahat_{t-1,j}| <= r (under the model that generated
  it: that deviation is exactly the synthetic noise), ``verify`` |y_tj - x' theta| <= c (a
  verifier that knows theta: the deviation is x'(thetahat_{t-1,j} - theta) + noise). A pool
  is filtered once and read filtered by every entity. A dropped row leaves the fit; every
  kept row keeps its loss weight a W[k, j] (a/K on the complete graph), as the loop's
  weighted-loss paradigm does (section 5's estimator on the filtered pools), so filtering
  lowers the synthetic share of the loss by the fraction dropped. A fit left without rows
  (alpha = 1 and every pool it reads emptied) is the minimum-norm solution of nothing, 0.

Every fit is the minimum-norm solution of the sqrt-weight-scaled stacked design (blocks of
zero weight dropped), computed by an SVD pseudo-inverse with the estimator's one cut-off
(`crossgen.theory.system.design_pinv`: singular values <= PINV_RCOND x the largest count as
zero, the cut-off the theory applies to the eigenvalues of G = D'D). The designs do not depend
on the replicate, so each distinct (entity, weights, synthetic features) pseudo-inverse is
computed once and applied to all replicates at once, responses being the columns of one
matrix.

Reproducibility: replicates are grouped in blocks of ``BLOCK`` replicates; block b draws its
noise from its own numpy Generator spawned from ``SeedSequence(seed)`` (in the order: real
responses, then per generation [fresh real responses,] synthetic noise), and the summary
statistics are folded block by block in block order. Hence the numbers depend only on
``seed`` (and the inputs), not on ``chunk``, and the first R replicates of a larger run are
the replicates of a run with ``replicates=R``. The noise stream does not depend on the
weights or the pool filter either, so runs that differ only in alpha, beta or the filter use
common random numbers. A replicate whose filters dropped no row of the pools an entity reads
uses the shared fit; only the others are refit one by one (batched SVDs with the same
cut-off), so an infinite threshold gives exactly the unfiltered numbers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from crossgen.errors import InputError, check_int
from crossgen.mixture import mixture_weights, weight_schedule
from crossgen.theory.graphs import interaction
from crossgen.theory.system import (  # validation and the estimator's pseudo-inverse only
    PINV_RCOND,
    FeatureSystem,
    _feature_matrix,
    design_pinv,
    schedule_steps,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BLOCK", "FILTER_KINDS", "PoolFilter", "SimulationResult", "simulate"]

#: Replicates per random stream and per statistics block (the unit of reproducibility).
BLOCK = 64
#: Default bound on the size of the largest response matrix of one chunk, in bytes.
CHUNK_BYTES = 32 * 2**20
#: Replicates refit at once after a pool filter dropped rows (bounds the batched SVD's memory).
REFIT_BATCH = 256
#: What a pool filter compares with its threshold (see the module docstring).
FILTER_KINDS = ("residual", "verify")

Progress = Callable[[int, int], None]


# ----------------------------------------------------------------------------- result


@dataclass(frozen=True)
class SimulationResult:
    """Summary of ``replicates`` independent runs of the workflow.

    Arrays are indexed (generation, entity[, coordinate]). ``variance`` is the sum over the d
    coordinates of the sample variances (ddof=1) of thetahat_tk, i.e. the trace of its sample
    covariance; standard errors are sample standard deviations / sqrt(replicates). With a
    single replicate the standard errors and variances are NaN.
    """

    mse: np.ndarray  # (T+1, K) mean of ||thetahat_tk - theta||^2
    mse_stderr: np.ndarray  # (T+1, K)
    mean: np.ndarray  # (T+1, K, d) mean of thetahat_tk
    mean_stderr: np.ndarray  # (T+1, K, d)
    variance: np.ndarray  # (T+1, K)
    replicates: int
    seed: int
    estimates: np.ndarray | None = None  # (R, T+1, K, d) only with keep_estimates
    kept: np.ndarray | None = None  # (T+1, K) mean fraction of pool j's rows kept (NaN at t = 0); with a filter
    kept_stderr: np.ndarray | None = None  # (T+1, K)

    @property
    def generations(self) -> int:
        """T, the number of update generations (the arrays have T+1 rows)."""
        return self.mse.shape[0] - 1

    def to_frame(self) -> pd.DataFrame:
        """Tidy table with one row per (generation, entity): mse and mse_stderr."""
        import pandas as pd

        n_gen, n_ent = self.mse.shape
        return pd.DataFrame(
            {
                "generation": np.repeat(np.arange(n_gen), n_ent),
                "entity": np.tile(np.arange(n_ent), n_gen),
                "mse": self.mse.ravel(),
                "mse_stderr": self.mse_stderr.ravel(),
            }
        )


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class PoolFilter:
    """Keep a synthetic row when |deviation| <= threshold: ``residual`` measures the label
    against the model that generated it, ``verify`` against the truth x' theta."""

    kind: str
    threshold: float

    def __post_init__(self) -> None:
        if self.kind not in FILTER_KINDS:
            raise InputError("pool_filter.kind", self.kind, " or ".join(FILTER_KINDS))
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)) or not t > 0:
            raise InputError("pool_filter.threshold", t, "a number > 0 (inf keeps every row)")
        object.__setattr__(self, "threshold", float(t))

    def keep(self, pooled: np.ndarray, model_mean: np.ndarray, truth: np.ndarray) -> np.ndarray:
        """Boolean (rows, cols): which pooled rows survive; ``model_mean`` is the generating
        models' x' thetahat (rows, cols), ``truth`` x' theta (rows, 1)."""
        centre = model_mean if self.kind == "residual" else truth
        return np.abs(pooled - centre) <= self.threshold


@dataclass(frozen=True)
class _Data:
    """The arrays of the FeatureSystem being simulated (float64, read-only)."""

    private: tuple[np.ndarray, ...]
    public: np.ndarray
    synthetic: tuple[np.ndarray, ...]
    theta: np.ndarray
    sigma: float

    @property
    def K(self) -> int:
        return len(self.private)

    @property
    def d(self) -> int:
        return self.theta.shape[0]

    @classmethod
    def of(cls, system: FeatureSystem) -> _Data:
        return cls(
            private=tuple(system.private),
            public=system.public,
            synthetic=tuple(system.synthetic or system.private),
            theta=np.asarray(system.theta),
            sigma=float(np.sqrt(system.sigma2)),
        )


def _schedule(schedule, data: _Data, generations: int) -> list[tuple[np.ndarray, ...]]:
    """Synthetic features of generations 1..T: T tuples of K (m_tk x d) matrices.

    Validated like ``crossgen.theory.trajectory`` does (same messages). An input matrix that
    appears at several generations is converted once, so those generations share one fit.
    """
    T, K = generations, data.K
    if schedule is None:
        return [data.synthetic] * T
    steps = schedule_steps(schedule, T, K)
    converted: dict[int, tuple] = {}  # id(input) -> (input kept alive, so ids stay unique, matrix)
    out = []
    for t, step in enumerate(steps):
        name = f"synthetic_schedule[{t}]"
        try:
            mats = list(step)
        except TypeError:
            raise InputError(name, step, f"{K} feature arrays") from None
        if len(mats) != K:
            raise InputError(name, f"{len(mats)} arrays", f"{K} arrays, one per entity")
        for k, x in enumerate(mats):
            if id(x) not in converted:
                converted[id(x)] = (x, _feature_matrix(f"{name}[{k}]", x, data.d, "private_0"))
        out.append(tuple(converted[id(x)][1] for x in mats))
    return out


# ----------------------------------------------------------------------------- fits


def _weighted_maps(blocks: Sequence[tuple[float, np.ndarray]]) -> list[np.ndarray | None]:
    """Linear maps of the weighted minimum-norm least-squares fit, one per data block.

    ``blocks`` are (weight, X) pairs. The fit of responses y_b is sum_b map_b @ y_b, where
    map_b = pinv(D)[:, rows of b] * sqrt(w_b) and D stacks sqrt(w_b) X_b; blocks with zero
    weight or no rows are dropped from D and get ``None``.
    """
    used = [(np.sqrt(w), x) for w, x in blocks if w > 0 and x.shape[0] > 0]
    d = blocks[0][1].shape[1]
    pinv = design_pinv(np.vstack([r * x for r, x in used]) if used else np.zeros((0, d)))
    maps: list[np.ndarray | None] = []
    start = 0
    for w, x in blocks:
        if w > 0 and x.shape[0] > 0:
            stop = start + x.shape[0]
            maps.append(np.ascontiguousarray(pinv[:, start:stop] * np.sqrt(w)))
            start = stop
        else:
            maps.append(None)
    return maps


@dataclass(frozen=True)
class _Fit:
    """Entity k's fit at one generation as maps applied to private, public, pooled responses,
    and its loss weights (private, public, one per pool) for refitting filtered replicates."""

    private: np.ndarray | None
    public: np.ndarray | None
    synthetic: np.ndarray | None
    weights: tuple = ()


def _fit_weights(t: int, a: float, b: float, K: int) -> tuple[float, float, float]:
    """(private, public, per-synthetic-set) loss weights; generation 0 has no synthetic data."""
    w = mixture_weights(a, b, K, generation=t)
    return w.private, w.public, w.pools[0] if w.pools else 0.0


def _plan(data: _Data, alpha: np.ndarray, beta: np.ndarray, schedule, W: np.ndarray | None = None) -> list[list[_Fit]]:
    """The fit of every (generation, entity), each distinct design factorised once; W: the
    interaction matrix (None: the complete graph, every pool weighted a/K)."""
    cache: dict[tuple, _Fit] = {}
    plan = []
    for t in range(alpha.shape[0]):
        synthetic = schedule[t - 1] if t else ()
        pooled = np.vstack(synthetic) if t else np.zeros((0, data.d))
        row = []
        for k in range(data.K):
            w: tuple = _fit_weights(t, float(alpha[t, k]), float(beta[t, k]), data.K)
            if W is not None and t:
                w = (w[0], w[1], tuple(float(alpha[t, k]) * W[k]))
            key = (k, w, tuple(id(x) for x in synthetic))
            if key not in cache:
                if W is not None and t:
                    cache[key] = _graph_fit(data, k, w, synthetic)
                else:
                    maps = _weighted_maps([(w[0], data.private[k]), (w[1], data.public), (w[2], pooled)])
                    private, public, pooled_map = maps
                    cache[key] = _Fit(private, public, pooled_map, weights=(w[0], w[1], (w[2],) * len(synthetic)))
            row.append(cache[key])
        plan.append(row)
    return plan


def _graph_fit(data: _Data, k: int, w: tuple, synthetic: tuple[np.ndarray, ...]) -> _Fit:
    """Entity k's fit with one weight per pool (w[2][j] = a W[k, j]); the pooled responses'
    map puts zeros on the pools left out."""
    maps = _weighted_maps([(w[0], data.private[k]), (w[1], data.public)] + list(zip(w[2], synthetic)))
    pools = maps[2:]
    syn = None
    if any(m is not None for m in pools):
        syn = np.hstack([np.zeros((data.d, x.shape[0])) if m is None else m for m, x in zip(pools, synthetic)])
    return _Fit(maps[0], maps[1], syn, weights=w)


def _apply(pairs, d: int, cols: int) -> np.ndarray:
    """sum of map @ responses over (map, responses) pairs, skipping dropped (None) maps."""
    out = np.zeros((d, cols))
    for m, y in pairs:
        if m is not None:
            out += m @ y
    return out


# ----------------------------------------------------------------------------- noise


def _streams(seed: int, n_blocks: int) -> list[np.random.Generator]:
    """One independent Generator per block of BLOCK replicates."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_blocks)]


def _noise(streams: Sequence[np.random.Generator], rows: int) -> np.ndarray:
    """Standard normal noise (rows, BLOCK * len(streams)), each block from its own stream."""
    return np.concatenate([g.standard_normal((rows, BLOCK)) for g in streams], axis=1)


def _initial_responses(data: _Data, streams) -> tuple[list[np.ndarray], np.ndarray]:
    """Private responses y~_k (n_k, cols) and public y* (n*, cols) of one chunk."""
    xs = list(data.private) + [data.public]
    y = np.concatenate([x @ data.theta for x in xs])[:, None] + data.sigma * _noise(
        streams, sum(x.shape[0] for x in xs)
    )
    parts = np.split(y, np.cumsum([x.shape[0] for x in xs])[:-1])
    return parts[:-1], parts[-1]


def _synthetic_responses(
    data: _Data, features: tuple[np.ndarray, ...], theta_prev: np.ndarray, streams
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled synthetic responses [y_t1; ...; y_tK] (sum_j m_tj, cols) and their means under
    the generating models, x' thetahat_{t-1,j}."""
    noise = _noise(streams, sum(x.shape[0] for x in features))
    mean = np.vstack([x @ theta_prev[j] for j, x in enumerate(features)])
    return mean + data.sigma * noise, mean


# ----------------------------------------------------------------------------- filtered refits


def _refit(data: _Data, fit: _Fit, k: int, features, private, public, pooled, keep) -> np.ndarray:
    """Entity k's estimates (d, cols) refit on the rows `keep` (pooled rows x cols) leaves;
    `private` (n_k, cols), `public` (n*, cols) and `pooled` are the responses of those columns.

    The design of every replicate is the fit's weighted design with its dropped rows zeroed: a
    zero row changes neither D'D nor the minimum-norm solution, so this is the fit on the kept
    rows. Batched SVD, singular values <= PINV_RCOND x the largest dropped (`design_pinv`)."""
    w_private, w_public, w_pools = fit.weights
    blocks = [(w_private, data.private[k], private, None), (w_public, data.public, public, None)]
    start = 0
    for w, x in zip(w_pools, features):
        stop = start + x.shape[0]
        blocks.append((w, x, pooled[start:stop], keep[start:stop]))
        start = stop
    used = [(math.sqrt(w), x, y, m) for w, x, y, m in blocks if w > 0 and x.shape[0] > 0]
    D = np.vstack([r * x for r, x, _, _ in used])
    y = np.vstack([r * yb for r, _, yb, _ in used])
    mask = np.vstack([np.ones(yb.shape, bool) if m is None else m for _, _, yb, m in used])
    out = np.empty((data.d, y.shape[1]))
    for a in range(0, y.shape[1], REFIT_BATCH):
        cols = slice(a, a + REFIT_BATCH)
        Dm = D[None] * mask[:, cols].T[:, :, None]  # (batch, rows, d)
        u, s, vt = np.linalg.svd(Dm, full_matrices=False)
        with np.errstate(divide="ignore"):
            inv = np.where(s > PINV_RCOND * s[:, :1], 1.0 / s, 0.0)
        coef = np.einsum("brs,rb->bs", u, (y[:, cols] * mask[:, cols])) * inv
        out[:, cols] = np.einsum("bsd,bs->db", vt, coef)
    return out


# ----------------------------------------------------------------------------- statistics


class _Moments:
    """Count, mean and centred sum of squares per generation, folded block by block.

    The fold visits blocks in block order whatever the chunking (Chan et al.'s pairwise
    update), so the statistics are bitwise independent of ``chunk`` and numerically stable
    where the variance is tiny next to the mean (e.g. an unidentified, biased direction).
    """

    def __init__(self, shape: tuple[int, ...]):
        self.n = np.zeros(shape[0])
        self.mean = np.zeros(shape)
        self.m2 = np.zeros(shape)

    def add(self, t: int, x: np.ndarray, valid: int) -> None:
        """Fold x (..., cols) of generation t; cols is a multiple of BLOCK, valid <= cols."""
        for start in range(0, valid, BLOCK):
            block = x[..., start : min(start + BLOCK, valid)]
            nb = block.shape[-1]
            mb = block.mean(axis=-1)
            m2b = ((block - mb[..., None]) ** 2).sum(axis=-1)
            n = self.n[t]
            delta = mb - self.mean[t]
            total = n + nb
            self.mean[t] += delta * (nb / total)
            self.m2[t] += m2b + delta**2 * (n * nb / total)
            self.n[t] = total

    def variance(self) -> np.ndarray:
        """Sample variance (ddof=1), NaN with a single replicate."""
        n = self.n.reshape((-1,) + (1,) * (self.mean.ndim - 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 1, self.m2 / np.maximum(n - 1, 1), np.nan)


# ----------------------------------------------------------------------------- simulation


def simulate(
    system: FeatureSystem,
    alpha,
    beta,
    generations: int,
    replicates: int,
    seed: int = 0,
    synthetic_schedule=None,
    keep_estimates: bool = False,
    chunk: int | None = None,
    progress: Progress | None = None,
    *,
    graph=None,
    fresh_real: bool = False,
    pool_filter: PoolFilter | None = None,
) -> SimulationResult:
    """Monte Carlo estimates of the mean, variance and MSE of every thetahat_tk.

    Parameters
    ----------
    system : FeatureSystem
    alpha, beta : float, sequence (T+1,) or array (T+1, K)
        Anything `crossgen.mixture.weight_schedule` accepts; alpha's row 0 is ignored.
    generations : int
        T >= 0.
    replicates : int
        R >= 1 independent runs of the workflow.
    seed : int, default 0
        The numbers depend only on the seed and the inputs (see the module docstring).
    synthetic_schedule : sequence of T sequences of K arrays (m_tk, d), optional
        The synthetic features of generations 1..T (default the system's, every generation).
    keep_estimates : bool, default False
        Also return every estimate, (R, T+1, K, d).
    chunk : int, optional
        Replicates processed at once (rounded up to a multiple of ``BLOCK``; default: a
        chunk whose largest response matrix stays under ``CHUNK_BYTES``); it changes memory
        and speed, never the numbers.
    progress : callable(done, total), optional
        Called after each generation of each chunk, total = (T+1) x number of chunks.
    graph : None, str or array (K, K), optional
        The interaction matrix W (`crossgen.theory.graphs`); default the complete graph.
    fresh_real : bool, default False
        Redraw the private and public responses at every generation.
    pool_filter : PoolFilter, optional
        Keep only the synthetic rows whose deviation is within the threshold (module
        docstring); the result's ``kept`` then holds the fraction of each pool kept.

    Returns
    -------
    SimulationResult

    Raises
    ------
    InputError
        A bad weight, count, seed, chunk, schedule or progress argument, named.
    """
    T = check_int("generations", generations, 0)
    R = check_int("replicates", replicates, 1)
    seed = check_int("seed", seed, 0)
    if chunk is not None:
        chunk = check_int("chunk", chunk, 1)
    if progress is not None and not callable(progress):
        raise InputError("progress", progress, "a callable(done, total) or None")
    if pool_filter is not None and not isinstance(pool_filter, PoolFilter):
        raise InputError("pool_filter", pool_filter, "a PoolFilter(kind, threshold) or None")
    data = _Data.of(system)
    alpha_w = weight_schedule("alpha", alpha, T, data.K)
    beta_w = weight_schedule("beta", beta, T, data.K)
    schedule = _schedule(synthetic_schedule, data, T)
    plan = _plan(data, alpha_w, beta_w, schedule, interaction(graph, data.K))
    fresh = bool(fresh_real)

    n_blocks = -(-R // BLOCK)
    streams = _streams(seed, n_blocks)
    per_chunk = _blocks_per_chunk(data, schedule, chunk, n_blocks)
    n_chunks = -(-n_blocks // per_chunk)
    stats = _Moments((T + 1, data.K, data.d + 1))  # error coordinates, then squared norm
    kept = _Moments((T + 1, data.K)) if pool_filter is not None else None
    estimates = np.empty((R, T + 1, data.K, data.d)) if keep_estimates else None

    with _single_threaded_blas():
        for c in range(n_chunks):
            first = c * per_chunk * BLOCK
            valid = min(R, first + per_chunk * BLOCK) - first
            chunk_streams = streams[c * per_chunk : (c + 1) * per_chunk]
            for t, (theta_t, kept_t) in enumerate(_run_chunk(data, plan, schedule, chunk_streams, fresh, pool_filter)):
                if kept is not None and kept_t is not None:
                    kept.add(t, kept_t, valid)
                err = theta_t - data.theta[None, :, None]
                norm2 = (err**2).sum(axis=1, keepdims=True)
                stats.add(t, np.concatenate([err, norm2], axis=1), valid)
                if estimates is not None:
                    estimates[first : first + valid, t] = np.moveaxis(theta_t[..., :valid], -1, 0)
                if progress is not None:
                    progress(c * (T + 1) + t + 1, n_chunks * (T + 1))
    result = _result(stats, data.theta, R, seed, estimates)
    if kept is None:
        return result
    with np.errstate(invalid="ignore"):  # generation 0 has no pools: NaN
        fraction = np.where(kept.n[:, None] > 0, kept.mean, np.nan)
    return dataclasses.replace(result, kept=fraction, kept_stderr=np.sqrt(kept.variance() / R))


def _single_threaded_blas():
    """Limit BLAS to one thread while simulating, when threadpoolctl is installed.

    The simulation makes many small matrix products (d x rows times rows x chunk) between
    single-threaded noise draws; BLAS threads cost more in synchronisation than they save,
    and on a loaded machine far more (4x slower measured on 2 shared cores). The thread count
    may change the last bit of a product (numbers agree to ~1e-15, not bitwise); without
    threadpoolctl BLAS keeps its own setting.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only speed depends on it
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _blocks_per_chunk(data: _Data, schedule, chunk: int | None, n_blocks: int) -> int:
    """Blocks of BLOCK replicates per chunk: from ``chunk`` or from the memory bound."""
    if chunk is None:
        rows = sum(x.shape[0] for x in data.private) + data.public.shape[0]
        rows = max([rows] + [sum(x.shape[0] for x in step) for step in schedule])
        chunk = CHUNK_BYTES // (8 * max(rows, data.d, 1))
    return int(min(n_blocks, max(1, -(-chunk // BLOCK))))


def _run_chunk(data: _Data, plan, schedule, streams, fresh_real: bool = False, pool_filter=None):
    """Yield (thetahat_t as a (K, d, cols) array, fraction of each pool kept (K, cols) or
    None) for t = 0..T, for one chunk of replicates.

    The real-data part of a fit is computed once per distinct fit and reused across the
    generations that share it (constant weights: every generation t >= 1); with fresh real
    data it is recomputed from the new responses every generation. With a pool filter, the
    replicates where it dropped rows an entity reads are refit (`_refit`).
    """
    private, public = _initial_responses(data, streams)
    cols = public.shape[1]
    real_part: dict[int, np.ndarray] = {}

    def real(k: int, fit: _Fit) -> np.ndarray:
        if id(fit) not in real_part:
            pairs = [(fit.private, private[k]), (fit.public, public)]
            real_part[id(fit)] = _apply(pairs, data.d, cols)
        return real_part[id(fit)]

    theta = np.stack([real(k, fit) for k, fit in enumerate(plan[0])])
    yield theta, None
    for t in range(1, len(plan)):
        if fresh_real:
            private, public = _initial_responses(data, streams)
            real_part.clear()
        features = schedule[t - 1]
        pooled, model_mean = _synthetic_responses(data, features, theta, streams)
        theta = np.stack(
            [real(k, fit) + _apply([(fit.synthetic, pooled)], data.d, cols) for k, fit in enumerate(plan[t])]
        )
        if pool_filter is None:
            yield theta, None
            continue
        truth = np.concatenate([x @ data.theta for x in features])[:, None]
        keep = pool_filter.keep(pooled, model_mean, truth)
        bounds = np.cumsum([0] + [x.shape[0] for x in features])
        pools = [keep[a:b] for a, b in itertools.pairwise(bounds)]
        for k, fit in enumerate(plan[t]):
            read = [p for p, w in zip(pools, fit.weights[2]) if w > 0]
            dropped = np.flatnonzero(~np.all(np.vstack(read), axis=0)) if read else np.zeros(0, int)
            if dropped.size:  # only those replicates' columns are refit
                columns = (private[k], public, pooled, keep)
                theta[k][:, dropped] = _refit(data, fit, k, features, *(y[:, dropped] for y in columns))
        yield theta, np.stack([p.mean(axis=0) for p in pools])


def _result(stats: _Moments, theta: np.ndarray, R: int, seed: int, estimates) -> SimulationResult:
    var = stats.variance()
    d = theta.shape[0]
    return SimulationResult(
        mse=stats.mean[..., d].copy(),
        mse_stderr=np.sqrt(var[..., d] / R),
        mean=stats.mean[..., :d] + theta,
        mean_stderr=np.sqrt(var[..., :d] / R),
        variance=var[..., :d].sum(axis=-1),
        replicates=R,
        seed=seed,
        estimates=estimates,
    )
