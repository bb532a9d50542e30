"""Reading local dataset files (source: local) as a stream of (where, record) pairs.

Formats: .jsonl (one JSON object a line), .json (a JSON array of objects, as in the SciQ
release, or JSON lines, as `datasets` exports), .parquet, .csv (a header row; every value is
read as text) and .txt (one sentence or paragraph a line: BookCorpus only; blank lines are
skipped). `where` names the record for error messages: "line 3 in /x/train.jsonl" for line
formats, "record 3 in /x/train.json" otherwise; both count from 1.

A folder holds one file per split, found by name: the stem is the split (train, test,
validation, also valid/dev/val), or starts with "<split>-" (the hub's
"train-00000-of-00001.parquet" shards, read in order), or ends with "-<split>" or "_<split>"
(the ARC release's "ARC-Easy-Train.jsonl"); case does not matter. When a split has files in
several formats (the ARC release ships .csv and .jsonl side by side), the first format in
EXTENSIONS wins. Only the folder itself is searched, not its subfolders.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crossgen.errors import InputError

EXTENSIONS = (".jsonl", ".json", ".parquet", ".csv", ".txt")
SPLIT_ALIASES = {
    "train": ("train",),
    "test": ("test",),
    "validation": ("validation", "valid", "dev", "val"),
}
FORMATS = "a .jsonl, .json, .parquet, .csv or .txt file, or a folder of such files named by split"

Record = tuple[str, Any]


def check_path(path: Path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError("task.path", str(path), "an existing file or folder")
    if path.is_file() and path.suffix.lower() not in EXTENSIONS:
        raise InputError("task.path", str(path), FORMATS)
    return path


def split_of(file: Path) -> str | None:
    """Which split a file in a dataset folder belongs to (None: not a split file)."""
    stem = file.name[: -len(file.suffix)].lower() if file.suffix else file.name.lower()
    for split, aliases in SPLIT_ALIASES.items():
        for alias in aliases:
            if stem == alias or stem.startswith(alias + "-") or stem.endswith(("-" + alias, "_" + alias)):
                return split
    return None


def data_files(folder: Path) -> list[Path]:
    """Every readable file directly in `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)


def split_files(folder: Path) -> dict[str, list[Path]]:
    """{split: files} for the split files of a folder, one format per split."""
    found: dict[str, dict[str, list[Path]]] = {}
    for file in data_files(folder):
        split = split_of(file)
        if split is not None:
            found.setdefault(split, {}).setdefault(file.suffix.lower(), []).append(file)
    chosen = {}
    for split, by_ext in found.items():
        ext = next(e for e in EXTENSIONS if e in by_ext)
        chosen[split] = by_ext[ext]
    return chosen


def iter_records(path: Path, family: str) -> Iterator[Record]:
    """(where, record) for every record of one file; records are dicts (txt: {"text": line})."""
    ext = path.suffix.lower()
    if ext == ".jsonl":
        yield from _jsonl(path, family)
    elif ext == ".json":
        yield from _json(path, family)
    elif ext == ".parquet":
        yield from _parquet(path, family)
    elif ext == ".csv":
        yield from _csv(path, family)
    elif ext == ".txt":
        yield from _txt(path)
    else:  # pragma: no cover - check_path and data_files filter extensions
        raise InputError("task.path", str(path), FORMATS)


def _jsonl(path: Path, family: str) -> Iterator[Record]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise InputError(
                    f"{family} line {number} in {path}", "not valid JSON", "one JSON object per line"
                ) from None
            yield f"line {number} in {path}", record


def _json(path: Path, family: str) -> Iterator[Record]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # JSON lines in a .json file (datasets' to_json)
            yield from _jsonl(path, family)
            return
        raise InputError(f"{family} file {path}", "not valid JSON", "a JSON array of records or JSON lines") from None
    if isinstance(data, dict):  # a single record
        data = [data]
    if not isinstance(data, list):
        raise InputError(
            f"{family} file {path}", f"a JSON {type(data).__name__}", "a JSON array of records or JSON lines"
        )
    for number, record in enumerate(data, start=1):
        yield f"record {number} in {path}", record


def _parquet(path: Path, family: str) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a bad file
        raise InputError(
            f"{family} file {path}", f"not a readable Parquet file ({type(exc).__name__})", "a Parquet table"
        ) from None
    number = 0
    for batch in reader.iter_batches(batch_size=4096):
        for record in batch.to_pylist():
            number += 1
            yield f"record {number} in {path}", record


def _csv(path: Path, family: str) -> Iterator[Record]:
    import pandas as pd

    try:
        chunks = pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=4096)
        number = 0
        for chunk in chunks:
            for record in chunk.to_dict("records"):
                number += 1
                yield f"record {number} in {path}", record
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{family} file {path}", f"not a readable CSV file ({type(exc).__name__})", "CSV with a header row"
        ) from None


def _txt(path: Path) -> Iterator[Record]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield f"line {number} in {path}", {"text": line.strip()}
