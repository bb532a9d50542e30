"""Task accuracy of one model on every dataset with a notion of a right answer (family "accuracy").

`accuracy_rows(model, data, t, name, cfg)` scores a loaded text model on the first
``evaluation.test_size`` test examples of every task of the run (fixed across generations):

- multiple choice (the examples' ``meta`` has ``choices`` and ``gold``: SciQ, ARC,
  offline_science, offline_reasoning): the log-likelihood of each option " <choice>"
  given the prompt is the sum of the log-probs of the option's tokens after the prompt
  (`GenerativeModel`'s optional ``option_logprobs``). Metric ``acc``: the option of highest
  log-likelihood is gold; ``acc_norm``: the same with each log-likelihood divided by the
  choice's length in characters (as lm-evaluation-harness does); ``chance``: the mean over
  prompts of 1 / number of options (no interval). Ties go to the first option.
- generated answers (meta has ``gold`` but no ``choices``: GSM8K, offline_arithmetic):
  a greedy completion (temperature 0, ``generation.max_new_tokens`` new tokens, batches of
  ``generation.batch_size``), cut at the first "Question:" (`answers.until_stop`), is checked
  by the task's own `verify` (GSM8K: the number after the last "####", canonical, equals
  gold). Metric ``exact_match``.
- narrative datasets and examples without meta (books, stories): no rows.

``value`` is the mean over prompts of the 0/1 outcome; ``low``/``high`` its 95% percentile
bootstrap interval over prompts (`table.interval`, seed 0). Models without text (the
linear backend: no ``option_logprobs``) get no rows.

`ModelMetricWriter` is the loop's ``model_metrics`` callback for this family and
`reference.reference_rows`: per generation it collects every model's rows and writes
gen_NNN/metrics/accuracy.csv and gen_NNN/metrics/reference_perplexity.csv (exactly
`table.COLUMNS`, atomically), skipping a family whose file exists, so a resumed run redoes
only what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import pandas as pd

from crossgen.data import Example
from crossgen.io import read_jsonl, write_table
from crossgen.metrics.reference import GENERATION0, load_reference, reference_rows
from crossgen.metrics.table import family_path, frame, interval, row
from crossgen.tasks import answers

if TYPE_CHECKING:
    from crossgen.config import RunConfig
    from crossgen.data import ExperimentData, TaskSplit
    from crossgen.workflow.loop import ModelEvaluation

ACCURACY = "accuracy"
REFERENCE = "reference_perplexity"
DELIMITER = " "  # between a prompt ("...\nAnswer:") and an option, as in the tasks' answers


def test_sample(task: TaskSplit, cfg: RunConfig) -> list[Example]:
    """The first evaluation.test_size test examples (all when unset), as losses.csv uses."""
    size = cfg.evaluation.test_size
    return list(task.test[:size] if size else task.test)


def answer_kind(examples: Sequence[Example]) -> Optional[str]:
    """'choice' when every example has options, 'generate' when every one has a gold
    answer, else None (nothing to score)."""
    metas = [e.meta or {} for e in examples]
    if examples and all("choices" in m and "gold" in m for m in metas):
        return "choice"
    if examples and all(m.get("gold") is not None for m in metas):
        return "generate"
    return None


def choice_outcomes(
    logprobs: Sequence[Sequence[float]], choices: Sequence[Sequence[str]], gold: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt, (acc, acc_norm) as 0/1: whether the option of highest log-likelihood,
    raw or divided by the choice's character length, is gold (ties: the first option)."""
    acc, norm = [], []
    for option_lls, texts, g in zip(logprobs, choices, gold):
        lls = np.asarray(option_lls, dtype=float)
        lengths = np.array([max(1, len(c)) for c in texts], dtype=float)
        acc.append(float(int(np.argmax(lls)) == g))
        norm.append(float(int(np.argmax(lls / lengths)) == g))
    return np.array(acc), np.array(norm)


def multiple_choice_rows(model: Any, examples: Sequence[Example], t: int, name: str, dataset: str, batch_size: int):
    """acc, acc_norm and chance of `model` on multiple-choice `examples`."""
    choices = [tuple(e.meta["choices"]) for e in examples]  # type: ignore[index]
    gold = [int(e.meta["gold"]) for e in examples]  # type: ignore[index]
    options = [[DELIMITER + c for c in cs] for cs in choices]
    logprobs = model.option_logprobs([e.prompt for e in examples], options, batch_size)
    acc, norm = choice_outcomes(logprobs, choices, gold)
    chance = float(np.mean([1.0 / len(cs) for cs in choices]))
    return [
        row(t, name, dataset, "acc", *interval(acc)),
        row(t, name, dataset, "acc_norm", *interval(norm)),
        row(t, name, dataset, "chance", chance),
    ]


