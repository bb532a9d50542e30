"""offline_science: short science questions over a fixed table of facts (a SciQ stand-in).

FACTS holds 68 (relation, subject, answer) triples in six relations; each relation has five
question templates. For every fact one template is held out (chosen by the seed): train
questions use the other four, test questions the held-out one, so the test asks known facts
in a phrasing not seen with that fact. Prompt "Question: {question}\\nAnswer:", answer
" {answer}", e.g. "Question: What does a leaf make?\\nAnswer:" -> " sugar".

Like SciQ's, an example's `Example.meta` holds options for multiple-choice scoring: the
answer and DISTRACTORS other answers of the same relation ("kind": other animal groups,
"unit": other units, ...), in a random order, with gold the answer's index. They are drawn
from their own seeded streams (one per split), so the questions and answers are those drawn
before options existed. The prompt does not list the options, so a generated completion
is checked as a short answer (see `OfflineScience.verify`).
"""

from __future__ import annotations

import random
from typing import Optional

from crossgen.data import Example, real_source
from crossgen.tasks import answers
from crossgen.tasks.base import GeneratedTask
from crossgen.tasks.offline.common import capitalize, cycled, rng_for, sizes
from crossgen.tasks.registry import register_task

NAME = "offline_science"
DISTRACTORS = 3  # wrong options per question, as in SciQ

TEMPLATES = {
    "kind": (
        "What kind of animal is {s}?",
        "{S} is what kind of animal?",
        "To which animal group does {s} belong?",
        "Which animal group includes {s}?",
        "Name the animal group of {s}.",
    ),
    "unit": (
        "What unit is used to measure {s}?",
        "In what unit is {s} measured?",
        "{S} is measured in which unit?",
        "Which unit do scientists use for {s}?",
        "Name the unit of {s}.",
    ),
    "makes": (
        "What does {s} make?",
        "What is made by {s}?",
        "{S} makes what substance?",
        "Which substance comes from {s}?",
        "Name the substance that {s} makes.",
    ),
    "organ": (
        "Which organ {s}?",
        "What organ of the body {s}?",
        "In the body, which organ {s}?",
        "Name the organ that {s}.",
        "The organ that {s} is called what?",
    ),
    "planet": (
        "Which planet is {s}?",
        "What planet is {s}?",
        "Name the planet that is {s}.",
        "Of all the planets, which is {s}?",
        "The planet that is {s} is called what?",
    ),
    "material": (
        "What is {s} mostly made of?",
        "{S} is mostly made of what?",
        "What substance makes up most of {s}?",
        "Name the main substance in {s}.",
        "Most of {s} is made of what?",
    ),
}

_FACTS = {
    "kind": """a frog:amphibian|a toad:amphibian|a salamander:amphibian|a newt:amphibian|a whale:mammal|
        a bat:mammal|a dolphin:mammal|a shark:fish|a salmon:fish|a snake:reptile|a lizard:reptile|
        a turtle:reptile|an eagle:bird|a penguin:bird|an ant:insect|a beetle:insect|a spider:arachnid|
        a scorpion:arachnid|an octopus:mollusk|a lobster:crustacean""",
    "unit": """force:newtons|energy:joules|power:watts|mass:kilograms|electric current:amperes|
        voltage:volts|resistance:ohms|pressure:pascals|frequency:hertz|electric charge:coulombs|
        absolute temperature:kelvins|radioactivity:becquerels""",
    "makes": """a leaf:sugar|a bee:honey|a spider:silk|a volcano:lava|the liver:bile|the stomach:acid|
        the pancreas:insulin|an oyster:pearls|a cloud:rain|a plant:oxygen""",
    "organ": """pumps blood:the heart|takes in oxygen:the lungs|filters the blood:the kidneys|
        digests food:the stomach|controls thinking:the brain|senses light:the eyes|
        senses sound:the ears|covers the body:the skin|stores bile:the gallbladder|
        absorbs nutrients:the small intestine""",
    "planet": """closest to the sun:Mercury|the largest:Jupiter|known for its bright rings:Saturn|
        called the red planet:Mars|our home:Earth|covered in thick acid clouds:Venus|
        farthest from the sun:Neptune|tilted on its side:Uranus""",
    "material": """diamond:carbon|ice:water|bone:calcium|glass:sand|steel:iron|the sun:hydrogen|
        brass:copper|air:nitrogen""",
}

FACTS: tuple[tuple[str, str, str], ...] = tuple(
    (relation, subject.strip(), answer.strip())
    for relation, table in _FACTS.items()
    for subject, answer in (item.split(":") for item in table.split("|"))
)


def question(relation: str, subject: str, template: int) -> str:
    return TEMPLATES[relation][template].format(s=subject, S=capitalize(subject))


def _answers_of(relation: str) -> list[str]:
    """The distinct answers of one relation, in table order."""
    return list(dict.fromkeys(answer for r, _, answer in FACTS if r == relation))


def _example(fact: tuple[str, str, str], template: int, rng: random.Random) -> Example:
    """The question; `rng` (the split's option stream) draws the distractors and their order."""
    relation, subject, answer = fact
    choices = rng.sample([a for a in _answers_of(relation) if a != answer], DISTRACTORS) + [answer]
    rng.shuffle(choices)
    return Example(
        f"Question: {question(relation, subject, template)}\nAnswer:",
        f" {answer}",
        real_source(NAME),
        {"choices": tuple(choices), "gold": choices.index(answer)},
    )


def generate(
    seed: int, train_size: Optional[int] = None, test_size: Optional[int] = None
) -> tuple[list[Example], list[Example]]:
    n_train, n_test = sizes(train_size, test_size)
    rng = rng_for(NAME, seed)
    train_pairs: list[tuple[tuple[str, str, str], int]] = []
    test_pairs: list[tuple[tuple[str, str, str], int]] = []
    for fact in FACTS:
        held_out = rng.randrange(len(TEMPLATES[fact[0]]))
        for t in range(len(TEMPLATES[fact[0]])):
            (test_pairs if t == held_out else train_pairs).append((fact, t))
    train_drawn = cycled(train_pairs, n_train, rng)
    test_drawn = cycled(test_pairs, n_test, rng)
    # options come from streams of their own, so the draws above are unchanged
    train_options, test_options = rng_for(f"{NAME}:options:train", seed), rng_for(f"{NAME}:options:test", seed)
    train = [_example(fact, t, train_options) for fact, t in train_drawn]
    test = [_example(fact, t, test_options) for fact, t in test_drawn]
    return train, test


@register_task(NAME)
class OfflineScience(GeneratedTask):
    """The SciQ stand-in; `Example.meta` holds options (the answer and distractors) and gold."""

    def generate(
        self, seed: int, train_size: Optional[int], test_size: Optional[int]
    ) -> tuple[list[Example], list[Example]]:
        return generate(seed, train_size, test_size)

    def verify(self, completion: str, example: Example) -> bool:
        """The completion's first line starts with the short answer (the options are not in
        the prompt, so a label such as "(B)" names nothing)."""
        meta = example.meta or {}
        gold = meta["choices"][meta["gold"]] if "choices" in meta else meta.get("gold", example.answer)
        return answers.starts_with_answer(completion, str(gold))
