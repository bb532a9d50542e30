"""Speed of `crossgen theory mse` at K = 1000, d = 100 against the structured solver alone.

Run by hand:  .venv/bin/python benchmarks/bench_theory_cli.py [--repeat 5] [--threads N]
                                                             [--no-subprocess]

Everything is measured in one run on the same machine; each repeat runs every case once, in
turn, times are medians over --repeat repeats (wall clock, seconds), and every ratio divides
two medians of this run. Cases, for the system
of benchmarks/bench_theory.py (K = 1000, d = 100, private rank 20, n_k = 50, n* = 400) at
alpha = beta = 0.5:
  limit        asymptotic(system, a, b): the Theorem 3 limit alone
  traj T       trajectory(system, a, b, T) alone
  solver T     the printed quantities from the public functions, one call each:
               trajectory(T) + asymptotic + pooled_ols_mse
  cli-fn T     crossgen.cli.theory.mse_result, the CLI's computation (one shared factorisation)
  load         FeatureSystem.from_npz + the Gram matrices (the CLI reads the file every time)
  process T    `python -m crossgen theory mse FILE ... --json` minus `python -c "import
               crossgen.cli"` (Python and import start-up), so it includes reading the file
  cold solver T  the solver's own time (as `solver T`) in a fresh Python process that read the
               file first (timed inside it): a fresh process pays first-touch costs on its
               large arrays that repeats within one process do not, so `process T` is compared
               with this as well as with the warm `solver T`. Timed twice: with numpy's
               transparent-huge-page advice (NUMPY_MADVISE_HUGEPAGE=1, numpy's default) and
               without it (=0, what the `crossgen` CLI sets for itself unless told otherwise)
The in-process cases run with numpy's default advice (numpy is loaded before crossgen.cli).
Targets: (cli-fn T + load) and process T within 1.2 x solver T; traj 15 at most 2 x limit;
`crossgen --help` and `crossgen theory mse` on a small file under 1 s (printed last).
On a shared machine the medians move by 10-20% between runs; compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if "--threads" in sys.argv:  # must happen before numpy loads its BLAS
    _n = sys.argv[sys.argv.index("--threads") + 1]
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _n

import numpy as np

from crossgen.cli.theory import mse_result
from crossgen.theory import (
    FeatureSystem,
    asymptotic,
    low_rank_system,
    pooled_ols_mse,
    trajectory,
)

ALPHA = BETA = 0.5


def median_times(cases: dict, repeat: int) -> dict:
    """Median wall time of every case; each repeat runs all cases once, in turn, so that a
    change of the machine's load during the run hits every case alike."""
    times = {name: [] for name in cases}
    for _ in range(repeat):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


def python(*args: str):
    """A case running a fresh `python args...` (output discarded)."""
    return lambda: subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="repeats per case (median reported)")
    p.add_argument(
        "--threads", type=int, default=None, help="BLAS threads (sets OPENBLAS/OMP/MKL_NUM_THREADS before numpy loads)"
    )
    p.add_argument("--no-subprocess", action="store_true", help="skip the `crossgen` processes")
    args = p.parse_args()
    print(
        f"BLAS threads: {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, load average: "
        f"{os.getloadavg()[0]:.1f}, cores: {os.cpu_count()}, repeats: {args.repeat}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench_theory_cli_"))
    try:
        run(args, tmp)
    finally:
        shutil.rmtree(tmp)


