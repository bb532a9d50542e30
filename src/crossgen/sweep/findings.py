"""What a sweep's setting changed relative to the paper's, computed from its aggregated table.

Three settings are read off the cells' run configs (so the finding appears whenever the sweep
varies the setting, whatever the axis is called): the interaction graph (reference: the
complete graph), the pool filters (reference: none) and fresh real data (reference: the real
data drawn once). Cells that differ only in that setting are compared (one comparison per
combination of the other axes), each metric from generation 0 (initial) to the last
generation (final), mean over seeds with its Student-t 95% interval (aggregate.py).

A cell's final value differs from the reference's when the difference exceeds the metric's
threshold (losses: the tables' 0.1, `report.tables.LOSS_THRESHOLD`; similarity: 0, as the
similarity table marks every change) and the two 95% intervals are disjoint (with one seed an
interval is the mean itself, so only the threshold guards). The verdict ('slows
homogenization', 'holds the own-task loss', ...) follows from those comparisons alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import pandas as pd

from crossgen.config import RunConfig
from crossgen.report.tables import INCREASE, LOSS_THRESHOLD, classify
from crossgen.sweep.aggregate import ALL
from crossgen.sweep.grid import Cell, Sweep

LOWER, HIGHER, SAME = "lower", "higher", "same"


@dataclass(frozen=True)
class Metric:
    name: str  # a metric of the aggregated table (model "all")
    label: str
    threshold: float


OWN = Metric("own_loss", "own-task loss", LOSS_THRESHOLD)
CROSS = Metric("cross_loss", "cross-task loss", LOSS_THRESHOLD)
SIMILARITY = Metric("similarity_mean", "similarity", 0.0)


@dataclass(frozen=True)
class Setting:
    key: str
    value: Callable[[RunConfig], str]  # the setting's name in the text
    reference: str  # the paper's value
    metrics: tuple[Metric, ...]
    verdict: Callable[[str, Comparison], str]  # (cell's value, its first metric's comparison) -> headline


@dataclass(frozen=True)
class Change:
    initial: float
    final: float
    low: float
    high: float


@dataclass(frozen=True)
class Comparison:
    metric: Metric
    reference: Change
    other: Change

    @property
    def direction(self) -> str:
        """LOWER / HIGHER when the final values differ beyond the threshold and the
        intervals, SAME otherwise."""
        diff = self.other.final - self.reference.final
        apart = self.other.high < self.reference.low or self.other.low > self.reference.high
        if abs(diff) <= self.metric.threshold or not apart:
            return SAME
        return LOWER if diff < 0 else HIGHER

    def own_status(self) -> str:
        """The other cell's own change, initial -> final (`report.tables.classify`)."""
        return classify(self.other.initial, self.other.final, self.metric.threshold)

    def reference_status(self) -> str:
        return classify(self.reference.initial, self.reference.final, self.metric.threshold)


def _graph(cfg: RunConfig) -> str:
    return cfg.graph if isinstance(cfg.graph, str) else "a custom matrix"


def _filters(cfg: RunConfig) -> str:
    names = [f.name for f in cfg.generation.filters]
    return "+".join(names) if names else "no filter"


def _fresh(cfg: RunConfig) -> str:
    return "fresh real data" if cfg.fresh_real else "fixed real data"


def _graph_verdict(value: str, c: Comparison) -> str:
    return {
        LOWER: f"the {value} graph slows homogenization",
        HIGHER: f"the {value} graph speeds up homogenization",
        SAME: f"the {value} graph does not change homogenization measurably",
    }[c.direction]


def _loss_verdict(subject: Callable[[str], str]) -> Callable[[str, Comparison], str]:
    def verdict(value: str, c: Comparison) -> str:
        if c.direction == LOWER:
            held = c.own_status() != INCREASE and c.reference_status() == INCREASE
            return f"{subject(value)} {'holds' if held else 'lowers'} the own-task loss"
        if c.direction == HIGHER:
            return f"{subject(value)} raises the own-task loss"
        return f"{subject(value)} does not change the own-task loss measurably"

    return verdict


