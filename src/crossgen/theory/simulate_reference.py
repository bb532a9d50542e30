"""A literal per-replicate loop of the workflow that `simulate` batches: the reference of the
Monte Carlo twin's tests and of benchmarks/bench_simulate.py.

Every fit of every replicate calls ``np.linalg.lstsq`` (with the estimator's cut-off,
``rcond=PINV_RCOND``) on the weighted stacked data, with nothing cached. It draws the same
noise as `simulate` (same blocks and streams), so the two agree to rounding error.
"""

from __future__ import annotations

import numpy as np

from crossgen.errors import check_int
from crossgen.mixture import weight_schedule
from crossgen.theory.graphs import interaction
from crossgen.theory.simulate import (
    BLOCK,
    _Data,
    _fit_weights,
    _initial_responses,
    _noise,
    _schedule,
    _streams,
)
from crossgen.theory.system import PINV_RCOND


def simulate_loop(
    system,
    alpha,
    beta,
    generations: int,
    replicates: int,
    seed: int = 0,
    synthetic_schedule=None,
    *,
    graph=None,
    fresh_real: bool = False,
) -> np.ndarray:
    """The workflow of `simulate` as a plain per-replicate loop: estimates (R, T+1, K, d)."""
    T = check_int("generations", generations, 0)
    R = check_int("replicates", replicates, 1)
    data = _Data.of(system)
    alpha_w = weight_schedule("alpha", alpha, T, data.K)
    beta_w = weight_schedule("beta", beta, T, data.K)
    schedule = _schedule(synthetic_schedule, data, T)
    W = interaction(graph, data.K)
    streams = _streams(check_int("seed", seed, 0), -(-R // BLOCK))
    out = np.empty((R, T + 1, data.K, data.d))
    for b, stream in enumerate(streams):
        real = [_initial_responses(data, [stream])]
        noise: list = [None]
        for t in range(1, T + 1):
            if fresh_real:
                real.append(_initial_responses(data, [stream]))
            noise.append(_noise([stream], sum(x.shape[0] for x in schedule[t - 1])))
        for i in range(min(BLOCK, R - b * BLOCK)):
            out[b * BLOCK + i] = _loop_replicate(
                data,
                alpha_w,
                beta_w,
                schedule,
                [([y[:, i] for y in private], public[:, i]) for private, public in real],
                [z if z is None else z[:, i] for z in noise],
                W,
            )
    return out


def _loop_replicate(data: _Data, alpha, beta, schedule, real, noise, W=None) -> np.ndarray:
    """One replicate of the workflow, fit by fit with lstsq: (T+1, K, d); real: the (private,
    public) responses of generation 0, or of every generation (fresh real data)."""
    out = np.empty((alpha.shape[0], data.K, data.d))
    for t in range(alpha.shape[0]):
        private, public = real[t] if len(real) > 1 else real[0]
        if t:
            xs = schedule[t - 1]
            pooled_x = np.vstack(xs)
            ys = [x @ out[t - 1, j] for j, x in enumerate(xs)]
            pooled_y = np.concatenate(ys) + data.sigma * noise[t]
            pools = np.split(pooled_y, np.cumsum([x.shape[0] for x in xs])[:-1])
        else:
            xs, pools = (), []
            pooled_x, pooled_y = np.zeros((0, data.d)), np.zeros(0)
        for k in range(data.K):
            w = _fit_weights(t, float(alpha[t, k]), float(beta[t, k]), data.K)
            parts = [(w[0], data.private[k], private[k]), (w[1], data.public, public)]
            if W is None or not t:
                parts.append((w[2], pooled_x, pooled_y))
            else:
                parts += [(float(alpha[t, k]) * W[k, j], x, y) for j, (x, y) in enumerate(zip(xs, pools))]
            parts = [(np.sqrt(wi), x, y) for wi, x, y in parts if wi > 0 and x.shape[0] > 0]
            if not parts:  # nothing to fit: the minimum-norm solution is 0
                out[t, k] = 0.0
                continue
            design = np.vstack([r * x for r, x, _ in parts])
            response = np.concatenate([r * y for r, _, y in parts])
            out[t, k] = np.linalg.lstsq(design, response, rcond=PINV_RCOND)[0]
    return out
