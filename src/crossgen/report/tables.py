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
SIMILARITY_THRESHOLD = 0.0
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
class ChangeTable:
    title: str
    rows: list[str]
    columns: list[str]
    cells: list[list[Optional[Cell]]]
    groups: list[tuple[str, int]] = field(default_factory=list)  # column groups: (label, span)
    digits: int = 2
    threshold: float = LOSS_THRESHOLD
    notes: list[str] = field(default_factory=list)

    def legend(self) -> str:
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
) -> ChangeTable:
    """The loss change table: `columns` are (label, losses frame with generation, model, task, loss);
    `tasks[i]` is the private task of `models[i]`."""
    K = len(models)
    pairs = [(f"Model {i + 1} on Task {j + 1}", models[i], tasks[j]) for i, j in paper_row_order(K)]
    if public is not None:
        pairs += [(f"Model {i + 1} on D*", models[i], public) for i in range(K)]
    cells: list[list[Optional[Cell]]] = []
    for _, model, task in pairs:
        row: list[Optional[Cell]] = []
        for _, frame in columns:
            if frame.empty:
                row.append(None)
                continue
            a, b = initial_final(frame, {"model": model, "task": task}, "loss")
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


def loss_table(runs, threshold: float = LOSS_THRESHOLD, digits: int = 2, include_public: bool = True) -> ChangeTable:
    """Tables 2/4 (one beta) or 7/8 (several betas) for runs of one experiment."""
    from crossgen.report.runs import conditions, fmt_weight

    conds = conditions(runs)
    labels, groups, beta = _columns_and_groups(conds)
    first = runs[0]
    from crossgen.backends.registry import get_backend

    unit = get_backend(first.backend).LOSS_LABEL
    title = (
        f"Loss ({unit}), initial → final, K = {first.K}"
        + (f", β = {fmt_weight(beta)}" if beta is not None else "")
        + (f", {_t_text(conds)}" if _t_text(conds) else "")
    )
    return loss_table_from_frames(
        [(lab, c.losses) for lab, c in zip(labels, conds)],
        first.entities,
        first.private_tasks,
        first.public_task if include_public else None,
        groups,
        title,
        threshold,
        digits,
    )


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
    out = ['<table class="change">']
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
        f'<p class="legend"><span class="swatch increase">increase {MARK[INCREASE]}</span> '
        f'<span class="swatch decrease">decrease {MARK[DECREASE]}</span> '
    )
    if table.threshold > 0:
        legend += (
            f'<span class="swatch constant">constant {MARK[CONSTANT]}</span> (|final − initial| ≤ {table.threshold:g})'
        )
    else:
        legend += "(every change is marked)"
    out.append(legend + "</p>")
    out += [f'<p class="note">{e(n)}</p>' for n in table.notes]
    return "\n".join(out)
