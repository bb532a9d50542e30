"""One tidy table of a sweep: mean and 95% confidence interval over seeds, per cell,
generation and metric.

Columns: cell, the axis columns (one per axis, named by its dotted path), generation,
metric, model, model_b, task, mean, std, ci_low, ci_high, n_seeds. Metrics:

    loss            model on task (losses.csv of each run)
    similarity      cosine between model and model_b on dataset `task` (similarity.csv)
    own_loss        mean over entities of the loss of entity k's model on its own task
    cross_loss      mean over k != j of the loss of entity k's model on entity j's task
    public_loss     mean over entities of the loss on the public data
    similarity_mean mean cosine over pairs of distinct models and all datasets
    <metric family rows>  every row of the run's metrics.csv (accuracy, reference perplexity,
                    distinct-n, self-BLEU, Vendi, MAUVE, ...: docs/metrics.md), as metric on
                    (model, dataset as task); its own per-run interval is not used: the seeds'
                    spread gives the interval, as for the losses

The derived metrics are computed per run first and then averaged, so their intervals are
over seeds too. "-" marks a column that does not apply (model_b of a loss) and "all" a
mean over models or tasks. The interval is Student-t at 95% over the seeds
(mean +- t_{0.975, n-1} s / sqrt(n)); with one seed it is the mean itself (never NaN).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from crossgen.config import RunConfig
from crossgen.sweep.executors import is_complete
from crossgen.sweep.grid import Cell, Sweep

KEYS = ["generation", "metric", "model", "model_b", "task"]
STATS = ["mean", "std", "ci_low", "ci_high", "n_seeds"]
RESERVED = {"cell", "seed", "value", *KEYS, *STATS}
METRICS = ["loss", "own_loss", "cross_loss", "public_loss", "similarity", "similarity_mean"]
NA, ALL = "-", "all"


def axis_columns(sweep: Sweep) -> dict[str, str]:
    """axis -> its column name (prefixed `axis:` if it would clash with a table column)."""
    return {a: (f"axis:{a}" if a in RESERVED else a) for a in sweep.axes}


def _read(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _table(run_dir: Path, name: str, generations: int) -> list[dict[str, str]]:
    """The run's tidy table `name`, from its per-generation files when the top-level copy
    lags behind (a run killed between marking its last generation complete and refreshing
    DIR/losses.csv leaves a complete manifest with a stale copy)."""
    rows = _read(run_dir / f"{name}.csv")
    if {int(r["generation"]) for r in rows} == set(range(generations + 1)):
        return rows
    per_gen = [_read(run_dir / f"gen_{g:03d}" / f"{name}.csv") for g in range(generations + 1)]
    merged = [r for part in per_gen for r in part]
    return merged if merged else rows


def run_rows(cfg: RunConfig, run_dir: Path) -> Iterator[tuple]:
    """(generation, metric, model, model_b, task, value) of one complete run."""
    names = [e.name for e in cfg.entities]
    tasks = [e.task.name for e in cfg.entities]
    losses: dict[int, dict[tuple[str, str], float]] = {}
    for r in _table(run_dir, "losses", cfg.generations):
        g, value = int(r["generation"]), float(r["loss"])
        losses.setdefault(g, {})[(r["model"], r["task"])] = value
        yield g, "loss", r["model"], NA, r["task"], value
    sims: dict[int, list[float]] = {}
    for r in _table(run_dir, "similarity", cfg.generations):
        g, value = int(r["generation"]), float(r["cosine"])
        if r["model_a"] != r["model_b"]:
            sims.setdefault(g, []).append(value)
        yield g, "similarity", r["model_a"], r["model_b"], r["dataset"], value
    for g, table in losses.items():
        own = [table.get((m, t)) for m, t in zip(names, tasks)]
        cross = [table.get((m, t)) for i, m in enumerate(names) for j, t in enumerate(tasks) if i != j]
        public = [table.get((m, cfg.public.name)) for m in names]
        for metric, values in (("own_loss", own), ("cross_loss", cross), ("public_loss", public)):
            present = [v for v in values if v is not None]
            if values and len(present) == len(values):
                yield g, metric, ALL, NA, ALL, float(np.mean(present))
    for g, pair_values in sims.items():
        yield g, "similarity_mean", ALL, ALL, ALL, float(np.mean(pair_values))
    for r in _table(run_dir, "metrics", cfg.generations):
        if r["value"] not in ("", "nan", "NaN"):  # undefined values (e.g. distinct-4 of short texts)
            yield int(r["generation"]), r["metric"], r["model"], NA, r["dataset"], float(r["value"])


def collect(cell: Cell, out: Path) -> pd.DataFrame:
    """Every value of every complete run of a cell: cell, seed, generation, metric, ..., value."""
    rows: list[tuple] = []
    for run in cell.runs:
        run_dir = Path(out) / run.rel_dir
        if is_complete(run_dir):
            rows.extend((cell.id, run.seed, *row) for row in run_rows(run.config, run_dir))
    return pd.DataFrame(rows, columns=["cell", "seed", *KEYS, "value"])


def summarise(values: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """mean, std, Student-t 95% interval and n over the rows of each group of `by`."""
    from scipy import stats

    grouped = values.groupby(by, sort=False)["value"]
    table = grouped.agg(mean="mean", std="std", n_seeds="count").reset_index()
    n = table["n_seeds"].to_numpy()
    std = np.where(n > 1, table["std"].fillna(0.0).to_numpy(), 0.0)
    t = np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)), 0.0)
    half = t * std / np.sqrt(n)
    table["std"] = std
    table["ci_low"] = table["mean"] - half
    table["ci_high"] = table["mean"] + half
    return table


def aggregate_sweep(sweep: Sweep, out: Path) -> pd.DataFrame:
    """The tidy table of the module docstring (one cell in memory at a time)."""
    cols = axis_columns(sweep)
    parts = [summarise(values, ["cell", *KEYS]) for cell in sweep.cells if not (values := collect(cell, out)).empty]
    if not parts:
        return pd.DataFrame(columns=["cell", *cols.values(), *KEYS, *STATS])
    table = pd.concat(parts, ignore_index=True)
    # A stable order: cells as in the sweep, metrics as listed above, then generation, names.
    order = {c.id: i for i, c in enumerate(sweep.cells)}
    metric_order = {m: i for i, m in enumerate(METRICS)}
    table = table.assign(_c=table["cell"].map(order), _m=table["metric"].map(metric_order).fillna(len(METRICS)))
    table = table.sort_values(["_c", "_m", "generation", "model", "model_b", "task"], kind="stable")
    table = table.drop(columns=["_c", "_m"]).reset_index(drop=True)
    labels = pd.DataFrame([{"cell": c.id, **{cols[a]: c.labels[a] for a in sweep.axes}} for c in sweep.cells])
    table = labels.merge(table, on="cell", how="right")
    return table[["cell", *cols.values(), *KEYS, *STATS]]


def final(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of each cell's last generation."""
    last = table.groupby("cell")["generation"].transform("max")
    return table[table["generation"] == last]
