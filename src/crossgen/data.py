"""The data that flows through the workflow: examples, one task's splits, a run's tasks.

`Example` is one (prompt, answer) pair. Text tasks use strings (the training text is
prompt + answer; the answer carries its own leading separator). The linear backend uses a
feature vector as prompt and a float as answer. `source` says where an example came from:
"real:<task>" or "synthetic:<entity>:<generation>", so pools can be traced and saved.
`meta` holds what a task knows about the right answer beyond the answer text (see
`Example`); synthetic examples have none.

`TaskSplit` is one dataset's train and test examples (what `crossgen.tasks.load_task`
returns and what the loop trains and scores on); `ExperimentData` is a run's private
tasks (one per entity) and its public data, and with `fresh_real` the real training data
of every generation (`FreshReal`, cut by `fresh_chunks`). `derive_seed` makes every seed
of a run (the loop's and the backends' data draws alike).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from crossgen.errors import InputError


@dataclass(frozen=True)
class Example:
    """One training or test example.

    Parameters
    ----------
    prompt, answer
        The context and its continuation (strings for text tasks; a feature vector and a
        float for the linear backend).
    source
        "real:<task>" or "synthetic:<entity>:<generation>".
    meta
        Read-only facts about the right answer, filled by task loaders where the dataset
        has them (None otherwise): ``"choices"`` (tuple of option texts, for
        multiple-choice tasks) with ``"gold"`` the index of the correct option, or, for a
        task without options, ``"gold"`` the canonical short answer (GSM8K: the number
        after ``####``). Not part of the hash, so an Example stays hashable when its
        prompt and answer are.
    """

    prompt: Any
    answer: Any
    source: str = ""
    meta: Optional[Mapping[str, Any]] = field(default=None, hash=False)

    @property
    def text(self) -> str:
        """The training text: prompt + answer."""
        return f"{self.prompt}{self.answer}"


@dataclass
class TaskSplit:
    """One dataset as the loop sees it: a private task of an entity, or the public data.

    Parameters
    ----------
    name
        The task's name (``task.name`` of the config); tables and pools use it.
    train, test
        The examples of each split, in a fixed order.
    """

    name: str
    train: list[Example] = field(default_factory=list)
    test: list[Example] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"TaskSplit(name={self.name!r}, train={len(self.train)}, test={len(self.test)})"


@dataclass
class FreshReal:
    """The real training data of every generation of a `fresh_real` run.

    Parameters
    ----------
    private
        ``private[k][t]``: entity k's private training examples at generation t.
    public
        ``public[t]``: the public training examples at generation t (shared by all entities).
    """

    private: list[list[list[Example]]]
    public: list[list[Example]]


@dataclass
class ExperimentData:
    """Every dataset of a run.

    Parameters
    ----------
    private
        One `TaskSplit` per entity, in entity order (D~k).
    public
        The public data D*.
    fresh
        With `fresh_real`, the real training data of every generation (chunk 0 is each
        split's ``train``); None: every generation trains on ``train``.
    """

    private: list[TaskSplit]
    public: TaskSplit
    fresh: Optional[FreshReal] = None

    @property
    def tasks(self) -> list[TaskSplit]:
        """The private tasks then the public data (the order of every loss table)."""
        return [*self.private, self.public]

    def private_train(self, k: int, t: int) -> list[Example]:
        """Entity k's private training examples at generation t (D~k, or its fresh chunk t)."""
        return self.private[k].train if self.fresh is None else self.fresh.private[k][t]

    def public_train(self, t: int) -> list[Example]:
        """The public training examples at generation t (D*, or its fresh chunk t)."""
        return self.public.train if self.fresh is None else self.fresh.public[t]


def _key(example: Example) -> Hashable:
    return (example.prompt, example.answer)


def fresh_chunks(
    what: str,
    dataset: Sequence[Example],
    first: Sequence[Example],
    test_prompts: set[Any],
    chunks: int,
    seed: int,
) -> list[list[Example]]:
    """`chunks` disjoint training sets of ``len(first)`` examples each: `first` (the data of
    generation 0), then seeded draws without replacement from the rest of `dataset`.

    The rest is every example of `dataset` that is not an exact repeat (prompt and answer) of
    an example of `first` or of an earlier one, and whose prompt is not a test prompt, in
    dataset order; a seeded permutation of it is cut into consecutive chunks. So no example
    is trained on at two generations, and none repeats a test prompt.

    Parameters
    ----------
    what
        How the error names the dataset, e.g. "entity e0 (task sciq)".
    dataset
        The dataset's whole training split.
    first
        Generation 0's examples (the run's usual training split, part of `dataset`).
    test_prompts
        Prompts that fresh examples must not have (the test split's).
    chunks
        T + 1: one per generation.
    seed
        Seeds the permutation.

    Raises
    ------
    InputError
        On ``fresh_real`` when `dataset` holds fewer than ``chunks x len(first)`` usable
        examples, naming both numbers.
    """
    n = len(first)
    seen = {_key(e) for e in first}
    rest = []
    for e in dataset:
        key = _key(e)
        if key in seen or e.prompt in test_prompts:
            continue
        seen.add(key)
        rest.append(e)
    need, have = chunks * n, n + len(rest)
    if have < need:
        raise InputError(
            "fresh_real",
            True,
            f"datasets with enough training examples: {what} needs {chunks} generations x {n} = {need}, "
            f"and its train split has {have}: generation 0's {n} and {len(rest)} more that repeat none of "
            "them and no test prompt",
        )
    order = np.random.default_rng(seed).permutation(len(rest))
    drawn = [rest[int(i)] for i in order[: need - n]]
    return [list(first)] + [drawn[i * n : (i + 1) * n] for i in range(chunks - 1)]


def real_source(task: str) -> str:
    """The `source` of a real example of `task`."""
    return f"real:{task}"


def synthetic_source(entity: str, generation: int) -> str:
    """The `source` of an example written by `entity`'s model of `generation`."""
    return f"synthetic:{entity}:{generation}"


def derive_seed(run_seed: int, *keys: int) -> int:
    """An independent 31-bit seed for one (generation, entity, purpose) of a run.

    Parameters
    ----------
    run_seed
        The run's seed.
    *keys
        What the seed is for (the loop's purposes are listed in workflow/loop.py; never
        renumber them: results depend on them).

    Returns
    -------
    int
        A seed in [0, 2**31).
    """
    return int(np.random.SeedSequence([run_seed, *keys]).generate_state(1)[0] >> 1)
