"""offline_stories: short templated fairy-tale passages (a BookCorpus stand-in, public data).

A story has three sentences: who lives where, a find, what came of it. The character fixes
the place and the find fixes what follows, so part of a continuation is predictable from its
beginning. Passages are about 25 words (five sentences and ~40 words until 2026-12-07: the
shorter passages make every step on D* ~40% cheaper, the CPU demo's main cost); the prompt is
the first PROMPT_WORDS words and the answer " " + the rest, as for BookCorpus. Test stories do
not occur in the train split.
"""

from __future__ import annotations

import random
from typing import Optional

from crossgen.data import Example, real_source
from crossgen.tasks.base import GeneratedTask
from crossgen.tasks.books import split_passage
from crossgen.tasks.offline.common import capitalize, draw_unique, rng_for, sizes
from crossgen.tasks.registry import register_task

NAME = "offline_stories"
PROMPT_WORDS = 10

# character: (home, fixed pronoun or None)
CHARACTERS = {
    "sailor": ("the harbor", None),
    "miller": ("the old mill", None),
    "weaver": ("the narrow lane", None),
    "shepherd": ("the green hills", None),
    "knight": ("the castle", None),
    "queen": ("the palace", "she"),
    "potter": ("the riverbank", None),
    "blacksmith": ("the forge", None),
    "gardener": ("the orchard", None),
    "innkeeper": ("the crossroads", None),
    "baker": ("the bakery", None),
    "tailor": ("the market square", None),
}
ADJECTIVES = ("old", "young", "brave", "clever", "tired", "wise", "cheerful", "humble", "lonely", "gentle")
OPENERS = (
    "Once upon a time, {a_adj} {who} lived near {home}.",
    "Long ago, {a_adj} {who} lived by {home}.",
    "There was once {a_adj} {who} who lived near {home}.",
    "In a distant kingdom, {a_adj} {who} lived near {home}.",
)
TIMES = ("evening", "winter night", "stormy day", "foggy dawn", "summer night")
# what was found: what came of it
FINDS = {
    "a golden key": "{He} opened a secret door with it.",
    "a torn map": "{He} followed it to a hidden cave.",
    "a glowing lantern": "{He} carried it through the dark woods.",
    "a wooden chest": "Inside, {he} found a pile of gold.",
    "a strange letter": "It asked {him} to visit the old king.",
    "a lost traveler": "{He} shared supper with the weary stranger.",
    "a silver ring": "{He} returned it to its grateful owner.",
}
PRONOUNS = {"he": ("he", "him"), "she": ("she", "her")}


def story(rng: random.Random) -> str:
    who = rng.choice(tuple(CHARACTERS))
    home, fixed = CHARACTERS[who]
    he, him = PRONOUNS[fixed or rng.choice(("he", "she"))]
    time = rng.choice(TIMES)
    found = rng.choice(tuple(FINDS))
    adj = rng.choice(ADJECTIVES)
    a_adj = ("an " if adj[0] in "aeiou" else "a ") + adj
    words = dict(a_adj=a_adj, who=who, home=home, he=he, He=capitalize(he), him=him)
    sentences = [
        rng.choice(OPENERS).format(**words),
        f"One {time}, {he} found {found}.",
        FINDS[found].format(**words),
    ]
    return " ".join(sentences)


def _example(text: str) -> Example:
    prompt, answer = split_passage(text.split(), PROMPT_WORDS)
    return Example(prompt, answer, real_source(NAME))


def generate(
    seed: int, train_size: Optional[int] = None, test_size: Optional[int] = None
) -> tuple[list[Example], list[Example]]:
    n_train, n_test = sizes(train_size, test_size)
    rng = rng_for(NAME, seed)
    train = [story(rng) for _ in range(n_train)]
    test = draw_unique(story, n_test, rng, exclude=set(train))
    return [_example(t) for t in train], [_example(t) for t in test]


@register_task(NAME)
class OfflineStories(GeneratedTask):
    """The BookCorpus stand-in: passages, nothing to verify."""

    narrative = True

    def generate(
        self, seed: int, train_size: Optional[int], test_size: Optional[int]
    ) -> tuple[list[Example], list[Example]]:
        return generate(seed, train_size, test_size)
