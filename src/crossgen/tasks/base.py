"""The `Task` interface, and what every task loader shares: record checks, splits and caps.

A task is a class registered under its name with `crossgen.tasks.register_task`; the two
kinds shipped here are `GeneratedTask` (crossgen makes the examples, source offline) and
`crossgen.tasks.dataset.DatasetTask` (a dataset read from the hub or local files).

Conventions (the same for every dataset):
- train cap (`train_size`): a subset drawn with the run seed, kept in its original order;
- test cap (`test_size`): the first N examples of the test split, independent of the seed, so
  that every seed of a sweep is scored on the same test examples (and "the first 200 prompts"
  of the paper are well defined);
- a dataset that comes as one file (or a folder with only a train file) is split into
  90% train / 10% test by a fixed permutation (seed 0), again independent of the run seed;
- an empty split is an `InputError`, as is a record without a required field.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from crossgen.data import Example, TaskSplit
from crossgen.errors import InputError
from crossgen.tasks import answers

if TYPE_CHECKING:
    from crossgen.config import TaskConfig

HELD_OUT_SHARE = 0.10  # test share when a dataset comes as one file
SPLIT_SEED = 0  # the fixed permutation behind that split


class Task:
    """One dataset: how its train and test examples are made, and how an answer is checked.

    Subclass (usually `GeneratedTask` or `DatasetTask`), implement `load` (or the hook of
    the kind), and decorate with ``@register_task("name")``, which sets `name`.

    Attributes
    ----------
    name : str
        The registered name (``task.name`` in a config).
    narrative : bool
        Continuous text rather than questions and answers (BookCorpus and its stand-in):
        the prompt is a passage's beginning and the answer its continuation, so there is
        nothing to verify.
    generated : bool
        Made by crossgen (source ``offline``) rather than read from a dataset.
    """

    name: ClassVar[str] = ""
    narrative: ClassVar[bool] = False
    generated: ClassVar[bool] = False

    def load(self, cfg: TaskConfig, seed: int) -> TaskSplit:
        """The task's examples, capped by ``cfg.train_size`` / ``cfg.test_size``.

        Parameters
        ----------
        cfg
            The task's config (name, source, path, hub_id, caps).
        seed
            The run seed (draws the train subset; generated tasks are made from it).

        Returns
        -------
        TaskSplit
            Non-empty train and test splits named `name`.

        Raises
        ------
        InputError
            A source this task does not support, unreadable data, an empty split.
        """
        raise NotImplementedError

    def verify(self, completion: str, example: Example) -> bool:
        """Whether a generated `completion` of ``example.prompt`` gives the right answer.

        The default reads ``example.meta``: with ``choices``, the option the completion
        names (a leading label such as "(B)", else the longest option text it starts
        with) must be ``gold``; without, the completion's first line must start with the
        short answer ``gold`` (case, spacing and end punctuation ignored).

        Parameters
        ----------
        completion
            The model's text after the prompt (as `GenerativeModel.generate` returns it).
        example
            The example whose prompt was completed (a real example of this task).

        Returns
        -------
        bool

        Raises
        ------
        NotImplementedError
            The task has nothing to verify (narrative text) or the example has no meta.
        """
        meta = example.meta or {}
        if "choices" in meta:
            return answers.chosen_option(completion, meta["choices"]) == meta["gold"]
        if "gold" in meta:
            return answers.starts_with_answer(completion, meta["gold"])
        raise NotImplementedError(f"task {self.name} has no answer to verify for {example.prompt!r}")

    def __repr__(self) -> str:
        return f"<task {self.name} ({type(self).__module__}.{type(self).__qualname__})>"


class GeneratedTask(Task):
    """A task crossgen generates, deterministic by seed (source ``offline``).

    The default source ``hub`` is accepted too (there is nothing to download), ``local``
    is an InputError. Implement `generate`; the sizes go to it, so no cap is applied after.
    """

    generated: ClassVar[bool] = True

    def generate(
        self, seed: int, train_size: Optional[int], test_size: Optional[int]
    ) -> tuple[list[Example], list[Example]]:
        """(train, test) examples; None sizes mean the task's defaults."""
        raise NotImplementedError

    def load(self, cfg: TaskConfig, seed: int) -> TaskSplit:
        if cfg.source == "local":
            raise InputError("task.source", cfg.source, f"offline for task {self.name} (it is generated)")
        train, test = self.generate(seed, cfg.train_size, cfg.test_size)
        return finish(self.name, train, test, None, None, seed, "generated")


# --- records --------------------------------------------------------------------------------


def missing(value: Any) -> bool:
    """None, NaN (pandas) or an empty / blank string counts as a missing field."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def require(record: Any, keys: Sequence[str], family: str, where: str, allowed: str) -> list[Any]:
    """The values of `keys` in `record`, or an InputError naming the record and the field."""
    if not isinstance(record, dict):
        raise InputError(f"{family} {where}", f"a {type(record).__name__}, not an object", allowed)
    values = []
    for key in keys:
        value = record.get(key)
        if missing(value):
            raise InputError(f"{family} {where}", f"missing {key!r}", allowed)
        values.append(value)
    return values


def text_of(value: Any) -> str:
    """A field as clean text: numbers (CSV) become strings, outer whitespace is dropped."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


# --- splits and caps ------------------------------------------------------------------------


def cap_train(examples: list[Example], size: Optional[int], seed: int) -> list[Example]:
    """A seeded subset of `size` examples, in the original order (all when size is None)."""
    if size is None or size >= len(examples):
        return list(examples)
    keep = sorted(random.Random(seed).sample(range(len(examples)), size))
    return [examples[i] for i in keep]


def cap_test(examples: list[Example], size: Optional[int]) -> list[Example]:
    """The first `size` examples (all when size is None)."""
    return list(examples) if size is None else list(examples[:size])


def hold_out(items: list[Any], share: float = HELD_OUT_SHARE) -> tuple[list[Any], list[Any]]:
    """Split one list into (train, test) by a fixed permutation; test gets `share` (>= 1 item)."""
    if len(items) < 2:
        return list(items), []
    order = list(range(len(items)))
    random.Random(SPLIT_SEED).shuffle(order)
    n_test = max(1, round(len(items) * share))
    test_idx = sorted(order[:n_test])
    train_idx = sorted(order[n_test:])
    return [items[i] for i in train_idx], [items[i] for i in test_idx]


def check_nonempty(name: str, split: str, examples: Iterable[Example], where: str) -> None:
    """An InputError naming the task, split and origin when `examples` is empty."""
    if not list(examples):
        raise InputError(f"task {name} split {split!r} ({where})", "0 examples", "at least one example")


def finish(
    name: str,
    train: list[Example],
    test: list[Example],
    train_size: Optional[int],
    test_size: Optional[int],
    seed: int,
    where: str,
) -> TaskSplit:
    """Check both splits are non-empty, then apply the caps.

    Parameters
    ----------
    name
        The task's name (the TaskSplit's name, and in error messages).
    train, test
        The full splits.
    train_size, test_size
        The caps (None: keep all); see the module doc for how each is applied.
    seed
        Draws the train subset.
    where
        Where the data came from, for error messages ("generated", "hub <id>", a path).

    Returns
    -------
    TaskSplit
    """
    check_nonempty(name, "train", train, where)
    check_nonempty(name, "test", test, where)
    return TaskSplit(name, cap_train(train, train_size, seed), cap_test(test, test_size))
