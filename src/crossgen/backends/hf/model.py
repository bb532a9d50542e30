"""The transformers backend: causal language models, pretrained or built from scratch.

`HFModel` is the `GenerativeModel` (backends/base.py) around a `PreTrainedModel` and its
tokenizer; `HFBackend` (backend.py) makes and loads them.

Tokenisation is the same everywhere: an example is ``prompt_ids + answer_ids`` with the
prompt tokenised with the tokenizer's special tokens (e.g. Llama's BOS) and the answer
without, so the prompt/answer boundary is exact and matches what `generate` continues
from. Training appends EOS (the model learns to stop); scoring does not (only the
answer's own tokens are targets), and its bits per byte divide by the UTF-8 bytes of the
answer text (`score_totals`). An empty prompt becomes [BOS or EOS] so that the first
answer token has a context.

Length limits: training sequences are cut (at the end) to min(max_seq_length, context);
scoring keeps the answer and cuts the prompt from the left when prompt + answer exceeds
the context (answer tokens beyond the context are dropped and not counted); generation
keeps the last ``context - max_new_tokens`` prompt tokens.

Training goes through transformers' Trainer (train.py).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import torch

from crossgen.backends.base import ProgressFn, Score, TrainStats
from crossgen.backends.hf.logging import quiet_transformers
from crossgen.backends.hf.sampling import sampling_processors
from crossgen.data import Example
from crossgen.errors import InputError
from crossgen.io import atomic_path

# context assumed when a config names none (only caps truncation)
_DEFAULT_CONTEXT = 2048


def _context_length(model) -> int:
    cfg = model.config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx", "max_sequence_length"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return _DEFAULT_CONTEXT


def _bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


@contextmanager
def _cast(model, dtype: Optional[torch.dtype]):
    """The model's floating-point weights in `dtype` for the block, then back in their own dtype.
    Casting back leaves exactly the saved values in memory, as a reload would give them: a run
    that goes on in this process and one resumed from the checkpoint continue from the same
    weights."""
    original = next(model.parameters()).dtype
    if dtype is None or dtype == original:
        yield
        return
    model.to(dtype)
    try:
        yield
    finally:
        model.to(original)


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


class HFModel:
    """A causal LM + tokenizer implementing `GenerativeModel`.

    `model` is a transformers causal LM, or a peft `PeftModelForCausalLM` (LoRA, lora.py):
    then training updates the adapter only, and `save` writes the adapter alone once the
    model has a base folder (`base_dir`: the folder with the frozen base weights it was
    loaded from; None for a model that was never saved, whose first save writes the base).
    """

    def __init__(self, model, tokenizer, device: str, base_dir: Optional[Path] = None, checkpoint_dtype: str = "auto"):
        from crossgen.backends.hf.lora import is_peft_model

        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.checkpoint_dtype = checkpoint_dtype  # ModelConfig.checkpoint_dtype
        self.trained_bf16 = False  # whether the last update ran in bf16 mixed precision
        # (name_or_path, seed) of a pretrained model not trained since it was loaded: saved as a
        # reference to it, not a copy (reference.py)
        self.pretrained: Optional[tuple[str, int]] = None
        self.lora = is_peft_model(model)
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.model.to(device)
        self.model.eval()
        inner = model.get_base_model() if self.lora else model
        if getattr(inner, "loss_type", "x") is None:  # e.g. GPT2LMHeadModel: avoids a warning
            inner.loss_type = "ForCausalLM"
        self.context = _context_length(model)

    # -- tokenisation -------------------------------------------------------------
    def _start_ids(self) -> list[int]:
        tid = self.tokenizer.bos_token_id
        return [tid if tid is not None else self.tokenizer.eos_token_id]

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        if not prompts:
            return []
        ids = self.tokenizer([str(p) for p in prompts], add_special_tokens=True)["input_ids"]
        return [x if x else self._start_ids() for x in ids]

    def encode_answers(self, answers: Sequence[str]) -> list[list[int]]:
        if not answers:
            return []
        return self.tokenizer([str(a) for a in answers], add_special_tokens=False)["input_ids"]

    def training_ids(self, examples: Sequence[Example], max_len: int) -> list[list[int]]:
        """prompt + answer + EOS, cut at max_len tokens."""
        eos = self.tokenizer.eos_token_id
        prompts = self.encode_prompts([e.prompt for e in examples])
        answers = self.encode_answers([e.answer for e in examples])
        return [(p + a + [eos])[:max_len] for p, a in zip(prompts, answers)]

    # -- GenerativeModel ----------------------------------------------------------
    def train(
        self,
        examples: Sequence[Example],
        cfg,
        seed: int,
        weights: Optional[Sequence[float]] = None,
        progress: Optional[ProgressFn] = None,
    ) -> TrainStats:
        from crossgen.backends.hf.train import bf16_training, run_training

        start = time.perf_counter()
        if not examples:
            raise InputError("training examples", 0, "at least one example")
        if weights is not None:
            if len(weights) != len(examples):
                raise InputError("weights", len(weights), f"one weight per example ({len(examples)})")
            if any(not (float(w) >= 0.0) or float(w) == float("inf") for w in weights):
                raise InputError("weights", list(weights)[:5], "finite non-negative numbers")
        max_len = min(cfg.max_seq_length, self.context)
        ids = self.training_ids(examples, max_len)
        rows = (
            [{"input_ids": x} for x in ids]
            if weights is None
            else [{"input_ids": x, "weight": float(w)} for x, w in zip(ids, weights)]
        )
        steps, tokens, loss = run_training(self.model, rows, _pad_id(self.tokenizer), cfg, seed, self.device, progress)
        self.trained_bf16 = bf16_training(cfg, self.device)
        self.pretrained = None
        return TrainStats(steps=steps, tokens=tokens, seconds=time.perf_counter() - start, final_loss=loss)

    @torch.no_grad()
    def generate(self, prompts: Sequence[Any], cfg, seed: int, max_new_tokens: Optional[int] = None) -> list[str]:
        """Completions (new text only, special tokens skipped, cut at EOS), in prompt order.

        Prompts are sorted by token length into batches of cfg.batch_size and left
        padded; decoding uses the KV cache. temperature 0 is greedy; otherwise sampling
        with temperature and top_p over the full vocabulary (top_k disabled, unlike
        transformers' default of 50), one inverse-CDF draw per token (sampling.py). The
        torch RNG is seeded with `seed` inside a forked RNG state, so the caller's global
        RNG is untouched.
        """
        if not prompts:
            return []
        new = int(max_new_tokens if max_new_tokens is not None else cfg.max_new_tokens)
        new = max(1, min(new, self.context - 1))
        keep = self.context - new
        ids = [x[-keep:] for x in self.encode_prompts(prompts)]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        eos = self.tokenizer.eos_token_id
        pad = _pad_id(self.tokenizer)
        # greedy decoding; when sampling, of the token that the last logits processor drew
        kwargs: dict[str, Any] = dict(
            max_new_tokens=new, pad_token_id=pad, eos_token_id=eos, use_cache=True, do_sample=False, num_beams=1
        )
        if cfg.temperature > 0:
            kwargs["logits_processor"] = sampling_processors(float(cfg.temperature), float(cfg.top_p))
        out: list[Optional[str]] = [None] * len(ids)
        devices = [torch.device(self.device)] if self.device.startswith("cuda") else []
        # quiet: transformers warns about padding when a batch needs no attention mask and a
        # finished row is padded while the others continue (harmless: we cut at EOS)
        with torch.random.fork_rng(devices=devices), quiet_transformers():
            torch.manual_seed(seed)
            for b in range(0, len(order), cfg.batch_size):
                chunk = order[b : b + cfg.batch_size]
                width = max(len(ids[i]) for i in chunk)
                input_ids = torch.tensor([[pad] * (width - len(ids[i])) + ids[i] for i in chunk], device=self.device)
                mask = torch.tensor(
                    [[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in chunk], device=self.device
                )
                gen = self.model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
                for row, i in zip(gen[:, width:].tolist(), chunk):
                    if eos in row:
                        row = row[: row.index(eos)]
                    out[i] = self.tokenizer.decode(row, skip_special_tokens=True)
        return out  # type: ignore[return-value]

    @torch.no_grad()
    def score(self, examples: Sequence[Example], batch_size: int) -> float:
        """Token-average cross-entropy (nats) of the answer tokens given the prompt."""
        total, count = self.score_sums(examples, batch_size)
        return total / count if count else float("nan")

    def score_with_bytes(self, examples: Sequence[Example], batch_size: int) -> Score:
        """`score` and bits per byte from the same forward pass: the summed answer-token nats
        over ln 2 times the UTF-8 bytes of the answers scored (see `score_totals`)."""
        total, count, nbytes = self.score_totals(examples, batch_size)
        loss = total / count if count else float("nan")
        return Score(loss, total / (math.log(2) * nbytes) if nbytes else float("nan"))

    def score_sums(self, examples: Sequence[Example], batch_size: int) -> tuple[float, int]:
        """(sum of answer-token losses, number of answer tokens) over `examples`."""
        total, count, _ = self.score_totals(examples, batch_size)
        return total, count

    @torch.no_grad()
    def score_totals(self, examples: Sequence[Example], batch_size: int) -> tuple[float, int, int]:
        """(sum of answer-token losses, number of answer tokens, UTF-8 bytes of the answer text
        they cover) over `examples`.

        The targets are the answer's own tokens (no end-of-sequence token: scoring adds
        none). The bytes are those of `str(answer)`, whole; when the context cuts an answer
        (only its first context - 1 tokens are scored), those of the kept tokens' decoded text
        instead. An example with no answer token adds neither tokens nor bytes."""
        prompts = self.encode_prompts([e.prompt for e in examples])
        answers = self.encode_answers([e.answer for e in examples])
        seqs, starts, nbytes = [], [], 0
        for e, p, a in zip(examples, prompts, answers):
            text = str(e.answer)
            if len(a) > self.context - 1:
                a = a[: self.context - 1]
                text = self.tokenizer.decode(a)
            p = p[-(self.context - len(a)) :]
            seqs.append(p + a)
            starts.append(len(p))
            nbytes += len(text.encode("utf-8")) if a else 0
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        pad = _pad_id(self.tokenizer)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        batch_size = max(1, int(batch_size))
        for b in range(0, len(order), batch_size):
            chunk = [i for i in order[b : b + batch_size] if len(seqs[i]) > starts[i]]
            if not chunk:
                continue
            width = max(len(seqs[i]) for i in chunk)
            input_ids = torch.tensor([seqs[i] + [pad] * (width - len(seqs[i])) for i in chunk], device=self.device)
            mask = torch.tensor([[1] * len(seqs[i]) + [0] * (width - len(seqs[i])) for i in chunk], device=self.device)
            # target positions: answer tokens t in [start, len); predicted from position t-1
            target = torch.zeros((len(chunk), width), dtype=torch.bool)
            for r, i in enumerate(chunk):
                target[r, starts[i] : len(seqs[i])] = True
            target = target.to(self.device)
            logits = self.model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits
            pred = logits[:, :-1][target[:, 1:]].float()  # (N, V)
            gold = input_ids[:, 1:][target[:, 1:]]
            nll = -torch.log_softmax(pred, dim=-1).gather(1, gold[:, None]).squeeze(1)
            total += nll.double().sum()
            count += int(gold.numel())
        return float(total.item()), count, nbytes

    @torch.inference_mode()
    def continuation_logprobs(
        self, prompts: Sequence[str], continuations: Sequence[str], batch_size: int, padding: str = "right"
    ) -> list[tuple[float, int]]:
        """(sum of log-probs, number of tokens) of each continuation given its prompt.

        Tokenised as `score` does (prompt with special tokens, continuation without, prompt
        cut from the left when the pair exceeds the context, continuation tokens beyond it
        dropped). Pairs are sorted by length into batches of `batch_size`, padded on the
        `padding` side ("right", or "left" with position ids from the attention mask), on the
        model's device; the result does not depend on either (up to float rounding). An empty
        continuation gives (0.0, 0).
        """
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        if padding not in ("left", "right"):
            raise ValueError(f"padding must be 'left' or 'right', not {padding!r}")
        if not prompts:
            return []
        seqs, starts = [], []
        for p, a in zip(self.encode_prompts(prompts), self.encode_answers(continuations)):
            a = a[: self.context - 1]
            p = p[-(self.context - len(a)) :]
            seqs.append(p + a)
            starts.append(len(p))
        out: list[tuple[float, int]] = [(0.0, 0)] * len(seqs)
        order = sorted((i for i in range(len(seqs)) if len(seqs[i]) > starts[i]), key=lambda i: len(seqs[i]))
        pad = _pad_id(self.tokenizer)
        batch_size = max(1, int(batch_size))
        for b in range(0, len(order), batch_size):
            chunk = order[b : b + batch_size]
            width = max(len(seqs[i]) for i in chunk)
            left = [width - len(seqs[i]) if padding == "left" else 0 for i in chunk]
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            target = torch.zeros((len(chunk), width), dtype=torch.bool)
            for r, i in enumerate(chunk):
                n = len(seqs[i])
                input_ids[r, left[r] : left[r] + n] = torch.tensor(seqs[i])
                mask[r, left[r] : left[r] + n] = 1
                target[r, left[r] + starts[i] : left[r] + n] = True  # continuation tokens
            input_ids, mask, target = input_ids.to(self.device), mask.to(self.device), target.to(self.device)
            kwargs: dict[str, Any] = {}
            if padding == "left":  # positions count real tokens only, as generate() does
                kwargs["position_ids"] = (mask.cumsum(1) - 1).clamp(min=0)
            logits = self.model(input_ids=input_ids, attention_mask=mask, use_cache=False, **kwargs).logits
            # token at position j is predicted from position j - 1
            pred = logits[:, :-1][target[:, 1:]].float()  # (N, V), rows in (batch row, position) order
            gold = input_ids[:, 1:][target[:, 1:]]
            logp = torch.log_softmax(pred, dim=-1).gather(1, gold[:, None]).squeeze(1).double()
            counts = target[:, 1:].sum(1).tolist()
            sums = torch.split(logp, counts)
            for i, s, c in zip(chunk, sums, counts):
                out[i] = (float(s.sum().item()), int(c))
        return out

    def option_logprobs(
        self, prompts: Sequence[str], options_per_prompt: Sequence[Sequence[str]], batch_size: int
    ) -> list[list[float]]:
        """For each prompt, the log-likelihood of each option continuing it: the sum of the
        log-probs of the option's tokens after the prompt (see `continuation_logprobs`)."""
        if len(prompts) != len(options_per_prompt):
            raise ValueError(f"{len(prompts)} prompts but {len(options_per_prompt)} option lists")
        flat_prompts = [p for p, options in zip(prompts, options_per_prompt) for _ in options]
        flat_options = [o for options in options_per_prompt for o in options]
        sums = iter(self.continuation_logprobs(flat_prompts, flat_options, batch_size))
        return [[next(sums)[0] for _ in options] for options in options_per_prompt]

    def checkpoint_bytes(self) -> int:
        """About what `save` writes for a generation's checkpoint: every parameter and buffer
        in its current dtype; with LoRA the adapter's tensors only (the base is written once,
        to the run's initial folder)."""
        if self.lora:
            from crossgen.backends.hf.lora import adapter_bytes

            return adapter_bytes(self.model)
        tensors = [*self.model.parameters(), *self.model.buffers()]
        size = self._save_dtype(expect_bf16_training=self.device.startswith("cuda") and torch.cuda.is_available())
        return sum(
            t.numel() * (t.element_size() if size is None or not t.is_floating_point() else _bytes(size))
            for t in tensors
        )

    def initial_bytes(self) -> int:
        """What `save` writes for a run's starting model: nothing much for a pretrained model
        (a reference to it), else `checkpoint_bytes`."""
        return 0 if self.pretrained is not None and not self.lora else self.checkpoint_bytes()

    def _save_dtype(self, expect_bf16_training: bool = False) -> Optional[torch.dtype]:
        """The dtype full checkpoints are saved in (None: the weights' own): `checkpoint_dtype`,
        whose 'auto' is the training precision: bf16 after an update in bf16 mixed precision."""
        if self.checkpoint_dtype != "auto":
            return getattr(torch, self.checkpoint_dtype)
        return torch.bfloat16 if self.trained_bf16 or expect_bf16_training else None

    def save(self, directory: Path) -> None:
        """save_pretrained (safetensors) of model and tokenizer, atomically.

        With LoRA (lora.py): a model that has a base folder elsewhere writes its adapter only,
        naming that base; otherwise the folder becomes a base folder (the frozen base weights,
        the tokenizer and the adapter in ``adapter/``), and this model's base from then on."""
        directory = Path(directory)
        if self.pretrained is not None and not self.lora:
            from crossgen.backends.hf.reference import write_reference

            write_reference(directory, *self.pretrained, self.model)
            return
        if not self.lora:
            with atomic_path(directory) as tmp, quiet_transformers(), _cast(self.model, self._save_dtype()):
                self.model.save_pretrained(tmp, safe_serialization=True)
                self.tokenizer.save_pretrained(tmp)
            return
        from crossgen.backends.hf import lora

        final = Path(os.path.abspath(directory))
        if self.base_dir is not None and Path(os.path.abspath(self.base_dir)) != final:
            base = Path(os.path.abspath(self.base_dir))
            with atomic_path(directory) as tmp, quiet_transformers():
                lora.save_adapter(self.model, tmp, base)
                lora.write_base_reference(tmp, final, base)
            return
        with atomic_path(directory) as tmp, quiet_transformers():
            adapter = tmp / lora.ADAPTER_SUBDIR
            lora.save_adapter(self.model, adapter, final)
            # The base weights as they were before the adapter was added: unload() takes the
            # LoRA layers out again (without merging); the adapter is then put back from the
            # copy just written, so this model goes on as before whatever happens next.
            base = self.model.unload()
            try:
                base.save_pretrained(tmp, safe_serialization=True)
                self.tokenizer.save_pretrained(tmp)
            finally:
                self.model = lora.load_adapter(base, adapter).to(self.device)
                self.model.eval()
        self.base_dir = final
