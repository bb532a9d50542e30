"""offline_arithmetic: one- and two-step word problems with small numbers (a GSM8K stand-in).

Seven templates (add, subtract, multiply, divide, add-then-subtract) over NAMES and ITEMS;
the answer is the worked calculation ending in "#### N" like GSM8K, e.g.
"Question: Mia has 3 pears and buys 4 more. How many pears does Mia have now?\\nAnswer:" ->
" 3 + 4 = 7 #### 7". Every count of a plural item is at least 2; numbers stay at or below 36. Test problems are
new: no test prompt occurs in the train split.
"""

from __future__ import annotations

import random
from typing import Optional

from crossgen.data import Example, real_source
from crossgen.tasks.base import GeneratedTask
from crossgen.tasks.gsm8k import verify_final_number
from crossgen.tasks.offline.common import draw_unique, rng_for, sizes
from crossgen.tasks.registry import register_task

NAME = "offline_arithmetic"

NAMES = ("Mia", "Ben", "Ava", "Leo", "Zoe", "Max", "Ivy", "Tom", "Lily", "Sam", "Nora", "Finn")
ITEMS = (
    "pears",
    "plums",
    "apples",
    "coins",
    "marbles",
    "stickers",
    "pencils",
    "cookies",
    "stamps",
    "crayons",
    "beads",
    "cards",
)


def _problem(rng: random.Random) -> tuple[str, str]:
    n, m = rng.sample(NAMES, 2)
    item = rng.choice(ITEMS)
    kind = rng.randrange(7)
    if kind == 0:
        a, b = rng.randint(2, 12), rng.randint(1, 12)
        q = f"{n} has {a} {item} and buys {b} more. How many {item} does {n} have now?"
        return q, f"{a} + {b} = {a + b} #### {a + b}"
    if kind == 1:
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        q = f"{n} collects {a} {item} on Monday and {b} {item} on Tuesday. How many {item} does {n} collect altogether?"
        return q, f"{a} + {b} = {a + b} #### {a + b}"
    if kind == 2:
        a = rng.randint(3, 20)
        b = rng.randint(1, a - 1)
        q = f"{n} has {a} {item} and gives {b} to {m}. How many {item} does {n} have left?"
        return q, f"{a} - {b} = {a - b} #### {a - b}"
    if kind == 3:
        a = rng.randint(3, 20)
        b = rng.randint(1, a - 1)
        q = f"{n} had {a} {item}. {n} dropped {b} of them. How many {item} does {n} have left?"
        return q, f"{a} - {b} = {a - b} #### {a - b}"
    if kind == 4:
        a, b = rng.randint(2, 6), rng.randint(2, 6)
        q = f"{n} has {a} boxes with {b} {item} in each box. How many {item} does {n} have?"
        return q, f"{a} * {b} = {a * b} #### {a * b}"
    if kind == 5:
        a, r = rng.randint(2, 6), rng.randint(2, 6)
        q = f"{n} shares {a * r} {item} equally among {a} friends. How many {item} does each friend get?"
        return q, f"{a * r} / {a} = {r} #### {r}"
    a, b = rng.randint(2, 10), rng.randint(1, 10)
    c = rng.randint(1, a + b - 1)
    q = f"{n} has {a} {item}, buys {b} more and gives {c} to {m}. How many {item} does {n} have now?"
    return q, f"{a} + {b} = {a + b}. {a + b} - {c} = {a + b - c} #### {a + b - c}"


def _example(problem: tuple[str, str]) -> Example:
    q, a = problem
    return Example(f"Question: {q}\nAnswer:", f" {a}", real_source(NAME), {"gold": a.rsplit("#### ", 1)[1]})


def generate(
    seed: int, train_size: Optional[int] = None, test_size: Optional[int] = None
) -> tuple[list[Example], list[Example]]:
    n_train, n_test = sizes(train_size, test_size)
    rng = rng_for(NAME, seed)
    train = [_problem(rng) for _ in range(n_train)]
    test = draw_unique(_problem, n_test, rng, exclude={q for q, _ in train}, key=lambda p: p[0])
    return [_example(p) for p in train], [_example(p) for p in test]


@register_task(NAME)
class OfflineArithmetic(GeneratedTask):
    """The GSM8K stand-in; a completion is right when its "#### N" matches."""

    def generate(
        self, seed: int, train_size: Optional[int], test_size: Optional[int]
    ) -> tuple[list[Example], list[Example]]:
        return generate(seed, train_size, test_size)

    def verify(self, completion: str, example: Example) -> bool:
        return verify_final_number(completion, example)
