"""Model backends: the protocol the workflow loop talks to, and its implementations.

`base` (the protocol, no heavy imports), `hf` (transformers causal LMs; imports torch),
`linear` (the theory's linear-Gaussian model). `HFBackend` is imported lazily so that
theory-only users never load torch.
"""
from __future__ import annotations

from typing import Any

from crossgen.backends.base import Backend, GenerativeModel, ProgressFn, TrainStats

__all__ = ["Backend", "GenerativeModel", "ProgressFn", "TrainStats", "HFBackend", "HFModel"]


def __getattr__(name: str) -> Any:
    if name in ("HFBackend", "HFModel"):
        from crossgen.backends import hf

        return getattr(hf, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
