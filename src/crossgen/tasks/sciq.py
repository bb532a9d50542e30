"""SciQ (Welbl et al., 2017): crowd-sourced science exam questions, entity 1's task in the paper.

Hub: "allenai/sciq", splits train / validation / test, fields question, distractor1-3,
correct_answer, support. The original release (a JSON array per split: train.json,
valid.json, test.json) has the same fields. Question and correct_answer make the example:
prompt "Question: {question}\\nAnswer:", answer " {correct_answer}". The distractors, where
present, become the options of `Example.meta`: choices (distractor1, distractor2,
distractor3, correct_answer) with gold the last, as evaluation harnesses order them.
"""

from __future__ import annotations

from typing import Any

from crossgen.data import Example
from crossgen.tasks.base import missing, require, text_of
from crossgen.tasks.dataset import DatasetTask
from crossgen.tasks.registry import register_task

DISTRACTORS = ("distractor1", "distractor2", "distractor3")


@register_task("sciq")
class SciQ(DatasetTask):
    FAMILY = "sciq"
    HUB_ID = "allenai/sciq"
    ALLOWED = "records with fields question and correct_answer (SciQ hub schema or the original JSON release)"

    def to_example(self, record: Any, where: str, source: str) -> Example:
        question, answer = require(record, ("question", "correct_answer"), self.FAMILY, where, self.ALLOWED)
        answer = text_of(answer)
        distractors = [text_of(record[k]) for k in DISTRACTORS if not missing(record.get(k))]
        meta = {"choices": (*distractors, answer), "gold": len(distractors)} if distractors else {"gold": answer}
        return Example(f"Question: {text_of(question)}\nAnswer:", f" {answer}", source, meta)
