"""Paper presets at scale, computed from the configs (no GPU, no download):
completions generated per generation (whole pools vs lean pools) and peak checkpoint disk
(checkpoints: all vs needed).

Computed from the configs (no GPU, no download): whole pools complete min(num_prompts, train
size) prompts per entity; a lean run draws steps x batch x accumulation examples per entity
(mixing.n when smaller), a share alpha / K of them from each pool, and completes the distinct
entries drawn, N (1 - (1 - 1/N)^M) in expectation for M draws from a pool of N.

Checkpoints are saved in float32 (4 bytes per parameter). Peak disk with `all`: the initial
model plus K models for each of the T + 1 generations. With `needed`: the initial model plus
K models each of generation 0, the newest complete generation and the one being written.

    .venv/bin/python benchmarks/bench_paper_scale.py
"""

from __future__ import annotations

from crossgen.config import load_config
from crossgen.presets import resolve_config

# Train split sizes of the hub datasets (SciQ, GSM8K, ARC).
TRAIN_SIZE = {"sciq": 11679, "gsm8k": 7473, "arc_easy": 2251, "arc_challenge": 1119}
PARAMETERS = {"facebook/opt-350m": 331e6, "meta-llama/Llama-3.2-1B": 1.24e9, "meta-llama/Llama-3.2-3B": 3.21e9}
PRESETS = ["opt350m-k2", "llama3.2-1b-k2", "llama3.2-3b-k2", "opt350m-k3", "llama3.2-1b-k3"]


def main() -> None:
    print(f"{'preset':16} {'whole pools':>12} {'lean pools':>11} {'ratio':>7}")
    for name in PRESETS:
        cfg = load_config(resolve_config(name))
        t = cfg.training
        draws = min(cfg.mixing.n, t.max_steps * t.per_device_train_batch_size * t.gradient_accumulation_steps)
        whole = lean = 0.0
        for entity in cfg.entities:
            pool = min(cfg.generation.num_prompts, TRAIN_SIZE[entity.task.name])
            drawn_from_j = sum(draws * cfg.weights("alpha", k)[1] / cfg.K for k in range(cfg.K))
            whole += pool
            lean += pool * (1 - (1 - 1 / pool) ** drawn_from_j)
        print(f"{name:16} {whole:12.0f} {lean:11.0f} {whole / lean:6.1f}x")
    print(f"\n{'preset':16} {'disk: all':>10} {'needed':>9}")
    for name in PRESETS:
        cfg = load_config(resolve_config(name))
        model_gb = PARAMETERS[cfg.model.name_or_path] * 4 / 1e9
        every = (1 + cfg.K * (cfg.generations + 1)) * model_gb
        needed = (1 + 3 * cfg.K) * model_gb
        print(f"{name:16} {every:8.0f} GB {needed:6.0f} GB")


if __name__ == "__main__":
    main()
