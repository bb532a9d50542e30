"""A training step of the CPU preset's model with GPT-2's GELU and AdamW kernels (run by hand).

    .venv/bin/python benchmarks/bench_step_kernels.py [--length 35] [--threads 1]

GPT-2 (2 layers, 128 wide, vocabulary 2048, no dropout), batch 16 of `--length` tokens,
forward + backward + gradient clipping at 1.0 + AdamW, as the Trainer does. Four variants,
interleaved round by round in one process (the machine is shared): the activation
"gelu_new" (five elementwise ops) or "gelu_pytorch_tanh" (the same function, one native
kernel), and AdamW's per-tensor loop or its fused kernel. Prints each variant's median and
best ms per step and its ratio to the old default (gelu_new, per-tensor AdamW).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

VARIANTS = [(act, fused) for act in ("gelu_new", "gelu_pytorch_tanh") for fused in (False, True)]


def model(activation: str) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2,
        n_head=4,
        n_embd=128,
        n_positions=256,
        vocab_size=2048,
        resid_pdrop=0,
        embd_pdrop=0,
        attn_pdrop=0,
        activation_function=activation,
    )
    return GPT2LMHeadModel(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=35, help="tokens per sequence (the preset's mean is ~35)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant and round")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch = torch.randint(0, 2048, (16, args.length))
    setups = {}
    for act, fused in VARIANTS:
        m = model(act)
        setups[(act, fused)] = (m, torch.optim.AdamW(m.parameters(), lr=1e-3, fused=fused))

    def step(m: GPT2LMHeadModel, opt: torch.optim.Optimizer) -> None:
        m(input_ids=batch, labels=batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    times: dict[tuple[str, bool], list[float]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant, (m, opt) in setups.items():
            for _ in range(3):  # warm
                step(m, opt)
            start = time.perf_counter()
            for _ in range(args.steps):
                step(m, opt)
            times[variant].append((time.perf_counter() - start) / args.steps * 1000)
    base = statistics.median(times[VARIANTS[0]])
    print(f"batch 16 x {args.length} tokens, {args.threads} thread(s), {args.rounds} rounds x {args.steps} steps")
    for (act, fused), ms in times.items():
        median = statistics.median(ms)
        adamw = "fused AdamW" if fused else "per-tensor AdamW"
        print(f"  {act:18s} {adamw:17s} median {median:5.1f} ms  best {min(ms):5.1f} ms  {median / base:.2f}x")


if __name__ == "__main__":
    main()
