"""Tasks: the paper's datasets (SciQ, GSM8K, ARC, BookCorpus) and generated offline stand-ins.

`load_task(cfg, seed)` returns a `TaskSplit(name, train, test)` of `Example`s whose text is
prompt + answer (the answer starts with a space and is what the loss is scored on). A task
is a `Task` subclass registered under its name with `@register_task` (see `registry`; one
module per dataset family, `offline` for the generated ones); `base` has the interface and
how splits and caps are made, `dataset` the hub / local-file loading, `answers` the checks
behind `Task.verify`.
"""

from __future__ import annotations

from crossgen.data import TaskSplit
from crossgen.tasks.base import GeneratedTask, Task
from crossgen.tasks.dataset import DatasetTask
from crossgen.tasks.registry import get_task, load_experiment_data, load_task, register_task, task_names

__all__ = [
    "DatasetTask",
    "GeneratedTask",
    "Task",
    "TaskSplit",
    "get_task",
    "load_experiment_data",
    "load_task",
    "register_task",
    "task_names",
]
