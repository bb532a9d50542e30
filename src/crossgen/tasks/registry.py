"""Task names -> loaders: `load_task(cfg, seed)` is the one entry point.

Real tasks (source hub or local): sciq, gsm8k, arc_easy, arc_challenge, bookcorpus.
Generated stand-ins (source offline): offline_science, offline_arithmetic, offline_reasoning,
offline_stories. An offline name ignores the default source "hub" (there is nothing to
download) but rejects source "local"; a real name rejects source "offline".
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Optional

from crossgen.config import TaskConfig
from crossgen.data import Example, real_source
from crossgen.errors import InputError
from crossgen.tasks import arc, books, gsm8k, hub, sciq
from crossgen.tasks.base import TaskData, finish, hold_out
from crossgen.tasks.offline import GENERATORS
from crossgen.tasks.readers import check_path, data_files, iter_records, split_files


@dataclass(frozen=True)
class RealTask:
    module: ModuleType  # sciq, gsm8k, arc or books: FAMILY, ROLE, HUB_ID (+ format_record)
    hub_config: Optional[str] = None

    @property
    def narrative(self) -> bool:
        return self.module is books


REAL_TASKS = {
    "sciq": RealTask(sciq),
    "gsm8k": RealTask(gsm8k, gsm8k.HUB_CONFIG),
    "arc_easy": RealTask(arc, arc.HUB_CONFIGS["arc_easy"]),
    "arc_challenge": RealTask(arc, arc.HUB_CONFIGS["arc_challenge"]),
    "bookcorpus": RealTask(books),
}
OFFLINE_TASKS = tuple(GENERATORS)
TASK_NAMES = (*REAL_TASKS, *OFFLINE_TASKS)
ROLE_OF = {**{n: t.module.ROLE for n, t in REAL_TASKS.items()}, **{n: g.ROLE for n, g in GENERATORS.items()}}


def load_task(cfg: TaskConfig, seed: int) -> TaskData:
    """The train and test examples of one task, capped by cfg.train_size / cfg.test_size."""
    name = cfg.name
    if name in GENERATORS:
        if cfg.source == "local":
            raise InputError("task.source", cfg.source, f"offline for task {name} (it is generated)")
        gen = GENERATORS[name]
        train, test = gen.generate(seed, cfg.train_size, cfg.test_size)
        return finish(name, gen.ROLE, train, test, None, None, seed, "generated")
    if name not in REAL_TASKS:
        raise InputError("task.name", name, "one of " + ", ".join(TASK_NAMES))
    if cfg.source == "offline":
        raise InputError(
            "task.source", cfg.source,
            f"hub or local for task {name} (generated stand-ins: {', '.join(OFFLINE_TASKS)})",
        )
    task = REAL_TASKS[name]
    if cfg.source == "hub":
        train, test, where = _from_hub(task, cfg)
    else:
        train, test, where = _from_local(task, cfg)
    return finish(name, task.module.ROLE, train, test, cfg.train_size, cfg.test_size, seed, where)


# --- hub ------------------------------------------------------------------------------------


def _from_hub(task: RealTask, cfg: TaskConfig) -> tuple[list[Example], list[Example], str]:
    hub_id = cfg.hub_id or task.module.HUB_ID
    where = f"hub {hub_id}"
    if task.narrative:
        train, test = _book_split(hub.records(hub_id, task.hub_config, "train"), cfg, cfg.name)
        return train, test, where
    train = _format(task, hub.records(hub_id, task.hub_config, "train"), cfg.name)
    test = _format(task, hub.records(hub_id, task.hub_config, "test"), cfg.name)
    return train, test, where


# --- local files ----------------------------------------------------------------------------


def _from_local(task: RealTask, cfg: TaskConfig) -> tuple[list[Example], list[Example], str]:
    path = check_path(cfg.path)
    where = str(path)
    if path.is_file():
        return (*_one_corpus(task, [path], cfg), where)
    files = split_files(path)
    if "train" not in files:
        if task.narrative and data_files(path):  # a folder of books
            return (*_one_corpus(task, data_files(path), cfg), where)
        raise InputError(
            "task.path", where,
            "a folder with a train file and a test (or validation) file: train/test/validation "
            "with .jsonl, .json, .parquet, .csv or .txt",
        )
    test_files = files.get("test") or files.get("validation")
    if test_files is None:
        return (*_one_corpus(task, files["train"], cfg), where)
    if task.narrative:
        train = _book_examples(_records(task, files["train"]), cfg.train_size or books.DEFAULT_TRAIN_PASSAGES, cfg.name)
        test = _book_examples(_records(task, test_files), cfg.test_size or books.DEFAULT_TEST_PASSAGES, cfg.name)
        return train, test, where
    return _format(task, _records(task, files["train"]), cfg.name), _format(task, _records(task, test_files), cfg.name), where


def _one_corpus(task: RealTask, paths: list[Path], cfg: TaskConfig) -> tuple[list[Example], list[Example]]:
    """One body of records split into train and test (books: the tail; else a fixed 90/10)."""
    if task.narrative:
        return _book_split(_records(task, paths), cfg, cfg.name)
    return hold_out(_format(task, _records(task, paths), cfg.name))


def _records(task: RealTask, paths: list[Path]) -> Iterable[tuple[str, Any]]:
    for path in paths:
        if path.suffix.lower() == ".txt" and not task.narrative:
            raise InputError("task.path", str(path), f"a .jsonl, .json, .parquet or .csv file for {task.module.FAMILY} (plain text is for bookcorpus)")
        yield from iter_records(path, task.module.FAMILY)


# --- formatting -----------------------------------------------------------------------------


def _format(task: RealTask, records: Iterable[tuple[str, Any]], name: str) -> list[Example]:
    source = real_source(name)
    return [Example(*task.module.format_record(record, where), source=source) for where, record in records]


def _book_examples(records: Iterable[tuple[str, Any]], limit: int, name: str) -> list[Example]:
    source = real_source(name)
    return [Example(*books.split_passage(words), source=source)
            for words in books.passages(books.sentences(records), limit=limit)]


def _book_split(records: Iterable[tuple[str, Any]], cfg: TaskConfig, name: str) -> tuple[list[Example], list[Example]]:
    examples = _book_examples(records, books.passage_limit(cfg.train_size, cfg.test_size), name)
    return books.held_out_tail(examples)


def prompts(task: TaskData, n: int, split: str = "test", seed: Optional[int] = None) -> list[str]:
    """Prompts of one split: the first n (seed None), or n drawn with replacement by `seed`
    (how the paper picks prompts for synthetic data)."""
    import random

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    examples = task.test if split == "test" else task.train
    if seed is None:
        return [ex.prompt for ex in examples[:n]]
    rng = random.Random(seed)
    return [ex.prompt for ex in rng.choices(examples, k=n)] if examples else []


__all__ = ["TASK_NAMES", "REAL_TASKS", "OFFLINE_TASKS", "ROLE_OF", "load_task", "prompts"]
