"""Named run configs shipped with crossgen (src/crossgen/configs/*.yaml)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from crossgen.errors import InputError


def preset_names() -> list[str]:
    folder = resources.files("crossgen") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_config(name_or_path: str) -> Path:
    """A YAML path as given, or the shipped preset of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    preset = resources.files("crossgen") / "configs" / f"{name_or_path}.yaml"
    if preset.is_file():
        return Path(str(preset))
    raise InputError("config", name_or_path, "an existing YAML file or a preset: " + ", ".join(preset_names()))
