"""Hugging Face Hub datasets through `datasets.load_dataset` (online, or from the local cache).

Every failure to load (no network, not in the cache when offline, an unknown id, config or
split) becomes an InputError on task.hub_id: the id is something the user chose.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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


def records(hub_id: str, config: Optional[str], split: str) -> Iterator[tuple[str, Any]]:
    """(where, row) for every row of one split; loading errors are InputErrors."""
    try:
        import datasets
    except ImportError:
        raise InputError(
            "task.source", "hub", "local or offline (the 'datasets' package is missing: pip install 'crossgen[lm]')"
        ) from None
    try:
        dataset = datasets.load_dataset(hub_id, config, split=split)
    except MemoryError:
        raise
    except Exception as exc:  # ConnectionError, DatasetNotFoundError, ValueError (split), ...
        if offline():
            raise InputError("task.hub_id", hub_id, OFFLINE_HINT) from None
        reason = " ".join(str(exc).split())[:160]
        what = f"{hub_id} ({config})" if config else hub_id
        raise InputError(
            "task.hub_id",
            what,
            f"a Hugging Face dataset with a {split!r} split that can be loaded ({type(exc).__name__}: {reason})",
        ) from None
    label = f"{hub_id}/{config}" if config else hub_id
    return ((f"record {i} in hub {label} ({split})", row) for i, row in enumerate(dataset, start=1))
