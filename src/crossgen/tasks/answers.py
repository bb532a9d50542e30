"""Checking a generated answer: which option a completion names, its final number, a short answer.

Used by `Task.verify`. Completions are free text (a model continues "...\\nAnswer:"), so the
rules read the start of the completion, ignoring case, spacing and end punctuation.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Optional

LETTERS = string.ascii_uppercase
# "(B)", "B)", "B." or "B" alone at the start, then the end or a space
_LABEL = re.compile(r"^\(?([A-Z])\)?\.?(?:\s|$)")
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_EDGE = " \t\n\r.,;:!?\"'"
# where a generated answer ends: a model going on to write the next question (as
# lm-evaluation-harness stops GSM8K generation at "Question:")
STOP_SEQUENCES = ("Question:",)


def normalize(text: str) -> str:
    """Lower case, single spaces, no surrounding whitespace or end punctuation."""
    return " ".join(str(text).lower().split()).strip(_EDGE)


def first_line(completion: str) -> str:
    """The completion's first non-empty line (a model may go on to a next question)."""
    for line in str(completion).splitlines():
        if line.strip():
            return line
    return ""


def starts_with_answer(completion: str, answer: str) -> bool:
    """Whether the completion's first line is `answer`, or starts with it as whole words."""
    got, want = normalize(first_line(completion)), normalize(answer)
    if not want:
        return False
    return got == want or (got.startswith(want) and not got[len(want)].isalnum())


def chosen_option(completion: str, choices: Sequence[str]) -> Optional[int]:
    """The index of the option a completion names, or None.

    A leading label "(B)", "B)", "B." or a lone "B" (options are labelled A, B, C, ... in
    order) names that option; otherwise the longest option text the completion's first
    line starts with (as whole words) does.
    """
    line = first_line(completion).strip()
    label = _LABEL.match(line)
    if label and LETTERS.index(label.group(1)) < len(choices):
        rest = line[label.end() :]
        index = LETTERS.index(label.group(1))
        if not rest.strip() or starts_with_answer(rest, choices[index]):
            return index
    found = [i for i, choice in enumerate(choices) if starts_with_answer(line, choice)]
    return max(found, key=lambda i: len(normalize(choices[i]))) if found else None


def final_number(text: str) -> Optional[str]:
    """The number after the last "####" (GSM8K's final answer), canonical: no "$" or
    thousands commas, no trailing ".0"; None when there is no "####" or no number after it."""
    if "####" not in str(text):
        return None
    match = _NUMBER.search(str(text).rsplit("####", 1)[1])
    if match is None:
        return None
    number = match.group(0).replace("$", "").replace(",", "")
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return "0" if number in ("-0", "") else number


def until_stop(completion: str, stops: Sequence[str] = STOP_SEQUENCES) -> str:
    """The completion up to the first stop sequence (all of it when none occurs)."""
    text = str(completion)
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]
