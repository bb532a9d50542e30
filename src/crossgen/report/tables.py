"""The paper's change tables (Tables 2, 3, 4, 7, 8): initial -> final, marked by direction.

Loss tables: one row per 'Model i on Task j' (own tasks first, then the cross-task pairs in the
paper's order: Model i on Task i+1, then i+2, ... modulo K; then, beyond the paper, each model on
the public data D*), one column per alpha, grouped by beta when the runs have several betas
(Tables 7, 8). Similarity table (Table 3): one row per dataset, the mean cosine over model pairs.

A change is 'constant' when |final - initial| <= threshold, 'increase' / 'decrease' otherwise.
The comparison uses the unrounded values as exact decimals (their shortest repr), so that
1.0 -> 1.1 is a change of exactly 0.1 (constant) although 1.1 - 1.0 = 0.10000000000000009 in
binary floating point, while 1.0 -> 1.1000001 is an increase. Displayed numbers are rounded
(2 decimals) only for display. Loss tables use threshold 0.1 (the paper's Delta <= 0.1). The
similarity table marks every change (threshold 0): the paper's Table 3 colours changes of 0.03.

Accuracy table (beyond the paper): one row per 'Model i on Task j (metric)' in the loss tables'
order, for the accuracy family's metrics (acc, acc_norm, exact_match; see metrics/accuracy.py),
each value with its 95% interval over prompts (the rows' low and high). Its change marks
compare the intervals: 'increase' / 'decrease' when the final interval lies wholly above /
below the initial one, 'constant' when they overlap; a value without an interval falls back
to the exact comparison.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Optional

import pandas as pd

LOSS_THRESHOLD = 0.1
# bits per byte: about the loss threshold (0.1 nats per token) at 3.5 bytes per token, a small
# BPE tokenizer on English text: 0.1 / (ln 2 x 3.5) = 0.041
BPB_THRESHOLD = 0.04
BITS_PER_BYTE = "bits_per_byte"  # the losses column
SIMILARITY_THRESHOLD = 0.0
ACCURACY_METRICS = ("acc", "acc_norm", "exact_match")  # the accuracy family's scores, in table order
CHANCE = "chance"  # the accuracy family's chance level (no interval)
INTERVAL_LEGEND = "the 95% intervals do not overlap"
Interval = tuple[float, float, float]  # (value, low, high)
INCREASE, DECREASE, CONSTANT, MISSING = "increase", "decrease", "constant", "missing"
MARK = {INCREASE: "↑", DECREASE: "↓", CONSTANT: "=", MISSING: ""}
ARROW = "→"


def _decimal(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def classify(initial: float, final: float, threshold: float = LOSS_THRESHOLD) -> str:
    """'increase', 'decrease' or 'constant' (|final - initial| <= threshold, exact decimals)."""
    if initial is None or final is None or not (math.isfinite(initial) and math.isfinite(final)):
        return MISSING
    change = _decimal(final) - _decimal(initial)
    if abs(change) <= _decimal(threshold):
        return CONSTANT
    return INCREASE if change > 0 else DECREASE


@dataclass
class Cell:
    initial: float
    final: float
    status: str

    def text(self, digits: int) -> str:
        if self.status == MISSING:
            return "–"
        return f"{self.initial:.{digits}f} {ARROW} {self.final:.{digits}f} {MARK[self.status]}"


@dataclass
class IntervalCell(Cell):
    """A change between two values with their 95% intervals (NaN: none)."""

    initial_low: float = float("nan")
    initial_high: float = float("nan")
    final_low: float = float("nan")
    final_high: float = float("nan")

    def text(self, digits: int) -> str:
        if self.status == MISSING:
            return "–"

        def one(value: float, low: float, high: float) -> str:
            text = f"{value:.{digits}f}"
            return text + (f" [{low:.{digits}f}, {high:.{digits}f}]" if math.isfinite(low + high) else "")

        initial = one(self.initial, self.initial_low, self.initial_high)
        return f"{initial} {ARROW} {one(self.final, self.final_low, self.final_high)} {MARK[self.status]}"


def classify_intervals(initial: Interval, final: Interval) -> str:
    """'increase' / 'decrease' when the final (value, low, high) interval lies wholly above /
    below the initial one, 'constant' when they overlap; without intervals, the exact change."""
    (a, a_low, a_high), (b, b_low, b_high) = initial, final
    if not (math.isfinite(a) and math.isfinite(b)):
        return MISSING
    if not math.isfinite(a_low + a_high + b_low + b_high):
        return classify(a, b, 0.0)
    if b_low > a_high:
        return INCREASE
    if b_high < a_low:
        return DECREASE
    return CONSTANT


@dataclass
class ChangeTable:
    title: str
    rows: list[str]
    columns: list[str]
    cells: list[list[Optional[Cell]]]
    groups: list[tuple[str, int]] = field(default_factory=list)  # column groups: (label, span)
    digits: int = 2
    threshold: float = LOSS_THRESHOLD
    notes: list[str] = field(default_factory=list)
    rule: str = ""  # when a change counts, if not by the threshold (the accuracy table's intervals)
    higher_is_better: bool = False  # colours: an increase is good (accuracy), not bad (loss)

    def legend(self) -> str:
        if self.rule:
            return (
                f"{MARK[INCREASE]} increase, {MARK[DECREASE]} decrease ({self.rule}), {MARK[CONSTANT]} no clear change"
            )
        if self.threshold > 0:
            return (
                f"{MARK[INCREASE]} increase, {MARK[DECREASE]} decrease, {MARK[CONSTANT]} constant "
                f"(|final − initial| ≤ {self.threshold:g})"
            )
        return f"{MARK[INCREASE]} increase, {MARK[DECREASE]} decrease, {MARK[CONSTANT]} no change"

    def column_labels(self) -> list[str]:
        """Column labels with their group prefixed (Markdown has one header row)."""
        if not self.groups:
            return list(self.columns)
        out: list[str] = []
        for label, span in self.groups:
            out += [f"{label}, {c}" for c in self.columns[len(out) : len(out) + span]]
        return out


def paper_row_order(K: int) -> list[tuple[int, int]]:
    """(model, task) index pairs: own tasks, then Model i on Task i+s (mod K) for s = 1..K-1."""
    return [(i, i) for i in range(K)] + [(i, (i + s) % K) for s in range(1, K) for i in range(K)]


def initial_final(frame: pd.DataFrame, keys: dict, value: str) -> tuple[float, float]:
    """Value at the first and the last generation of `frame` rows matching `keys` (mean if several)."""
    sub = frame
    for k, v in keys.items():
        sub = sub[sub[k] == v]
    if sub.empty:
        return float("nan"), float("nan")
    per_gen = sub.groupby("generation")[value].mean().sort_index()
    return float(per_gen.iloc[0]), float(per_gen.iloc[-1])


def loss_table_from_frames(
    columns: Sequence[tuple[str, pd.DataFrame]],
    models: Sequence[str],
    tasks: Sequence[str],
    public: Optional[str] = None,
    groups: Sequence[tuple[str, int]] = (),
    title: str = "",
    threshold: float = LOSS_THRESHOLD,
    digits: int = 2,
    value: str = "loss",
) -> ChangeTable:
    """The loss change table: `columns` are (label, losses frame with generation, model, task and
    `value`: loss, or bits_per_byte); `tasks[i]` is the private task of `models[i]`."""
    K = len(models)
    pairs = [(f"Model {i + 1} on Task {j + 1}", models[i], tasks[j]) for i, j in paper_row_order(K)]
    if public is not None:
        pairs += [(f"Model {i + 1} on D*", models[i], public) for i in range(K)]
    cells: list[list[Optional[Cell]]] = []
    for _, model, task in pairs:
        row: list[Optional[Cell]] = []
        for _, frame in columns:
            if frame.empty or value not in frame:
                row.append(None)
                continue
            a, b = initial_final(frame, {"model": model, "task": task}, value)
            row.append(Cell(a, b, classify(a, b, threshold)))
        cells.append(row)
    keep = [i for i, row in enumerate(cells) if any(c is not None and c.status != MISSING for c in row)]
    key = ", ".join(f"Model {i + 1} = {m} (Task {i + 1} = {t})" for i, (m, t) in enumerate(zip(models, tasks)))
    return ChangeTable(
        title,
        [pairs[i][0] for i in keep],
        [c for c, _ in columns],
        [cells[i] for i in keep],
        list(groups),
        digits,
        threshold,
        [key] if key else [],
    )


def initial_final_interval(frame: pd.DataFrame, keys: dict) -> tuple[Interval, Interval]:
    """(value, low, high) at the first and at the last generation of the rows matching `keys`
    (means if several; NaN without rows)."""
    sub = frame
    for k, v in keys.items():
        sub = sub[sub[k] == v]
    if sub.empty:
        nan = float("nan")
        return (nan, nan, nan), (nan, nan, nan)
    per_gen = sub.groupby("generation")[["value", "low", "high"]].mean().sort_index().astype(float)
    first, last = per_gen.iloc[0], per_gen.iloc[-1]
    return (
        (float(first["value"]), float(first["low"]), float(first["high"])),
        (float(last["value"]), float(last["low"]), float(last["high"])),
    )


def primary_accuracy(frame, dataset: str) -> Optional[str]:
    """The accuracy metric a dataset is judged by: acc (multiple choice) or exact_match
    (generated answers), whichever its rows have."""
    if frame.empty:
        return None
    have = set(frame.loc[frame["dataset"] == dataset, "metric"])
    return next((m for m in ("acc", "exact_match", "acc_norm") if m in have), None)


def accuracy_table_from_frames(
    columns: Sequence[tuple[str, pd.DataFrame]],
    models: Sequence[str],
    tasks: Sequence[str],
    public: Optional[str] = None,
    groups: Sequence[tuple[str, int]] = (),
    title: str = "",
    digits: int = 2,
) -> ChangeTable:
    """The accuracy change table: `columns` are (label, tidy metrics frame); rows 'Model i on
    Task j (metric)' for every accuracy metric with rows, in the loss tables' order."""
    K = len(models)
    pairs = [(f"Model {i + 1} on Task {j + 1}", models[i], tasks[j]) for i, j in paper_row_order(K)]
    if public is not None:
        pairs += [(f"Model {i + 1} on D*", models[i], public) for i in range(K)]
    labels: list[str] = []
    cells: list[list[Optional[Cell]]] = []
    for label, model, dataset in pairs:
        for metric in ACCURACY_METRICS:
            row: list[Optional[Cell]] = []
            for _, frame in columns:
                if frame.empty or "metric" not in frame:
                    row.append(None)
                    continue
                a, b = initial_final_interval(frame, {"model": model, "dataset": dataset, "metric": metric})
                row.append(IntervalCell(a[0], b[0], classify_intervals(a, b), a[1], a[2], b[1], b[2]))
            if any(c is not None and c.status != MISSING for c in row):
                labels.append(f"{label} ({metric})")
                cells.append(row)
    key = ", ".join(f"Model {i + 1} = {m} (Task {i + 1} = {t})" for i, (m, t) in enumerate(zip(models, tasks)))
    notes = [key] if key else []
    chance = _chance_levels([f for _, f in columns], [*tasks, *([public] if public else [])])
    if chance:
        notes.append("chance: " + ", ".join(f"{t} {c:.{digits}f}" for t, c in chance))
    notes.append(
        "acc: the option of highest log-likelihood is right; acc_norm: the same per character of the option; "
        "exact_match: the greedy answer is right. [low, high]: 95% bootstrap interval over the test prompts."
    )
    return ChangeTable(
        title,
        labels,
        [c for c, _ in columns],
        cells,
        list(groups),
        digits,
        0.0,
        notes,
        rule=INTERVAL_LEGEND,
        higher_is_better=True,
    )


def _chance_levels(frames: Sequence[pd.DataFrame], datasets: Sequence[str]) -> list[tuple[str, float]]:
    """(dataset, chance level) of the multiple-choice datasets: the mean of their chance rows."""
    rows = [f[f["metric"] == CHANCE] for f in frames if not f.empty and "metric" in f]
    found = pd.concat(rows) if rows else pd.DataFrame()
    out = []
    for ds in dict.fromkeys(datasets):
        sub = found[found["dataset"] == ds] if not found.empty else found
        if not sub.empty:
            out.append((ds, float(sub["value"].mean())))
    return out


def similarity_table_from_frames(
    columns: Sequence[tuple[str, pd.DataFrame]],
    datasets: Sequence[tuple[str, str]],
    groups: Sequence[tuple[str, int]] = (),
    title: str = "",
    threshold: float = SIMILARITY_THRESHOLD,
    digits: int = 2,
) -> ChangeTable:
    """Rows = datasets given as (row label, dataset name); cell = mean cosine over model pairs."""
    cells: list[list[Optional[Cell]]] = []
    for _, name in datasets:
        row: list[Optional[Cell]] = []
        for _, frame in columns:
            if frame.empty:
                row.append(None)
                continue
            a, b = initial_final(frame, {"dataset": name}, "cosine")
            row.append(Cell(a, b, classify(a, b, threshold)))
        cells.append(row)
    keep = [i for i, row in enumerate(cells) if any(c is not None and c.status != MISSING for c in row)]
    return ChangeTable(
        title,
        [datasets[i][0] for i in keep],
        [c for c, _ in columns],
        [cells[i] for i in keep],
        list(groups),
        digits,
        threshold,
        ["cosine = mean over prompts of cos(emb_a, emb_b), averaged over model pairs"],
    )


# -- from runs ---------------------------------------------------------------------------
def _columns_and_groups(conds) -> tuple[list[str], list[tuple[str, int]], Optional[float]]:
    from crossgen.report.runs import betas, fmt_weight

    bs = betas(conds)
    if len(bs) <= 1:
        return [c.label for c in conds], [], (bs[0] if bs else None)
    groups = [(f"β = {fmt_weight(b)}", sum(1 for c in conds if c.beta == b)) for b in bs]
    return [c.label for c in conds], groups, None


def _t_text(conds) -> str:
    ts = sorted({c.generations[-1] for c in conds if c.generations})
    return "T = " + "/".join(str(t) for t in ts) if ts else ""


TOKENIZERS_DIFFER = (
    "The entities' tokenizers differ, so per-token losses are not comparable between entities: "
    "compare the entities on bits per byte."
)


def loss_table(
    runs,
    threshold: float = LOSS_THRESHOLD,
    digits: int = 2,
    include_public: bool = True,
    value: str = "loss",
) -> ChangeTable:
    """Tables 2/4 (one beta) or 7/8 (several betas) for runs of one experiment; `value`
    bits_per_byte gives the same table in bits per byte of the answer text (`bits_per_byte_table`)."""
    from crossgen.report.runs import conditions, fmt_weight

    conds = conditions(runs)
    labels, groups, beta = _columns_and_groups(conds)
    first = runs[0]
    from crossgen.backends.registry import get_backend

    unit = get_backend(first.backend).LOSS_LABEL
    what = "Bits per byte of the answer text" if value == BITS_PER_BYTE else f"Loss ({unit})"
    title = (
        f"{what}, initial → final, K = {first.K}"
        + (f", β = {fmt_weight(beta)}" if beta is not None else "")
        + (f", {_t_text(conds)}" if _t_text(conds) else "")
    )
    table = loss_table_from_frames(
        [(lab, c.losses) for lab, c in zip(labels, conds)],
        first.entities,
        first.private_tasks,
        first.public_task if include_public else None,
        groups,
        title,
        threshold,
        digits,
        value,
    )
    if first.tokenizers_differ:
        table.title += " (tokenizers differ: entities compared on bits per byte)" if value == BITS_PER_BYTE else ""
        table.notes.append(TOKENIZERS_DIFFER)
    return table


def bits_per_byte_table(runs, threshold: float = BPB_THRESHOLD, digits: int = 3) -> Optional[ChangeTable]:
    """The loss table in bits per byte (the answer-token nats over ln 2 x the answer's UTF-8
    bytes), comparable across tokenizers; None when no run has such values (the linear backend,
    run directories from before the column)."""
    table = loss_table(runs, threshold, digits, value=BITS_PER_BYTE)
    return table if table.rows else None


def similarity_table(runs, threshold: float = SIMILARITY_THRESHOLD, digits: int = 3) -> Optional[ChangeTable]:
    """Table 3 for runs of one experiment; None when no run has similarity data."""
    from crossgen.report.runs import conditions, fmt_weight

    conds = conditions(runs)
    if all(c.table("similarity").empty for c in conds):
        return None
    labels, groups, beta = _columns_and_groups(conds)
    first = runs[0]
    datasets = [(f"D~{i + 1} ({t})", t) for i, t in enumerate(first.private_tasks)] + [
        (f"D* ({first.public_task})", first.public_task)
    ]
    title = f"Cosine similarity of the models' outputs, initial → final, K = {first.K}" + (
        f", β = {fmt_weight(beta)}" if beta is not None else ""
    )
    return similarity_table_from_frames(
        [(lab, c.table("similarity")) for lab, c in zip(labels, conds)], datasets, groups, title, threshold, digits
    )


def accuracy_table(runs, digits: int = 2) -> Optional[ChangeTable]:
    """The accuracy table for runs of one experiment; None when no run has accuracy rows."""
    from crossgen.report.runs import conditions, fmt_weight

    conds = conditions(runs)
    frames = [c.table("metrics") for c in conds]
    if not any(not f.empty and f["metric"].isin(ACCURACY_METRICS).any() for f in frames):
        return None
    labels, groups, beta = _columns_and_groups(conds)
    first = runs[0]
    title = (
        f"Task accuracy, initial → final (95% interval), K = {first.K}"
        + (f", β = {fmt_weight(beta)}" if beta is not None else "")
        + (f", {_t_text(conds)}" if _t_text(conds) else "")
    )
    return accuracy_table_from_frames(
        list(zip(labels, frames)), first.entities, first.private_tasks, first.public_task, groups, title, digits
    )


# -- rendering ---------------------------------------------------------------------------
def to_markdown(table: ChangeTable) -> str:
    header = ["", *table.column_labels()]
    lines = []
    if table.title:
        lines += [f"**{table.title}**", ""]
    lines.append("| |" + "".join(f" {h} |" for h in header[1:]))
    lines.append("|" + "|".join(["---"] * len(header)) + "|")
    for label, row in zip(table.rows, table.cells):
        texts = [c.text(table.digits) if c is not None else "–" for c in row]
        lines.append("| " + " | ".join([label, *texts]) + " |")
    lines += ["", table.legend()]
    lines += table.notes
    return "\n".join(lines) + "\n"


def to_html(table: ChangeTable) -> str:
    e = html.escape
    css = "change better-higher" if table.higher_is_better else "change"
    out = [f'<table class="{css}">']
    if table.title:
        out.append(f"<caption>{e(table.title)}</caption>")
    out.append("<thead>")
    if table.groups:
        out.append(
            "<tr><th></th>"
            + "".join(f'<th colspan="{span}" class="group">{e(g)}</th>' for g, span in table.groups)
            + "</tr>"
        )
    out.append("<tr><th></th>" + "".join(f"<th>{e(c)}</th>" for c in table.columns) + "</tr></thead><tbody>")
    for label, row in zip(table.rows, table.cells):
        tds = []
        for c in row:
            if c is None or c.status == MISSING:
                tds.append('<td class="missing">–</td>')
            else:
                delta = c.final - c.initial
                tds.append(
                    f'<td class="{c.status}" title="{c.status}: {c.initial:.6g} → {c.final:.6g} '
                    f'(Δ = {delta:+.6g})">{e(c.text(table.digits))}</td>'
                )
        out.append(f"<tr><th>{e(label)}</th>{''.join(tds)}</tr>")
    out.append("</tbody></table>")
    legend = (
        f'<p class="legend{" better-higher" if table.higher_is_better else ""}">'
        f'<span class="swatch increase">increase {MARK[INCREASE]}</span> '
        f'<span class="swatch decrease">decrease {MARK[DECREASE]}</span> '
    )
    if table.rule:
        legend += f'<span class="swatch constant">no clear change {MARK[CONSTANT]}</span> (↑, ↓: {e(table.rule)})'
    elif table.threshold > 0:
        legend += (
            f'<span class="swatch constant">constant {MARK[CONSTANT]}</span> (|final − initial| ≤ {table.threshold:g})'
        )
    else:
        legend += "(every change is marked)"
    out.append(legend + "</p>")
    out += [f'<p class="note">{e(n)}</p>' for n in table.notes]
    return "\n".join(out)
