"""A run's starting model as a reference to a pretrained model instead of a copy of it.

A pretrained starting model (``model.name_or_path``, full fine-tuning) is not written to the
run's ``initial/`` folder: the folder holds ``pretrained.json`` naming the model, the seed it
was loaded with and a fingerprint of its files, and loading the folder loads the pretrained
model again (from the Hugging Face cache or the local folder). The fingerprint — the hub
snapshot's commit, or a local folder's config.json digest and weight-file sizes — makes a
resume refuse a model that changed since the run started. For Llama 3.2 3B that is 12.8 GB
(float32) less per run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

from crossgen.io import atomic_path

REFERENCE_FILE = "pretrained.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def fingerprint(name: str, model: Any) -> dict:
    """What identifies the files `name` was loaded from: a local folder's config.json digest and
    weight-file sizes, else the hub snapshot's commit (None when transformers gives none)."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        config = folder / "config.json"
        weights = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        return {
            "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else None,
            "weights": {p.name: p.stat().st_size for p in weights},
        }
    return {"commit": getattr(model.config, "_commit_hash", None)}


def write_reference(directory: Path, name: str, seed: int, model: Any) -> None:
    """The folder `directory` as a reference to the pretrained model `name` (atomically)."""
    record = {"name_or_path": name, "seed": seed, "fingerprint": fingerprint(name, model)}
    with atomic_path(Path(directory)) as tmp:
        tmp.mkdir()
        (tmp / REFERENCE_FILE).write_text(json.dumps(record, indent=2) + "\n")


def read_reference(directory: Path) -> Optional[dict]:
    """The reference a folder holds, or None for a folder of weights."""
    path = Path(directory) / REFERENCE_FILE
    return json.loads(path.read_text()) if path.is_file() else None
