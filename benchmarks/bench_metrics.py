"""What the per-generation metrics cost on a CPU-preset run (run by hand).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_metrics.py [--initial-steps 60] [--steps 100]

Runs the CPU preset twice in this process, shrunk (generation 0 trains --initial-steps steps;
--generations updates of --steps steps; the preset's evaluation otherwise: 200 test examples
per task, 200 evaluation completions per model and dataset): once with every metric, once
with the metric families switched off (evaluation.accuracy and reference_perplexity false,
embedding_prompts 0: no evaluation completions, embeddings or completion metrics). Losses are
computed in both. Prints, from this one pair of runs, each generation's seconds (the
manifest's) with and without metrics and their ratio, then where each generation's metric time
went in the metrics run: the evaluation completions (what the embedding families and the
reference perplexity read), accuracy, reference perplexity, embedding, the embedding tables
(similarity, homogenization, semantic) and each completion-metric family (lexical, vendi,
manifold, mauve), as seconds and as a share of that generation. One-time costs (importing
sacrebleu and mauve, loading the embedding model) are paid before the runs and shown apart.
The two runs' ratio moves with the load of a shared machine (two torch threads on two busy
cores can run several times slower for a while); the ratio within the metrics run (its
generation against the same generation less its timed metric parts) does not compare runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from crossgen.config import load_config
from crossgen.experiment import metrics_hook, model_metrics_hook, run_experiment
from crossgen.metrics import embeddings as embeddings_module
from crossgen.metrics import generation as generation_module
from crossgen.presets import resolve_config
from crossgen.workflow import loop
from crossgen.workflow.progress import Progress
from crossgen.workflow.store import RunStore

TIMES: dict[tuple[int, str], float] = defaultdict(float)  # (generation, part) -> seconds
NOW = {"t": -1}  # the generation being run (set through the progress)
PARTS = [
    ("evaluation completions", "evaluation completions (generate)"),
    ("accuracy", "accuracy"),
    ("reference_perplexity", "reference perplexity"),
    ("embed", "embeddings"),
    ("embedding tables", "similarity/homogenization/semantic"),
    ("lexical", "lexical"),
    ("vendi", "vendi"),
    ("manifold", "real text: manifold (k-NN)"),
    ("mauve", "real text: mauve"),
]


def timed(key, fn):
    def call(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[NOW["t"], key] += time.perf_counter() - start

    return call


def instrument() -> None:
    """Time every metric's computation where it happens (this process only)."""
    loop.Workflow._completions = timed("evaluation completions", loop.Workflow._completions)
    embeddings_module.embed = timed("embed", embeddings_module.embed)  # imported at call time
    generation_module.metric_tables = timed("embedding tables", generation_module.metric_tables)
    write_families = generation_module.write_families

    def families_timed(*args, **kwargs):
        result = write_families(*args, **kwargs)
        for name, seconds in result.seconds.items():  # the families' own timing
            TIMES[NOW["t"], name] += seconds
        return result

    generation_module.write_families = families_timed


class Generations(Progress):
    def generation_start(self, t: int) -> None:
        NOW["t"] = t


def run(cfg, out: Path, metrics: bool) -> tuple[float, dict[int, float]]:
    """(wall seconds, {generation: seconds}) of one run of `cfg` into `out`."""
    start = time.perf_counter()
    if metrics:
        hook = metrics_hook(cfg)  # the embedding model is loaded (and cached) already
        writer = model_metrics_hook(cfg)
        assert writer is not None
        rows = writer._rows
        writer._rows = lambda family, ev: timed(family, rows)(family, ev)  # type: ignore[method-assign]
        run_experiment(cfg, out, progress=Generations(), evaluate_hook=hook, model_metrics=writer)
    else:
        run_experiment(cfg, out, progress=Generations())
    wall = time.perf_counter() - start
    gens = RunStore(out).manifest()["generations"]
    return wall, {int(t): float(g["seconds"]) for t, g in gens.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--generations", type=int, default=1)
    parser.add_argument("--initial-steps", type=int, default=60)
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps of each update (preset: 100)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    common = {
        "generations": args.generations,
        "initial_training.max_steps": args.initial_steps,
        "training.max_steps": args.steps,
        "resources.threads": args.threads,
    }
    off = {"evaluation.accuracy": False, "evaluation.reference_perplexity": False, "evaluation.embedding_prompts": 0}
    cfg_all = load_config(resolve_config("cpu"), common)
    cfg_off = load_config(resolve_config("cpu"), {**common, **off})
    import torch
    import transformers  # noqa: F401  (imported before either run is timed)

    torch.set_num_threads(args.threads)
    once = {}
    for name in ("sacrebleu", "mauve"):
        start = time.perf_counter()
        __import__(name)
        once[f"import {name}"] = time.perf_counter() - start
    start = time.perf_counter()
    metrics_hook(cfg_all)
    once["load the embedding model"] = time.perf_counter() - start
    instrument()
    root = Path(tempfile.mkdtemp(prefix="crossgen-bench-metrics-"))
    try:
        wall_off, gens_off = run(cfg_off, root / "off", metrics=False)
        wall_all, gens_all = run(cfg_all, root / "all", metrics=True)
    finally:
        shutil.rmtree(root)

    ev = cfg_all.evaluation
    print(
        f"CPU preset, K = {cfg_all.K}, T = {args.generations}, generation 0: {args.initial_steps} steps, updates: "
        f"{args.steps} steps; {args.threads} threads; metrics: {ev.test_size} test examples per task, "
        f"{ev.embedding_prompts} completions per model and dataset"
    )
    gens = sorted(gens_all)
    parts = {t: sum(TIMES[t, k] for k, _ in PARTS) for t in gens}
    print("seconds per generation; 'within' = the metrics run against itself less its timed metric parts")
    print(f"{'':<14}{'no metrics':>11}{'all metrics':>13}{'ratio':>8}{'metric parts':>14}{'ratio within':>14}")
    for t in gens:
        rest = gens_all[t] - parts[t]
        print(
            f"{f'generation {t}':<14}{gens_off[t]:>10.1f}s{gens_all[t]:>12.1f}s{gens_all[t] / gens_off[t]:>8.2f}"
            f"{parts[t]:>13.1f}s{gens_all[t] / rest:>14.2f}"
        )
    rest = wall_all - sum(parts.values())
    print(
        f"{'whole run':<14}{wall_off:>10.1f}s{wall_all:>12.1f}s{wall_all / wall_off:>8.2f}"
        f"{sum(parts.values()):>13.1f}s{wall_all / rest:>14.2f}"
    )
    print()
    print("metrics run: seconds of each part (share of the generation)")
    print(f"{'part':<36}" + "".join(f"{f'generation {t}':>22}" for t in gens))
    for key, label in [*PARTS, (None, "all metric parts")]:
        cells = []
        for t in gens:
            seconds = sum(TIMES[t, k] for k, _ in PARTS) if key is None else TIMES[t, key]
            cells.append(f"{seconds:>13.2f} ({seconds / gens_all[t]:>5.1%})")
        print(f"{label:<36}" + "".join(f"{c:>22}" for c in cells))
    print("once per process, before the runs: " + ", ".join(f"{k} {v:.1f} s" for k, v in once.items()))


if __name__ == "__main__":
    main()
