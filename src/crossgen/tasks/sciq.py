"""SciQ (Welbl et al., 2017): crowd-sourced science exam questions, entity 1's task in the paper.

Hub: "allenai/sciq", splits train / validation / test, fields question, distractor1-3,
correct_answer, support. The original release (a JSON array per split: train.json,
valid.json, test.json) has the same fields. Only question and correct_answer are used:
prompt "Question: {question}\\nAnswer:", answer " {correct_answer}".
"""
from __future__ import annotations

from typing import Any

from crossgen.tasks.base import require, text_of

FAMILY = "sciq"
ROLE = "science-qa"
HUB_ID = "allenai/sciq"
HUB_CONFIG = None
ALLOWED = "records with fields question and correct_answer (SciQ hub schema or the original JSON release)"


def format_record(record: Any, where: str) -> tuple[str, str]:
    question, answer = require(record, ("question", "correct_answer"), FAMILY, where, ALLOWED)
    return f"Question: {text_of(question)}\nAnswer:", f" {text_of(answer)}"