def exact_match(task_name: str, completions: Sequence[str], examples: Sequence[Example]) -> np.ndarray:
    """0/1 per example: the task's `verify` of the completion cut at its first stop sequence."""
    from crossgen.tasks.registry import get_task

    task = get_task(task_name)
    return np.array([float(task.verify(answers.until_stop(c), e)) for c, e in zip(completions, examples)])


def generated_rows(model: Any, examples: Sequence[Example], t: int, name: str, dataset: str, cfg: RunConfig):
    """exact_match of greedy completions of `examples`."""
    greedy = cfg.generation.model_copy(update={"temperature": 0.0})
    completions = model.generate([e.prompt for e in examples], greedy, seed=0)
    return [row(t, name, dataset, "exact_match", *interval(exact_match(dataset, completions, examples)))]


def accuracy_rows(model: Any, data: ExperimentData, t: int, name: str, cfg: RunConfig) -> list[dict]:
    """Rows (table.COLUMNS) of model `name` at generation `t` on every task of `data` with
    answers; see the module doc. Empty for a model without ``option_logprobs``."""
    if not hasattr(model, "option_logprobs"):
        return []
    from crossgen.tasks.registry import get_task

    rows: list[dict] = []
    for task in data.tasks:
        if get_task(task.name).narrative:
            continue
        examples = test_sample(task, cfg)
        kind = answer_kind(examples)
        if kind == "choice":
            rows += multiple_choice_rows(model, examples, t, name, task.name, cfg.evaluation.batch_size)
        elif kind == "generate":
            rows += generated_rows(model, examples, t, name, task.name, cfg)
    return rows


def part_path(family_file: Path, entity: str) -> Path:
    """One entity's rows of a family, before all K are merged (gen_NNN/metrics/parts/)."""
    return family_file.parent / "parts" / f"{family_file.stem}.{entity}.csv"


class ModelMetricWriter:
    """The loop's ``model_metrics`` callback: accuracy and reference perplexity (see the
    module doc). `reference` is a fixed reference model (evaluation.reference_model names
    one), or None for each entity's generation-0 model."""

    def __init__(self, cfg: RunConfig, reference: Any = None):
        ev = cfg.evaluation
        self.families = {ACCURACY: ev.accuracy, REFERENCE: ev.reference_perplexity and ev.embedding_prompts > 0}
        self.reference = reference

    def __call__(self, ev: ModelEvaluation) -> None:
        """Write this model's rows as a part file; whoever finds all K parts written merges
        them into the family's file. Stateless, so entities may run in separate processes
        (two that finish together both merge, into the same bytes)."""
        names = [e.name for e in ev.cfg.entities]
        for family, enabled in self.families.items():
            path = family_path(ev.store.gen_dir(ev.t), family)
            if not enabled or path.exists():
                continue
            part = part_path(path, ev.name)
            if not part.exists():
                write_table(part, frame(self._rows(family, ev)))
            parts = [part_path(path, name) for name in names]
            if all(p.exists() for p in parts):
                write_table(path, pd.concat([pd.read_csv(p) for p in parts], ignore_index=True))

    def _rows(self, family: str, ev: ModelEvaluation) -> list[dict]:
        if family == ACCURACY:
            return accuracy_rows(ev.model, ev.data, ev.t, ev.name, ev.cfg)
        path = ev.store.completions_path(ev.t, ev.name)
        if not path.exists():
            return []
        completions = read_jsonl(path)
        if self.reference is not None:
            reference = self.reference
        elif ev.t == 0:
            reference = ev.model
        else:
            reference = ev.backend.load(ev.store.model_dir(0, ev.name))
        return reference_rows(reference, completions, ev.t, ev.name, ev.cfg)


def model_metrics(cfg: RunConfig) -> Optional[ModelMetricWriter]:
    """The callback for a run of `cfg`, or None when there is nothing to measure (a backend
    without text, or both families switched off). A named reference model is loaded here,
    once, so that a bad one is refused before anything is written."""
    from crossgen.backends.registry import get_backend

    ev = cfg.evaluation
    if not get_backend(cfg.model.backend).TEXT or not (ev.accuracy or ev.reference_perplexity):
        return None
    reference = None
    if ev.reference_perplexity and ev.embedding_prompts > 0 and ev.reference_model != GENERATION0:
        reference = load_reference(cfg)
    return ModelMetricWriter(cfg, reference)
