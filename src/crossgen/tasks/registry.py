"""Task names -> `Task` classes: `register_task`, `get_task`, `load_task`, `task_names`.

Every module of the `crossgen.tasks` package (and its subpackages) is imported on the first
lookup, and a task module registers its class when imported, so a new task is one new file
in this package. Shipped: sciq, gsm8k, arc_easy, arc_challenge, bookcorpus (source hub or
local) and the generated stand-ins offline_science, offline_arithmetic, offline_reasoning,
offline_stories (source offline; the default source "hub" is accepted too, "local" is not).

An installed package adds tasks through the ``crossgen.tasks`` entry-point group: an entry
point named like the task, pointing at its Task class (``mytask = "mypkg.tasks:MyTask"``) or
at a module whose ``@register_task`` runs on import. It is loaded when its name is first
asked for; a built-in task of the same name wins.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Optional, TypeVar

from crossgen.data import ExperimentData, TaskSplit
from crossgen.errors import InputError
from crossgen.tasks.base import Task

if TYPE_CHECKING:
    from crossgen.config import RunConfig, TaskConfig

ENTRY_POINT_GROUP = "crossgen.tasks"

T = TypeVar("T", bound=type)
_TASKS: dict[str, type[Task]] = {}
_discovered = False


def register_task(name: str) -> Callable[[T], T]:
    """Class decorator: make a `Task` subclass loadable as ``task.name: <name>``.

    Parameters
    ----------
    name
        The task's name in configs, tables and pools (one class per name; a second class
        under a taken name is an error).

    Returns
    -------
    callable
        The decorator; it sets the class's `name` and returns the class unchanged.

    Examples
    --------
    >>> @register_task("my_task")                          # doctest: +SKIP
    ... class MyTask(GeneratedTask):
    ...     def generate(self, seed, train_size, test_size): ...
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValueError(f"a task name is a non-empty string without outer spaces, not {name!r}")

    def decorate(cls: T) -> T:
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise TypeError(f"@register_task({name!r}) decorates a Task subclass, not {cls!r}")
        if cls.__dict__.get("name", name) != name:
            raise ValueError(f"{cls.__qualname__} is already registered as {cls.name!r}: register a subclass per name")
        old = _TASKS.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"task {name!r} is already registered by {old.__module__}.{old.__qualname__}")
        cls.name = name
        _TASKS[name] = cls
        return cls

    return decorate


def _discover() -> None:
    """Import every module of this package once (each registers its tasks)."""
    global _discovered
    if _discovered:
        return
    import crossgen.tasks as package

    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)
    _discovered = True


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_entry_point(ep: EntryPoint) -> None:
    obj = ep.load()
    if isinstance(obj, type) and issubclass(obj, Task) and ep.name not in _TASKS:
        register_task(ep.name)(obj)
    if ep.name not in _TASKS:
        raise RuntimeError(
            f"entry point {ep.name} = {ep.value!r} (group {ENTRY_POINT_GROUP}) registers no task {ep.name!r}"
        )


def get_task(name: str) -> Task:
    """The registered task `name`, ready to load.

    Parameters
    ----------
    name
        A task name (``task.name`` of a config).

    Returns
    -------
    Task
        A new instance of the registered class.

    Raises
    ------
    InputError
        On ``task.name`` when no task has that name (the message lists the known ones).
    """
    _discover()
    if name not in _TASKS:
        ep = _entry_points().get(name)
        if ep is not None:
            _load_entry_point(ep)
    if name not in _TASKS:
        raise InputError("task.name", name, "one of " + ", ".join(task_names()))
    return _TASKS[name]()


def task_names(generated: Optional[bool] = None) -> list[str]:
    """Sorted names of every known task (built-in and installed through entry points).

    Parameters
    ----------
    generated
        True: only generated stand-ins (source offline); False: only real datasets;
        None: all.
    """
    _discover()
    for name, ep in _entry_points().items():
        if name not in _TASKS:
            _load_entry_point(ep)
    return sorted(n for n, cls in _TASKS.items() if generated is None or cls.generated == generated)


def load_task(cfg: TaskConfig, seed: int) -> TaskSplit:
    """The train and test examples of one task, capped by cfg.train_size / cfg.test_size.

    Parameters
    ----------
    cfg
        The task's config; ``cfg.name`` is looked up with `get_task`.
    seed
        The run seed.

    Returns
    -------
    TaskSplit

    Raises
    ------
    InputError
        An unknown name, a source the task does not support, unreadable or empty data;
        the field is named relative to the task ("task.path").
    """
    return get_task(cfg.name).load(cfg, seed)


def load_experiment_data(cfg: RunConfig) -> ExperimentData:
    """Every entity's private task and the public data of a text run, through `load_task`.

    Errors name the field by its full config path (``entities.0.task.path``,
    ``public.hub_id``), so a bad task is refused before anything is written.

    Parameters
    ----------
    cfg
        The run config.

    Returns
    -------
    ExperimentData
    """
    private = [_load(e.task, cfg.seed, f"entities.{i}.") for i, e in enumerate(cfg.entities)]
    return ExperimentData(private, _load(cfg.public, cfg.seed, "public."))


def _load(task_cfg: TaskConfig, seed: int, where: str) -> TaskSplit:
    try:
        return load_task(task_cfg, seed)
    except InputError as exc:
        if exc.field.startswith("task."):
            field = where + (exc.field if where.startswith("entities") else exc.field[len("task.") :])
            raise InputError(field, exc.value, exc.allowed) from None
        raise
