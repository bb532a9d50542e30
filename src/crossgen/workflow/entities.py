"""Entities with their own models (docs/DESIGN.md, decision 45): one backend per distinct model
config, and the starting model of each entity.

An entity without `entities[i].model` (or whose merged model equals the run's) starts from the
run's shared `initial/`; an entity with its own model starts from `initial_<entity>/`, built by
its own backend (a from-scratch model with its own tokenizer trained on the run's real text,
or a pretrained folder with its own tokenizer), seeded like the shared one. The loop loads and
saves every checkpoint of entity k through `backends[k]`, so it stays backend-agnostic.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Optional

from crossgen.backends.base import backend_for
from crossgen.config import RunConfig
from crossgen.errors import InputError


def entity_backends(cfg: RunConfig, run_backend: Any) -> list[Any]:
    """Entity k's backend at k: the run's for the run's model, else one per distinct model
    config (entities with equal configs share it).

    Raises
    ------
    InputError
        When the entities' backends differ and one of them is not a text backend: models of
        different backends only meet through text (pools, completions, bits per byte).
    """
    cache: dict[str, Any] = {cfg.model.model_dump_json(): run_backend}
    out = []
    for k in range(cfg.K):
        model = cfg.model_for(k)
        key = model.model_dump_json()
        if key not in cache:
            cache[key] = backend_for(cfg, model)
        out.append(cache[key])
    names = {cfg.model_for(k).backend for k in range(cfg.K)}
    for k, backend in enumerate(out):
        if len(names) > 1 and not getattr(backend, "TEXT", False):
            raise InputError(
                f"entities.{k}.model.backend",
                cfg.model_for(k).backend,
                "text backends for every entity when the entities' backends differ "
                f"({', '.join(sorted(names))}): models of different backends meet only through text",
            )
    return out


def owners(cfg: RunConfig) -> list[Optional[str]]:
    """Whose starting model each entity trains from at generation 0: None for the run's shared
    `initial/`, else the entity's own name (`RunStore.initial_dir_of`)."""
    return [None if cfg.model_for(k) == cfg.model else e.name for k, e in enumerate(cfg.entities)]


def initial_models(
    cfg: RunConfig, backends: Sequence[Any], real_texts: Sequence[str], seed: int, wanted: Collection[Optional[str]]
) -> dict[Optional[str], Any]:
    """The starting models of the owners in `wanted` (see `owners`), each built by its own
    entity's backend from the run's real text and the initial seed. Building them checks
    every model path, so the run builder calls this before anything is written."""
    out: dict[Optional[str], Any] = {}
    for k, owner in enumerate(owners(cfg)):
        if owner in wanted and owner not in out:
            out[owner] = backends[k].initial_model(real_texts, seed)
    return out
