"""Model backends: the protocol the workflow loop talks to, the registry, the implementations.

`base` (the protocol, no heavy imports), `registry` (names -> backend classes; a backend X is
the module `crossgen.backends.X`, imported when X is asked for), `hf` (transformers causal
LMs; torch is imported when a model is built), `linear` (the theory's linear-Gaussian
model). `HFBackend` and `HFModel` are imported lazily so that theory-only users never load
torch.
"""

from __future__ import annotations

from typing import Any

from crossgen.backends.base import Backend, GenerativeModel, ProgressFn, TrainStats
from crossgen.backends.registry import backend_names, get_backend, register_backend

__all__ = [
    "Backend",
    "GenerativeModel",
    "HFBackend",
    "HFModel",
    "ProgressFn",
    "TrainStats",
    "backend_names",
    "get_backend",
    "register_backend",
]


def __getattr__(name: str) -> Any:
    if name in ("HFBackend", "HFModel"):
        from crossgen.backends import hf

        return getattr(hf, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
