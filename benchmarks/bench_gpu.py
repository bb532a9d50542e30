"""One generation of a paper preset's shape: time and peak memory per phase (run by hand).

    python benchmarks/bench_gpu.py [--preset llama3.2-1b-k2] [--executor sequential|process|ray]
                                   [--shrink] [--dir DIR] [--keep]

What runs: generations 0 and 1 of the preset (K = 2, every other setting as the preset has
it: 100 steps of batch 2 x accumulation 2 at 512 tokens, lean pools of 256-token samples,
every test split scored, embedding and accuracy metrics) through `crossgen.experiment.
run_experiment`, with no download:
- the model is a random-weight Llama 3.2 1B (the LlamaConfig of meta-llama/Llama-3.2-1B:
  16 layers, 2048 wide, 32 heads / 8 KV heads, MLP 8192, vocabulary 128,256, tied
  embeddings; 1.24B parameters) saved with `save_pretrained` in a temporary folder with a
  byte-level BPE tokenizer trained on the data (its ~8k tokens use the first rows of the
  128k embedding). The RoPE scaling of Llama 3.2 is left out: it does not change the cost;
- the data are files in the original release formats, written by this script: SciQ
  (train.json / valid.json / test.json, JSON arrays with question, distractor1-3,
  correct_answer, support), GSM8K (train.jsonl / test.jsonl, question and answer ending in
  "#### N"), BookCorpus (books_large_p1.txt, one sentence a line), at the real datasets'
  sizes (SciQ 11,679 / 1,000, GSM8K 7,473 / 1,319, BookCorpus 1,000 test passages; its
  training passages are capped at 20,000 instead of 100,000, which changes no timed phase:
  training draws its examples from them). Their words are random, so lengths are those of
  the datasets but not the text.
A random-weight model almost never samples EOS, so every pool completion runs to
max_new_tokens (256): pool generation is measured at its worst case.

The table has one row per generation and phase: pool generation (generation 1's lean pools:
the previous models complete the drawn prompts), training, checkpoint save and load,
scoring (every model on every test split), evaluation completions (the embedding metrics'
200 prompts per split, and GSM8K accuracy's samples), accuracy scoring (options'
log-likelihoods), embedding metrics (in the driver) and building the initial model. For
each: calls, seconds (summed over calls; with the process executor the K entities overlap,
so phases sum to more than the wall time), and peak memory: on CUDA
`torch.cuda.max_memory_allocated` of the phase (reset before each call; the maximum over
calls and GPUs), on CPU the peak resident set size of the process during the phase (the
kernel's high-water mark that `resource.getrusage` reports, reset before each call through
/proc/self/clear_refs; where that is not possible, psutil's RSS sampled every 10 ms).

Without CUDA (or with --shrink) it runs shrunk: a 2-layer, 64-wide Llama, 3 training steps,
16 new tokens, small data and test splits, the same table. With --executor process the K
entities run in worker processes (entity k on GPU k mod n on a machine with n GPUs), which
record their phases to files the driver reads; --executor ray does the same with the run
directory and --dir on storage every node sees.

Disk: the random model (2.5 GB in bf16) plus the run's checkpoints (float32, 5 GB each:
initial + 2 entities x 2 generations = 25 GB for Llama 3.2 1B); --dir chooses where.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

# meta-llama/Llama-3.2-1B's config.json (rope_theta / rope_scaling left out: no effect on cost)
LLAMA_3_2_1B = dict(
    hidden_size=2048,
    intermediate_size=8192,
    num_hidden_layers=16,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=64,
    vocab_size=128_256,
    max_position_embeddings=131_072,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
    hidden_act="silu",
)
LLAMA_TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=1024,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
    hidden_act="silu",
)
# (train, test) examples of the real datasets; BookCorpus: (training passages kept, test passages)
SIZES = {"sciq": (11_679, 1_000), "gsm8k": (7_473, 1_319), "bookcorpus": (20_000, 1_000)}
SHRUNK_SIZES = {"sciq": (200, 20), "gsm8k": (200, 20), "bookcorpus": (100, 10)}
# run settings that shrink a run to a CPU smoke test
SHRINK = {
    "training.max_steps": 3,
    "training.max_seq_length": 128,
    "generation.max_new_tokens": 16,
    "evaluation.test_size": 10,
    "evaluation.embedding_prompts": 5,
    "evaluation.embedding_max_new_tokens": 8,
}

LOG_ENV = "CROSSGEN_BENCH_LOG"
PHASE_NAMES = {
    ("pool", "generate"): "pool generation",
    ("train", "train"): "training",
    ("evaluate", "score"): "scoring",
    ("evaluate", "generate"): "evaluation completions",
    ("evaluate", "option_logprobs"): "accuracy scoring",
    ("evaluate", "continuation_logprobs"): "accuracy scoring",
}
ORDER = [
    "initial model",
    "checkpoint load",
    "pool generation",
    "training",
    "checkpoint save",
    "scoring",
    "evaluation completions",
    "accuracy scoring",
    "embedding metrics",
]


# -- data in the release formats -----------------------------------------------------------
def _words(rng: random.Random, vocabulary: list[str], n: int) -> str:
    return " ".join(rng.choice(vocabulary) for _ in range(n))


def write_data(root: Path, sizes: dict[str, tuple[int, int]], seed: int = 0) -> dict[str, Path]:
    """SciQ, GSM8K and BookCorpus files in their original release formats, random words at the
    datasets' lengths (SciQ questions ~14 words, answers 1-3; GSM8K questions ~45 words,
    solutions ~50 words of 3-4 lines ending "#### N"; BookCorpus sentences ~13 words)."""
    from crossgen.tasks.books import passage_limit

    rng = random.Random(seed)
    vocabulary = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(3000)
    ]
    sciq = root / "SciQ dataset-2 3"
    sciq.mkdir(parents=True)

    def sciq_record() -> dict:
        return {
            "question": _words(rng, vocabulary, rng.randint(8, 20)).capitalize() + "?",
            "distractor3": _words(rng, vocabulary, rng.randint(1, 3)),
            "distractor1": _words(rng, vocabulary, rng.randint(1, 3)),
            "distractor2": _words(rng, vocabulary, rng.randint(1, 3)),
            "correct_answer": _words(rng, vocabulary, rng.randint(1, 3)),
            "support": _words(rng, vocabulary, rng.randint(0, 80)),
        }

    n_train, n_test = sizes["sciq"]
    for name, n in (("train", n_train), ("valid", n_test), ("test", n_test)):
        (sciq / f"{name}.json").write_text(json.dumps([sciq_record() for _ in range(n)], indent=2))

    gsm8k = root / "grade_school_math" / "data"
    gsm8k.mkdir(parents=True)

    def gsm8k_record() -> dict:
        lines = [
            f"{_words(rng, vocabulary, rng.randint(8, 16))} {rng.randint(2, 99)}*{rng.randint(2, 9)} = "
            f"<<{rng.randint(2, 99)}*{rng.randint(2, 9)}={rng.randint(4, 900)}>>{rng.randint(4, 900)}."
            for _ in range(rng.randint(2, 5))
        ]
        return {
            "question": _words(rng, vocabulary, rng.randint(25, 70)).capitalize() + "?",
            "answer": "\n".join(lines) + f"\n#### {rng.randint(1, 1000)}",
        }

    n_train, n_test = sizes["gsm8k"]
    for name, n in (("train", n_train), ("test", n_test)):
        with open(gsm8k / f"{name}.jsonl", "w") as fh:
            fh.writelines(json.dumps(gsm8k_record()) + "\n" for _ in range(n))

    books = root / "bookcorpus"
    books.mkdir()
    n_train, n_test = sizes["bookcorpus"]
    # enough ~14-word sentences for the passages (60-120 words) that loading builds
    sentences = 7 * passage_limit(n_train, n_test)
    with open(books / "books_large_p1.txt", "w") as fh:
        fh.writelines(_words(rng, vocabulary, rng.randint(5, 22)) + " .\n" for _ in range(sentences))
    return {"sciq": sciq, "gsm8k": gsm8k, "books": books / "books_large_p1.txt"}


def write_model(folder: Path, texts: list[str], architecture: dict[str, Any], full_vocabulary: bool) -> int:
    """A random-weight Llama of `architecture` and a BPE tokenizer trained on `texts`, saved
    as a pretrained folder (bf16 weights); returns the number of parameters."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from crossgen.backends.hf.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(texts, 8192 if full_vocabulary else 1024)
    vocab = architecture.get("vocab_size", len(tokenizer))
    config = LlamaConfig(
        **{**architecture, "vocab_size": max(vocab, len(tokenizer))},
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


# -- measuring each phase ------------------------------------------------------------------
class Meter:
    """Peak memory of the code between start() and stop(): CUDA allocated bytes, else RSS."""

    def __init__(self) -> None:
        import torch

        self.cuda = torch.cuda.is_available() and os.environ.get("CROSSGEN_BENCH_DEVICE") != "cpu"
        self.sampler: Optional[threading.Thread] = None
        self.peak = 0
        self.running = False

    def start(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return
        try:  # reset the kernel's high-water mark of this process
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            self.running = True
            self.sampler = threading.Thread(target=self._sample, daemon=True)
            self.sampler.start()

    def _sample(self) -> None:
        import psutil

        process = psutil.Process()
        while self.running:
            self.peak = max(self.peak, process.memory_info().rss)
            time.sleep(0.01)

    def stop(self) -> int:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            return int(torch.cuda.max_memory_allocated())
        if self.sampler is not None:
            self.running = False
            self.sampler.join()
            return self.peak
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0


_STATE: dict[str, Any] = {"phase": "initial", "generation": None, "depth": 0, "installed": False}


def _record(phase: str, seconds: float, peak: int) -> None:
    row = {"generation": _STATE["generation"], "phase": phase, "seconds": seconds, "peak": peak, "pid": os.getpid()}
    with open(Path(os.environ[LOG_ENV]) / f"{os.getpid()}.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")


def _measured(method: str, label: Optional[str], fn: Callable) -> Callable:
    """`fn` timed and metered as phase `label` (or the entity task's phase x `method`);
    calls made inside another measured call count for the outer one only."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _STATE["depth"]:
            return fn(*args, **kwargs)
        phase = label or PHASE_NAMES.get((_STATE["phase"], method), f"{_STATE['phase']}: {method}")
        meter = Meter()
        _STATE["depth"] += 1
        meter.start()
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds = time.perf_counter() - start
            _STATE["depth"] -= 1
            _record(phase, seconds, meter.stop())

    return wrapper


def instrument(log_dir: str) -> None:
    """Measure the hf backend's model calls in this process, labelled by the entity task
    (phase, generation) that makes them; rows go to `log_dir`/<pid>.jsonl."""
    os.environ[LOG_ENV] = log_dir
    if _STATE["installed"]:
        return
    from crossgen.backends.hf.backend import HFBackend
    from crossgen.backends.hf.model import HFModel
    from crossgen.workflow.loop import Workflow

    for method in ("train", "generate", "score", "option_logprobs", "continuation_logprobs"):
        setattr(HFModel, method, _measured(method, None, getattr(HFModel, method)))
    HFModel.save = _measured("save", "checkpoint save", HFModel.save)
    HFBackend.load = _measured("load", "checkpoint load", HFBackend.load)
    HFBackend.initial_model = _measured("initial_model", "initial model", HFBackend.initial_model)
    run_task = Workflow.run_task

    @functools.wraps(run_task)
    def labelled(self, task):
        _STATE["phase"], _STATE["generation"] = task.phase, task.t
        try:
            return run_task(self, task)
        finally:
            _STATE["phase"], _STATE["generation"] = "driver", None

    Workflow.run_task = labelled
    _STATE["installed"] = True


def worker_metrics(log_dir: str, cfg):
    """What a worker process of the executor runs first (its model-metrics factory):
    instrument the worker, then the usual model metrics."""
    from crossgen.experiment import model_metrics_hook

    instrument(log_dir)
    return model_metrics_hook(cfg)


def timed_hook(hook: Optional[Callable]) -> Optional[Callable]:
    """The driver's evaluate hook (embedding metrics) measured per generation."""
    if hook is None:
        return None

    def run(store, t):
        _STATE["generation"] = t
        return _measured("hook", "embedding metrics", hook)(store, t)

    return run


# -- the run and the table -----------------------------------------------------------------
def configure(preset: str, paths: dict[str, Path], model: Path, sizes: dict, shrink: bool, device: str):
    from crossgen.config import load_config
    from crossgen.presets import resolve_config

    overrides: dict[str, Any] = {
        "generations": 1,
        "device": device,
        "model.name_or_path": str(model),
        "entities.0.task": {"name": "sciq", "source": "local", "path": str(paths["sciq"])},
        "entities.1.task": {"name": "gsm8k", "source": "local", "path": str(paths["gsm8k"])},
        "public": {
            "name": "bookcorpus",
            "source": "local",
            "path": str(paths["books"]),
            "train_size": sizes["bookcorpus"][0],
            "test_size": sizes["bookcorpus"][1],
        },
    }
    if shrink:
        overrides.update(SHRINK)
    if device == "cpu":  # the preset's resources.cpus (4) would set 4 torch threads: keep this process's
        import torch

        overrides["resources.threads"] = torch.get_num_threads()
    cfg = load_config(resolve_config(preset), overrides)
    if cfg.K != 2:
        raise SystemExit(f"bench_gpu.py runs K = 2 presets (sciq, gsm8k); {preset} has K = {cfg.K}")
    return cfg


def table(log_dir: Path) -> list[tuple[str, str, int, float, int]]:
    """(generation, phase, calls, seconds, peak bytes) aggregated over the log files."""
    calls: dict[tuple[str, str], int] = defaultdict(int)
    seconds: dict[tuple[str, str], float] = defaultdict(float)
    peak: dict[tuple[str, str], int] = defaultdict(int)
    for path in sorted(log_dir.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            key = ("init" if row["generation"] is None else str(row["generation"]), row["phase"])
            calls[key] += 1
            seconds[key] += row["seconds"]
            peak[key] = max(peak[key], row["peak"])
    rank = {name: i for i, name in enumerate(ORDER)}
    keys = sorted(calls, key=lambda k: (k[0] != "init", k[0], rank.get(k[1], len(ORDER)), k[1]))
    return [(g, p, calls[(g, p)], seconds[(g, p)], peak[(g, p)]) for g, p in keys]


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="llama3.2-1b-k2", help="a K = 2 preset (its settings, this model)")
    parser.add_argument("--executor", default="sequential", choices=["sequential", "process", "ray"])
    parser.add_argument("--ray-address", default=None)
    parser.add_argument("--shrink", action="store_true", help="the CPU smoke-test size even on a GPU")
    parser.add_argument("--dir", type=Path, default=None, help="where to write data, model and run (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the folder afterwards")
    args = parser.parse_args()

    import torch

    cuda = torch.cuda.is_available()
    shrink = args.shrink or not cuda
    device = "auto" if cuda else "cpu"
    if not cuda:
        os.environ["CROSSGEN_BENCH_DEVICE"] = "cpu"
    root = Path(tempfile.mkdtemp(prefix="bench-gpu-", dir=args.dir))
    log_dir = root / "phases"
    log_dir.mkdir()
    try:
        started = time.perf_counter()
        sizes = SHRUNK_SIZES if shrink else SIZES
        paths = write_data(root / "data", sizes)
        texts = paths["books"].read_text().splitlines()[:20_000]
        with open(paths["gsm8k"] / "train.jsonl") as fh:
            texts += [" ".join(json.loads(line).values()) for line in fh]
        texts += [" ".join(r.values()) for r in json.loads((paths["sciq"] / "train.json").read_text())]
        parameters = write_model(root / "model", texts, LLAMA_TINY if shrink else LLAMA_3_2_1B, not shrink)
        setup = time.perf_counter() - started
        cfg = configure(args.preset, paths, root / "model", sizes, shrink, device)

        from crossgen.experiment import metrics_hook, run_experiment
        from crossgen.workflow.executors import make_executor

        instrument(str(log_dir))
        executor = make_executor(
            args.executor, cfg, args.ray_address, model_metrics=functools.partial(worker_metrics, str(log_dir))
        )
        started = time.perf_counter()
        try:
            store = run_experiment(cfg, root / "run", evaluate_hook=timed_hook(metrics_hook(cfg)), executor=executor)
        finally:
            executor.close()
        wall = time.perf_counter() - started
        manifest = store.manifest()
        rows = table(log_dir)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    where = torch.cuda.get_device_name(0) + f" x {torch.cuda.device_count()}" if cuda else "CPU (no CUDA)"
    memory = "torch.cuda.max_memory_allocated" if cuda else "peak RSS of the process"
    t = cfg.training
    print(
        f"{args.preset} shape{' (shrunk)' if shrink else ''}: random-weight Llama, {parameters / 1e6:.1f}M "
        f"parameters; K = {cfg.K}; {t.max_steps} steps x batch {t.per_device_train_batch_size} x "
        f"accumulation {t.gradient_accumulation_steps} at {t.max_seq_length} tokens; "
        f"{cfg.generation.max_new_tokens} new tokens per completion"
    )
    print(f"device: {where}; executor: {args.executor}; torch threads: {torch.get_num_threads()}")
    gens = manifest.get("generations", {})
    pools = gens.get("1", {}).get("pools", {})
    print(
        f"setup (data files, model folder) {setup:.1f} s; run wall {wall:.1f} s: "
        + ", ".join(f"generation {g} {v['seconds']:.1f} s" for g, v in sorted(gens.items()))
        + (
            "; pool completions: " + ", ".join(f"{n} {p['generated']} of {p['pool']}" for n, p in pools.items())
            if pools
            else ""
        )
    )
    print()
    print(f"| generation | phase | calls | seconds | s / call | peak memory ({memory}) |")
    print("|---|---|---:|---:|---:|---:|")
    for g, phase, n, s, peak in rows:
        print(f"| {g} | {phase} | {n} | {s:.2f} | {s / n:.2f} | {peak / 2**30:.2f} GiB |")


if __name__ == "__main__":
    sys.exit(main())
