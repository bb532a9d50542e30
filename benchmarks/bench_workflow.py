"""Where a CPU-preset run spends its time: model work vs orchestration.

Runs the CPU preset (shortened: see ARGS) with every model call timed, and prints the
share of wall time spent outside training, generation and scoring (orchestration, data
mixing, checkpoint I/O), with the embedding metrics reported as a separate line.
Target (issue 3): overhead under 10% of wall time.

    .venv/bin/python benchmarks/bench_workflow.py [--generations 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from crossgen.config import load_config
from crossgen.presets import resolve_config
from crossgen.workflow import run as run_module

TIMES: dict[str, float] = defaultdict(float)


class Timed:
    """Wraps a model or backend so that each named method's time is accumulated."""

    def __init__(self, inner, methods):
        self._inner, self._methods = inner, methods

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name not in self._methods:
            return attr

        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                result = attr(*args, **kwargs)
            finally:
                TIMES[self._methods[name]] += time.perf_counter() - start
            if name in ("load", "initial_model"):
                return Timed(result, MODEL_METHODS)
            return result

        return call


MODEL_METHODS = {"train": "train", "generate": "generate", "score": "score", "save": "checkpoint I/O"}
BACKEND_METHODS = {"load": "checkpoint I/O", "initial_model": "initial model"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--generations", type=int, default=2)
    parser.add_argument("--initial-steps", type=int, default=300)
    args = parser.parse_args()
    cfg = load_config(
        resolve_config("cpu"), {"generations": args.generations, "initial_training.max_steps": args.initial_steps}
    )
    build = run_module.build

    def timed_build(c):
        data, backend = build(c)
        return data, Timed(backend, BACKEND_METHODS)

    run_module.build = timed_build
    from crossgen import metrics

    hook = metrics.evaluate_generation

    def timed_hook(store, t):
        start = time.perf_counter()
        hook(store, t)
        TIMES["embedding metrics"] += time.perf_counter() - start

    out = Path(tempfile.mkdtemp()) / "run"
    start = time.perf_counter()
    run_module.run_workflow(cfg, out, evaluate_hook=timed_hook)
    wall = time.perf_counter() - start
    shutil.rmtree(out.parent)

    model_work = TIMES["train"] + TIMES["generate"] + TIMES["score"]
    other = wall - sum(TIMES.values())
    print(f"CPU preset, K={cfg.K}, T={cfg.generations}, generation 0: {args.initial_steps} steps; wall {wall:.1f} s")
    print(f"{'part':<22}{'seconds':>9}{'share':>8}")
    for name in ("train", "generate", "score", "embedding metrics", "checkpoint I/O", "initial model"):
        print(f"{name:<22}{TIMES[name]:>9.2f}{TIMES[name] / wall:>8.1%}")
    print(f"{'orchestration/mixing':<22}{other:>9.2f}{other / wall:>8.1%}")
    overhead = other + TIMES["checkpoint I/O"] + TIMES["initial model"]
    print(
        "outside train/generate/score (excluding embedding metrics): "
        f"{overhead / (wall - TIMES['embedding metrics']):.1%}"
        f"  (model work {model_work:.1f} s)"
    )


if __name__ == "__main__":
    main()
