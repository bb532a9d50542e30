"""The generated offline tasks: determinism, sizes, distinct vocabularies, correct answers."""

from __future__ import annotations

import os
import re
from itertools import combinations, pairwise

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest

from crossgen.config import TaskConfig
from crossgen.tasks import get_task, load_task, task_names
from crossgen.tasks.offline import (
    DEFAULT_TEST_SIZE,
    DEFAULT_TRAIN_SIZE,
    FUNCTION_WORDS,
    overlap,
    reasoning,
    science,
    stories,
    word_types,
)

NAMES = ("offline_arithmetic", "offline_reasoning", "offline_science", "offline_stories")


@pytest.fixture(scope="module")
def tasks():
    return {name: load_task(TaskConfig(name=name, source="offline"), seed=0) for name in task_names(generated=True)}


def test_names_kinds_sizes_and_source(tasks):
    assert tuple(tasks) == NAMES
    for name, task in tasks.items():
        assert get_task(name).generated and get_task(name).narrative == (name == "offline_stories")
        assert task.name == name
        assert (len(task.train), len(task.test)) == (DEFAULT_TRAIN_SIZE, DEFAULT_TEST_SIZE) == (3000, 200)
        assert {e.source for e in task.train + task.test} == {f"real:{name}"}
        for e in task.train + task.test:
            assert isinstance(e.prompt, str) and e.answer.startswith(" ") and e.answer.strip()
            assert len(e.text.split()) <= 55, e.text  # short: under 64 tokens of a 2048-piece BPE


def test_default_source_hub_is_accepted_and_sizes_override():
    task = load_task(TaskConfig(name="offline_arithmetic", train_size=50, test_size=7), seed=3)
    assert (len(task.train), len(task.test)) == (50, 7)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_by_seed(name, tasks):
    again = load_task(TaskConfig(name=name, source="offline"), seed=0)
    other = load_task(TaskConfig(name=name, source="offline"), seed=1)
    assert again.train == tasks[name].train and again.test == tasks[name].test
    assert other.train != tasks[name].train and other.test != tasks[name].test
    small = load_task(TaskConfig(name=name, source="offline", train_size=40, test_size=5), seed=1)
    assert len(small.train) == 40 and len(small.test) == 5


def test_vocabularies_are_distinct(tasks):
    content = {n: word_types(t.train + t.test) for n, t in tasks.items()}
    every = {n: word_types(t.train + t.test, content_only=False) for n, t in tasks.items()}
    for a, b in combinations(tasks, 2):
        assert overlap(content[a], content[b]) <= 0.02, (a, b, sorted(content[a] & content[b]))
        assert overlap(every[a], every[b]) <= 0.12, (a, b, sorted(every[a] & every[b]))
        assert every[a] & every[b] <= FUNCTION_WORDS
    for n in tasks:
        assert len(content[n]) >= 60  # each task has a real vocabulary of its own
    assert len(FUNCTION_WORDS) <= 30
    assert overlap({"x", "y"}, {"y", "z", "w"}) == 0.5


def test_every_test_prompt_is_new(tasks):
    for name in ("offline_arithmetic", "offline_reasoning"):
        train = {e.prompt for e in tasks[name].train}
        test = [e.prompt for e in tasks[name].test]
        assert not train & set(test) and len(set(test)) == len(test)
    train = {e.text for e in tasks["offline_stories"].train}
    assert not train & {e.text for e in tasks["offline_stories"].test}


EQUATION = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


def test_arithmetic_answers_are_correct(tasks):
    task = tasks["offline_arithmetic"]
    kinds = set()
    for e in task.train + task.test:
        match = re.fullmatch(r" (.+) #### (\d+)", e.answer)
        assert match, e.answer
        steps = match.group(1).split(". ")
        given = [int(n) for n in re.findall(r"\d+", e.prompt)]
        previous = None
        for i, step in enumerate(steps):
            eq = EQUATION.fullmatch(step)
            assert eq, step
            a, op, b, c = int(eq[1]), eq[2], int(eq[3]), int(eq[4])
            assert OPS[op](a, b) == c, e.answer
            assert (a in given if i == 0 else a == previous) and b in given, (e.prompt, e.answer)
            previous = c
            kinds.add(op)
        assert int(match.group(2)) == previous >= 0
        assert e.prompt.startswith("Question: ") and e.prompt.endswith("?\nAnswer:")
    assert kinds == {"+", "-", "*", "/"}
    two_step = [e for e in task.train if ". " in e.answer]
    assert len(two_step) > 100


