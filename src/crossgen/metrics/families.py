"""Metric families: name -> function from one generation's saved outputs to tidy rows.

A family writes gen_NNN/metrics/<family>.csv with exactly `table.COLUMNS` (generation, model,
dataset, metric, value, low, high); `RunStore.refresh_tables` concatenates every file in
gen_NNN/metrics/ over complete generations into DIR/metrics.csv, so a family computed
elsewhere (e.g. from the models: accuracy, reference perplexity) only has to write its file
there to land in the same table.

A family computed from what a generation saved (completions, embeddings) registers here:

    @register_family("my_family", needs_embeddings=True)
    def my_family(inputs: GenerationInputs) -> list[dict]:   # rows made with table.row
        ...

Every module of the `crossgen.metrics` package is imported on the first lookup, so a new
family is one new file in this package. `requires` names a package the family imports
(checked without importing it); a family whose package is missing is skipped with a note
(`Family.missing()`), never half written. Built in: lexical, vendi, manifold, mauve
(docs/metrics.md says how each number is computed).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from crossgen.io import read_jsonl, write_table
from crossgen.metrics.table import family_path, frame
from crossgen.workflow.store import RunStore

log = logging.getLogger("crossgen.metrics")

POOLED = "all"  # model name of rows over every model's completions of a dataset
REFERENCE = "reference"  # model name of rows over the reference answers (real text)


@dataclass
class GenerationInputs:
    """What one generation saved, aligned by prompt: completions and (optionally) embeddings."""

    t: int
    models: list[str]
    datasets: list[str]
    completions: dict[str, list[dict]]  # model -> rows (dataset, index, prompt, reference, completion)
    embeddings: Optional[dict[str, np.ndarray]] = None
    store: Optional[RunStore] = None
    _by_index: dict = field(default_factory=dict, repr=False)

    def indices(self, dataset: str) -> list[int]:
        """Prompt indices every model completed (the order of every aligned list)."""
        if self.embeddings is not None and f"index/{dataset}" in self.embeddings:
            return [int(i) for i in self.embeddings[f"index/{dataset}"]]
        sets = [set(self._rows(m, dataset)) for m in self.models]
        return sorted(set.intersection(*sets)) if sets else []

    def texts(self, model: str, dataset: str) -> list[str]:
        rows = self._rows(model, dataset)
        return [str(rows[i]["completion"]) for i in self.indices(dataset)]

    def references(self, dataset: str) -> list[str]:
        rows = self._rows(self.models[0], dataset)
        return [str(rows[i].get("reference", "")) for i in self.indices(dataset)]

    def embedding(self, model: str, dataset: str) -> Optional[np.ndarray]:
        """(n, dim) embeddings of `model`'s completions (or of the references for REFERENCE)."""
        if self.embeddings is None:
            return None
        key = f"reference/{dataset}" if model == REFERENCE else f"completion/{model}/{dataset}"
        return self.embeddings.get(key)

    def previous_reference_rows(self, family: str, dataset: str) -> Optional[list[dict]]:
        """The REFERENCE rows of `dataset` in generation t-1's `family` file, as generation t's,
        when t-1 had the same prompts and references (the first test prompts every generation);
        they are what recomputing would give (the bootstrap seeds do not depend on t)."""
        if self.store is None or self.t == 0:
            return None
        import pandas as pd

        path = family_path(self.store.gen_dir(self.t - 1), family)
        previous = self.store.completions_path(self.t - 1, self.models[0])
        if not path.is_file() or not previous.is_file():
            return None
        if "previous" not in self._by_index:
            self._by_index["previous"] = read_jsonl(previous)
        old = {
            int(r["index"]): str(r.get("reference", "")) for r in self._by_index["previous"] if r["dataset"] == dataset
        }
        indices = self.indices(dataset)
        if [old.get(i) for i in indices] != self.references(dataset):
            return None
        table = pd.read_csv(path)
        table = table[(table["model"] == REFERENCE) & (table["dataset"] == dataset)]
        if table.empty:
            return None
        table = table.assign(generation=self.t).astype(object).where(table.notna(), None)
        return table.to_dict("records")

    def _rows(self, model: str, dataset: str) -> dict[int, dict]:
        key = (model, dataset)
        if key not in self._by_index:
            self._by_index[key] = {int(r["index"]): r for r in self.completions[model] if r["dataset"] == dataset}
        return self._by_index[key]


