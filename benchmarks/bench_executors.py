"""Entities in parallel: wall time of CPU-preset generations, sequential vs process vs Ray.

Runs the CPU preset (K = 2, shortened: see OVERRIDES) once per executor into a temporary
folder, sharing one generation 0 (copied, as the demo does), and prints the seconds of
generations 1..T that each run's manifest records, with the ratio to the sequential run on
torch's default threads. The process and Ray executors give each entity one thread (the
two cores shared out); 'sequential, 1 thread' is the bit-identical reference of
tests/test_executors.py. Run on an otherwise idle machine:

    .venv/bin/python benchmarks/bench_executors.py [--generations 2] [--no-ray]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from crossgen.config import load_config
from crossgen.experiment import run_experiment
from crossgen.presets import resolve_config

OVERRIDES = {"initial_training.max_steps": 100}


def generation_seconds(run_dir: Path) -> float:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return sum(g["seconds"] for t, g in manifest["generations"].items() if t != "0")


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
        first = None
        for executor, threads in cases:
            cpus = 1 if executor == "ray" else 2  # a Ray task asks for resources.cpus: one core per entity
            settings = {**overrides, "resources.threads": threads, "resources.cpus": cpus}
            cfg = load_config(resolve_config("cpu"), settings)
            out = root / f"{executor}-{threads}"
            started = time.perf_counter()
            run_experiment(cfg, out, executor=executor, generation0_from=first)
            wall = time.perf_counter() - started
            first = first or out
            label = f"{executor}, {threads or 'default'} thread{'s' if threads != 1 else ''}"
            rows.append((label, generation_seconds(out), wall))
            print(f"{label}: generations 1..{args.generations} took {rows[-1][1]:.1f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = rows[0][1]
    print(f"\n{'executor':28} {'gen 1..T (s)':>12} {'speed-up':>9}")
    for label, seconds, _ in rows:
        print(f"{label:28} {seconds:12.1f} {base / seconds:9.2f}")


if __name__ == "__main__":
    main()
