"""The one error type for invalid user input.

Anything a user can get wrong (a config value, a data file, a CLI argument) raises
`InputError`. The CLI turns it into a one-line message and exit code 2; every other
exception is a bug or an environment failure and exits 1.
"""
from __future__ import annotations

from typing import Any


class InputError(ValueError):
    """Invalid input, reported as ``invalid <field>: <value> (allowed: <allowed>)``."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"invalid {field}: {_short(value)} (allowed: {allowed})")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value) if not isinstance(value, str) else value
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_fraction(field: str, value: float) -> float:
    """A weight in [0, 1] (alpha, beta)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(field, value, "a number in [0, 1]") from None
    if not 0.0 <= x <= 1.0:  # also rejects NaN
        raise InputError(field, value, "a number in [0, 1]")
    return x
