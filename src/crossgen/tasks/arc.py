"""AI2 ARC (Clark et al., 2018): grade-school multiple-choice science questions (entity 3).

Hub: "allenai/ai2_arc", configs "ARC-Easy" / "ARC-Challenge", splits train / validation /
test; a record is {"id", "question": str, "choices": {"text": [...], "label": [...]},
"answerKey"}. The original release (ARC-V1-Feb2018) has JSONL records {"id", "question":
{"stem", "choices": [{"text", "label"}, ...]}, "answerKey"} and CSV files whose "question"
holds the choices inline ("... (A) dry palms (B) wet palms") with the key in "AnswerKey";
all three load, as does a CSV export of the hub schema (choices written as a Python repr).

Prompt "Question: {stem}\\nChoices: (A) {text} (B) {text} ...\\nAnswer:", answer " {text of the
correct choice}"; `Example.meta` holds the choice texts and the gold index. Choices are
relabelled A, B, C, ... by position in the prompt whatever their original labels. The key
is matched to a label; when the labels are letters and the key a digit (or the other way
round) the key is read as a position (1 = A). Any other key is an InputError.
"""

from __future__ import annotations

import ast
import json
import re
import string
from typing import Any

from crossgen.data import Example
from crossgen.errors import InputError
from crossgen.tasks.base import missing, require, text_of
from crossgen.tasks.dataset import DatasetTask
from crossgen.tasks.registry import register_task

FAMILY = "arc"
ALLOWED = (
    "records with question, choices and answerKey (ARC hub schema), or question.stem, "
    "question.choices and answerKey (the original JSONL release)"
)
LETTERS = string.ascii_uppercase


class ARC(DatasetTask):
    """Both ARC sets; registered once per hub config below."""

    FAMILY = FAMILY
    HUB_ID = "allenai/ai2_arc"
    ALLOWED = ALLOWED

    def to_example(self, record: Any, where: str, source: str) -> Example:
        stem, labels, texts = _question_and_choices(record, where)
        index = resolve_key(_key(record, where), labels, where)
        choices = " ".join(f"({LETTERS[i]}) {text}" for i, text in enumerate(texts))
        return Example(
            f"Question: {stem}\nChoices: {choices}\nAnswer:",
            f" {texts[index]}",
            source,
            {"choices": tuple(texts), "gold": index},
        )


@register_task("arc_easy")
class ARCEasy(ARC):
    HUB_CONFIG = "ARC-Easy"


@register_task("arc_challenge")
class ARCChallenge(ARC):
    HUB_CONFIG = "ARC-Challenge"


def resolve_key(key: str, labels: list[str], where: str) -> int:
    """The position of the correct choice: by label, else by position across letters/digits."""
    if key in labels:
        return labels.index(key)
    letters = all(len(label) == 1 and label.isalpha() for label in labels)
    digits = all(label.isdigit() for label in labels)
    position = None
    if key.isdigit() and letters:
        position = int(key) - 1
    elif len(key) == 1 and key.isalpha() and digits:
        position = LETTERS.index(key.upper())
    if position is None or not 0 <= position < len(labels):
        raise InputError(
            f"{FAMILY} {where}",
            f"answerKey {key!r}",
            f"one of the choice labels {', '.join(labels)} (or the same position as a letter/digit)",
        )
    return position


def _key(record: dict, where: str) -> str:
    key = record.get("answerKey", record.get("AnswerKey"))
    if missing(key):
        raise InputError(f"{FAMILY} {where}", "missing 'answerKey'", ALLOWED)
    return text_of(key)


def _question_and_choices(record: Any, where: str) -> tuple[str, list[str], list[str]]:
    (question,) = require(record, ("question",), FAMILY, where, ALLOWED)
    if isinstance(question, dict):  # original JSONL release
        stem = question.get("stem")
        if missing(stem):
            raise InputError(f"{FAMILY} {where}", "missing 'question.stem'", ALLOWED)
        if missing(question.get("choices")):
            raise InputError(f"{FAMILY} {where}", "missing 'question.choices'", ALLOWED)
        labels, texts = _choices(question["choices"], where, "question.choices")
        return text_of(stem), labels, texts
    question = text_of(question)
    choices = record.get("choices")
    if not isinstance(choices, (list, dict)) and missing(choices):
        inline = _inline_choices(question)
        if inline is None:
            raise InputError(f"{FAMILY} {where}", "missing 'choices'", ALLOWED)
        return inline
    labels, texts = _choices(choices, where, "choices")
    return question, labels, texts


def _choices(value: Any, where: str, name: str) -> tuple[list[str], list[str]]:
    """(labels, texts) from {"text": [...], "label": [...]} or [{"text", "label"}, ...]."""
    if isinstance(value, str):
        value = _parse_repr(value)
    labels: list[Any] = []
    texts: list[Any] = []
    if isinstance(value, dict) and "text" in value and "label" in value:
        labels, texts = list(value["label"]), list(value["text"])
    elif isinstance(value, list) and all(isinstance(c, dict) and "text" in c and "label" in c for c in value):
        labels, texts = [c["label"] for c in value], [c["text"] for c in value]
    else:
        raise InputError(
            f"{FAMILY} {where}",
            f"unreadable {name!r}",
            "choices as {text: [...], label: [...]} or [{text, label}, ...]",
        )
    if not texts or len(labels) != len(texts) or any(missing(t) for t in texts) or any(missing(lab) for lab in labels):
        raise InputError(
            f"{FAMILY} {where}", f"unreadable {name!r}", "as many non-empty labels as choice texts, at least one"
        )
    return [text_of(lab) for lab in labels], [text_of(t) for t in texts]


def _parse_repr(text: str) -> Any:
    """A choices cell of a CSV: JSON, or the Python repr pandas writes (with numpy arrays)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return _literal(ast.parse(text.strip(), mode="eval").body)
    except (SyntaxError, ValueError):
        return None


def _literal(node: ast.AST) -> Any:
    """Evaluate only literals, lists, dicts and numpy's array([...], dtype=object)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(n) for n in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values) if k is not None}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "array" and node.args:
        return _literal(node.args[0])
    raise ValueError("not a literal")


def _inline_choices(question: str) -> tuple[str, list[str], list[str]] | None:
    """The original CSV release: "stem (A) one (B) two ..." or "(1) one (2) two ...)"."""
    for labels in (LETTERS, "123456789"):
        first = re.search(rf"\({labels[0]}\)\s", question)
        if first is None:
            continue
        stem = question[: first.start()].strip()
        found: list[str] = []
        texts: list[str] = []
        rest = question[first.end() :]
        for label in labels[1:]:
            nxt = re.search(rf"\s\({label}\)\s", rest)
            if nxt is None:
                break
            found.append(labels[len(found)])
            texts.append(rest[: nxt.start()].strip())
            rest = rest[nxt.end() :]
        found.append(labels[len(found)])
        texts.append(rest.strip())
        if stem and len(texts) >= 2 and all(texts):
            return stem, found, texts
    return None
