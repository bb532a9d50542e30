"""offline_stories: short templated fairy-tale passages (a BookCorpus stand-in, public data).

A story has five sentences: who lives where, a daily routine, a find, what came of it, an
ending. The character fixes the place and the routine, the find fixes what follows, so a
continuation is predictable from its beginning. Passages are about 40 words; the prompt is
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

# character: (home, routines, fixed pronoun or None)
CHARACTERS = {
    "sailor": ("the harbor", ("mended torn sails", "watched the grey tide", "scrubbed the wooden deck"), None),
    "miller": (
        "the old mill",
        ("ground wheat into flour", "turned the heavy millstone", "carried sacks of flour"),
        None,
    ),
    "weaver": ("the narrow lane", ("wove colorful cloth", "spun wool into thread", "dyed yarn deep blue"), None),
    "shepherd": (
        "the green hills",
        ("led the flock over the hills", "played a wooden flute", "counted the sheep at dusk"),
        None,
    ),
    "knight": ("the castle", ("polished a silver sword", "rode a grey horse", "guarded the castle gate"), None),
    "queen": (
        "the palace",
        ("walked in the palace garden", "wrote letters to distant lands", "listened to her advisers"),
        "she",
    ),
    "potter": ("the riverbank", ("shaped clay into jugs", "fired bowls in the kiln", "painted pots with roses"), None),
    "blacksmith": ("the forge", ("beat glowing horseshoes", "stoked the roaring fire", "sharpened old axes"), None),
    "gardener": (
        "the orchard",
        ("planted roses along the wall", "pulled weeds from the beds", "trimmed the tall hedges"),
        None,
    ),
    "innkeeper": (
        "the crossroads",
        ("poured cider for travelers", "swept the dusty floor", "lit candles in every window"),
        None,
    ),
    "baker": ("the bakery", ("baked warm loaves", "kneaded dough before dawn", "sold sweet buns"), None),
    "tailor": ("the market square", ("stitched fine coats", "threaded a tiny needle", "sewed velvet gowns"), None),
}
ADJECTIVES = ("old", "young", "brave", "clever", "tired", "wise", "cheerful", "humble", "lonely", "gentle")
OPENERS = (
    "Once upon a time, {a_adj} {who} lived near {home}.",
    "Long ago, {a_adj} {who} lived by {home}.",
    "There was once {a_adj} {who} who lived near {home}.",
    "In a distant kingdom, {a_adj} {who} lived near {home}.",
)
ROUTINES = ("Every morning, {he} {act}.", "Day after day, {he} {act}.", "Every evening, {he} {act}.")
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
ENDINGS = (
    "From that day on, the {who} {act} with a happy smile.",
    "After that, the {who} never forgot that {time}.",
    "And the {who} {act} for many years.",
)
PRONOUNS = {"he": ("he", "him"), "she": ("she", "her")}


def story(rng: random.Random) -> str:
    who = rng.choice(tuple(CHARACTERS))
    home, routines, fixed = CHARACTERS[who]
    he, him = PRONOUNS[fixed or rng.choice(("he", "she"))]
    act, later = rng.sample(routines, 2)
    time = rng.choice(TIMES)
    found = rng.choice(tuple(FINDS))
    adj = rng.choice(ADJECTIVES)
    a_adj = ("an " if adj[0] in "aeiou" else "a ") + adj
    words = dict(a_adj=a_adj, who=who, home=home, act=act, he=he, He=capitalize(he), him=him, time=time)
    sentences = [
        rng.choice(OPENERS).format(**words),
        rng.choice(ROUTINES).format(**words),
        f"One {time}, {he} found {found}.",
        FINDS[found].format(**words),
        rng.choice(ENDINGS).format(**{**words, "act": later}),
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
