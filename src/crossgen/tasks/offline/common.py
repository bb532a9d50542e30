"""Shared pieces of the generated offline tasks: sizes, sampling helpers, vocabulary checks."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Optional, TypeVar

from crossgen.data import Example

T = TypeVar("T")

DEFAULT_TRAIN_SIZE = 3000
DEFAULT_TEST_SIZE = 200

# Words every task may use: the prompt scaffolding and a few English function words.
FUNCTION_WORDS = frozenset(
    [
        "question",
        "answer",
        "choices",
        "a",
        "an",
        "the",
        "of",
        "is",
        "are",
        "in",
        "on",
        "to",
        "and",
        "with",
        "by",
        "for",
        "from",
        "that",
        "these",
        "what",
        "which",
        "how",
        "many",
        "does",
        "do",
        "it",
        "its",
    ]
)

WORD = re.compile(r"[a-z]+|[0-9]+")


def rng_for(name: str, seed: int) -> random.Random:
    """A generator seeded by task name and seed (str seeds are stable across processes)."""
    return random.Random(f"crossgen:{name}:{seed}")


def sizes(train_size: Optional[int], test_size: Optional[int]) -> tuple[int, int]:
    return train_size or DEFAULT_TRAIN_SIZE, test_size or DEFAULT_TEST_SIZE


def cycled(items: Sequence[T], n: int, rng: random.Random) -> list[T]:
    """n items: rounds of `items` in a fresh random order each round (balanced coverage)."""
    out: list[T] = []
    while len(out) < n:
        round_ = list(items)
        rng.shuffle(round_)
        out.extend(round_[: n - len(out)])
    return out


def draw_unique(
    make: Callable[[random.Random], T],
    n: int,
    rng: random.Random,
    exclude: Iterable[Hashable] = (),
    key: Callable[[T], Hashable] = lambda x: x,
) -> list[T]:
    """n items from `make` whose keys are new (not excluded, not repeated); the draw space of
    every offline task is far larger than n, so this ends quickly."""
    seen = set(exclude)
    out: list[T] = []
    tries = 0
    while len(out) < n:
        item = make(rng)
        k = key(item)
        tries += 1
        if k in seen:
            if tries > 1000 * (n + 10):  # pragma: no cover - a too-small space
                raise RuntimeError("offline task generator ran out of new examples")
            continue
        seen.add(k)
        out.append(item)
    return out


def word_types(examples: Iterable[Example], content_only: bool = True) -> set[str]:
    """Lower-cased word types (runs of letters or of digits) in prompts and answers."""
    words: set[str] = set()
    for ex in examples:
        words.update(WORD.findall(f"{ex.prompt} {ex.answer}".lower()))
    return words - FUNCTION_WORDS if content_only else words


def overlap(a: set[str], b: set[str]) -> float:
    """Share of word types shared: |a & b| / min(|a|, |b|) (0 = disjoint, 1 = one contains the other)."""
    return len(a & b) / max(1, min(len(a), len(b)))


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]