def run(args, tmp: Path) -> None:
    n = args.repeat
    big, small = tmp / "big.npz", tmp / "small.npz"
    low_rank_system(K=1000, d=100, rank=20, n_private=50, n_public=400, seed=0).to_npz(big)
    low_rank_system(K=3, d=5, rank=2, seed=1).to_npz(small)

    def load():
        s = FeatureSystem.from_npz(big)
        _ = s.private_grams, s.public_gram  # computed on first use: part of the load
        return s

    system = load()
    cases = {"load": load, "limit": lambda: asymptotic(system, ALPHA, BETA)}
    for T in (0, 15):
        cases[f"traj {T}"] = lambda T=T: trajectory(system, ALPHA, BETA, T)
        cases[f"solver {T}"] = lambda T=T: (
            trajectory(system, ALPHA, BETA, T).mse,
            asymptotic(system, ALPHA, BETA),
            pooled_ols_mse(system),
        )
        cases[f"cli-fn {T}"] = lambda T=T: mse_result(system, ALPHA, BETA, T)
    if not args.no_subprocess:
        cases["start-up"] = python("-c", "import crossgen.cli")
        for T in (0, 15):
            cases[f"process {T}"] = python(
                "-m",
                "crossgen",
                "theory",
                "mse",
                str(big),
                "--alpha",
                str(ALPHA),
                "--beta",
                str(BETA),
                "--generations",
                str(T),
                "--json",
            )
        cases["help"] = python("-m", "crossgen", "--help")
        cases["small"] = python(
            "-m", "crossgen", "theory", "mse", str(small), "--alpha", "0.5", "--beta", "0.5", "--generations", "3"
        )
    t = median_times(cases, n)
    if not args.no_subprocess:
        for T in (0, 15):
            for advice in ("1", "0"):
                t[f"cold solver {T} {advice}"] = statistics.median(_cold_solver(big, T, advice) for _ in range(n))
    got = mse_result(system, ALPHA, BETA, 15)
    want = trajectory(system, ALPHA, BETA, 15).mse
    diff = float(np.max(np.abs(np.array(got["mse"]) - want) / np.abs(want)))

    rows = [("limit (Theorem 3 alone)", t["limit"], "1.00 x limit")]
    for T in (0, 15):
        solver = t[f"solver {T}"]
        rows += [
            (f"trajectory T={T} alone", t[f"traj {T}"], f"{t[f'traj {T}'] / t['limit']:.2f} x limit"),
            (f"solver T={T}: trajectory + limit + pooled", solver, f"{solver / t['limit']:.2f} x limit"),
            (
                f"CLI computation T={T} (mse_result)",
                t[f"cli-fn {T}"],
                f"{t[f'cli-fn {T}'] / solver:.2f} x solver, {t[f'cli-fn {T}'] / t['limit']:.2f} x limit",
            ),
            (
                f"  + reading the file (load {t['load']:.3f} s)",
                t[f"cli-fn {T}"] + t["load"],
                f"{(t[f'cli-fn {T}'] + t['load']) / solver:.2f} x solver",
            ),
        ]
        if not args.no_subprocess:
            net = t[f"process {T}"] - t["start-up"]
            cold, cold0 = t[f"cold solver {T} 1"], t[f"cold solver {T} 0"]
            rows.append(
                (
                    f"crossgen theory mse T={T}, process - start-up ({t['start-up']:.2f} s)",
                    net,
                    f"{net / solver:.2f} x solver, {net / cold:.2f} x cold solver ({cold:.3f} s), "
                    f"{net / cold0:.2f} x cold solver without huge pages ({cold0:.3f} s)",
                )
            )
    width = max(len(r[0]) for r in rows)
    print(f"{'case (K=1000, d=100)':<{width}}  {'seconds':>8}  ratio")
    for case, secs, ratio in rows:
        print(f"{case:<{width}}  {secs:8.3f}  {ratio}")
    print(f"CLI mse vs trajectory(): largest relative difference {diff:.1e}")
    if not args.no_subprocess:
        print(
            f"start-up: crossgen --help {t['help']:.2f} s, crossgen theory mse (K=3, d=5) "
            f"{t['small']:.2f} s (target < 1 s each)"
        )


COLD_SOLVER = """
import sys, time
from crossgen.theory import FeatureSystem, asymptotic, pooled_ols_mse, trajectory
s = FeatureSystem.from_npz(sys.argv[1]); _ = s.private_grams, s.public_gram
t0 = time.perf_counter()
trajectory(s, {a}, {b}, int(sys.argv[2])).mse, asymptotic(s, {a}, {b}), pooled_ols_mse(s)
print(time.perf_counter() - t0)
"""


def _cold_solver(path: Path, T: int, hugepage_advice: str) -> float:
    """The solver's own seconds in a fresh process (the file read and start-up not counted),
    with NUMPY_MADVISE_HUGEPAGE set to `hugepage_advice`."""
    code = COLD_SOLVER.format(a=ALPHA, b=BETA)
    env = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": hugepage_advice}
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), str(T)], check=True, capture_output=True, text=True, env=env
    )
    return float(out.stdout.strip())


if __name__ == "__main__":
    main()
