"""GSM8K (Cobbe et al., 2021): grade-school math word problems, entity 2's task in the paper.

Hub: "openai/gsm8k", config "main", splits train / test, fields question and answer (the
worked solution, ending in "#### N"). The original release (train.jsonl, test.jsonl) has the
same fields. Prompt "Question: {question}\\nAnswer:", answer " {answer}" with the reasoning
and the calculator annotations kept as they are.
"""
from __future__ import annotations

from typing import Any

from crossgen.tasks.base import require, text_of

FAMILY = "gsm8k"
ROLE = "arithmetic"
HUB_ID = "openai/gsm8k"
HUB_CONFIG = "main"
ALLOWED = "records with fields question and answer (GSM8K hub schema or the original JSONL release)"


def format_record(record: Any, where: str) -> tuple[str, str]:
    question, answer = require(record, ("question", "answer"), FAMILY, where, ALLOWED)
    return f"Question: {text_of(question)}\nAnswer:", f" {text_of(answer)}"
