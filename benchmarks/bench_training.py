"""Speed of the hf backend on the CPU preset's model (run by hand).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_training.py [--steps 100] [--threads 2]

Model: GPT-2, 2 layers, 128 wide, 4 heads, byte-level BPE vocabulary ~2048 trained on
generated text; sequences ~64 tokens; batch 16. Prints, from one run:

- training tokens/s through HFModel.train() (transformers Trainer) vs a bare PyTorch
  loop (AdamW, same initial weights, the very batches the Trainer drew, same number of
  steps), with and without gradient clipping (the Trainer clips at 1.0), as ratios; the
  Trainer is timed both as the whole train() call (tokenisation and Trainer set-up
  included) and as its steady-state step loop. Variants are interleaved and the best of
  --repeats runs is reported, because the machine is shared;
- generation tokens/s with the KV cache (400 completions of at most 48 new tokens, sampled
  at temperature 1 from the trained model; new tokens counted by re-tokenising the text);
- scoring throughput (examples/s and answer tokens/s).
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from crossgen.backends.hf import HFBackend
from crossgen.backends.hf import train as hf_train
from crossgen.config import ArchitectureConfig, GenerationConfig, ModelConfig, TrainingConfig
from crossgen.data import Example

WORDS = [
    "the",
    "a",
    "one",
    "two",
    "three",
    "cat",
    "dog",
    "bird",
    "tree",
    "river",
    "stone",
    "light",
    "dark",
    "quick",
    "slow",
    "water",
    "fire",
    "earth",
    "wind",
    "moves",
    "sees",
    "finds",
    "makes",
    "under",
    "over",
    "near",
    "far",
    "because",
    "when",
    "then",
    "and",
    "but",
    "energy",
    "plant",
    "cell",
    "atom",
    "force",
    "heat",
    "sound",
    "number",
    "adds",
    "equals",
    "minus",
    "times",
]


def corpus(n: int, rng: random.Random) -> list[Example]:
    out = []
    for _ in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(22, 32)))
        a = " ".join(rng.choice(WORDS) for _ in range(rng.randint(22, 32)))
        out.append(Example(f"Question: {q}?", f" Answer: {a}."))
    return out


def bare_loop(model, batches, lr: float, clip: float | None) -> float:
    """Plain AdamW loop over prepared batches; returns seconds."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    start = time.perf_counter()
    for batch in batches:
        loss = model(**batch).loss
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    model.eval()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--completions", type=int, default=400)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--only", choices=["train", "generate", "score"], default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = random.Random(0)
    data = corpus(1600, rng)
    arch = ArchitectureConfig(n_layer=2, n_head=4, n_embd=128, n_positions=256, vocab_size=2048)
    backend = HFBackend(ModelConfig(scratch=arch), device="cpu", threads=args.threads)
    # a tokenizer corpus rich enough to fill ~2048 entries
    texts = [e.text for e in data] + [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(200)) for _ in range(2000)
    ]
    t0 = time.perf_counter()
    model = backend.initial_model(texts, seed=0)
    print(f"initial model (tokenizer training + build): {time.perf_counter() - t0:.2f} s, vocab {len(model.tokenizer)}")
    cfg = TrainingConfig(
        max_steps=args.steps,
        learning_rate=3e-4,
        lr_scheduler_type="constant",
        warmup_ratio=0.0,
        per_device_train_batch_size=16,
        gradient_accumulation_steps=1,
        max_seq_length=256,
    )
    ids = model.training_ids(data, 256)
    lengths = [len(x) for x in ids]
    print(
        f"sequence length: mean {statistics.mean(lengths):.1f}, max {max(lengths)} tokens; batch 16; "
        f"{args.steps} steps; threads {torch.get_num_threads()}"
    )

    # the bare loop gets exactly the Trainer's batches: record them from one train() call
    initial = copy.deepcopy(model.model.state_dict())
    recorded: list[dict] = []
    original = hf_train.Collator.__call__

    def recording(self, rows):
        batch = original(self, rows)
        recorded.append({k: v.clone() for k, v in batch.items()})
        return batch

    hf_train.Collator.__call__ = recording
    try:
        model.train(data, cfg, seed=0)
    finally:
        hf_train.Collator.__call__ = original
    model.model.load_state_dict(initial)
    batches = recorded[: args.steps]  # the dataloader may have prefetched one more
    bare_tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    width = statistics.mean(b["input_ids"].shape[1] for b in batches)
    print(f"padded width per batch: mean {width:.1f} tokens")

    if args.only in (None, "train"):
        train_section(args, model, data, cfg, batches, bare_tokens)
    if args.only in (None, "generate"):
        generate_section(args, model)
    if args.only in (None, "score"):
        score_section(model)


