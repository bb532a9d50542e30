"""Training a causal LM through transformers' `Trainer` (one generation's update).

Pieces: the tokenised examples as a plain list dataset, a right-padding collator that
builds labels (padding masked with -100) and carries optional per-example weights, a
`Trainer` subclass that applies the weighted loss and counts tokens without per-step
host syncs, and a callback that forwards progress. `build_trainer` assembles them from a
`TrainingConfig`; `HFModel.train` (model.py) calls `run_training`.

Only public, documented Trainer and torch APIs are used: overrides of `compute_loss`,
`training_step`, `get_batch_samples` and `floating_point_ops`, the `compute_loss_func`
argument, `optimizer.state` and `model.zero_grad`. Python's `gc.freeze` keeps the
Trainer's garbage collection (accelerate's `free_memory` at the start of every `train()`)
from walking the whole heap (see `_collect_new_objects_only`).

Weighted loss (mixing paradigm 'weighted-loss'), per optimizer step over the examples B
of all its gradient-accumulation micro-batches:

    L(B) = sum_{i in B} w_i * loss_i / sum_{i in B} w_i,
    loss_i = mean over the target tokens t of example i of -log p(x_t | x_<t)

(target tokens: every real token after the first, padding excluded). Each micro-batch
contributes sum_{i in micro} w_i loss_i / W with W the whole step's weight sum, so the
accumulated gradient is exactly that of L(B). The loss is computed by `StepWeightedLoss`,
passed as the Trainer's `compute_loss_func`: the documented contract of that argument is
a loss already normalised over the whole accumulated batch, so `training_step` does not
divide it by the number of accumulation steps again (transformers 4.46 to 5.x alike).
Without weights the Trainer's own loss is used: the token mean over the whole accumulated
batch.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from crossgen.backends.hf.logging import quiet_transformers

IGNORE = -100
FUSED_ADAMW = tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 4)  # CPU support from 2.4


@dataclass(frozen=True)
class Reporting:
    """Where the Trainer's own reporting (`report_to`) sends the training curve of the update
    about to train: experiment tracking (`crossgen.tracking`) sets `REPORTING` before each
    update; unset (the default), nothing is logged or reported."""

    report_to: str  # "tensorboard", "wandb" or "mlflow"
    run_name: str
    logging_dir: Optional[str] = None  # tensorboard: this update's event folder
    logging_steps: int = 10


REPORTING: ContextVar[Optional[Reporting]] = ContextVar("crossgen_trainer_reporting", default=None)


class ListDataset(torch.utils.data.Dataset):
    """Rows {"input_ids": list[int]} (+ "weight": float)."""

    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


class Collator:
    """Right-pads a list of rows into input_ids, attention_mask, labels (+ weight)."""

    def __init__(self, pad_token_id: int):
        self.pad = int(pad_token_id)

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids, mask, labels = [], [], []
        for r in rows:
            seq = r["input_ids"]
            fill = width - len(seq)
            ids.append(seq + [self.pad] * fill)
            mask.append([1] * len(seq) + [0] * fill)
            labels.append(seq + [IGNORE] * fill)
        batch = {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
        }
        if "weight" in rows[0]:
            batch["weight"] = torch.tensor([float(r["weight"]) for r in rows], dtype=torch.float32)
        return batch


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of each row (labels == -100 are not targets).

    logits (B, T, V) predict labels shifted by one; rows without targets give 0.
    """
    targets = labels[:, 1:]
    token = F.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), targets, ignore_index=IGNORE, reduction="none"
    )  # (B, T-1), zero where ignored
    count = (targets != IGNORE).sum(dim=1)
    return token.sum(dim=1) / count.clamp(min=1)


def weighted_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, total_weight: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """sum_i w_i loss_i / total_weight (total_weight defaults to this batch's sum of w).

    A zero total weight gives a zero loss (and zero gradient) instead of NaN.
    """
    losses = per_example_loss(logits, labels)
    weights = weights.to(losses.dtype)
    total = weights.sum() if total_weight is None else total_weight.to(losses.dtype)
    return (weights * losses).sum() / total.clamp(min=torch.finfo(losses.dtype).tiny)


class StepWeightedLoss:
    """The `compute_loss_func` of a weighted run: sum_{i in micro} w_i loss_i / W.

    `CrossgenTrainer.compute_loss` hands over the micro-batch's weights and W (the whole
    optimizer step's weight sum while training; None: this batch's own sum) through
    `prepare` just before the Trainer calls this with the model's outputs.
    """

    def __init__(self) -> None:
        self.weights: Optional[torch.Tensor] = None
        self.total: Optional[torch.Tensor] = None

    def prepare(self, weights: Optional[torch.Tensor], total: Optional[torch.Tensor]) -> None:
        self.weights, self.total = weights, total

    def __call__(self, outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        weights, self.weights = self.weights, None
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        if weights is None:  # a batch without weights: the plain token mean
            return token_mean_loss(logits, labels, num_items_in_batch)
        return weighted_loss(logits, labels, weights, self.total)


def token_mean_loss(logits: torch.Tensor, labels: torch.Tensor, num_items: Any = None) -> torch.Tensor:
    """Next-token cross-entropy summed over targets / `num_items` (default: their number),
    as a causal LM computes its loss."""
    targets = labels[:, 1:]
    total = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), targets, ignore_index=IGNORE, reduction="sum")
    count = (targets != IGNORE).sum() if num_items is None else num_items
    return total / torch.as_tensor(count, device=total.device).clamp(min=1)


