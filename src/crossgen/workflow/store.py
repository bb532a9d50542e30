"""The run directory: resolved config, manifest, per-generation files, atomic writes.

Layout (the run-directory contract of docs/DESIGN.md):

    DIR/config.yaml                 the fully resolved config
    DIR/manifest.json               versions, seeds, status of each generation
    DIR/initial/                    the shared starting model
    DIR/initial_<entity>/           the starting model of an entity with its own model
    DIR/gen_003/models/<entity>/    checkpoint of entity's generation-3 model (safetensors)
    DIR/gen_003/pool/<entity>.jsonl D_3: completions by entity's generation-2 model
    DIR/gen_003/updates/<entity>.json  what entity's generation-3 update did (steps, tokens, ...)
    DIR/gen_003/losses.csv          every generation-3 model on every task
    DIR/gen_003/completions/<entity>.jsonl  completions of the first prompts (embeddings)
    DIR/gen_003/metrics/<family>.csv       one metric family's tidy rows (metrics.table)
    DIR/losses.csv, DIR/similarity.csv     tidy tables over all complete generations
    DIR/metrics.csv                 every gen_*/metrics/*.csv of the complete generations

Every file is written to a temporary name and renamed into place, so a file either exists
whole or not at all. A generation is marked complete in the manifest only after all of its
files exist; resuming redoes whatever of an incomplete generation is missing.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

import pandas as pd
import yaml

from crossgen.config import RunConfig, parse_config
from crossgen.errors import InputError
from crossgen.io import DirectoryLock, atomic_path, write_json, write_table

MANIFEST = "manifest.json"
CONFIG = "config.yaml"
METRICS = "metrics"  # gen_NNN/metrics/<family>.csv -> DIR/metrics.csv
TABLES = ("losses", "similarity", "homogenization", "semantic", METRICS)  # the top-level tidy tables


def config_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


class RunStore:
    """One run directory. Create with `RunStore.create` or open with `RunStore.resume`."""

    def __init__(self, root: Path):
        self.root = Path(root)
        # parsed gen_*/<table>.csv by path, with the (inode, mtime, size) they were read at: a
        # file is only ever replaced whole (a new inode), so a match is the same content, and
        # each generation's refresh reads only the files that are new (not every one again)
        self._parsed: dict[Path, tuple[tuple[int, int, int], pd.DataFrame]] = {}

    # -- creation / resumption -------------------------------------------------------
    @classmethod
    def create(cls, root: Path, cfg: RunConfig) -> RunStore:
        """Make the directory with config and manifest in one rename (never half made)."""
        root = Path(root)
        if root.exists() and any(root.iterdir()):
            raise InputError("--out", str(root), "a new or empty directory, or --resume to continue the run in it")
        with atomic_path(root) as tmp:
            tmp.mkdir(parents=True)
            (tmp / CONFIG).write_text(config_yaml(cfg))
            (tmp / MANIFEST).write_text(json.dumps(_new_manifest(cfg), indent=2) + "\n")
        return cls(root)

    @classmethod
    def resume(cls, root: Path, cfg: Optional[RunConfig] = None) -> RunStore:
        """Open an existing run; `cfg`, when given, must equal the run's saved config."""
        root = Path(root)
        if not (root / MANIFEST).is_file() or not (root / CONFIG).is_file():
            raise InputError(
                "--out", str(root), "a crossgen run directory (with manifest.json and config.yaml) to resume"
            )
        store = cls(root)
        if cfg is not None and config_yaml(cfg) != config_yaml(store.config()):
            raise InputError("config", "differs from the run's config.yaml", "the config the run was started with")
        return store

    def lock(self) -> DirectoryLock:
        """The run directory's writer lock (use as a context manager)."""
        return DirectoryLock(self.root)

    def config(self) -> RunConfig:
        return parse_config(yaml.safe_load((self.root / CONFIG).read_text()))

    # -- manifest --------------------------------------------------------------------
    def manifest(self) -> dict:
        return json.loads((self.root / MANIFEST).read_text())

    def is_complete(self, generation: int) -> bool:
        return self.manifest()["generations"].get(str(generation), {}).get("status") == "complete"

    def mark_complete(self, generation: int, seconds: float, details: Optional[dict] = None) -> None:
        """Mark a generation complete; `details` (e.g. pool sizes) are kept with it."""
        manifest = self.manifest()
        manifest["generations"][str(generation)] = {
            "status": "complete",
            "seconds": round(seconds, 3),
            "finished": _now(),
            **(details or {}),
        }
        done = [int(g) for g, v in manifest["generations"].items() if v["status"] == "complete"]
        manifest["status"] = "complete" if len(done) == manifest["total_generations"] else "running"
        write_json(self.root / MANIFEST, manifest)

    def completed_generations(self) -> list[int]:
        gens = self.manifest()["generations"]
        return sorted(int(g) for g, v in gens.items() if v.get("status") == "complete")

    # -- paths -----------------------------------------------------------------------
    @property
    def initial_dir(self) -> Path:
        return self.root / "initial"

    def initial_dir_of(self, entity: Optional[str]) -> Path:
        """The starting model of an entity with its own model (`entities[i].model`); None: the
        run's shared `initial/`."""
        return self.initial_dir if entity is None else self.root / f"initial_{entity}"

    def gen_dir(self, generation: int) -> Path:
        return self.root / f"gen_{generation:03d}"

    def model_dir(self, generation: int, entity: str) -> Path:
        return self.gen_dir(generation) / "models" / entity

    def prune_models(self, keep: set[int]) -> None:
        """Delete the checkpoints of every generation not in `keep` (idempotent: a run killed
        mid-way prunes what it left the next time)."""
        for folder in sorted(self.root.glob("gen_*/models")):
            if int(folder.parent.name.removeprefix("gen_")) not in keep:
                shutil.rmtree(folder, ignore_errors=True)

    def prune_model(self, generation: int, entity: str) -> None:
        """Delete one entity's checkpoint of one generation (idempotent)."""
        shutil.rmtree(self.model_dir(generation, entity), ignore_errors=True)

    def carry_over(self, generation: int, entity: str) -> None:
        """Entity's generation-1 checkpoint as its generation checkpoint, for a generation it
        sits out: hard links to the same files (no weights copied; checkpoint files are only
        ever replaced, never changed in place, and a link outlives the pruning of the older
        folder), a copy where the file system cannot link. Atomic like every checkpoint."""
        source = self.model_dir(generation - 1, entity)
        with atomic_path(self.model_dir(generation, entity)) as tmp:
            shutil.copytree(source, tmp, copy_function=link_or_copy)

    def updates_path(self, generation: int, entity: str) -> Path:
        return self.gen_dir(generation) / "updates" / f"{entity}.json"

    def pool_path(self, generation: int, entity: str) -> Path:
        return self.gen_dir(generation) / "pool" / f"{entity}.jsonl"

    def completions_path(self, generation: int, entity: str) -> Path:
        return self.gen_dir(generation) / "completions" / f"{entity}.jsonl"

    def losses_path(self, generation: int) -> Path:
        return self.gen_dir(generation) / "losses.csv"

    def similarity_path(self, generation: int) -> Path:
        return self.gen_dir(generation) / "similarity.csv"

    # -- tidy tables -------------------------------------------------------------------
    def collect(self, name: str) -> pd.DataFrame:
        """Concatenate gen_*/<name>.csv over complete generations, in generation order.

        `metrics` is the tidy metric table: every gen_*/metrics/<family>.csv (families in name
        order within a generation), whichever code wrote them."""
        gens = self.completed_generations()
        if name == METRICS:
            paths = [p for g in gens for p in sorted((self.gen_dir(g) / METRICS).glob("*.csv"))]
        else:
            paths = [p for g in gens if (p := self.gen_dir(g) / f"{name}.csv").is_file()]
        frames = [f for f in map(self._read_table, paths) if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def _read_table(self, path: Path) -> pd.DataFrame:
        stat = path.stat()
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        cached = self._parsed.get(path)
        if cached is None or cached[0] != key:
            cached = self._parsed[path] = (key, pd.read_csv(path))
        return cached[1]

    def refresh_tables(self, names: Iterable[str] = TABLES) -> None:
        for name in names:
            frame = self.collect(name)
            if not frame.empty:
                write_table(self.root / f"{name}.csv", frame)


def _new_manifest(cfg: RunConfig) -> dict:
    return {
        "crossgen_run": 1,
        "name": cfg.name,
        "created": _now(),
        "status": "running",
        "seed": cfg.seed,
        "total_generations": cfg.generations + 1,
        "versions": _versions(),
        "generations": {},
    }


def _versions() -> dict:
    return dict(_installed_versions())


@functools.cache  # read once per process: importlib.metadata scans site-packages each call
def _installed_versions() -> dict:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for pkg in ("crossgen", "numpy", "torch", "transformers", "datasets", "sentence-transformers"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    return versions


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def link_or_copy(src: str, dst: str) -> None:
    """A hard link to `src` at `dst`, a copy where the file system cannot link (another
    device, no link support). Safe for every file of a run directory: files are only ever
    replaced (written to a temporary and renamed over the name), never changed in place, so
    a write under one name never reaches the other, and a link outlives the deletion of the
    other name."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def copy_generation0(source: RunStore, target: RunStore) -> None:
    """Reuse another run's starting models and generation 0, whose settings are equal
    (`RunConfig.generation0_key`): their files hard-linked (`link_or_copy`: the
    checkpoints take no more disk), generation 0 marked complete with the source's record."""
    for src in [*sorted(source.root.glob("initial*")), source.gen_dir(0)]:
        if src.is_dir():
            with atomic_path(target.root / src.name) as tmp:
                shutil.copytree(src, tmp, copy_function=link_or_copy)
    record = dict(source.manifest()["generations"]["0"])
    seconds = record.pop("seconds", 0.0)
    record.pop("status", None)
    record.pop("finished", None)
    target.mark_complete(0, seconds, record)  # with its updates (steps, tokens, final loss)
    target.refresh_tables()
