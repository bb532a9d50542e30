"""The data that flows through the workflow: examples, one task's splits, a run's tasks.

`Example` is one (prompt, answer) pair. Text tasks use strings (the training text is
prompt + answer; the answer carries its own leading separator). The linear backend uses a
feature vector as prompt and a float as answer. `source` says where an example came from:
"real:<task>" or "synthetic:<entity>:<generation>", so pools can be traced and saved.
`meta` holds what a task knows about the right answer beyond the answer text (see
`Example`); synthetic examples have none.

`TaskSplit` is one dataset's train and test examples (what `crossgen.tasks.load_task`
returns and what the loop trains and scores on); `ExperimentData` is a run's private
tasks (one per entity) and its public data. `derive_seed` makes every seed of a run (the
loop's and the backends' data draws alike).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


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
class ExperimentData:
    """Every dataset of a run.

    Parameters
    ----------
    private
        One `TaskSplit` per entity, in entity order (D~k).
    public
        The public data D*.
    """

    private: list[TaskSplit]
    public: TaskSplit

    @property
    def tasks(self) -> list[TaskSplit]:
        """The private tasks then the public data (the order of every loss table)."""
        return [*self.private, self.public]


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
