"""The contract between the workflow loop and a model backend.

The loop (workflow/loop.py) never touches torch or transformers: it builds an initial
model through a `Backend`, and trains, samples from, scores, saves and reloads models only
through the `GenerativeModel` methods below. A backend class is registered under its name
with `crossgen.backends.registry.register_backend` and builds itself and the run's data
from a config (`Backend.from_config`). A backend is free in how it does each step as long
as it keeps these semantics:

- ``train(examples, cfg, seed, weights, progress)`` continues from the model's current
  parameters (the loop decides between restarting and continuing by what it loads) and
  runs exactly ``cfg.max_steps`` optimizer steps over ``examples`` (shuffled with ``seed``,
  cycled if there are fewer examples than steps need). The training text of an example is
  ``prompt + answer`` (plus an end-of-sequence marker for text models).

  ``weights`` (the 'weighted-loss' mixing paradigm) are per-example loss weights. With
  ``weights=None`` the objective of an optimizer step is the backend's plain loss (for a
  causal LM: the mean token cross-entropy over all real tokens of the step's batch). With
  weights, the objective of an optimizer step over the examples B of its batch (all
  gradient-accumulation micro-batches together) is::

      L(B) = sum_{i in B} w_i * loss_i / sum_{i in B} w_i

  where ``loss_i`` is example i's own mean token loss. A zero weight removes an example's
  influence exactly; a batch whose weights are all zero makes a zero update. Note that
  ``weights=[1] * n`` is not the same objective as ``weights=None``: it averages per
  example, not per token.
- ``generate(prompts, cfg, seed, max_new_tokens)`` returns one completion per prompt, in
  order, without the prompt; the same seed gives the same completions.
- ``score(examples, batch_size)`` is the token-average cross-entropy (nats) of the answer
  tokens given the prompt: summed over every answer token of the set, divided by their
  number (the prompt's own tokens are context, never targets).
- ``score_with_bytes(examples, batch_size)`` (optional, text models) is a `Score`: the loss
  of ``score`` and, from the same pass, bits per byte: the summed answer-token nats divided
  by ln 2 times the UTF-8 bytes of the scored answer text. Unlike a per-token loss it does
  not depend on the tokenizer, so models with different tokenizers compare on it
  (`score_of` gives NaN bits per byte for a model without it, e.g. the linear backend).
- ``save(directory)`` writes safetensors weights plus everything ``Backend.load`` needs;
  the directory appears complete or not at all. ``load(save(m))`` scores identically.

Optional, for text models (`LikelihoodModel`; the metrics check with ``isinstance``, and the
linear backend has neither): ``continuation_logprobs(prompts, continuations, batch_size)``
is, per pair, (sum of the log-probs of the continuation's tokens given the prompt, their
number), tokenised as ``score`` does, so that ``-sum / count`` over a set's (prompt, answer)
pairs is ``score``; ``option_logprobs(prompts, options_per_prompt, batch_size)`` is that sum
for each option of each prompt (multiple-choice log-likelihoods). Neither depends on the
batch size or on padding beyond float rounding. Greedy decoding is ``generate`` with
``cfg.temperature == 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Protocol, runtime_checkable

from crossgen.data import Example

if TYPE_CHECKING:  # config imports pydantic/yaml only; keep this module import-light anyway
    from crossgen.config import GenerationConfig, RunConfig, TrainingConfig
    from crossgen.data import ExperimentData

ProgressFn = Callable[[int, int], None]
"""Called as progress(step, total_steps) after each optimizer step."""


@dataclass
class TrainStats:
    """What one `train()` call did.

    steps: optimizer steps taken (== cfg.max_steps for the hf backend).
    tokens: real (non-padding) tokens fed through the model during training.
    seconds: wall-clock time of the call.
    final_loss: the training objective near the end (hf: mean over the last up to 10
      optimizer steps, in the objective's own units, weighted if weights were given).
    """

    steps: int
    tokens: int
    seconds: float
    final_loss: float


@dataclass(frozen=True)
class Score:
    """A test set's loss (`GenerativeModel.score`) and its bits per byte (NaN: no text)."""

    loss: float
    bits_per_byte: float


def score_of(model: Any, examples: Sequence[Example], batch_size: int) -> Score:
    """The model's `Score` of `examples`: `score_with_bytes` where the model has it (one pass),
    else `score` with NaN bits per byte."""
    method = getattr(model, "score_with_bytes", None)
    if method is not None:
        return method(examples, batch_size)
    return Score(float(model.score(examples, batch_size)), float("nan"))


@runtime_checkable
class GenerativeModel(Protocol):
    def train(
        self,
        examples: Sequence[Example],
        cfg: TrainingConfig,
        seed: int,
        weights: Optional[Sequence[float]] = None,
        progress: Optional[ProgressFn] = None,
    ) -> TrainStats: ...

    def generate(
        self,
        prompts: Sequence[Any],
        cfg: GenerationConfig,
        seed: int,
        max_new_tokens: Optional[int] = None,
    ) -> list[Any]: ...

    def score(self, examples: Sequence[Example], batch_size: int) -> float: ...

    def save(self, directory: Path) -> None: ...


@runtime_checkable
class LikelihoodModel(Protocol):
    """What the model-based metrics need beyond `GenerativeModel` (text models only)."""

    def continuation_logprobs(
        self, prompts: Sequence[str], continuations: Sequence[str], batch_size: int
    ) -> list[tuple[float, int]]: ...

    def option_logprobs(
        self, prompts: Sequence[str], options_per_prompt: Sequence[Sequence[str]], batch_size: int
    ) -> list[list[float]]: ...


@runtime_checkable
class Backend(Protocol):
    """What the run builder, the loop, the metrics and the report need from a backend.

    Attributes
    ----------
    TEXT : bool
        Whether prompts and completions are text: the embedding metrics (similarity,
        semantic distance) and the evaluation completions apply only then.
    LOSS_LABEL : str
        What `GenerativeModel.score` measures, as tables and figures label it
        (e.g. "cross-entropy, nats", "MSE").
    for_model : classmethod, optional
        ``for_model(cfg, model_cfg)``: a backend for one entity's own model config without
        loading the data again (entities may have their own models: `RunConfig.model_for`).
    STEPPED : bool, optional
        Whether `train` sees only ``max_steps x batch x accumulation`` examples (an optimizer
        loop). Then a lean run draws only that many examples, since the rest of a larger
        i.i.d. draw would never be seen (equal in distribution). Absent means False.
    WORKER_IMPORTS : tuple of str, optional
        Modules a worker process of the process executor imports as soon as it starts (the
        backend's heavy libraries), while the driver is still preparing the run. Absent
        means none.
    """

    TEXT: bool
    LOSS_LABEL: str

    @classmethod
    def from_config(cls, cfg: RunConfig) -> tuple[ExperimentData, Backend]:
        """The run's data and a backend for `cfg`; every InputError (bad task, model path,
        device) is raised here, before anything is written. Text backends usually load the
        data with `crossgen.tasks.load_experiment_data(cfg)`."""
        ...

    def initial_model(self, real_texts: Sequence[str], seed: int) -> GenerativeModel:
        """The generation-0 starting point (`real_texts`: all real training text of the run,
        e.g. for a tokenizer; `seed`: its initialisation)."""
        ...

    def load(self, directory: Path) -> GenerativeModel:
        """A model written by `GenerativeModel.save`."""
        ...


def backend_for(cfg: RunConfig, model_cfg: Any) -> Any:
    """A backend for one entity's model config (`RunConfig.model_for`): the class's optional
    ``for_model(cfg, model_cfg)``, else ``from_config`` of the run with that model."""
    from crossgen.backends.registry import get_backend

    cls = get_backend(model_cfg.backend)
    make = getattr(cls, "for_model", None)
    if make is not None:
        return make(cfg, model_cfg)
    return cls.from_config(cfg.model_copy(update={"model": model_cfg}))[1]