class CrossgenTrainer(Trainer):
    """Trainer with optional per-example loss weights and cheap bookkeeping.

    - weights arrive as a "weight" column (remove_unused_columns=False) and never reach
      the model's forward: `compute_loss` takes them out and hands them to the
      `StepWeightedLoss` given as `compute_loss_func`;
    - the weight sum of a whole optimizer step is taken in `get_batch_samples`, which
      the Trainer calls once per step with all its micro-batches;
    - real tokens and per-step losses are accumulated as device tensors (one host sync
      at the end, not one per step);
    - FLOP counting (a parameter walk per micro-batch) is skipped.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.weighted_loss = self.compute_loss_func if isinstance(self.compute_loss_func, StepWeightedLoss) else None
        self._step_weight: Optional[torch.Tensor] = None
        self._tokens: Optional[torch.Tensor] = None
        self._losses: list[tuple[int, torch.Tensor]] = []

    def release(self) -> None:
        """Free the Adam moments and gradients now, through public objects (the Trainer
        and its accelerator hold reference cycles, so dropping them waits for the
        garbage collector)."""
        if self.optimizer is not None:
            self.optimizer.state.clear()
        if self.model is not None:
            self.model.zero_grad(set_to_none=True)

    def get_batch_samples(self, *args: Any, **kwargs: Any):
        batch_samples, num_items = super().get_batch_samples(*args, **kwargs)
        if self.weighted_loss is not None and batch_samples:
            self._step_weight = sum(b["weight"].sum() for b in batch_samples).to(self.args.device)
        return batch_samples, num_items

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.weighted_loss is not None:
            inputs = dict(inputs)
            weights = inputs.pop("weight", None)
            self.weighted_loss.prepare(weights, self._step_weight if model.training else None)
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def training_step(self, model, inputs, num_items_in_batch=None):
        mask = inputs["attention_mask"]
        n = mask.sum()
        self._tokens = n if self._tokens is None else self._tokens + n
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._losses.append((self.state.global_step, loss.detach()))
        return loss

    def floating_point_ops(self, inputs):
        return 0

    # -- results ------------------------------------------------------------------
    def tokens_seen(self) -> int:
        return int(self._tokens.item()) if self._tokens is not None else 0

    def final_loss(self, last_steps: int = 10) -> float:
        """Mean step objective over the last `last_steps` optimizer steps."""
        if not self._losses:
            return float("nan")
        steps: dict[int, torch.Tensor] = {}
        for step, loss in self._losses:
            steps[step] = loss if step not in steps else steps[step] + loss
        tail = [steps[s] for s in sorted(steps)[-last_steps:]]
        return float(torch.stack(tail).float().mean().item())


@contextlib.contextmanager
def _collect_new_objects_only() -> Iterator[None]:
    """Inside, garbage collections walk only objects created inside.

    Every `Trainer.train()` starts with accelerate's `free_memory()`, whose `gc.collect()`
    walks the whole heap: 0.2-0.4 s on a CPU with torch and transformers loaded (~0.5M
    objects), often more than a small update's training. `gc.freeze()` moves the objects
    that exist now out of the collector's sight and `gc.unfreeze()` puts them back in the
    oldest generation, so later collections see them as before (garbage among them is
    only collected after this block, never lost). Skipped when the process has frozen
    objects of its own, which `unfreeze` would release.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class ProgressForward(TrainerCallback):
    def __init__(self, progress: Callable[[int, int], None]):
        self.progress = progress

    def on_step_end(self, args, state, control, **kwargs):
        self.progress(state.global_step, state.max_steps)


def bf16_training(cfg, device: str) -> bool:
    """Whether an update with TrainingConfig `cfg` runs in bf16 mixed precision on `device`."""
    return (
        cfg.bf16 in (True, "auto")
        and device.startswith("cuda")
        and torch.cuda.is_available()
        and torch.cuda.is_bf16_supported()
    )


def training_arguments(cfg, seed: int, output_dir: str, device: str) -> TrainingArguments:
    """TrainingArguments for one update (Table 9 of the paper where it applies)."""
    use_bf16 = bf16_training(cfg, device)
    return TrainingArguments(
        output_dir=output_dir,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        # transformers 5.x dropped warmup_ratio; warmup_steps < 1 means a ratio but 1.0
        # would mean one step, so pass the step count (the old ceil(ratio * steps)).
        warmup_steps=math.ceil(cfg.warmup_ratio * cfg.max_steps),
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        weight_decay=cfg.weight_decay,
        # one fused kernel for all parameters (transformers' own default from torch 2.8): on a
        # CPU, the per-tensor loop of "adamw_torch" took ~15% of a small model's step
        optim="adamw_torch_fused" if FUSED_ADAMW else "adamw_torch",
        bf16=use_bf16,
        seed=seed,
        data_seed=seed,
        save_strategy="no",
        eval_strategy="no",
        **_reporting(REPORTING.get()),
        disable_tqdm=True,
        log_level="error",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=device.startswith("cuda"),
        use_cpu=device == "cpu",
        skip_memory_metrics=True,
        include_num_input_tokens_seen="no",
        **_length_grouping(cfg.group_by_length),
    )


