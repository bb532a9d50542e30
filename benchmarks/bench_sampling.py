"""Sampled completions of the CPU preset: transformers' multinomial draw against crossgen's
inverse-CDF draw (backends/hf/sampling.py), at 64 and 200 rows a batch (run by hand).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_sampling.py [--steps 400] [--repeat 3]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_sampling.py --run RUN_DIR --generation 5

Trains one CPU-preset model (the science entity, --steps steps on one thread), or loads
generation --generation's models of a finished run (e.g. a demo's alpha_1, whose models have
degraded), then times what one generation of an entity samples: the evaluation completions
(evaluation.embedding_prompts test prompts of each dataset, embedding_max_new_tokens new
tokens) and its pool (generation.num_prompts training prompts, max_new_tokens). Each setting
runs --repeat times, interleaved with the others; prints the median seconds and the ratios to
the first setting, all measured in this one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from crossgen.backends.hf.backend import HFBackend
from crossgen.backends.hf.model import HFModel
from crossgen.config import load_config
from crossgen.presets import resolve_config
from crossgen.workflow.store import RunStore


def multinomial(model: HFModel):
    """`model`'s transformers generate, switched to transformers' own sampling mode."""
    generate = model.model.generate

    def sample(**kwargs):
        kwargs.pop("logits_processor", None)
        return generate(**{**kwargs, "do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0})

    return sample


def models(args) -> tuple[list[HFModel], object, object]:
    if args.run:
        store = RunStore(Path(args.run))
        cfg = store.config()
        data, backend = HFBackend.from_config(cfg)
        return [backend.load(store.model_dir(args.generation, e.name)) for e in cfg.entities], cfg, data
    cfg = load_config(resolve_config("cpu"), {"resources.threads": 1})
    data, backend = HFBackend.from_config(cfg)
    model = backend.initial_model([t for task in data.tasks for t in (e.text for e in task.train)], seed=0)
    start = time.perf_counter()
    model.train(data.tasks[0].train, cfg.initial_training.model_copy(update={"max_steps": args.steps}), seed=0)
    print(f"trained {args.steps} steps in {time.perf_counter() - start:.1f} s")
    return [model], cfg, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="training steps of the fresh model")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--run", help="a finished run directory whose models to use")
    parser.add_argument("--generation", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    loaded, cfg, data = models(args)
    ev, gen = cfg.evaluation, cfg.generation
    jobs = [[e.prompt for e in task.test[: ev.embedding_prompts]] for task in data.tasks]
    lengths = [ev.embedding_max_new_tokens] * len(jobs)
    jobs.append([e.prompt for e in data.tasks[0].train[: gen.num_prompts]])
    lengths.append(gen.max_new_tokens)
    settings = [("multinomial", 64), ("inverse CDF", 64), ("inverse CDF", 200)]
    seconds: dict = {s: [] for s in settings}
    for r in range(args.repeat):
        for draw, batch in settings:
            sampling = gen.model_copy(update={"batch_size": batch, "temperature": 1.0, "top_p": 1.0})
            start = time.perf_counter()
            for model in loaded:
                original = model.model.generate
                if draw == "multinomial":
                    model.model.generate = multinomial(model)
                try:
                    for i, (prompts, new) in enumerate(zip(jobs, lengths)):
                        model.generate(prompts, sampling, seed=100 * r + i, max_new_tokens=new)
                finally:
                    model.model.generate = original
            seconds[(draw, batch)].append(time.perf_counter() - start)
    base = statistics.median(seconds[settings[0]])
    evaluation = sum(map(len, jobs[:-1]))
    print(f"{len(loaded)} model(s); per model: {evaluation} evaluation prompts, a pool of {len(jobs[-1])}")
    for s in settings:
        med = statistics.median(seconds[s])
        print(f"{s[0]:>12} x {s[1]:>3} rows: {med:6.2f} s (median of {args.repeat})  ratio {med / base:.2f}")


if __name__ == "__main__":
    main()
