"""Expanding a sweep's axes into cells (one per combination) and runs (cell x seed).

Every run config is validated here, before anything runs: a bad axis value becomes an
InputError that names the field, the value and the cell. Cell ids are short, stable and
readable (`alpha=0.5,beta=0.25`); a hash of the exact values is appended when the text
alone could be ambiguous (lists, long or sanitised values, collisions).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from crossgen.config import RunConfig, parse_config, set_dotted
from crossgen.errors import InputError
from crossgen.sweep.config import K_AXIS, SweepConfig, canonical, parse_sweep, read_sweep_file, resolve_base

MAX_ID = 64  # characters of the readable part of a cell id


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a cell at one seed, and where its run directory lives."""

    cell: str
    seed: int
    config: RunConfig

    @property
    def rel_dir(self) -> str:
        return f"cells/{self.cell}/seed_{self.seed}"


@dataclass
class Cell:
    id: str
    values: dict[str, Any]  # axis -> the value as written in the sweep file
    labels: dict[str, Any]  # axis -> a scalar for tables (lists become a short text)
    runs: list[RunSpec] = field(default_factory=list)

    @property
    def config(self) -> RunConfig:
        return self.runs[0].config


@dataclass
class Sweep:
    name: str
    config: SweepConfig
    base: dict[str, Any]  # the base run config, resolved to a mapping
    base_config: RunConfig
    cells: list[Cell]

    @property
    def axes(self) -> list[str]:
        return list(self.config.axes)

    @property
    def runs(self) -> list[RunSpec]:
        return [run for cell in self.cells for run in cell.runs]

    def resolved(self) -> dict[str, Any]:
        """The sweep with its base inlined: what DIR/sweep.yaml holds."""
        return {
            "name": self.name,
            "base": self.base_config.model_dump(mode="json"),
            "axes": self.config.axes,
            "seeds": self.config.seeds,
        }


def load_sweep(path: Union[str, Path], overrides: Optional[dict[str, Any]] = None) -> Sweep:
    """Read, validate and expand a sweep file (relative base paths are relative to it)."""
    path = Path(path)
    return build_sweep(read_sweep_file(path), path.parent, overrides)


def build_sweep(
    data: dict[str, Any], base_dir: Optional[Path] = None, overrides: Optional[dict[str, Any]] = None
) -> Sweep:
    cfg = parse_sweep(data)
    base = resolve_base(cfg.base, base_dir)
    for dotted, value in cfg.set.items():  # the sweep file's own overrides, then the command line's
        _set(base, dotted, copy.deepcopy(value), f"set.{dotted}")
    for dotted, value in (overrides or {}).items():
        _set(base, dotted, value, f"--set {dotted}")
    try:
        base_config = parse_config(copy.deepcopy(base))
    except InputError as exc:
        raise InputError(f"base.{exc.field}", exc.value, exc.allowed) from None
    if isinstance(cfg.seeds, list) and "seed" in cfg.axes:
        raise InputError("seeds", cfg.seeds, "a count of seeds (added to each cell's seed) when 'seed' is an axis")
    cells = expand(cfg, base)
    return Sweep(cfg.name, cfg, base, base_config, cells)


def expand(cfg: SweepConfig, base: dict[str, Any]) -> list[Cell]:
    axes = list(cfg.axes.items())
    combos = itertools.product(*[values for _, values in axes]) if axes else [()]
    cells = []
    for combo in combos:
        assignment = [(key, value) for (key, _), value in zip(axes, combo)]
        cells.append(Cell(cell_id(assignment), dict(assignment), {k: label(v) for k, v in assignment}))
    _dedupe_ids(cells)
    for cell in cells:
        config = _cell_config(cell, base)
        seeds = [config.seed + s for s in range(cfg.seeds)] if isinstance(cfg.seeds, int) else list(cfg.seeds)
        cell.runs = [
            RunSpec(cell.id, s, config if s == config.seed else config.model_copy(update={"seed": s})) for s in seeds
        ]
    return cells


def _cell_config(cell: Cell, base: dict[str, Any]) -> RunConfig:
    data = copy.deepcopy(base)
    for key, value in cell.values.items():
        where = f"axes.{key}"
        if key == K_AXIS:
            entities = data.get("entities") or []
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= len(entities):
                raise InputError(where, value, f"a number of entities from 1 to {len(entities)} (the base's entities)")
            data["entities"] = entities[:value]
        else:
            _set(data, key, copy.deepcopy(value), where)
    try:
        config = parse_config(data)
        _check_names(config)
    except InputError as exc:
        raise InputError(f"{exc.field} in cell {cell.id}", exc.value, exc.allowed) from None
    return config


def _check_names(config: RunConfig) -> None:
    """Registry names (backend, tasks) are checked before any run starts, not when a cell runs."""
    from crossgen.backends.registry import get_backend
    from crossgen.tasks import get_task

    if get_backend(config.model.backend).TEXT:  # the linear backend makes its own data
        tasks = [(f"entities.{i}.task.name", e.task.name) for i, e in enumerate(config.entities)]
        for field, name in [*tasks, ("public.name", config.public.name)]:
            try:
                get_task(name)
            except InputError as exc:
                raise InputError(field, exc.value, exc.allowed) from None


