"""Saved results of runs, read back for the report (nothing is recomputed or retrained).

A `RunData` is one run directory; a `Condition` is the runs of one (alpha, beta) setting of one
experiment (replicates with other seeds are averaged); `experiments` groups runs that share
entities and tasks (a K = 2 and a K = 3 set of runs make two experiments).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from crossgen.errors import InputError
from crossgen.workflow.store import CONFIG, MANIFEST, RunStore

RUN_DIR_ALLOWED = "a crossgen run directory (with manifest.json)"
VALUE = {
    "losses": "loss",
    "similarity": "cosine",
    "homogenization": "value",
    "semantic": "distance",
    "metrics": "value",
}
KEYS = {
    "losses": ["generation", "model", "task"],
    "similarity": ["generation", "dataset", "model_a", "model_b"],
    "homogenization": ["generation", "dataset", "metric", "model"],
    "semantic": ["generation", "model", "task"],
    "metrics": ["generation", "model", "dataset", "metric"],
}
# averaged over replicate runs with the value, where every replicate has them (run directories
# written before losses had bits_per_byte lack it)
EXTRA = {"metrics": ["low", "high"], "losses": ["bits_per_byte"]}


def _scalar(value) -> Optional[float]:
    return float(value) if not isinstance(value, list) else None


def fmt_weight(x: Optional[float]) -> str:
    return "varies" if x is None else f"{x:g}"


@dataclass(eq=False)
class RunData:
    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not (self.path / MANIFEST).is_file() or not (self.path / CONFIG).is_file():
            raise InputError("RUN_DIR", str(self.path), RUN_DIR_ALLOWED)
        self.store = RunStore(self.path)

    @cached_property
    def cfg(self):
        return self.store.config()

    @cached_property
    def manifest(self) -> dict:
        return self.store.manifest()

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def entities(self) -> list[str]:
        return [e.name for e in self.cfg.entities]

    @property
    def private_tasks(self) -> list[str]:
        return [e.task.name for e in self.cfg.entities]

    @property
    def public_task(self) -> str:
        return self.cfg.public.name

    @property
    def K(self) -> int:
        return self.cfg.K

    @property
    def backend(self) -> str:
        return self.cfg.model.backend

    @property
    def alpha(self) -> Optional[float]:
        """The run's alpha when one number applies to every entity and generation, else None."""
        if any(e.alpha is not None for e in self.cfg.entities):
            return None
        return _scalar(self.cfg.alpha)

    @property
    def beta(self) -> Optional[float]:
        if any(e.beta is not None for e in self.cfg.entities):
            return None
        return _scalar(self.cfg.beta)

    @cached_property
    def generations(self) -> list[int]:
        return self.store.completed_generations()

    def table(self, name: str) -> pd.DataFrame:
        """gen_*/<name>.csv over complete generations, else the run's top-level <name>.csv."""
        return self._tables[name]

    @cached_property
    def _tables(self) -> dict[str, pd.DataFrame]:
        out = {}
        for name in VALUE:
            frame = self.store.collect(name)
            if frame.empty and (self.path / f"{name}.csv").is_file():
                frame = pd.read_csv(self.path / f"{name}.csv")
            out[name] = frame
        return out

    @property
    def losses(self) -> pd.DataFrame:
        return self.table("losses")

    def embedding_generations(self) -> list[int]:
        from crossgen.metrics.generation import EMBEDDINGS

        return [t for t in self.generations if (self.store.gen_dir(t) / EMBEDDINGS).is_file()]

    def embeddings(self, t: int) -> Optional[dict[str, np.ndarray]]:
        from crossgen.metrics.generation import EMBEDDINGS, load_embeddings

        path = self.store.gen_dir(t) / EMBEDDINGS
        return load_embeddings(path) if path.is_file() else None

    @property
    def tokenizers_differ(self) -> bool:
        """Whether the entities' tokenizers differ (per-token losses are then not comparable)."""
        return self.cfg.tokenizers_differ()

    @property
    def structure(self) -> tuple:
        return (tuple(self.entities), tuple(self.private_tasks), self.public_task, self.backend)


@dataclass(eq=False)
class Condition:
    """The runs of one (alpha, beta) of one experiment; replicate runs are averaged."""

    runs: list[RunData]
    alpha: Optional[float]
    beta: Optional[float]
    label: str = ""
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def first(self) -> RunData:
        return self.runs[0]

    def table(self, name: str) -> pd.DataFrame:
        if name not in self.tables:
            self.tables[name] = mean_over_runs([r.table(name) for r in self.runs], name)
        return self.tables[name]

    @property
    def losses(self) -> pd.DataFrame:
        return self.table("losses")

    @property
    def generations(self) -> list[int]:
        frame = self.losses
        return sorted(int(g) for g in frame["generation"].unique()) if not frame.empty else []


def mean_over_runs(frames: list[pd.DataFrame], name: str) -> pd.DataFrame:
    """Average replicate runs' tables, over the generations that every replicate has."""
    frames = [f for f in frames if not f.empty]
    values = [VALUE[name], *EXTRA.get(name, [])]
    if not frames:
        return pd.DataFrame(columns=KEYS[name] + values)
    values = [v for v in values if all(v in f for f in frames)]
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    common = set.intersection(*(set(f["generation"]) for f in frames))
    joined = pd.concat([f[f["generation"].isin(common)] for f in frames], ignore_index=True)
    return joined.groupby(KEYS[name], as_index=False, sort=False)[values].mean()


def load_runs(paths: list[Path]) -> list[RunData]:
    return [RunData(Path(p)) for p in paths]


def experiments(runs: list[RunData]) -> list[list[RunData]]:
    """Runs grouped by (entities, tasks, backend), in first-seen order."""
    groups: dict[tuple, list[RunData]] = {}
    for run in runs:
        groups.setdefault(run.structure, []).append(run)
    return list(groups.values())


def conditions(runs: list[RunData]) -> list[Condition]:
    """One Condition per (alpha, beta) of one experiment, sorted by beta then alpha.

    Runs whose alpha or beta is a schedule (or differs per entity) are their own condition.
    """
    groups: dict[tuple, list[RunData]] = {}
    for run in runs:
        key = (run.alpha, run.beta) if run.alpha is not None and run.beta is not None else ("run", str(run.path))
        groups.setdefault(key, []).append(run)
    out = []
    for members in groups.values():
        a, b = members[0].alpha, members[0].beta
        label = f"α = {fmt_weight(a)}" if a is not None else f"α: {members[0].name}"
        if len(members) > 1:
            label += f" (mean of {len(members)} runs)"
        out.append(Condition(members, a, b, label))
    inf = float("inf")
    out.sort(key=lambda c: (c.beta if c.beta is not None else inf, c.alpha if c.alpha is not None else inf))
    return out


def betas(conds: list[Condition]) -> list[Optional[float]]:
    return list(dict.fromkeys(c.beta for c in conds))