SETTINGS = (
    Setting("graph", _graph, "complete", (SIMILARITY, CROSS), _graph_verdict),
    Setting("filters", _filters, "no filter", (OWN, CROSS), _loss_verdict(lambda v: f"filtering ({v})")),
    Setting("fresh_real", _fresh, "fixed real data", (OWN, CROSS), _loss_verdict(lambda v: v)),
)


def _change(table: pd.DataFrame, cell: str, metric: Metric) -> Optional[Change]:
    rows = table[(table["cell"] == cell) & (table["metric"] == metric.name) & (table["model"] == ALL)]
    if rows.empty or 0 not in set(rows["generation"]):
        return None
    first = rows[rows["generation"] == 0].iloc[0]
    last = rows[rows["generation"] == rows["generation"].max()].iloc[0]
    if int(last["generation"]) == 0:
        return None
    values = (float(first["mean"]), float(last["mean"]), float(last["ci_low"]), float(last["ci_high"]))
    return Change(*values) if all(math.isfinite(v) for v in values) else None


def _groups(sweep: Sweep, setting: Setting) -> list[tuple[dict[str, Any], Cell, list[Cell]]]:
    """(labels of the other varied axes, reference cell, other cells) for each combination of
    the other axes in which the setting takes its reference value and at least one other."""
    values = {c.id: setting.value(c.config) for c in sweep.cells}
    if len(set(values.values())) < 2:
        return []
    own = _setting_axes(sweep, setting)
    rest_axes = [a for a in sweep.axes if a not in own and len({str(c.labels[a]) for c in sweep.cells}) > 1]
    by_rest: dict[tuple, list[Cell]] = {}
    for cell in sweep.cells:
        by_rest.setdefault(tuple(str(cell.labels[a]) for a in rest_axes), []).append(cell)
    out = []
    for cells in by_rest.values():
        refs = [c for c in cells if values[c.id] == setting.reference]
        others = [c for c in cells if values[c.id] != setting.reference]
        if refs and others:
            out.append(({a: refs[0].labels[a] for a in rest_axes}, refs[0], others))
    return out


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def setting_findings(sweep: Sweep, table: pd.DataFrame) -> list[str]:
    """One sentence per (setting the sweep varies, combination of the other axes, cell that
    departs from the paper's value), computed from the aggregated table."""
    out = []
    for setting in SETTINGS:
        for rest, ref, others in _groups(sweep, setting):
            where = ", ".join(f"{a} = {v}" for a, v in rest.items())
            for other in others:
                name = setting.value(other.config)
                comparisons = []
                for metric in setting.metrics:
                    a, b = _change(table, ref.id, metric), _change(table, other.id, metric)
                    if a is not None and b is not None:
                        comparisons.append(Comparison(metric, a, b))
                if not comparisons:
                    continue
                head = setting.verdict(name, comparisons[0])
                details = "; ".join(_detail(c, setting.reference, name) for c in comparisons)
                prefix = f"With {where}: " if where else ""
                out.append(f"{prefix}{head[0].upper()}{head[1:]}: {details}.")
    return out


def _setting_axes(sweep: Sweep, setting: Setting) -> set[str]:
    """Axes whose value alone decides the setting (left out of the 'With ...' prefix)."""
    axes = set()
    for a in sweep.axes:
        by_label: dict[str, set[str]] = {}
        for c in sweep.cells:
            by_label.setdefault(str(c.labels[a]), set()).add(setting.value(c.config))
        if len(by_label) > 1 and all(len(v) == 1 for v in by_label.values()):
            axes.add(a)
    return axes


def _detail(c: Comparison, reference: str, name: str) -> str:
    r, o = c.reference, c.other
    verb = "rose" if r.final > r.initial else "fell" if r.final < r.initial else "stayed"
    text = (
        f"{c.metric.label} {verb} from {_fmt(r.initial)} to {_fmt(r.final)} under {reference} "
        f"vs {_fmt(o.initial)} to {_fmt(o.final)} under {name}"
    )
    gap = abs(o.final - r.final)
    if c.direction == SAME:
        limit = _fmt(c.metric.threshold)
        return f"{text} (final values {_fmt(gap)} apart: not beyond the threshold {limit} and the 95% intervals)"
    return f"{text} ({_fmt(gap)} {c.direction} at the end, beyond the threshold and the 95% intervals)"