def _set(data: dict[str, Any], dotted: str, value: Any, where: str) -> None:
    try:
        set_dotted(data, dotted, value)
    except (IndexError, ValueError, TypeError, AttributeError, KeyError):
        raise InputError(
            where, dotted, "a dotted path of a run-config setting (list items by index: entities.0.alpha)"
        ) from None


def label(value: Any) -> Any:
    """A scalar for tables: numbers, strings and booleans as they are, lists and maps as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        return "+".join(str(v["name"]) for v in value)  # an entity list: its names
    return canonical(value)


def _text(value: Any) -> tuple[str, bool]:
    """(short text, exact) of one axis value; exact means the text identifies the value."""
    if isinstance(value, bool) or value is None:
        return str(value).lower(), True
    if isinstance(value, int):
        return str(value), True
    if isinstance(value, float):
        short = f"{value:g}"
        return (short, True) if math.isfinite(value) and float(short) == value else (repr(value), True)
    if isinstance(value, str):
        return value, True
    if isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        return f"K{len(value)}-" + "+".join(str(v["name"]) for v in value), False
    return f"{type(value).__name__}{len(value) if hasattr(value, '__len__') else ''}", False


def cell_id(assignment: list[tuple[str, Any]]) -> str:
    """`alpha=0.5,beta=0.25`; plus `-<hash>` when the readable part is not exact."""
    if not assignment:
        return "base"
    parts, exact = [], True
    for key, value in assignment:
        text, ok = _text(value)
        raw = f"{key}={text}"
        safe = re.sub(r"[^A-Za-z0-9._=+-]", "_", raw)
        exact = exact and ok and safe == raw
        parts.append(safe)
    ident = ",".join(parts)
    if not exact or len(ident) > MAX_ID:
        ident = ident[:MAX_ID] + "-" + _hash(assignment)
    return ident


def _hash(assignment: list[tuple[str, Any]]) -> str:
    return hashlib.sha1(canonical([[k, v] for k, v in assignment]).encode()).hexdigest()[:8]


def _dedupe_ids(cells: list[Cell]) -> None:
    """Cells whose readable ids collide (e.g. 1 and 1.0) get the hash of their values."""
    seen: dict[str, int] = {}
    for cell in cells:
        seen[cell.id] = seen.get(cell.id, 0) + 1
    for cell in cells:
        if seen[cell.id] > 1:
            cell.id = cell.id[:MAX_ID] + "-" + _hash(list(cell.values.items()))


# -- generation 0, shared by the runs whose generation-0 settings are equal ------------------
GENERATION0 = "generation0"  # DIR/generation0/<key>/: the shared generations 0 (not runs of the sweep)


@dataclass(frozen=True)
class SharedGeneration0:
    """A generation 0 computed once for `runs` (2+ runs with one generation-0 key): an ordinary
    run directory of `config`, their settings with T = 0, from which each run copies it."""

    key: str  # a hash of the runs' generation-0 key
    config: RunConfig
    runs: tuple[RunSpec, ...]

    @property
    def rel_dir(self) -> str:
        return f"{GENERATION0}/{self.key}"


def shared_generation0(sweep: Sweep) -> list[SharedGeneration0]:
    """The sweep's runs grouped by their generation-0 key (`RunConfig.generation0_key`,
    the test `generation0_from` applies too), groups of 2+ runs only, in the order of their
    first run. Runs with `tracking.backend` keep their own generation 0: their tracker logs it."""

    groups: dict[str, list[RunSpec]] = {}
    for run in sweep.runs:
        if run.config.tracking.backend == "none":
            key = hashlib.sha1(canonical(run.config.generation0_key()).encode()).hexdigest()[:12]
            groups.setdefault(key, []).append(run)
    shared = []
    for key, runs in groups.items():
        if len(runs) > 1:
            config = generation0_config(runs[0].config)
            if config.generation0_key() != runs[0].config.generation0_key():  # a setting of t >= 1 not left out
                raise RuntimeError(f"the generation-0 run of {runs[0].rel_dir} has another generation-0 key")
            shared.append(SharedGeneration0(key, config, tuple(runs)))
    return shared


def generation0_config(cfg: RunConfig) -> RunConfig:
    """`cfg` with T = 0: generation 0 alone. The weights become generation 0's (alpha 0, each
    entity's beta at t = 0) and participation is dropped, as their lists are per generation."""
    data = cfg.model_dump(mode="json")
    beta0 = cfg.schedule("beta")[0].tolist()
    data.update(name=f"{cfg.name} generation 0", generations=0, alpha=0.0, beta=beta0[0], initial_beta=None)
    for entity, beta in zip(data["entities"], beta0):
        entity.update(alpha=None, beta=beta)
        entity.pop("generations", None)
    return parse_config(data)
