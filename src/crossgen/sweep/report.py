"""The sweep report: heatmaps of final losses and similarity over two numeric axes
(alpha x beta when both vary), curves per cell, and a small self-contained HTML page
(images inlined as base64 data URIs). Figures are also saved as PNG next to it.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from crossgen.io import write_text
from crossgen.report.embed import img_tag, png_bytes
from crossgen.sweep.aggregate import axis_columns, final
from crossgen.sweep.findings import setting_findings
from crossgen.sweep.grid import Sweep

HEAT_METRICS = [
    ("own_loss", "final own-task loss"),
    ("cross_loss", "final cross-task loss"),
    ("similarity_mean", "final similarity (mean cosine)"),
]
CURVE_METRICS = [("own_loss", "own-task loss"), ("cross_loss", "cross-task loss"), ("similarity_mean", "similarity")]
MAX_FACETS = 6
MAX_CURVES = 12
MAX_BANDS = 4  # confidence bands only when they stay readable


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def numeric_axes(sweep: Sweep) -> list[str]:
    """Axes with more than one value, all of them numbers."""
    return [
        a for a in sweep.axes if len(sweep.config.axes[a]) > 1 and all(_is_number(c.labels[a]) for c in sweep.cells)
    ]


def heat_axes(sweep: Sweep) -> Optional[tuple[str, str]]:
    nums = numeric_axes(sweep)
    if "alpha" in nums and "beta" in nums:
        return "alpha", "beta"
    return (nums[0], nums[1]) if len(nums) >= 2 else None


def _facets(sweep: Sweep, used: list[str]) -> list[dict[str, object]]:
    """Combinations of the other axes (one panel column each)."""
    others = [a for a in sweep.axes if a not in used]
    combos = []
    for c in sweep.cells:
        key = {a: c.labels[a] for a in others}
        if key not in combos:
            combos.append(key)
    return combos


def _select(frame: pd.DataFrame, cols: dict[str, str], facet: dict[str, object]) -> pd.DataFrame:
    for axis, value in facet.items():
        col = frame[cols[axis]]
        frame = frame[col.isna()] if value is None else frame[col == value]
    return frame


def _facet_title(facet: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in facet.items())


def heatmap_figure(sweep: Sweep, table: pd.DataFrame, x: str, y: str) -> Optional[Figure]:
    cols = axis_columns(sweep)
    last = final(table)
    metrics = [(m, t) for m, t in HEAT_METRICS if (last["metric"] == m).any()]
    facets = _facets(sweep, [x, y])[:MAX_FACETS]
    if not metrics:
        return None
    fig = Figure(figsize=(4.2 * len(facets), 3.5 * len(metrics)))
    axes = fig.subplots(len(metrics), len(facets), squeeze=False)
    xs = sorted({c.labels[x] for c in sweep.cells})
    ys = sorted({c.labels[y] for c in sweep.cells})
    for i, (metric, title) in enumerate(metrics):
        rows = last[(last["metric"] == metric) & (last["model"] == "all")]
        for j, facet in enumerate(facets):
            ax = axes[i][j]
            sub = _select(rows, cols, facet)
            grid = sub.pivot_table(index=cols[y], columns=cols[x], values="mean", aggfunc="mean")
            grid = grid.reindex(index=ys, columns=xs)
            values = grid.to_numpy(dtype=float)
            im = ax.imshow(values, origin="lower", aspect="auto", cmap="viridis")
            ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs], rotation=90 if len(xs) > 8 else 0)
            ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
            if len(xs) * len(ys) <= 64:
                for (r, c), v in np.ndenumerate(values):
                    if np.isfinite(v):
                        dark = im.norm(v) < 0.6  # white text on the dark part of viridis
                        ax.text(c, r, f"{v:.3g}", ha="center", va="center", fontsize=7, color="w" if dark else "k")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            ax.set_xlabel(x)
            ax.set_ylabel(y)
            name = title + (f"\n{_facet_title(facet)}" if facet else "")
            ax.set_title(name, fontsize=9)
    fig.tight_layout()
    return fig


def line_figure(sweep: Sweep, table: pd.DataFrame, x: str) -> Optional[Figure]:
    """Final metrics against the one numeric axis (one line per combination of the others)."""
    cols = axis_columns(sweep)
    last = final(table)
    metrics = [(m, t) for m, t in HEAT_METRICS if (last["metric"] == m).any()]
    if not metrics:
        return None
    fig = Figure(figsize=(4.4 * len(metrics), 3.4))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, (metric, title) in zip(axes, metrics):
        rows = last[(last["metric"] == metric) & (last["model"] == "all")]
        for facet in _facets(sweep, [x])[:MAX_CURVES]:
            sub = _select(rows, cols, facet).sort_values(cols[x])
            ax.errorbar(
                sub[cols[x]].astype(float),
                sub["mean"],
                yerr=[sub["mean"] - sub["ci_low"], sub["ci_high"] - sub["mean"]],
                marker="o",
                capsize=3,
                label=_facet_title(facet) or None,
            )
        ax.set_xlabel(x)
        ax.set_title(title, fontsize=9)
        if len(_facets(sweep, [x])) > 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def curve_cells(sweep: Sweep) -> list[str]:
    ids = [c.id for c in sweep.cells]
    if len(ids) <= MAX_CURVES:
        return ids
    picks = np.linspace(0, len(ids) - 1, MAX_CURVES).round().astype(int)
    return [ids[i] for i in sorted(set(picks))]


def curves_figure(sweep: Sweep, table: pd.DataFrame) -> Optional[Figure]:
    metrics = [(m, t) for m, t in CURVE_METRICS if (table["metric"] == m).any()]
    if not metrics:
        return None
    cells = curve_cells(sweep)
    fig = Figure(figsize=(4.6 * len(metrics), 3.6))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    colors = [f"C{i % 10}" for i in range(len(cells))]
    bands = len(cells) <= MAX_BANDS
    for ax, (metric, title) in zip(axes, metrics):
        rows = table[(table["metric"] == metric) & (table["model"] == "all")]
        for cell, color in zip(cells, colors):
            sub = rows[rows["cell"] == cell].sort_values("generation")
            if sub.empty:
                continue
            ax.plot(sub["generation"], sub["mean"], color=color, label=cell, lw=1.3)
            if bands:
                ax.fill_between(sub["generation"], sub["ci_low"], sub["ci_high"], color=color, alpha=0.15, lw=0)
        ax.set_xlabel("generation")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(f"{title} (mean{', 95% CI' if bands else ''} over seeds)", fontsize=9)
    axes[-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return fig


def _final_table(sweep: Sweep, table: pd.DataFrame, limit: int = 500) -> str:
    last = final(table)
    last = last[last["model"] == "all"]
    metrics = [m for m, _ in HEAT_METRICS + [("public_loss", "")] if (last["metric"] == m).any()]
    head = (
        "".join(f"<th>{html.escape(a)}</th>" for a in sweep.axes)
        + "<th>T</th><th>seeds</th>"
        + "".join(f"<th>{html.escape(m)}</th>" for m in metrics)
    )
    body = []
    for cell in sweep.cells[:limit]:
        rows = last[last["cell"] == cell.id]
        if rows.empty:
            continue
        by_metric = {r.metric: r for r in rows.itertuples()}
        tds = "".join(f"<td>{html.escape(str(cell.labels[a]))}</td>" for a in sweep.axes)
        first = rows.iloc[0]
        tds += f"<td>{int(first['generation'])}</td><td>{int(first['n_seeds'])}</td>"
        for m in metrics:
            r = by_metric.get(m)
            tds += "<td></td>" if r is None else f"<td>{r.mean:.4g} [{r.ci_low:.4g}, {r.ci_high:.4g}]</td>"
        body.append(f"<tr>{tds}</tr>")
    more = f"<p>{len(sweep.cells) - limit} more cells in aggregate.csv.</p>" if len(sweep.cells) > limit else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def _failures(out: Path, limit: int = 50) -> str:
    path = out / "failures.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    if not rows:
        return "<p>No run failed.</p>"
    items = "".join(
        f"<tr><td>{html.escape(r['cell'])}</td><td>{r['seed']}</td><td>{html.escape(str(r['error']))}</td></tr>"
        for r in rows[:limit]
    )
    return (
        f"<p>{len(rows)} runs failed (see failures.jsonl).</p>"
        f"<table><tr><th>cell</th><th>seed</th><th>error</th></tr>{items}</table>"
    )


STYLE = """img{max-width:100%}\
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px}\
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f3f3f3}code{background:#f3f3f3;padding:0 3px}"""


def write_sweep_report(sweep: Sweep, out: Path, table: pd.DataFrame) -> Path:
    """heatmaps.png / lines.png, curves.png and report.html in `out`; returns the HTML path."""
    out = Path(out)
    sections = []
    pair = heat_axes(sweep)
    nums = numeric_axes(sweep)
    figures = []
    if pair is not None:
        figures.append(
            (
                "heatmaps.png",
                heatmap_figure(sweep, table, *pair),
                f"Final values (last generation, mean over seeds) over {pair[0]} x {pair[1]}.",
            )
        )
    elif nums:
        figures.append(
            (
                "lines.png",
                line_figure(sweep, table, nums[0]),
                f"Final values against {nums[0]} (mean, 95% CI over seeds).",
            )
        )
    shown = curve_cells(sweep)
    note = (
        ""
        if len(shown) == len(sweep.cells)
        else f" {len(shown)} of {len(sweep.cells)} cells shown, evenly spaced in sweep order."
    )
    figures.append(("curves.png", curves_figure(sweep, table), "Per-cell curves over generations." + note))
    for name, fig, caption in figures:
        if fig is None:
            continue
        png = png_bytes(fig, bbox_inches="tight")
        with open(out / name, "wb") as fh:
            fh.write(png)
        sections.append(f"<figure>{img_tag(png, name)}<figcaption>{html.escape(caption)}</figcaption></figure>")
    runs_total = len(sweep.runs)
    done_cells = table["cell"].nunique() if not table.empty else 0

    def axis_values(a: str) -> str:
        return ", ".join(dict.fromkeys(str(c.labels[a]) for c in sweep.cells))

    axes = (
        "".join(f"<li><code>{html.escape(a)}</code>: {html.escape(axis_values(a))}</li>" for a in sweep.axes)
        or "<li>(none: one cell, the base config)</li>"
    )
    seeds = sweep.config.seeds
    found = setting_findings(sweep, table) if not table.empty else []
    findings = (
        "<h2>Findings</h2><p>What the swept setting changed relative to the paper's (computed from the table "
        "below; losses: a change beyond 0.1 with disjoint 95% intervals, similarity: disjoint intervals).</p><ul>"
        + "".join(f"<li>{html.escape(f)}</li>" for f in found)
        + "</ul>"
        if found
        else ""
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>sweep {html.escape(sweep.name)}</title>
<style>{STYLE}</style></head><body>
<h1>Sweep <code>{html.escape(sweep.name)}</code></h1>
<p>{len(sweep.cells)} cells x {html.escape(str(seeds))} seeds = {runs_total} runs; {done_cells} cells with results.
Base: {html.escape(sweep.base_config.name)} ({sweep.base_config.model.backend} backend, K={sweep.base_config.K},
T={sweep.base_config.generations}). Intervals: Student-t 95% over seeds. Full table: <code>aggregate.csv</code>.</p>
<h2>Axes</h2><ul>{axes}</ul>
{findings}
<h2>Figures</h2>{"".join(sections)}
<h2>Final values per cell</h2>{_final_table(sweep, table)}
<h2>Failures</h2>{_failures(out)}
</body></html>
"""
    path = out / "report.html"
    write_text(path, page)
    return path
