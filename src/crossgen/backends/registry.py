"""Backend names -> backend classes: `register_backend`, `get_backend`, `backend_names`.

A backend named X lives in the module ``crossgen.backends.X`` (a module or a package), which
registers its class with ``@register_backend("X")`` when imported. The module is imported
only when backend X is asked for, so linear or theory users never import torch. An installed
package adds a backend through the ``crossgen.backends`` entry-point group: an entry point
named like the backend, pointing at its class (``mylm = "mypkg.backend:MyBackend"``) or at a
module that registers it. A built-in backend of the same name wins.

A backend class follows `crossgen.backends.base.Backend`: ``from_config(cfg)`` builds the
run's data and the backend, and the capabilities ``TEXT`` and ``LOSS_LABEL`` tell the
metrics and the report what its models produce.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, TypeVar

from crossgen.errors import InputError

if TYPE_CHECKING:
    pass

ENTRY_POINT_GROUP = "crossgen.backends"
CAPABILITIES = ("TEXT", "LOSS_LABEL", "from_config", "initial_model", "load")

T = TypeVar("T", bound=type)
_BACKENDS: dict[str, type] = {}


def register_backend(name: str) -> Callable[[T], T]:
    """Class decorator: make a backend class usable as ``model.backend: <name>``.

    Parameters
    ----------
    name
        The backend's name in configs (a Python identifier; the built-in backend ``X``
        is registered by the module ``crossgen.backends.X``).

    Returns
    -------
    callable
        The decorator; it checks the class has every member of the `Backend` protocol,
        sets its ``name`` and returns it unchanged.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a backend name is a Python identifier, not {name!r}")

    def decorate(cls: T) -> T:
        lacking = [m for m in CAPABILITIES if not hasattr(cls, m)]
        if lacking:
            raise TypeError(
                f"backend {name!r} ({cls.__qualname__}) lacks {', '.join(lacking)} (see crossgen.backends.base.Backend)"
            )
        old = _BACKENDS.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"backend {name!r} is already registered by {old.__module__}.{old.__qualname__}")
        cls.name = name  # type: ignore[attr-defined]
        _BACKENDS[name] = cls
        return cls

    return decorate


def _builtin(name: str) -> None:
    """Import crossgen.backends.<name> if it exists (it registers itself)."""
    if name.isidentifier() and importlib.util.find_spec(f"{__package__}.{name}") is not None:
        importlib.import_module(f"{__package__}.{name}")


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_entry_point(ep: EntryPoint) -> None:
    obj = ep.load()
    if isinstance(obj, type) and ep.name not in _BACKENDS:
        register_backend(ep.name)(obj)
    if ep.name not in _BACKENDS:
        raise RuntimeError(
            f"entry point {ep.name} = {ep.value!r} (group {ENTRY_POINT_GROUP}) registers no backend {ep.name!r}"
        )


def get_backend(name: str) -> Any:
    """The backend class registered as `name` (imported on first use).

    Parameters
    ----------
    name
        ``model.backend`` of a config.

    Returns
    -------
    type
        The class; read its capabilities (``TEXT``, ``LOSS_LABEL``) or call
        ``from_config(cfg)``.

    Raises
    ------
    InputError
        On ``model.backend`` when no backend has that name (the message lists the known ones).
    """
    if name not in _BACKENDS:
        _builtin(name)
    if name not in _BACKENDS:
        ep = _entry_points().get(name)
        if ep is not None:
            _load_entry_point(ep)
    if name not in _BACKENDS:
        raise InputError("model.backend", name, "one of " + ", ".join(backend_names()))
    return _BACKENDS[name]


def backend_names() -> list[str]:
    """Sorted names of every known backend: the modules of this package that register one
    (imported to find out; none imports torch at import time) and the entry points."""
    import crossgen.backends as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")
    for name, ep in _entry_points().items():
        if name not in _BACKENDS:
            _load_entry_point(ep)
    return sorted(_BACKENDS)
