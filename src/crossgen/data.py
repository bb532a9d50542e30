"""The unit of data that flows through the workflow: one (prompt, answer) example.

Text tasks use strings (the training text is prompt + answer; the answer carries its own
leading separator). The linear backend uses a feature vector as prompt and a float as
answer. `source` says where an example came from: "real:<task>" or
"synthetic:<entity>:<generation>", so pools can be traced and saved.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Example:
    prompt: Any
    answer: Any
    source: str = ""

    @property
    def text(self) -> str:
        return f"{self.prompt}{self.answer}"


def real_source(task: str) -> str:
    return f"real:{task}"


def synthetic_source(entity: str, generation: int) -> str:
    return f"synthetic:{entity}:{generation}"
