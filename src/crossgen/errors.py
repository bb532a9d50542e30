"""The error types a user sees, and the one set of number checks that raise them.

Anything a user can get wrong (a config value, a data file, a CLI argument) raises
`InputError`. The CLI turns it into a one-line message and exit code 2; a failed write
(disk full, no permission) is a `StorageError` naming the path, exit code 1; every other
exception is a bug or an environment failure and exits 1.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any, Optional

FRACTION = "a number in [0, 1]"


class InputError(ValueError):
    """Invalid input, reported as ``invalid <field>: <value> (allowed: <allowed>)``."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"invalid {field}: {_short(value)} (allowed: {allowed})")


class StorageError(RuntimeError):
    """Writing `path` failed; whatever was there before is left as it was."""

    def __init__(self, path: Path, cause: OSError):
        self.path = Path(path)
        self.cause = cause
        reason = cause.strerror or type(cause).__name__
        super().__init__(f"could not write {self.path}: {reason} (the previous content is unchanged)")


def _short(value: Any, limit: int = 80, text_limit: int = 400) -> str:
    """The value on one line; a long repr is cut at `limit`, a string (paths, names) only at
    `text_limit`, so that a path is shown whole."""
    text = repr(value) if not isinstance(value, str) else value
    text = " ".join(text.split())
    cut = text_limit if isinstance(value, str) else limit
    return text if len(text) <= cut else text[: cut - 3] + "..."


def check_int(field: str, value: Any, minimum: int = 0, maximum: Optional[int] = None) -> int:
    """An integer in [minimum, maximum] (bools and non-integral floats such as 2.5 are rejected)."""
    allowed = f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(field, value, allowed)
    number = int(value)
    if number < minimum or (maximum is not None and number > maximum):
        raise InputError(field, value, allowed)
    return number


def check_fraction(field: str, value: Any) -> float:
    """A weight in [0, 1] (alpha, beta); NaN is rejected."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(field, value, FRACTION) from None
    if not 0.0 <= x <= 1.0:  # also rejects NaN
        raise InputError(field, value, FRACTION)
    return x


def check_positive(field: str, value: Any) -> float:
    """A finite number > 0."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(field, value, "a finite number > 0") from None
    if not (x > 0 and math.isfinite(x)):
        raise InputError(field, value, "a finite number > 0")
    return x


class EntityTaskError(RuntimeError):
    """One entity's part of a generation failed in a worker (an exception, or the worker died);
    the run directory keeps what finished, so the run resumes like any interrupted one."""

    def __init__(self, phase: str, generation: int, entity: str, cause: str):
        super().__init__(f"generation {generation}, entity {entity}: {phase} failed: {cause}")
        self.phase, self.generation, self.entity = phase, generation, entity
