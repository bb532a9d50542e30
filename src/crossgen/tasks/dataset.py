"""`DatasetTask`: a task read from the Hugging Face Hub (source hub) or local files (source local).

A subclass names its dataset (FAMILY, HUB_ID, HUB_CONFIG, ALLOWED) and turns one record
into an `Example` (`to_example`). Loading, the choice of split files, the 90/10 split of a
dataset that comes as one file and the caps are shared (see `crossgen.tasks.base` and
`crossgen.tasks.readers`). A narrative task (`BookCorpus`) overrides the corpus hooks
(`split_examples`, `split_corpus`, `from_hub`) instead of formatting records one by one.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from crossgen.data import Example, TaskSplit, real_source
from crossgen.errors import InputError
from crossgen.tasks import hub
from crossgen.tasks.base import Task, finish, hold_out
from crossgen.tasks.readers import check_path, data_files, iter_records, split_files

if TYPE_CHECKING:
    from crossgen.config import TaskConfig

Records = Iterable[tuple[str, Any]]
Splits = tuple[list[Example], list[Example]]


class DatasetTask(Task):
    """A real dataset (source hub or local; source offline is an InputError).

    Attributes
    ----------
    FAMILY : str
        The dataset family named in error messages ("sciq", "arc", ...).
    HUB_ID : str
        Default hub id (``task.hub_id`` overrides it).
    HUB_CONFIG : str or None
        The hub config (e.g. "main" for GSM8K, "ARC-Easy").
    ALLOWED : str
        What a valid record looks like, for error messages.
    HUB_STREAMING : bool
        Read the hub's splits as streams (`crossgen.tasks.hub.records`): for a corpus of
        which only the first records are used (BookCorpus).
    """

    FAMILY: ClassVar[str] = ""
    HUB_ID: ClassVar[str] = ""
    HUB_CONFIG: ClassVar[Optional[str]] = None
    ALLOWED: ClassVar[str] = "records in the dataset's schema"
    HUB_STREAMING: ClassVar[bool] = False

    # -- the hook of a question-answer dataset -------------------------------------------
    def to_example(self, record: Any, where: str, source: str) -> Example:
        """One record as an Example (``where`` names the record in error messages).

        Raises
        ------
        InputError
            A missing or unreadable field.
        """
        raise NotImplementedError

    # -- corpus hooks (narrative tasks override these) ----------------------------------
    def corpus_examples(self, records: Records) -> list[Example]:
        """Every record formatted with `to_example`."""
        source = real_source(self.name)
        return [self.to_example(record, where, source) for where, record in records]

    def split_examples(self, records: Records, split: str, cfg: TaskConfig) -> list[Example]:
        """The examples of one split ("train" or "test") that comes in files of its own."""
        return self.corpus_examples(records)

    def split_corpus(self, records: Records, cfg: TaskConfig) -> Splits:
        """One body of records split into (train, test): a fixed 90/10 split."""
        return hold_out(self.corpus_examples(records))

    def from_hub(self, hub_id: str, cfg: TaskConfig) -> Splits:
        """The hub's train and test splits."""
        streaming = self.HUB_STREAMING
        train = self.split_examples(hub.records(hub_id, self.HUB_CONFIG, "train", streaming), "train", cfg)
        test = self.split_examples(hub.records(hub_id, self.HUB_CONFIG, "test", streaming), "test", cfg)
        return train, test

    # -- Task ---------------------------------------------------------------------------
    def load(self, cfg: TaskConfig, seed: int) -> TaskSplit:
        if cfg.source == "offline":
            from crossgen.tasks.registry import task_names

            raise InputError(
                "task.source",
                cfg.source,
                f"hub or local for task {self.name} (generated stand-ins: {', '.join(task_names(generated=True))})",
            )
        if cfg.source == "hub":
            hub_id = cfg.hub_id or self.HUB_ID
            (train, test), where = self.from_hub(hub_id, cfg), f"hub {hub_id}"
        else:
            (train, test), where = self._from_local(cfg)
        return finish(self.name, train, test, cfg.train_size, cfg.test_size, seed, where)

    def _from_local(self, cfg: TaskConfig) -> tuple[Splits, str]:
        assert cfg.path is not None  # TaskConfig requires a path for source local
        path = check_path(cfg.path)
        where = str(path)
        if path.is_file():
            return self.split_corpus(self._records([path]), cfg), where
        files = split_files(path)
        if "train" not in files:
            if self.narrative and data_files(path):  # a folder of books
                return self.split_corpus(self._records(data_files(path)), cfg), where
            raise InputError(
                "task.path",
                where,
                "a folder with a train file and a test (or validation) file: train/test/validation "
                "with .jsonl, .json, .parquet, .csv or .txt",
            )
        test_files = files.get("test") or files.get("validation")
        if test_files is None:
            return self.split_corpus(self._records(files["train"]), cfg), where
        train = self.split_examples(self._records(files["train"]), "train", cfg)
        test = self.split_examples(self._records(test_files), "test", cfg)
        return (train, test), where

    def _records(self, paths: list[Path]) -> Records:
        for path in paths:
            if path.suffix.lower() == ".txt" and not self.narrative:
                raise InputError(
                    "task.path",
                    str(path),
                    f"a .jsonl, .json, .parquet or .csv file for {self.FAMILY} (plain text is for bookcorpus)",
                )
            yield from iter_records(path, self.FAMILY)
