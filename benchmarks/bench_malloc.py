"""Training steps with glibc's default malloc against `crossgen.malloc.keep_freed_memory` (run by hand).

    .venv/bin/python benchmarks/bench_malloc.py [--rounds 3] [--steps 200]

Each round runs two fresh processes one after the other, one with glibc's defaults and one
that calls `keep_freed_memory()` first. Both train the CPU preset's model (GPT-2, 2 layers,
128 wide, vocabulary 2048, one thread) for `--steps` steps of batch 16 whose lengths vary
from 30 to 41 tokens, as length-grouped batches do. Prints each process's ms per step and
its user and system CPU time, and the ratios tuned/default of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = """
import json, resource, sys, time
if sys.argv[1] == "tuned":
    from crossgen.malloc import keep_freed_memory
    keep_freed_memory()
import torch
sys.path.insert(0, sys.argv[3])
from bench_step_kernels import model as preset_model  # the preset's model, built in one place
torch.set_num_threads(1)
model = preset_model("gelu_pytorch_tanh")
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
steps = int(sys.argv[2])
def step(i):
    batch = torch.randint(0, 2048, (16, 30 + (7 * i) % 12))
    model(input_ids=batch, labels=batch).loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
for i in range(10):
    step(i)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for i in range(steps):
    step(i)
r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
print(json.dumps({"ms": (t1 - t0) / steps * 1e3, "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime}))
"""


def run(mode: str, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    here = os.path.dirname(os.path.abspath(__file__))
    argv = [sys.executable, "-c", CHILD, mode, str(steps), here]
    out = subprocess.run(argv, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {"default": [], "tuned": []}
    for r in range(args.rounds):
        for mode in results:
            res = run(mode, args.steps)
            results[mode].append(res)
            times = f"user {res['user']:5.2f} s  sys {res['sys']:5.2f} s"
            print(f"round {r + 1} {mode:8s} {res['ms']:6.1f} ms/step  {times}")
    med = {m: {k: statistics.median(x[k] for x in rs) for k in ("ms", "user", "sys")} for m, rs in results.items()}
    for key in ("ms", "user", "sys"):
        ratio = med["tuned"][key] / med["default"][key] if med["default"][key] else float("nan")
        print(f"median {key:4s}: default {med['default'][key]:7.2f}  tuned {med['tuned'][key]:7.2f}  ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
