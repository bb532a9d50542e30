"""What every task loader shares: the `TaskData` result, record checks, splits and caps.

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
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

from crossgen.data import Example
from crossgen.errors import InputError

ROLES = ("science-qa", "arithmetic", "multiple-choice", "narrative")

HELD_OUT_SHARE = 0.10  # test share when a dataset comes as one file
SPLIT_SEED = 0  # the fixed permutation behind that split


@dataclass
class TaskData:
    """One task's examples. `role` is what kind of task it is (one of ROLES)."""

    name: str
    role: str
    train: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"TaskData(name={self.name!r}, role={self.role!r}, train={len(self.train)}, test={len(self.test)})"


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
    if not list(examples):
        raise InputError(f"task {name} split {split!r} ({where})", "0 examples", "at least one example")


def finish(
    name: str,
    role: str,
    train: list[Example],
    test: list[Example],
    train_size: Optional[int],
    test_size: Optional[int],
    seed: int,
    where: str,
) -> TaskData:
    """Check both splits are non-empty, then apply the caps."""
    check_nonempty(name, "train", train, where)
    check_nonempty(name, "test", test, where)
    return TaskData(name, role, cap_train(train, train_size, seed), cap_test(test, test_size))
