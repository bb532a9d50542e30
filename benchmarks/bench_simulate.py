"""Speed of the batched Monte Carlo simulator against a plain per-replicate loop.

Run by hand: ``.venv/bin/python benchmarks/bench_simulate.py [--replicates 10000]``.
Setup: the paper's Figure 2 system (K = 4, d = 15, rank-5 private features), 15 generations,
alpha = beta = 0.5. The loop (``crossgen.theory.simulate_reference.simulate_loop``: lstsq per fit, per
replicate) runs on a few replicates and is extrapolated linearly. Prints one run's timings
and the ratio; the target for the batched simulator is under 10 s.
"""

from __future__ import annotations

import argparse
import time

from crossgen.theory.scenarios import figure2_system
from crossgen.theory.simulate import simulate
from crossgen.theory.simulate_reference import simulate_loop


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=10_000)
    parser.add_argument("--loop-replicates", type=int, default=200)
    parser.add_argument("--generations", type=int, default=15)
    args = parser.parse_args()
    system = figure2_system()
    T, R, r_loop = args.generations, args.replicates, args.loop_replicates
    print(f"system: K={system.K} d={system.d} T={T}")

    batched = _timed(lambda: simulate(system, 0.5, 0.5, T, R, seed=0))
    loop = _timed(lambda: simulate_loop(system, 0.5, 0.5, T, r_loop, seed=0)) * R / r_loop
    print(f"batched simulate : {R} replicates in {batched:.2f} s")
    print(f"per-replicate loop: {r_loop} replicates, extrapolated to {R}: {loop:.1f} s")
    print(f"speed-up: {loop / batched:.0f}x")


if __name__ == "__main__":
    main()