Compute = Callable[[GenerationInputs], list[dict]]


@dataclass(frozen=True)
class Family:
    name: str
    compute: Compute
    needs_embeddings: bool = False
    requires: Optional[str] = None  # an importable module the family needs
    install: str = ""  # how to get it

    def missing(self) -> Optional[str]:
        """Why the family cannot run here (a missing package), or None."""
        if self.requires and importlib.util.find_spec(self.requires) is None:
            return f"{self.name} skipped: the {self.requires} package is not installed ({self.install})"
        return None


_FAMILIES: dict[str, Family] = {}
_discovered = False


def register_family(
    name: str, *, needs_embeddings: bool = False, requires: Optional[str] = None, install: str = ""
) -> Callable[[Compute], Compute]:
    """Function decorator: compute family `name` (gen_NNN/metrics/<name>.csv) from a generation's outputs."""
    if not isinstance(name, str) or not name or not name.replace("_", "").isalnum() or name != name.lower():
        raise ValueError(f"a family name is lower-case letters, digits and underscores, not {name!r}")

    def decorate(fn: Compute) -> Compute:
        old = _FAMILIES.get(name)
        if old is not None and (old.compute.__module__, old.compute.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"metric family {name!r} is already registered by {old.compute.__module__}")
        _FAMILIES[name] = Family(name, fn, needs_embeddings, requires, install)
        return fn

    return decorate


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    import crossgen.metrics as package

    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
    _discovered = True


def families() -> dict[str, Family]:
    """Every registered family, by name (sorted)."""
    _discover()
    return dict(sorted(_FAMILIES.items()))


def family_names() -> list[str]:
    return list(families())


def switched_off(store: RunStore) -> set[str]:
    """Families the run's config turns off (evaluation.mauve)."""
    return set() if store.config().evaluation.mauve else {"mauve"}


def missing_families(store: RunStore, t: int) -> list[str]:
    """Registered, runnable families of generation t, not switched off, without a file yet."""
    off = switched_off(store)
    return [
        name
        for name, fam in families().items()
        if name not in off and fam.missing() is None and not family_path(store.gen_dir(t), name).exists()
    ]


@dataclass
class FamilyResult:
    written: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why
    seconds: dict[str, float] = field(default_factory=dict)


def write_families(
    store: RunStore,
    t: int,
    inputs: GenerationInputs,
    names: Optional[list[str]] = None,
    force: bool = False,
    on_family: Optional[Callable[[str], None]] = None,
) -> FamilyResult:
    """Write generation t's family files that are missing (all of `names` with force=True;
    by default every family the run's config does not switch off)."""
    import time

    result = FamilyResult()
    registry = families()
    off = switched_off(store)
    for name in names if names is not None else [n for n in registry if n not in off]:
        fam = registry[name]
        path = family_path(store.gen_dir(t), name)
        if path.exists() and not force:
            result.existing.append(name)
        elif (why := fam.missing()) is not None:
            result.skipped[name] = why
            log.warning(why)
        elif fam.needs_embeddings and inputs.embeddings is None:
            result.skipped[name] = f"{name} skipped: generation {t} has no embeddings.npz"
        else:
            start = time.perf_counter()
            rows = fam.compute(inputs)
            write_table(path, frame(rows))
            result.seconds[name] = time.perf_counter() - start
            result.written.append(name)
        if on_family is not None:
            on_family(name)
    return result
