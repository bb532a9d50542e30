"""offline_reasoning: multiple-choice comparisons over fixed scales (an ARC stand-in).

Four SCALES (weight, speed, warmth, height), each an ordered list of eight objects. A question
asks for the top or bottom of three or four choices ("Which of these is the heaviest?") or
for the one choice above / below a named object ("Which of these is heavier than a hammer?",
where exactly one choice is). Prompt "Question: ...\\nChoices: (A) .. (B) .. (C) ..\\nAnswer:",
answer " {text of the correct choice}". Test prompts do not occur in the train split.
"""

from __future__ import annotations

import random
import string
from typing import Optional

from crossgen.data import Example, real_source
from crossgen.tasks.base import GeneratedTask
from crossgen.tasks.offline.common import draw_unique, rng_for, sizes
from crossgen.tasks.registry import register_task

NAME = "offline_reasoning"

# name: (objects from low to high, questions for the top, for the bottom, "more than", "less than")
SCALES = {
    "weight": (
        ("feather", "paperclip", "teaspoon", "hammer", "bicycle", "piano", "tractor", "locomotive"),
        ("Which of these is the heaviest?", "Which object carries the greatest weight?"),
        ("Which of these is the lightest?", "Which object carries the smallest weight?"),
        "Which of these is heavier than {x}?",
        "Which of these is lighter than {x}?",
    ),
    "speed": (
        ("rowboat", "tricycle", "skateboard", "motorbike", "racecar", "helicopter", "jetliner", "rocket"),
        ("Which of these is the fastest?", "Which vehicle moves the quickest?"),
        ("Which of these is the slowest?", "Which vehicle moves the least quickly?"),
        "Which of these is faster than {x}?",
        "Which of these is slower than {x}?",
    ),
    "warmth": (
        ("snowball", "freezer", "puddle", "bathtub", "teakettle", "toaster", "furnace", "blowtorch"),
        ("Which of these is the hottest?", "Which object feels the warmest?"),
        ("Which of these is the coldest?", "Which object feels the coolest?"),
        "Which of these is hotter than {x}?",
        "Which of these is colder than {x}?",
    ),
    "height": (
        ("doormat", "footstool", "bookshelf", "streetlamp", "flagpole", "billboard", "skyscraper", "antenna"),
        ("Which of these is the tallest?", "Which object stands the highest?"),
        ("Which of these is the shortest?", "Which object stands the lowest?"),
        "Which of these is taller than {x}?",
        "Which of these is shorter than {x}?",
    ),
}


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _problem(rng: random.Random) -> tuple[str, tuple[str, ...], str]:
    objects, top, bottom, more, less = SCALES[rng.choice(tuple(SCALES))]
    kind = rng.randrange(4)
    if kind < 2:  # superlative over 3 or 4 choices
        choices = rng.sample(objects, rng.choice((3, 4)))
        ranks = [objects.index(c) for c in choices]
        answer = choices[ranks.index(max(ranks))] if kind == 0 else choices[ranks.index(min(ranks))]
        q = rng.choice(top if kind == 0 else bottom)
        return q, tuple(choices), answer
    # comparative: exactly one choice lies above (kind 2) / below (kind 3) the reference object
    if kind == 2:
        ref = rng.randrange(2, len(objects) - 1)  # at least two objects below, one above
        answer = objects[rng.randrange(ref + 1, len(objects))]
        others = rng.sample(objects[:ref], 2)
        template = more
    else:
        ref = rng.randrange(1, len(objects) - 2)  # at least one below, two above
        answer = objects[rng.randrange(0, ref)]
        others = rng.sample(objects[ref + 1 :], 2)
        template = less
    choices = [answer, *others]
    rng.shuffle(choices)
    return template.format(x=_article(objects[ref])), tuple(choices), answer


def _example(problem: tuple[str, tuple[str, ...], str]) -> Example:
    q, choices, answer = problem
    listed = " ".join(f"({string.ascii_uppercase[i]}) {c}" for i, c in enumerate(choices))
    return Example(
        f"Question: {q}\nChoices: {listed}\nAnswer:",
        f" {answer}",
        real_source(NAME),
        {"choices": choices, "gold": choices.index(answer)},
    )


def generate(
    seed: int, train_size: Optional[int] = None, test_size: Optional[int] = None
) -> tuple[list[Example], list[Example]]:
    n_train, n_test = sizes(train_size, test_size)
    rng = rng_for(NAME, seed)
    train = [_problem(rng) for _ in range(n_train)]
    test = draw_unique(_problem, n_test, rng, exclude={p[:2] for p in train}, key=lambda p: p[:2])
    return [_example(p) for p in train], [_example(p) for p in test]


@register_task(NAME)
class OfflineReasoning(GeneratedTask):
    """The ARC stand-in; `Example.meta` holds the choices and the gold index."""

    def generate(
        self, seed: int, train_size: Optional[int], test_size: Optional[int]
    ) -> tuple[list[Example], list[Example]]:
        return generate(seed, train_size, test_size)
