"""Generated stand-ins for the paper's datasets (source: offline), deterministic by seed.

Each task has its own closed vocabulary (content words are not shared between tasks: see
`common.word_types` and `common.overlap`), answers that are a learnable function of the prompt,
and short examples, so that tiny models trained from scratch on a CPU learn them and the
paper's cross-task effects can be seen. Default sizes: DEFAULT_TRAIN_SIZE train and
DEFAULT_TEST_SIZE test examples per task. One module per task (science, arithmetic,
reasoning, stories), each registering a `GeneratedTask`.
"""

from __future__ import annotations

from crossgen.tasks.offline.common import DEFAULT_TEST_SIZE, DEFAULT_TRAIN_SIZE, FUNCTION_WORDS, overlap, word_types

__all__ = ["DEFAULT_TEST_SIZE", "DEFAULT_TRAIN_SIZE", "FUNCTION_WORDS", "overlap", "word_types"]