def train_section(args, model, data, cfg, batches, bare_tokens) -> None:
    initial = copy.deepcopy(model.model.state_dict())  # same start for every variant
    results: dict[str, list[float]] = {"bare": [], "bare+clip": [], "train()": [], "trainer loop": []}
    setup: list[float] = []
    for _ in range(args.repeats):  # interleaved, so a busy machine hurts every variant alike
        model.model.load_state_dict(initial)
        results["bare"].append(bare_tokens / bare_loop(model.model, batches, 3e-4, None))
        model.model.load_state_dict(initial)
        results["bare+clip"].append(bare_tokens / bare_loop(model.model, batches, 3e-4, 1.0))
        model.model.load_state_dict(initial)
        marks: list[float] = []
        stats = model.train(data, cfg, seed=0, progress=lambda s, n, marks=marks: marks.append(time.perf_counter()))
        results["train()"].append(stats.tokens / stats.seconds)
        # the step loop alone: from the first to the last step callback, scaled to all steps
        per_step = (marks[-1] - marks[0]) / (len(marks) - 1)
        results["trainer loop"].append(stats.tokens / (per_step * args.steps))
        setup.append(stats.seconds - per_step * args.steps)
        assert stats.steps == args.steps and stats.tokens == bare_tokens  # same batches
    best = {k: max(v) for k, v in results.items()}
    print(f"\ntraining tokens/s (best of {args.repeats} interleaved runs; median in brackets):")
    for k, v in best.items():
        print(
            f"  {k:13s} {v:8.0f} [{statistics.median(results[k]):8.0f}]   "
            f"{v / best['bare']:4.0%} of bare, {v / best['bare+clip']:4.0%} of bare+clip "
            f"(median ratio {statistics.median(a / b for a, b in zip(results[k], results['bare'])):.0%})"
        )
    print(
        f"  train() overhead outside the step loop (tokenise, Trainer set-up, first step): "
        f"{min(setup):.2f} s; 100 steps through train(): {bare_tokens / best['train()'] * 100 / args.steps:.2f} s"
    )


def generate_section(args, model) -> None:
    """Generation with the KV cache."""
    prompts = [e.prompt for e in corpus(args.completions, random.Random(1))]
    for bs in (16, 64, 400):
        gcfg = GenerationConfig(max_new_tokens=args.new_tokens, temperature=1.0, batch_size=bs)
        t0 = time.perf_counter()
        outs = model.generate(prompts, gcfg, seed=0)
        sec = time.perf_counter() - t0
        new_tokens = sum(len(x) for x in model.encode_answers(outs))
        print(
            f"generation, batch {bs}: {len(outs)} completions, ~{new_tokens} new tokens in {sec:.2f} s "
            f"= {new_tokens / sec:.0f} tokens/s"
        )


def score_section(model) -> None:
    test = corpus(400, random.Random(2))
    for bs in (16, 64):
        t0 = time.perf_counter()
        _total, count = model.score_sums(test, bs)
        sec = time.perf_counter() - t0
        print(
            f"scoring, batch {bs}: {len(test)} examples ({count} answer tokens) in {sec:.2f} s = "
            f"{len(test) / sec:.0f} examples/s, {count / sec:.0f} answer tokens/s"
        )


if __name__ == "__main__":
    main()
