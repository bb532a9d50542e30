"""GSM8K (Cobbe et al., 2021): grade-school math word problems, entity 2's task in the paper.

Hub: "openai/gsm8k", config "main", splits train / test, fields question and answer (the
worked solution, ending in "#### N"). The original release (train.jsonl, test.jsonl) has the
same fields. Prompt "Question: {question}\\nAnswer:", answer " {answer}" with the reasoning
and the calculator annotations kept as they are; `Example.meta` gold is N (canonical, see
`answers.final_number`), and a completion is right when its own "#### N" matches.
"""

from __future__ import annotations

from typing import Any

from crossgen.data import Example
from crossgen.tasks import answers
from crossgen.tasks.base import require, text_of
from crossgen.tasks.dataset import DatasetTask
from crossgen.tasks.registry import register_task


def verify_final_number(completion: str, example: Example) -> bool:
    """Whether the completion's number after "####" equals the example's (GSM8K's rule)."""
    gold = (example.meta or {}).get("gold") or answers.final_number(example.answer)
    return gold is not None and answers.final_number(completion) == gold


@register_task("gsm8k")
class GSM8K(DatasetTask):
    FAMILY = "gsm8k"
    HUB_ID = "openai/gsm8k"
    HUB_CONFIG = "main"
    ALLOWED = "records with fields question and answer (GSM8K hub schema or the original JSONL release)"

    def to_example(self, record: Any, where: str, source: str) -> Example:
        question, answer = require(record, ("question", "answer"), self.FAMILY, where, self.ALLOWED)
        answer = text_of(answer)
        gold = answers.final_number(answer)
        return Example(
            f"Question: {text_of(question)}\nAnswer:",
            f" {answer}",
            source,
            {"gold": gold} if gold is not None else None,
        )

    def verify(self, completion: str, example: Example) -> bool:
        return verify_final_number(completion, example)