def _reporting(reporting: Optional[Reporting]) -> dict[str, Any]:
    """The logging arguments: none, or a curve every `logging_steps` steps to `report_to`."""
    if reporting is None:
        return {"report_to": "none", "logging_strategy": "no"}
    args: dict[str, Any] = {
        "report_to": [reporting.report_to],
        "run_name": reporting.run_name,
        "logging_strategy": "steps",
        "logging_steps": reporting.logging_steps,
        "logging_first_step": True,
    }
    if reporting.logging_dir is not None and "logging_dir" in TrainingArguments.__dataclass_fields__:
        args["logging_dir"] = reporting.logging_dir  # transformers < 5; 5.x reads TENSORBOARD_LOGGING_DIR
    return args


@contextlib.contextmanager
def _tensorboard_dir(reporting: Optional[Reporting]) -> Iterator[None]:
    """TENSORBOARD_LOGGING_DIR while the Trainer (and its TensorBoardCallback) is built."""
    if reporting is None or reporting.logging_dir is None:
        yield
        return
    old = os.environ.get("TENSORBOARD_LOGGING_DIR")
    os.environ["TENSORBOARD_LOGGING_DIR"] = reporting.logging_dir
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = old


def _length_grouping(on: bool) -> dict[str, Any]:
    """Batches of similar lengths (less padding): transformers >= 5 names it
    train_sampling_strategy, older releases group_by_length."""
    if not on:
        return {}
    if "train_sampling_strategy" in TrainingArguments.__dataclass_fields__:
        return {"train_sampling_strategy": "group_by_length"}
    return {"group_by_length": True}


def build_trainer(
    model,
    rows: list[dict[str, Any]],
    pad_token_id: int,
    cfg,
    seed: int,
    device: str,
    output_dir: str,
    progress: Optional[Callable[[int, int], None]] = None,
) -> CrossgenTrainer:
    args = training_arguments(cfg, seed, output_dir, device)
    with _tensorboard_dir(REPORTING.get()):
        trainer = CrossgenTrainer(
            model=model,
            args=args,
            data_collator=Collator(pad_token_id),
            train_dataset=ListDataset(rows),
            compute_loss_func=StepWeightedLoss() if "weight" in rows[0] else None,
            callbacks=[ProgressForward(progress)] if progress else None,
        )
    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    return trainer


def run_training(
    model,
    rows: list[dict[str, Any]],
    pad_token_id: int,
    cfg,
    seed: int,
    device: str,
    progress: Optional[Callable[[int, int], None]] = None,
) -> tuple[int, int, float]:
    """Train `model` in place.

    Parameters
    ----------
    model
        A transformers causal LM, on `device`.
    rows
        {"input_ids": list[int]} per example, with "weight": float for the weighted loss.
    pad_token_id
        The padding token (its positions are masked, never targets).
    cfg
        A `TrainingConfig`.
    seed
        Shuffling, dropout and the Trainer's own seeding.
    device
        "cpu", "cuda[:N]" or "mps".
    progress
        Called as progress(step, total) after each optimizer step.

    Returns
    -------
    (steps, tokens, final_loss)
        Optimizer steps taken, real tokens seen, mean objective of the last 10 steps.

    Leaves the model as found apart from its weights: eval mode, the accelerate autocast
    wrapper removed, config.use_cache restored; the optimizer state is freed on return.
    """
    use_cache = getattr(model.config, "use_cache", None)
    # quiet: the Trainer sets the global transformers verbosity from log_level; restore it after
    with (
        _collect_new_objects_only(),
        tempfile.TemporaryDirectory(prefix="crossgen-trainer-") as out,
        quiet_transformers(),
    ):
        trainer = build_trainer(model, rows, pad_token_id, cfg, seed, device, out, progress)
        trainer.train()
        steps = trainer.state.global_step
        tokens = trainer.tokens_seen()
        loss = trainer.final_loss()
        unwrapped = trainer.accelerator.unwrap_model(trainer.model_wrapped, keep_fp32_wrapper=False)
        if unwrapped is not model:  # never expected on a single device; keep the weights anyway
            model.load_state_dict(unwrapped.state_dict())
        trainer.release()
        del trainer
        gc.collect()  # the Trainer's cycles, now: only objects created since the freeze are walked
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        elif device.startswith("mps"):
            torch.mps.empty_cache()
    if use_cache is not None:
        model.config.use_cache = use_cache
    model.eval()
    return steps, tokens, loss
