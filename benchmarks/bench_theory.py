"""Speed of the exact theory: structured O(K d^3) engine vs the dense Kd x Kd reference.

Run by hand:  .venv/bin/python benchmarks/bench_theory.py [--quick] [--threads N]
Prints one table (case, seconds, ratio to the structured engine on the same case, and the
largest relative difference of the results, to show that the methods agree). Times are the
best of a few repeats on whatever machine runs this; ratios are measured in the same run.
Targets: asymptotic per-entity MSE for K = 1000, d = 100 under 1 s, and a 41 x 41 alpha-beta
grid of relative efficiencies for K = 4, d = 15 under 1 s. The CLI's own targets are in
bench_theory_cli.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if "--threads" in sys.argv:  # must happen before numpy loads its BLAS
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _n

import numpy as np

from crossgen.theory import (
    asymptotic,
    dense,
    efficiency_grid,
    figure2_system,
    low_rank_system,
    pooled_ols_mse,
    trajectory,
)


def best(fn, repeat=3):
    out, times = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def reldiff(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="skip the slowest dense cases")
    p.add_argument(
        "--threads", type=int, default=None, help="BLAS threads (sets OPENBLAS/OMP/MKL_NUM_THREADS before numpy loads)"
    )
    args = p.parse_args()
    print(
        f"BLAS threads: {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, "
        f"load average: {os.getloadavg()[0]:.1f}, cores: {os.cpu_count()}"
    )
    rows = []

    def row(case, secs, ref_secs, diff=None):
        rows.append((case, secs, secs / ref_secs if ref_secs else float("nan"), diff))

    # 1. asymptotic per-entity MSE at scale --------------------------------------------
    big = low_rank_system(K=1000, d=100, rank=20, n_private=50, n_public=400, seed=0)
    t_gram, _ = best(lambda: (big.private_grams, big.public_gram), repeat=1)
    t_big, a_big = best(lambda: asymptotic(big, 0.5, 0.5), repeat=5)
    row("asymptotic MSE, K=1000 d=100, structured", t_big, t_big)
    row("  (Gram matrices from features, once)", t_gram, t_big)
    t_bigm, a_bigm = best(lambda: asymptotic(big, 0.5, 0.5, mspe=True), repeat=1)
    row("  same + (K x K) asymptotic MSPE", t_bigm, t_big, reldiff(a_bigm.mse, a_big.mse))

    # 2. structured vs dense Lyapunov vs eq. (2) where they fit ---------------------------
    sizes = [(4, 15), (10, 15)] + ([] if args.quick else [(40, 25)])
    for K, d in sizes:
        s = low_rank_system(K=K, d=d, rank=5, seed=1)
        t_s, a = best(lambda s=s: asymptotic(s, 0.5, 0.5))
        row(f"asymptotic MSE, K={K} d={d}, structured", t_s, t_s)
        t_l, ref = best(lambda s=s: dense.asymptotic(s, 0.5, 0.5, method="lyapunov"), repeat=1 if K * d > 500 else 3)
        row(f"  dense Lyapunov (Kd={K * d})", t_l, t_s, reldiff(a.mse, ref.mse))
        if K * d <= 60:
            t_e, ref2 = best(lambda s=s: dense.asymptotic(s, 0.5, 0.5, method="eq2"), repeat=1)
            row(f"  dense eq. (2) Kronecker ((Kd)^2={(K * d) ** 2})", t_e, t_s, reldiff(a.mse, ref2.mse))

    # 3. the Figure 2 grid ----------------------------------------------------------------
    s = figure2_system()
    grid = np.linspace(0, 1, 41)
    t_g, eff = best(lambda: efficiency_grid(s, grid, grid))
    row("41x41 efficiency grid, K=4 d=15, vectorised", t_g, t_g)

    def loop_structured():
        pool = pooled_ols_mse(s)
        out = np.zeros_like(eff)
        for i, a in enumerate(grid):
            for j, b in enumerate(grid):
                r = asymptotic(s, a, b)
                out[i, j] = pool / r.mse if r.converges else 0.0
        return out

    t_loop, eff_loop = best(loop_structured, repeat=1)
    row("  Python loop over cells, structured asymptotic", t_loop, t_g, reldiff(eff, eff_loop))
    if not args.quick:

        def loop_dense():
            pool = pooled_ols_mse(s)
            out = np.zeros_like(eff)
            for i, a in enumerate(grid):
                for j, b in enumerate(grid):
                    if a == 1.0:
                        continue
                    out[i, j] = pool / dense.asymptotic(s, a, b).mse
            return out

        t_ld, eff_ld = best(loop_dense, repeat=1)
        row("  Python loop over cells, dense Lyapunov", t_ld, t_g, reldiff(eff, eff_ld))

    # 4. trajectories ---------------------------------------------------------------------
    s = figure2_system()
    t_ts, tr = best(lambda: trajectory(s, 0.5, 0.5, 15))
    row("trajectory T=15, K=4 d=15, structured", t_ts, t_ts)
    t_td, trd = best(lambda: dense.trajectory(s, 0.5, 0.5, 15))
    row("  dense M_t, C_t recursion", t_td, t_ts, reldiff(tr.mse, trd.mse))
    t_tb, _ = best(lambda: trajectory(big, 0.5, 0.5, 15), repeat=3)
    row("trajectory T=15, K=1000 d=100 (closed form; ratio to its limit)", t_tb, t_big)
    t_tm, _ = best(lambda: trajectory(big, 0.5, 0.5, 2).mspe, repeat=1)
    row("  T=2 with the (K x K) MSPE (recursion, on request)", t_tm, t_big)

    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'seconds':>9}  {'ratio':>9}  {'max rel diff':>12}")
    for case, secs, ratio, diff in rows:
        d = "" if diff is None else f"{diff:.1e}"
        print(f"{case:<{width}}  {secs:9.4f}  {ratio:9.2f}  {d:>12}")
    print(
        "ratio = seconds / seconds of the structured engine on the same case (first row of "
        "its group); max rel diff = largest relative difference of the MSEs (or efficiencies)"
    )


if __name__ == "__main__":
    main()
