"""Throughput of `crossgen sweep` executors on the linear backend (run by hand).

    .venv/bin/python benchmarks/bench_sweep.py [--cells 4] [--seeds 20] [--full] [--json FILE]

The benchmark sweep of the issue: the linear preset (K = 4, T = 15) over a 21 x 21
alpha-beta grid x 20 seeds = 8820 runs. At about a second per run that is hours on a
2-core machine, so by default a representative subset runs (`--cells` cells spread over
the grid, all `--seeds` seeds each: the per-run cost does not depend on alpha and beta)
with every executor, and the full sweep's time is extrapolated; `--full` runs it all.
Prints, per executor: runs/s, cells/s (a cell = 20 seeds), wall time per run, the
overhead per run over a bare `run_experiment` call, and the extrapolated 8820-run time.
Also: expanding and validating the full sweep, Ray start-up, and aggregation per run.

Measured on the 2-core development machine (shared, so +-30%), `--cells 25` (500 runs):

    executor              runs/s  cells/s  in-run ms  overhead ms/run  8820 runs
    local (sequential)    2.0-2.3  0.10-0.12  435-490        1          1.1-1.2 h
    process (2 workers)   5.5-5.7  0.27-0.29  345-360        8          0.43-0.45 h
    ray, 1 run per task   4.9      0.24       400            7          0.50 h
    ray, 20 runs per task 5.0      0.25       395            8          0.49 h

A run (K=4, T=15) is 0.26-1.1 s depending on the machine's other load; about 40% of it is
fsync of the run directory's files, which is why two workers give more than twice the
sequential rate. Executor overhead is small next to a run: Ray's cost here is the CPU its own
daemons take from the 2 cores (in-run time +12% against the process pool), not per-task
latency, so batching seeds barely helps. ray.init: 2-5 s. Expanding and validating all
8820 runs: < 0.1 s; aggregation: ~1.5 ms per run (~13 s for 8820).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from crossgen.sweep import build_sweep, run_sweep
from crossgen.sweep.executors import machine_cpus

GRID = [round(float(v), 2) for v in np.linspace(0, 1, 21)]
FULL_CELLS = len(GRID) ** 2


def spec(alphas, betas, seeds: int) -> dict:
    return {"name": "bench", "base": "linear", "axes": {"alpha": alphas, "beta": betas}, "seeds": seeds}


def subset_axes(cells: int) -> tuple[list[float], list[float]]:
    """About `cells` cells spread over the grid (a ceil(sqrt) x ... sub-grid)."""
    na = max(1, int(np.ceil(np.sqrt(cells))))
    nb = max(1, int(np.ceil(cells / na)))
    pick = lambda n: [GRID[i] for i in np.linspace(0, len(GRID) - 1, n).round().astype(int)]
    return pick(na), pick(nb)


def bare_run_seconds(n: int) -> float:
    """Median time of run_experiment alone (no sweep machinery), in this process."""
    from crossgen.experiment import run_experiment

    sweep = build_sweep(spec([0.5], [0.5], n))
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in sweep.runs:
            t = time.perf_counter()
            run_experiment(run.config, Path(tmp) / str(run.seed), resume=True)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def timed_sweep(sweep, executor: str, **kw) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"bench-sweep-{executor}-"))
    try:
        t = time.perf_counter()
        result = run_sweep(sweep, out, executor=executor, report=False, **kw)
        wall = time.perf_counter() - t
        assert result.done == len(sweep.runs) and not result.failed, result.failed[:3]
        run_s = result.run_seconds
        from crossgen.sweep.aggregate import aggregate_sweep

        t = time.perf_counter()
        aggregate_sweep(sweep, out)  # imports are warm: see main()
        agg = time.perf_counter() - t
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": wall, "run_s": run_s, "aggregate_s": agg}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=4, help="cells of the subset (ignored with --full)")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--full", action="store_true", help="run all 8820 runs with every executor (hours)")
    ap.add_argument(
        "--executors",
        default="local,process,ray-1,ray-batched",
        help="comma list of local, process, ray-1 (a task per run), ray-batched (a task per cell)",
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    import matplotlib.figure  # noqa: F401  warm imports, so aggregation timings are steady-state
    import scipy.stats  # noqa: F401

    cpus = machine_cpus()
    print(f"machine: {cpus} CPUs, load average {os.getloadavg()[0]:.2f} (other work on the machine slows every figure)")
    t = time.perf_counter()
    full = build_sweep(spec(GRID, GRID, args.seeds))
    expand_s = time.perf_counter() - t
    print(f"expand + validate the full sweep: {len(full.cells)} cells, {len(full.runs)} runs in {expand_s:.2f} s")
    if args.full:
        sweep = full
    else:
        alphas, betas = subset_axes(args.cells)
        sweep = build_sweep(spec(alphas, betas, args.seeds))
    runs = len(sweep.runs)
    print(
        f"benchmark sweep: {len(sweep.cells)} cells x {args.seeds} seeds = {runs} runs "
        f"(alpha {sweep.config.axes['alpha']}, "
        f"beta {sweep.config.axes['beta']})"
    )
    bare = bare_run_seconds(5)
    print(f"bare run_experiment (K=4, T=15), median of 5: {bare * 1000:.0f} ms\n")

    results = {
        "cpus": cpus,
        "runs": runs,
        "cells": len(sweep.cells),
        "seeds": args.seeds,
        "bare_run_s": bare,
        "expand_full_s": expand_s,
        "executors": {},
    }
    ray_started = None
    for name in args.executors.split(","):
        kw: dict = {}
        parallel = 1
        if name == "process":
            kw = {"executor": "process", "workers": cpus}
            parallel = cpus
        elif name.startswith("ray"):
            import ray

            if not ray.is_initialized():
                # Ray nices its workers (15) by default; 0 here so that they compete with the
                # machine's other work like the local and process executors do.
                os.environ.setdefault("RAY_worker_niceness", "0")
                t = time.perf_counter()
                ray.init(num_cpus=cpus, include_dashboard=False, configure_logging=False, log_to_driver=False)
                ray_started = time.perf_counter() - t
                print(f"ray.init (local, {cpus} CPUs): {ray_started:.1f} s (not in the figures below)")
            kw = {"executor": "ray", "batch": 1 if name == "ray-1" else args.seeds}
            parallel = cpus
        else:
            kw = {"executor": "local"}
        r = timed_sweep(sweep, **kw)
        per_run = r["wall_s"] / runs
        row = {
            "wall_s": r["wall_s"],
            "runs_per_s": runs / r["wall_s"],
            "cells_per_s": len(sweep.cells) / r["wall_s"],  # a cell = all its seeds
            "wall_per_run_ms": per_run * 1000,
            # inside run_experiment, per run (contention between parallel workers shows here)
            "in_run_ms": r["run_s"] / runs * 1000,
            # worker-slot time per run not spent inside run_experiment: planning, scheduling,
            # task/process start-up, result passing, idle slots at the end
            "overhead_per_run_ms": (r["wall_s"] * parallel - r["run_s"]) / runs * 1000,
            "aggregate_ms_per_run": r["aggregate_s"] / runs * 1000,
            "full_sweep_extrapolated_h": len(full.runs) / (runs / r["wall_s"]) / 3600,
        }
        results["executors"][name] = row
        print(
            f"{name:12s} {row['runs_per_s']:6.2f} runs/s  {row['cells_per_s']:6.3f} cells/s  "
            f"{row['wall_per_run_ms']:6.0f} ms/run wall  {row['in_run_ms']:6.0f} ms in run  "
            f"overhead {row['overhead_per_run_ms']:5.0f} ms/run "
            f"(x{parallel} workers)  -> {len(full.runs)} runs: {row['full_sweep_extrapolated_h']:.2f} h "
            f"(aggregation {row['aggregate_ms_per_run']:.1f} ms/run)"
        )
    if ray_started is not None:
        import ray

        ray.shutdown()
        results["ray_init_s"] = ray_started
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