def test_reasoning_answer_is_the_right_listed_choice(tasks):
    rank = {obj: (scale, i) for scale, spec in reasoning.SCALES.items() for i, obj in enumerate(spec[0])}
    top = {q: s for s, spec in reasoning.SCALES.items() for q in spec[1]}
    bottom = {q: s for s, spec in reasoning.SCALES.items() for q in spec[2]}
    pattern = re.compile(r"Question: (.+)\nChoices: (.+)\nAnswer:")
    for e in tasks["offline_reasoning"].train + tasks["offline_reasoning"].test:
        question, listed = pattern.fullmatch(e.prompt).groups()
        choices = re.split(r" ?\([A-D]\) ", listed)[1:]
        labels = re.findall(r"\(([A-D])\)", listed)
        assert labels == list("ABCD"[: len(choices)]) and len(choices) in (3, 4)
        answer = e.answer[1:]
        assert choices.count(answer) == 1, (e.prompt, e.answer)
        ranks = [rank[c][1] for c in choices]
        assert len({rank[c][0] for c in choices}) == 1
        if question in top:
            assert rank[answer][1] == max(ranks)
        elif question in bottom:
            assert rank[answer][1] == min(ranks)
        else:
            word, ref = re.fullmatch(r"Which of these is (\w+) than an? (\w+)\?", question).groups()
            above = word in ("heavier", "faster", "hotter", "taller")
            right = [c for c in choices if (rank[c][1] > rank[ref][1]) == above and c != ref]
            assert right == [answer], (e.prompt, e.answer)


def test_science_answers_come_from_the_fact_table(tasks):
    task = tasks["offline_science"]
    table = {}
    for relation, subject, answer in science.FACTS:
        for t in range(len(science.TEMPLATES[relation])):
            table[f"Question: {science.question(relation, subject, t)}\nAnswer:"] = (
                f" {answer}",
                (relation, subject),
                t,
            )
    assert len(science.FACTS) >= 50
    train_templates: dict = {}
    for e in task.train:
        answer, fact, t = table[e.prompt]
        assert e.answer == answer
        train_templates.setdefault(fact, set()).add(t)
    for e in task.test:
        answer, fact, t = table[e.prompt]
        assert e.answer == answer
        assert t not in train_templates[fact]  # the fact is known, this phrasing of it is not
    assert len(train_templates) == len(science.FACTS)
    assert load_task(TaskConfig(name="offline_science", source="offline"), seed=0).test[0].prompt == task.test[0].prompt


def test_stories_are_passages_with_a_prompt_and_continuation(tasks):
    for e in tasks["offline_stories"].train[:300] + tasks["offline_stories"].test:
        assert len(e.prompt.split()) == stories.PROMPT_WORDS
        assert e.answer.startswith(" ") and len(e.answer.split()) >= 10
        assert e.text.count(".") == 3 and e.text.endswith(".")  # three sentences
        who = next(w for w in stories.CHARACTERS if f" {w} " in e.prompt)
        assert stories.CHARACTERS[who][0] in e.text  # the character fixes the place
    first = tasks["offline_stories"].train[0]
    assert re.fullmatch(
        r"(Once upon a time, an?|Long ago, an?|There was once an?|In a distant kingdom, an?) .+", first.prompt
    )


def test_every_answer_verifies_and_a_wrong_one_does_not(tasks):
    for name in ("offline_arithmetic", "offline_reasoning", "offline_science"):
        task = get_task(name)
        examples = tasks[name].train[:200] + tasks[name].test
        assert all(task.verify(e.answer, e) for e in examples), name
        # another example's answer is wrong unless it gives the same answer (arithmetic: final number)
        same = (
            (lambda e, o: e.meta["gold"] == o.meta["gold"])
            if name == "offline_arithmetic"
            else (lambda e, o: e.answer == o.answer)
        )
        wrong = [(e, o) for e, o in pairwise(examples) if not same(e, o)]
        assert len(wrong) > 50 and not any(task.verify(o.answer, e) for e, o in wrong), name
    e = tasks["offline_reasoning"].test[0]
    assert get_task("offline_reasoning").verify(f" ({'ABCD'[e.meta['gold']]})", e)  # a label names the option
    with pytest.raises(NotImplementedError):
        get_task("offline_stories").verify(" and then", tasks["offline_stories"].test[0])
