"""Entities in parallel: wall time of CPU-preset generations, sequential vs process vs Ray.

Runs the CPU preset (K = 2, shortened: see OVERRIDES) once per executor into a temporary
folder, all sharing one generation 0 trained first (copied, as the demo does), and prints
each run's wall time for generations 1..T (start-up of its workers included), with the ratio
to the sequential run on torch's default threads. (The manifests' per-generation seconds do
not add up to it with a parallel executor: generation t's clock stops when its metrics,
which overlap generation t + 1, are written.) The process and Ray executors give each entity one thread (the
two cores shared out); 'sequential, 1 thread' is the bit-identical reference of
tests/test_executors.py. Run on an otherwise idle machine:

    .venv/bin/python benchmarks/bench_executors.py [--generations 2] [--no-ray]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from crossgen.config import load_config
from crossgen.experiment import run_experiment
from crossgen.presets import resolve_config

OVERRIDES = {"initial_training.max_steps": 100}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--generations", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    overrides = {**OVERRIDES, "generations": args.generations}
    cases = [("sequential", None), ("sequential", 1), ("process", None)] + ([] if args.no_ray else [("ray", None)])
    root = Path(tempfile.mkdtemp(prefix="crossgen-bench-executors-"))
    rows = []
    try:
        first = root / "generation0"
        run_experiment(load_config(resolve_config("cpu"), {**overrides, "generations": 0}), first)
        for executor, threads in cases:
            cpus = 1 if executor == "ray" else 2  # a Ray task asks for resources.cpus: one core per entity
            settings = {**overrides, "resources.threads": threads, "resources.cpus": cpus}
            cfg = load_config(resolve_config("cpu"), settings)
            out = root / f"{executor}-{threads}"
            started = time.perf_counter()
            run_experiment(cfg, out, executor=executor, generation0_from=first)
            label = f"{executor}, {threads or 'default'} thread{'s' if threads != 1 else ''}"
            rows.append((label, time.perf_counter() - started))
            print(f"{label}: generations 1..{args.generations} took {rows[-1][1]:.1f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = rows[0][1]
    print(f"\n{'executor':28} {'gen 1..T (s)':>12} {'speed-up':>9}")
    for label, seconds in rows:
        print(f"{label:28} {seconds:12.1f} {base / seconds:9.2f}")


if __name__ == "__main__":
    main()
