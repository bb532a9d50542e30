"""What every command shares: the consoles and `--set key.path=value` overrides."""

from __future__ import annotations

from typing import Any, Optional

from rich.console import Console

from crossgen.errors import InputError

stdout = Console(soft_wrap=True)  # paths and JSON on stdout are never wrapped (scripts read them)
stderr = Console(stderr=True)


def parse_overrides(pairs: Optional[list[str]]) -> dict[str, Any]:
    """`--set key.path=value` pairs; values are parsed as YAML (numbers, lists, ...)."""
    import yaml

    parsed = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError("--set", pair, "key.path=value")
        parsed[key.strip()] = yaml.safe_load(value)
    return parsed
