"""The sweep file: a base run config, the axes to vary, and the seeds of every cell.

    name: alpha-beta
    base: linear                 # a preset name, a run-config path (relative to this file),
                                 # or an inline mapping of run-config settings
    set:                         # optional: dotted path -> value, applied to the base first
      generations: 3             # (the preset stays referenced, not copied)
    axes:                        # dotted run-config path -> the values it takes
      alpha: [0, 0.5, 1]
      beta: [0.25, 0.75]
      # generations: [5, 15]     # T
      # mixing.n: [1600, 3200]
      # entities: [[...], [...]] # whole entity lists (K and the tasks)
      # K: [2, 3, 4]             # shorthand: the first K entities of the base
      # model.name_or_path: [facebook/opt-350m, meta-llama/Llama-3.2-1B]
    seeds: 5                     # seeds 0..4 added to each cell's seed, or an explicit list

Unknown keys are errors; every cell x seed run config is validated by `load_sweep` before
anything runs (see grid.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crossgen.errors import InputError
from crossgen.io import read_yaml_mapping

# A pseudo-axis: the first K entities of the base config.
K_AXIS = "K"


class SweepConfig(BaseModel):
    """What a sweep file holds (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "sweep"
    base: Union[str, dict[str, Any]] = Field(description="preset name, run-config path, or inline mapping")
    set: dict[str, Any] = Field(
        default_factory=dict, description="dotted config path -> value, applied to the base before the axes"
    )
    axes: dict[str, list[Any]] = Field(default_factory=dict, description="dotted config path -> values")
    seeds: Union[int, list[int]] = Field(default=1, description="a count (added to the cell's seed) or a list of seeds")

    @field_validator("axes")
    @classmethod
    def _axes(cls, axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in axes.items():
            if not key or any(not part for part in key.split(".")):
                raise InputError(f"axes.{key}", key, "a dotted run-config path such as alpha or mixing.n")
            if not values:
                raise InputError(f"axes.{key}", values, "a non-empty list of values")
            seen = set()
            for value in values:
                canon = canonical(value)
                if canon in seen:
                    raise InputError(f"axes.{key}", value, "distinct values (this one is listed twice)")
                seen.add(canon)
        return axes

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: Union[int, list[int]]) -> Union[int, list[int]]:
        if isinstance(seeds, int):
            if seeds < 1:
                raise InputError("seeds", seeds, "a positive number of seeds, or a list of seeds >= 0")
        else:
            if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
                raise InputError("seeds", seeds, "a non-empty list of distinct seeds >= 0, or a positive count")
        return seeds


def canonical(value: Any) -> str:
    """A stable text of a YAML value (for duplicate checks and cell hashes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def read_sweep_file(path: Union[str, Path]) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError("SWEEP", str(path), "an existing sweep YAML file")
    return read_yaml_mapping(path, "SWEEP", "a YAML mapping with base, axes and seeds")


def parse_sweep(data: dict[str, Any]) -> SweepConfig:
    """Validate a sweep mapping; the first problem becomes a one-line InputError."""
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as exc:
        raise _input_error(exc, data) from None


def _input_error(exc: ValidationError, data: Any) -> InputError:
    err = exc.errors()[0]
    loc = [
        str(p)
        for p in err["loc"]
        if str(p) not in ("str", "int", "list[int]", "dict[str,any]") and not str(p).startswith("function-")
    ]
    field = ".".join(loc) or "sweep"
    cause = err.get("ctx", {}).get("error")
    if isinstance(cause, InputError):
        return cause
    if err["type"] == "extra_forbidden":
        return InputError(field, "unknown key", "one of " + ", ".join(SweepConfig.model_fields))
    if err["type"] == "missing":
        return InputError(field, "missing", "a value is required")
    value = err.get("input")
    if isinstance(value, dict):
        value = "{...}"
    allowed = {
        "base": "a preset name, a run-config path, or a mapping of run-config settings",
        "axes": "a mapping from a dotted config path to a list of values",
        "set": "a mapping from a dotted config path to a value",
        "seeds": "a positive number of seeds or a list of seeds >= 0",
        "name": "a string",
    }.get(loc[0] if loc else "", err["msg"])
    return InputError(field, value, allowed)


def resolve_base(base: Union[str, dict[str, Any]], sweep_dir: Optional[Path]) -> dict[str, Any]:
    """The base run config as a plain mapping (not yet validated)."""
    if isinstance(base, dict):
        return json.loads(json.dumps(base, default=str))
    from crossgen.presets import resolve_config

    candidate = Path(base)
    if sweep_dir is not None and not candidate.is_absolute() and (sweep_dir / candidate).is_file():
        path = sweep_dir / candidate
    else:
        try:
            path = resolve_config(base)
        except InputError as exc:
            raise InputError("base", base, exc.allowed) from None
    return read_yaml_mapping(path, "base", "a YAML mapping of run settings")
