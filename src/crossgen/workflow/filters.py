"""Pool filters: the step between writing a synthetic pool and training on it.

A pool D_tj is written by entity j's generation t-1 model; its filters (`generation.filters`,
or the entity's own `filters`) then decide, in order, which completions stay. Each filter
takes the list of pool rows (``{"prompt", "answer", "source", "index"}``, `index` being the
entry's position among the pool's prompts) and returns the rows to keep, in their order:

- ``verify``: the completion, cut before its first "Question:" (as the accuracy metric
  does), gives the right answer by the entity's task (`Task.verify`, which reads the real
  example's known answer: SciQ / ARC options, GSM8K's "#### N", the offline stand-ins' gold);
- ``dedupe``: the first of exact repeats of prompt + completion;
- ``length``: completions of ``min_chars`` to ``max_chars`` characters (either bound optional);
- ``likelihood``: the fraction ``keep`` (rounded up) of completions with the highest mean
  per-token log-likelihood under the model that wrote them (scored while it is loaded to
  write the pool; ties keep the earlier entry; an empty completion counts as least likely);
- ``module:function``: a user function, called with the list of rows, that returns the rows
  to keep. A filter selects, it does not edit: returned rows are matched to the given ones by
  their `index`, so changes to a row's text are ignored.

The pool file then holds the kept rows only; how many were generated and kept after each
filter is saved next to it (`counts_path`), and the loop records those counts in the
manifest and in ``pool_counts.csv``. A run with filters completes whole pools (no lean
pools): completing only the entries an update draws and filtering those would change what
the draw sees. A pool that its filters empty is not drawn from: its weight goes to the
entity's other components in proportion (the draw renormalises; under weighted-loss an
empty pool adds nothing).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from crossgen.config import FilterConfig, check_filter_function
from crossgen.data import Example
from crossgen.io import _jsonable

Row = dict[str, Any]


@dataclass
class PoolContext:
    """What the built-in filters may need about the pool being filtered.

    Parameters
    ----------
    entity
        The name of the entity whose model wrote the pool.
    task
        That entity's private task (a `crossgen.tasks.Task`; `verify` calls its `verify`).
    examples
        The real example behind each pool entry, by the rows' `index`.
    model
        The model that wrote the pool (`likelihood` calls its `continuation_logprobs`).
    batch_size
        Batch size for scoring.
    """

    entity: str
    task: Any
    examples: Sequence[Example]
    model: Any = None
    batch_size: int = 16


def counts_path(pool_path: Path) -> Path:
    """Where a filtered pool's counts live: next to it, ``<entity>.counts.json``."""
    return pool_path.with_name(pool_path.name.removesuffix(".jsonl") + ".counts.json")


def apply_filters(filters: Sequence[FilterConfig], rows: list[Row], ctx: PoolContext) -> tuple[list[Row], dict]:
    """The rows the filters keep, in order, and the counts: ``{"generated": n, "kept": m,
    "steps": [{"filter": name, "kept": n_i}, ...]}`` (rows left after each filter)."""
    counts: dict[str, Any] = {"generated": len(rows), "steps": []}
    for spec in filters:
        rows = _step(spec, rows, ctx)
        counts["steps"].append({"filter": label(spec), "kept": len(rows)})
    counts["kept"] = len(rows)
    return rows, counts


def label(spec: FilterConfig) -> str:
    """A filter as tables name it: its name and parameters, e.g. "length(min_chars=5)"."""
    params = [f"{k}={getattr(spec, k)}" for k in ("min_chars", "max_chars", "keep") if getattr(spec, k) is not None]
    return f"{spec.name}({', '.join(params)})" if params else spec.name


def _step(spec: FilterConfig, rows: list[Row], ctx: PoolContext) -> list[Row]:
    if spec.name == "verify":
        return verify(rows, ctx)
    if spec.name == "dedupe":
        return dedupe(rows)
    if spec.name == "length":
        return length(rows, spec.min_chars, spec.max_chars)
    if spec.name == "likelihood":
        assert spec.keep is not None  # the config requires it
        return likelihood(rows, ctx, spec.keep)
    return user_filter(spec.name, check_filter_function(spec.name), rows)


def verify(rows: list[Row], ctx: PoolContext) -> list[Row]:
    """Rows whose completion the entity's task accepts as the right answer."""
    from crossgen.tasks.answers import until_stop

    return [r for r in rows if ctx.task.verify(until_stop(r["answer"]), ctx.examples[r["index"]])]


def _text_key(row: Row) -> str:
    return json.dumps([row["prompt"], row["answer"]], default=_jsonable)


def dedupe(rows: list[Row]) -> list[Row]:
    """The first row of each distinct (prompt, completion)."""
    seen: set[str] = set()
    kept = []
    for r in rows:
        key = _text_key(r)
        if key not in seen:
            seen.add(key)
            kept.append(r)
    return kept


def length(rows: list[Row], min_chars: Optional[int], max_chars: Optional[int]) -> list[Row]:
    """Rows whose completion has min_chars..max_chars characters (None: no bound)."""
    lo = 0 if min_chars is None else min_chars
    hi = math.inf if max_chars is None else max_chars
    return [r for r in rows if lo <= len(str(r["answer"])) <= hi]


def likelihood(rows: list[Row], ctx: PoolContext, keep: float) -> list[Row]:
    """The ceil(keep x n) rows whose completions have the highest mean per-token
    log-likelihood under the model that wrote them (in pool order)."""
    if not rows:
        return []
    score = getattr(ctx.model, "continuation_logprobs", None)
    if score is None:  # run.build refuses this up front for backends that are not text backends
        raise TypeError(f"pool filter likelihood: the model of {ctx.entity} has no token likelihoods")
    pairs = score([r["prompt"] for r in rows], [r["answer"] for r in rows], ctx.batch_size)
    means = [total / count if count else -math.inf for total, count in pairs]
    ranked = sorted(range(len(rows)), key=lambda i: (-means[i], i))
    chosen = sorted(ranked[: math.ceil(keep * len(rows) - 1e-9)])
    return [rows[i] for i in chosen]


def user_filter(name: str, fn: Callable[[list[Row]], Any], rows: list[Row]) -> list[Row]:
    """Call a module:function filter with copies of the rows; it must return some of them."""
    position = {r["index"]: i for i, r in enumerate(rows)}
    result = fn([dict(r) for r in rows])
    if not isinstance(result, list):
        raise TypeError(f"pool filter {name} returned a {type(result).__name__}, not a list of the rows it was given")
    seen: set[Any] = set()
    for r in result:
        index = r.get("index") if isinstance(r, dict) else None
        if index not in position or index in seen:
            raise ValueError(
                f"pool filter {name} returned {str(r)[:80]!r}, which is not one of the rows it was given "
                "(rows are matched by their 'index'; each may be kept once)"
            )
        seen.add(index)
    return [r for r in rows if r["index"] in seen]
