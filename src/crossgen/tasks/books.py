"""BookCorpus (Zhu et al., 2015): the public data D* of the paper, continuous narrative text.

Hub: "bookcorpus/bookcorpus", split train only, one sentence a record in field "text",
74,004,228 records. It is streamed (`load_dataset(..., streaming=True)`, see
`crossgen.tasks.hub`): only the records that the first `passage_limit` passages need are
read, not the whole corpus; offline, a copy in the local Hugging Face cache is read instead.
`task.hub_id` may name a local folder of data files too, read by `datasets` the same way.
Local: the hub schema (JSONL / JSON / Parquet / CSV with "text"), or plain .txt with one
sentence or paragraph a line, as in the release that the hub copy was made from
(books_large_p1.txt, books_large_p2.txt); a folder without split-named files is read as one
corpus, its files in name order (the original release is a folder of .txt books).

Consecutive sentences are grouped into passages of MIN_WORDS..MAX_WORDS words (a sentence
longer than MAX_WORDS is cut into pieces). A passage's prompt is its first PROMPT_WORDS
words, its answer " " + the rest, both with whitespace collapsed to single spaces. Passages
are built from the start of the corpus only until `passage_limit` of them exist (BookCorpus
has 74M sentences), and the last TEST_SHARE of them are the test split: BookCorpus has no
test split of its own. A folder with train and test files uses them as they are (at most
train_size or DEFAULT_TRAIN_PASSAGES, test_size or DEFAULT_TEST_PASSAGES passages).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Optional

from crossgen.data import Example, real_source
from crossgen.errors import InputError
from crossgen.tasks import hub
from crossgen.tasks.base import missing
from crossgen.tasks.dataset import DatasetTask, Records, Splits
from crossgen.tasks.registry import register_task

if TYPE_CHECKING:
    from crossgen.config import TaskConfig

FAMILY = "bookcorpus"
ALLOWED = "records with a field text (BookCorpus hub schema), or a .txt file with one sentence a line"

MIN_WORDS = 60
MAX_WORDS = 120
PROMPT_WORDS = 12
TEST_SHARE = 0.05
DEFAULT_TRAIN_PASSAGES = 20_000  # passages built when train_size is not set
DEFAULT_TEST_PASSAGES = 1_000  # from a separate test file when test_size is not set


def passage_limit(train_size: Optional[int], test_size: Optional[int], test_share: float = TEST_SHARE) -> int:
    """How many passages to build so that both caps can be met after the held-out share."""
    train = (train_size or DEFAULT_TRAIN_PASSAGES) / (1 - test_share)
    test = (test_size or 0) / test_share
    return max(2, math.ceil(max(train, test)))


def sentences(records: Iterable[tuple[str, Any]]) -> Iterator[str]:
    """The text of each record; a record without a "text" field is an InputError."""
    for where, record in records:
        if not isinstance(record, dict) or "text" not in record:
            raise InputError(f"{FAMILY} {where}", "missing 'text'", ALLOWED)
        if not missing(record["text"]):
            yield str(record["text"])


def passages(
    texts: Iterable[str],
    min_words: int = MIN_WORDS,
    max_words: int = MAX_WORDS,
    limit: Optional[int] = None,
    prompt_words: int = PROMPT_WORDS,
) -> list[list[str]]:
    """Group consecutive sentences into passages (lists of words), at most `limit` of them."""
    out: list[list[str]] = []
    current: list[str] = []

    def close() -> None:
        nonlocal current
        if len(current) > prompt_words and len(current) >= min(min_words, max_words) // 2:
            out.append(current)
        current = []

    for text in texts:
        words = text.split()
        pieces = [words[i : i + max_words] for i in range(0, len(words), max_words)]
        for piece in pieces:
            if current and len(current) + len(piece) > max_words:
                close()
            current = current + piece
            if len(current) >= min_words:
                close()
            if limit is not None and len(out) >= limit:
                return out
    close()
    return out[:limit] if limit is not None else out


def split_passage(words: list[str], prompt_words: int = PROMPT_WORDS) -> tuple[str, str]:
    """(first `prompt_words` words, " " + the rest): the cut is at a word boundary."""
    return " ".join(words[:prompt_words]), " " + " ".join(words[prompt_words:])


def held_out_tail(items: list[Any], share: float = TEST_SHARE) -> tuple[list[Any], list[Any]]:
    """(all but the last `share`, the last `share`); at least one item each when possible."""
    if len(items) < 2:
        return list(items), []
    n_test = min(len(items) - 1, max(1, round(len(items) * share)))
    return list(items[:-n_test]), list(items[-n_test:])


@register_task("bookcorpus")
class BookCorpus(DatasetTask):
    """Passages of continuous text: the corpus hooks of `DatasetTask` build passages."""

    FAMILY = FAMILY
    HUB_ID = "bookcorpus/bookcorpus"
    ALLOWED = ALLOWED
    HUB_STREAMING = True  # 74M records: read only the first ones the passages need
    narrative = True

    def passage_examples(self, records: Records, limit: int) -> list[Example]:
        """The first `limit` passages of the records' sentences, as examples."""
        source = real_source(self.name)
        return [Example(*split_passage(words), source=source) for words in passages(sentences(records), limit=limit)]

    def split_examples(self, records: Records, split: str, cfg: TaskConfig) -> list[Example]:
        if split == "train":
            return self.passage_examples(records, cfg.train_size or DEFAULT_TRAIN_PASSAGES)
        return self.passage_examples(records, cfg.test_size or DEFAULT_TEST_PASSAGES)

    def split_corpus(self, records: Records, cfg: TaskConfig) -> Splits:
        """Enough passages for both caps, the last TEST_SHARE of them as the test split."""
        return held_out_tail(self.passage_examples(records, passage_limit(cfg.train_size, cfg.test_size)))

    def from_hub(self, hub_id: str, cfg: TaskConfig) -> Splits:
        """BookCorpus has a train split only: it is streamed and split like one local file,
        the stream closed once `passage_limit` passages are built."""
        return self.split_corpus(hub.records(hub_id, self.HUB_CONFIG, "train", self.HUB_STREAMING), cfg)
