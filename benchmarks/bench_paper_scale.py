"""Paper presets at scale, computed from the configs (no GPU, no download):
completions generated per generation (whole pools vs lean pools) and peak checkpoint disk
(checkpoints: all vs needed).

Computed from the configs (no GPU, no download): whole pools complete min(num_prompts, train
size) prompts per entity; a lean run draws steps x batch x accumulation examples per entity
(mixing.n when smaller), a share alpha / K of them from each pool, and completes the distinct
entries drawn, N (1 - (1 - 1/N)^M) in expectation for M draws from a pool of N.

Peak checkpoint disk, before: float32 checkpoints (4 bytes per parameter), the initial model
copied into the run, and `checkpoints: all` (K models for each of the T + 1 generations) or
`needed` (K models each of generation 0, the newest complete generation and the one being
written). After (the presets as they are): checkpoints in the training precision (bf16 on a GPU,
2 bytes), the pretrained starting model referenced instead of copied, and the presets'
retention (`latest`: the newest complete generation and the one being written, at most 2K
models with a parallel executor, K + 1 one entity after another), as `crossgen run` estimates it
(`crossgen.workflow.run.generations_kept`).

    .venv/bin/python benchmarks/bench_paper_scale.py
"""

from __future__ import annotations

from crossgen.config import load_config
from crossgen.presets import resolve_config
from crossgen.workflow.run import generations_kept

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
    print(f"\n{'peak checkpoint disk':16} {'all, fp32':>10} {'needed, fp32':>13} {'preset now':>11} {'sequential':>11}")
    for name in PRESETS:
        cfg = load_config(resolve_config(name))
        params = PARAMETERS[cfg.model.name_or_path]
        fp32 = params * 4 / 1e9
        every = (1 + cfg.K * (cfg.generations + 1)) * fp32
        needed = (1 + 3 * cfg.K) * fp32
        bf16 = cfg.model.checkpoint_dtype == "bfloat16" or (
            cfg.model.checkpoint_dtype == "auto" and cfg.training.bf16 in (True, "auto")
        )
        model_gb = params * (2 if bf16 else 4) / 1e9
        initial = 0.0 if cfg.model.lora is None else model_gb  # a pretrained start is referenced
        now = initial + generations_kept(cfg) * cfg.K * model_gb
        one_by_one = initial + ((generations_kept(cfg) - 1) * cfg.K + 1) * model_gb
        print(f"{name:16} {every:7.0f} GB {needed:10.0f} GB {now:8.1f} GB {one_by_one:8.1f} GB")


if __name__ == "__main__":
    main()
