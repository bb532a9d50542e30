"""Hugging Face Hub datasets through `datasets.load_dataset` (online, or from the local cache).

`records(hub_id, config, split)` loads one split whole (`load_dataset(..., split=split)`:
downloaded once, then read from the cache); with ``streaming=True`` it asks for an
iterable dataset instead (`load_dataset(..., split=split, streaming=True)`), whose rows are
read as the caller iterates, so a caller that stops after N rows reads only about N rows.
BookCorpus (74M sentences, of which a run needs a few hundred thousand) is read this way.
A streamed load that fails in offline mode falls back to the whole-split load, which is
what reads a dataset that an earlier run put in the local cache.

Every failure to load (no network, not in the cache when offline, an unknown id, config or
split, a read error while streaming) becomes an InputError on task.hub_id: the id is
something the user chose.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, Optional

from crossgen.errors import InputError

OFFLINE_HINT = (
    "a dataset in the local Hugging Face cache when offline (HF_DATASETS_OFFLINE=1), or source: local with a path"
)


def offline() -> bool:
    """Whether datasets / huggingface_hub run in offline mode."""
    flags = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    if any(os.environ.get(f, "").strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags):
        return True
    try:
        import datasets.config

        return bool(
            getattr(datasets.config, "HF_HUB_OFFLINE", False) or getattr(datasets.config, "HF_DATASETS_OFFLINE", False)
        )
    except ImportError:  # pragma: no cover
        return False


def records(hub_id: str, config: Optional[str], split: str, streaming: bool = False) -> Iterator[tuple[str, Any]]:
    """(where, row) for every row of one split; loading errors are InputErrors.

    Parameters
    ----------
    hub_id, config, split
        What `datasets.load_dataset` is asked for (a hub id, or a local folder of data files).
    streaming
        Read rows as they are iterated (an iterable dataset) instead of loading the split
        whole; read errors while iterating are InputErrors too.
    """
    try:
        import datasets
    except ImportError:
        raise InputError(
            "task.source", "hub", "local or offline (the 'datasets' package is missing: pip install 'crossgen[lm]')"
        ) from None
    what = f"{hub_id} ({config})" if config else hub_id
    label = f"{hub_id}/{config}" if config else hub_id
    dataset = None
    if streaming:
        try:
            dataset = datasets.load_dataset(hub_id, config, split=split, streaming=True)
        except MemoryError:
            raise
        except Exception as exc:  # offline: the cached (whole-split) copy is tried next
            if not offline():
                raise _load_error(hub_id, what, split, exc) from None
    if dataset is None:
        try:
            dataset = datasets.load_dataset(hub_id, config, split=split)
        except MemoryError:
            raise
        except Exception as exc:  # ConnectionError, DatasetNotFoundError, ValueError (split), ...
            raise _load_error(hub_id, what, split, exc) from None
    return _rows(dataset, label, what, split)


def _load_error(hub_id: str, what: str, split: str, exc: Exception) -> InputError:
    if offline():
        return InputError("task.hub_id", hub_id, OFFLINE_HINT)
    reason = " ".join(str(exc).split())[:160]
    return InputError(
        "task.hub_id",
        what,
        f"a Hugging Face dataset with a {split!r} split that can be loaded ({type(exc).__name__}: {reason})",
    )


def _rows(dataset: Iterable[Any], label: str, what: str, split: str) -> Iterator[tuple[str, Any]]:
    """The rows with where they come from; an error while reading (a stream) is an InputError."""
    rows = iter(dataset)
    number = 0
    try:
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except MemoryError:
                raise
            except Exception as exc:  # a connection lost or a bad file in the middle of a stream
                reason = " ".join(str(exc).split())[:160]
                raise InputError(
                    "task.hub_id",
                    what,
                    f"a Hugging Face dataset whose {split!r} split can be read "
                    f"(row {number + 1}: {type(exc).__name__}: {reason})",
                ) from None
            number += 1
            yield f"record {number} in hub {label} ({split})", row
    finally:
        close = getattr(rows, "close", None)
        if close is not None:  # a stream stopped early releases its files and connections now
            close()
