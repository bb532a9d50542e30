"""Tasks: the paper's datasets (SciQ, GSM8K, ARC, BookCorpus) and generated offline stand-ins.

`load_task(cfg, seed)` returns a `TaskData(name, role, train, test)` of `Example`s whose text
is prompt + answer (the answer starts with a space and is what the loss is scored on). See
`registry` for names and sources, `base` for how splits and caps are made, one module per
dataset family for its formats, and `offline` for the generated tasks.
"""
from __future__ import annotations

from crossgen.tasks.base import ROLES, TaskData
from crossgen.tasks.registry import OFFLINE_TASKS, REAL_TASKS, ROLE_OF, TASK_NAMES, load_task, prompts

__all__ = ["TaskData", "ROLES", "ROLE_OF", "TASK_NAMES", "REAL_TASKS", "OFFLINE_TASKS", "load_task", "prompts"]
