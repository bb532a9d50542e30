"""Figures of the report, drawn with matplotlib's Agg canvas (no display, no pyplot state).

loss_figure          loss per generation of every (model, task), one panel per alpha (rows:
                     beta), as the paper's Figures 5-7
pca_panels/figure    Figure 3: 2-D PCA of the output embeddings, fitted ONCE over every
                     embedding of every given run and generation (panels share coordinates):
                     generation 0, then the final generation per alpha; colour = dataset,
                     marker = model
similarity_figure    mean cosine similarity between models per dataset over generations
homogenization_figure  spread across models and diversity within a model over generations
semantic_figure      semantic distance to the correct answer per (model, task)
theory_figure        linear-backend runs: observed losses over the theory's prediction
                     E[loss of model k on task m] = mspe[t, k, m] / n_m + sigma2
accuracy_figure      task accuracy per generation of each dataset's own model and of the
                     other models, one line per condition with its 95% band, chance dotted
Every function takes the runs of one experiment (same entities and tasks) and returns a
matplotlib Figure, or None when the runs have no data for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from crossgen.metrics.generation import completion_key
from crossgen.metrics.pca import PCA2, fit_pca
from crossgen.report.runs import Condition, RunData, betas, conditions, fmt_weight

MODEL_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
DATASET_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
MARKERS = ["o", "^", "s", "D", "v", "P", "X", "*"]
CONDITION_COLORS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#b5a300", "#e7298a", "#666666"]
PUBLIC_COLOR = "#7f7f7f"


def _grid(conds: list[Condition], width: float = 3.6, height: float = 2.9, sharey: bool = True):
    """A figure with one panel per condition: rows = beta, columns = alpha."""
    bs = betas(conds)
    rows = [[c for c in conds if c.beta == b] for b in bs]
    ncols = max(len(r) for r in rows)
    fig = Figure(figsize=(max(width * ncols, 5.0), height * len(rows) + 1.0), layout="constrained")
    axes = fig.subplots(len(rows), ncols, squeeze=False, sharey=sharey, sharex=True)
    panels = []
    for r, row in enumerate(rows):
        for c in range(ncols):
            if c < len(row):
                panels.append((axes[r][c], row[c]))
            else:
                axes[r][c].set_visible(False)
    return fig, panels


def _panel_title(cond: Condition, multi_beta: bool = True) -> str:
    if cond.alpha is None:
        return cond.label
    title = f"α = {fmt_weight(cond.alpha)}, β = {fmt_weight(cond.beta)}"
    if len(cond.runs) > 1:
        title += f" (mean of {len(cond.runs)})"
    return title


def _pair_style(i: int, j: Optional[int], K: int) -> dict:
    """Colour by model; own task solid, other private tasks dashed, public data dotted."""
    color = MODEL_COLORS[i % len(MODEL_COLORS)]
    if j is None:
        return dict(color=color, linestyle=":", marker="", linewidth=1.4)
    if i == j:
        return dict(color=color, linestyle="-", marker="o", markersize=3.5, linewidth=2.0)
    return dict(
        color=color,
        linestyle="--",
        marker="s",
        markersize=3,
        linewidth=1.5,
        alpha=1.0 if K == 2 else 0.55 + 0.45 * ((j - i) % K == 1),
    )


def _series(frame, filters: dict, value: str):
    sub = frame
    for k, v in filters.items():
        sub = sub[sub[k] == v]
    if sub.empty:
        return None
    per_gen = sub.groupby("generation")[value].mean().sort_index()
    return per_gen.index.to_numpy(), per_gen.to_numpy(dtype=float)


def _int_xaxis(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)


def _model_task_figure(runs: list[RunData], table: str, value: str, ylabel: str, title: str) -> Optional[Figure]:
    conds = [c for c in conditions(runs) if not c.table(table).empty]
    if not conds:
        return None
    run = runs[0]
    K = run.K
    fig, panels = _grid(conds)
    handles: dict[str, Line2D] = {}
    for ax, cond in panels:
        frame = cond.table(table)
        for i, model in enumerate(run.entities):
            targets = [(j, t) for j, t in enumerate(run.private_tasks)] + [(None, run.public_task)]
            for j, task in targets:
                s = _series(frame, {"model": model, "task": task}, value)
                if s is None:
                    continue
                label = f"Model {i + 1} on " + (f"Task {j + 1}" if j is not None else "D*")
                (line,) = ax.plot(*s, label=label, **_pair_style(i, j, K))
                handles.setdefault(label, line)
        ax.set_title(_panel_title(cond), fontsize=10)
        ax.set_xlabel("generation")
        _int_xaxis(ax)
    for ax, _ in panels:
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel(ylabel)
    order = sorted(handles, key=lambda s: (("D*" in s), s))
    fig.legend(
        [handles[k] for k in order],
        order,
        loc="outside lower center",
        ncol=min(len(order), 4),
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(title, fontsize=11)
    return fig


def loss_figure(runs: list[RunData]) -> Optional[Figure]:
    from crossgen.backends.registry import get_backend

    unit = get_backend(runs[0].backend).LOSS_LABEL
    return _model_task_figure(
        runs,
        "losses",
        "loss",
        f"loss, {unit}",
        f"Loss per generation, K = {runs[0].K} (solid: own task, dashed: other tasks, dotted: D*)",
    )


def semantic_figure(runs: list[RunData]) -> Optional[Figure]:
    return _model_task_figure(
        runs,
        "semantic",
        "distance",
        "1 − cos(answer, reference)",
        "Semantic distance between each model's answers and the correct answers",
    )


def _dataset_labels(run: RunData) -> list[tuple[str, str]]:
    return [(f"D~{i + 1} ({t})", t) for i, t in enumerate(run.private_tasks)] + [
        (f"D* ({run.public_task})", run.public_task)
    ]


def _plot_band(ax, series, n: int, cond, conds, multi_beta: bool) -> None:
    """One condition's metric curve over generations, with its interval as a band."""
    gens, value, low, high = series
    color = CONDITION_COLORS[n % len(CONDITION_COLORS)]
    style = "-" if not multi_beta else ["-", "--", ":", "-."][betas(conds).index(cond.beta) % 4]
    ax.plot(
        gens,
        value,
        color=color,
        marker="o",
        markersize=3.5,
        linewidth=1.8,
        linestyle=style,
        label=_condition_legend_label(cond, multi_beta),
    )
    if np.isfinite(low).any():
        ax.fill_between(gens, low, high, color=color, alpha=0.15, linewidth=0)


def _condition_legend_label(cond: Condition, multi_beta: bool) -> str:
    if cond.alpha is None:
        return cond.label
    return f"α = {fmt_weight(cond.alpha)}" + (f", β = {fmt_weight(cond.beta)}" if multi_beta else "")


def _per_dataset_lines(
    ax, conds, table: str, value: str, dataset: str, multi_beta: bool, extra: Optional[dict] = None
) -> None:
    for n, cond in enumerate(conds):
        filters = {"dataset": dataset, **(extra or {})}
        s = _series(cond.table(table), filters, value)
        if s is None:
            continue
        ax.plot(
            *s,
            color=CONDITION_COLORS[n % len(CONDITION_COLORS)],
            marker="o",
            markersize=3.5,
            linewidth=1.8,
            linestyle="-" if not multi_beta else ["-", "--", ":", "-."][betas(conds).index(cond.beta) % 4],
            label=_condition_legend_label(cond, multi_beta),
        )


def similarity_figure(runs: list[RunData]) -> Optional[Figure]:
    conds = [c for c in conditions(runs) if not c.table("similarity").empty]
    if not conds:
        return None
    datasets = _dataset_labels(runs[0])
    multi_beta = len(betas(conds)) > 1
    fig = Figure(figsize=(max(3.6 * len(datasets), 5.0), 3.6), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False, sharey=True)[0]
    for ax, (label, ds) in zip(axes, datasets):
        _per_dataset_lines(ax, conds, "similarity", "cosine", ds, multi_beta)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("generation")
        _int_xaxis(ax)
    axes[0].set_ylabel("mean cosine similarity")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    fig.suptitle("Similarity between the models' outputs per dataset (higher = more homogeneous)", fontsize=11)
    return fig


def homogenization_figure(runs: list[RunData]) -> Optional[Figure]:
    conds = [c for c in conditions(runs) if not c.table("homogenization").empty]
    if not conds:
        return None
    datasets = _dataset_labels(runs[0])
    multi_beta = len(betas(conds)) > 1
    fig = Figure(figsize=(max(3.6 * len(datasets), 5.0), 6.0), layout="constrained")
    axes = fig.subplots(2, len(datasets), squeeze=False, sharex=True)
    for col, (label, ds) in enumerate(datasets):
        _per_dataset_lines(axes[0][col], conds, "homogenization", "value", ds, multi_beta, {"metric": "spread"})
        _per_dataset_lines(axes[1][col], conds, "homogenization", "value", ds, multi_beta, {"metric": "diversity"})
        axes[0][col].set_title(label, fontsize=10)
        axes[1][col].set_xlabel("generation")
        for r in (0, 1):
            _int_xaxis(axes[r][col])
    axes[0][0].set_ylabel("spread across models")
    axes[1][0].set_ylabel("diversity within a model\n(mean over models)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    fig.suptitle(
        "Homogenization: spread of the K models around their centroid (top), variety of one model's answers (bottom)",
        fontsize=11,
    )
    return fig


# -- PCA (Figure 3) --------------------------------------------------------------------------
@dataclass
class PCAPanel:
    title: str
    run: RunData
    generation: int
    points: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (model, dataset) -> (n, 2)


@dataclass
class PCAPanels:
    pca: PCA2
    panels: list[PCAPanel]
    models: list[str]
    datasets: list[tuple[str, str]]
    n_fitted: int


def pca_panels(runs: list[RunData]) -> Optional[PCAPanels]:
    """Fit one PCA on every completion embedding of every run and generation, project the panels."""
    run0 = runs[0]
    models, datasets = run0.entities, _dataset_labels(run0)
    keys = [completion_key(m, ds) for m in models for _, ds in datasets]
    arrays = []
    for run in runs:
        for t in run.embedding_generations():
            emb = _embeddings(run, t)
            arrays += [emb[k] for k in keys if k in emb and len(emb[k])]
    if not arrays:
        return None
    pca = fit_pca(arrays)
    conds = [c for c in conditions(runs) if c.first.embedding_generations()]
    firsts: list[tuple[Condition, dict]] = []  # distinct generation-0 embeddings (usually shared by all alphas)
    for cond in conds:
        if cond.first.embedding_generations()[0] == 0:
            emb0 = _embeddings(cond.first, 0)
            if not any(_same(emb0, other, keys) for _, other in firsts):
                firsts.append((cond, emb0))
    wanted: list[tuple[str, RunData, int]] = [
        ("t = 0" if len(firsts) == 1 else f"t = 0, {_panel_title(cond)}", cond.first, 0) for cond, _ in firsts
    ]
    for cond in conds:
        last = cond.first.embedding_generations()[-1]
        if last != 0:
            wanted.append((f"t = {last}, {_panel_title(cond)}", cond.first, last))
    panels = []
    for title, run, t in wanted:
        emb = _embeddings(run, t)
        panel = PCAPanel(title, run, t)
        for m in models:
            for _, ds in datasets:
                k = completion_key(m, ds)
                if k in emb and len(emb[k]):
                    panel.points[(m, ds)] = pca.transform(emb[k])
        panels.append(panel)
    return PCAPanels(pca, panels, models, datasets, sum(len(a) for a in arrays))


def _embeddings(run: RunData, t: int) -> dict[str, np.ndarray]:
    """The embeddings of a generation listed by `run.embedding_generations()` (its file exists)."""
    emb = run.embeddings(t)
    assert emb is not None, f"no embeddings for generation {t} of {run.name}"
    return emb


def _same(a: dict, b: dict, keys: list[str]) -> bool:
    return all((k in a) == (k in b) and (k not in a or np.array_equal(a[k], b[k])) for k in keys)


def pca_figure(data: PCAPanels) -> Figure:
    n = len(data.panels)
    ncols = min(n, 4)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(3.5 * ncols + 0.5, 3.4 * nrows + 0.9), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    for idx, ax in enumerate(axes.flat):
        if idx >= n:
            ax.set_visible(False)
            continue
        panel = data.panels[idx]
        for (m, ds), xy in panel.points.items():
            mi = data.models.index(m)
            di = [d for _, d in data.datasets].index(ds)
            ax.scatter(
                xy[:, 0],
                xy[:, 1],
                s=10,
                alpha=0.55,
                linewidths=0,
                color=DATASET_COLORS[di % len(DATASET_COLORS)],
                marker=MARKERS[mi % len(MARKERS)],
            )
        ax.set_title(panel.title, fontsize=10)
        ax.grid(True, alpha=0.25)
    ev = data.pca.explained
    for ax in axes[-1]:
        ax.set_xlabel(f"PC1 ({100 * ev[0]:.0f}% of variance)")
    for row in axes:
        row[0].set_ylabel(f"PC2 ({100 * ev[1]:.0f}%)")
    handles = [
        Line2D([], [], linestyle="", marker="o", color=DATASET_COLORS[i % len(DATASET_COLORS)], label=label)
        for i, (label, _) in enumerate(data.datasets)
    ]
    handles += [
        Line2D([], [], linestyle="", marker=MARKERS[i % len(MARKERS)], color="#444444", label=f"Model {i + 1} ({m})")
        for i, m in enumerate(data.models)
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    fig.suptitle(
        "PCA of output embeddings (one PCA fitted on all runs and generations; colour = dataset, marker = model)",
        fontsize=10,
    )
    return fig


# -- theory overlay (linear backend) -----------------------------------------------------------
def theory_predictions(run: RunData) -> Optional[np.ndarray]:
    """(T+1, K, K) expected test loss of model k on private task m, or None if the theory is unavailable."""
    from crossgen.backends.linear import feature_system
    from crossgen.theory import trajectory

    cfg = run.cfg
    system = feature_system(cfg)
    traj = trajectory(system, cfg.schedule("alpha"), cfg.schedule("beta"), cfg.generations)
    n = np.array([len(x) for x in system.private], dtype=float)
    return traj.mspe / n[None, None, :] + system.sigma2


def theory_figure(runs: list[RunData]) -> Optional[Figure]:
    """Per model: own-task loss and the mean loss on the other private tasks, run vs theory."""
    linear = [r for r in runs if r.backend == "linear"]
    if not linear:
        return None
    conds = conditions(linear)
    preds = []
    for cond in conds:
        try:
            p = theory_predictions(cond.first)
        except Exception:  # the theory package is optional for the report
            p = None
        preds.append(p)
    if all(p is None for p in preds):
        return None
    run = linear[0]
    K = run.K
    fig, panels = _grid(conds, sharey=True)
    handles: dict[str, Line2D] = {}
    for (ax, cond), pred in zip(panels, preds):
        frame = cond.losses
        for i, model in enumerate(run.entities):
            color = MODEL_COLORS[i % len(MODEL_COLORS)]
            own = _series(frame, {"model": model, "task": run.private_tasks[i]}, "loss")
            others = [t for j, t in enumerate(run.private_tasks) if j != i]
            cross = _series(frame[frame["task"].isin(others)], {"model": model}, "loss") if others else None
            lines = [("own task", own, "-", "o", pred[:, i, i] if pred is not None else None)]
            if K > 1:
                theory_cross = np.delete(pred[:, i, :], i, axis=1).mean(axis=1) if pred is not None else None
                lines.append(("other tasks" if K > 2 else "other task", cross, "--", "s", theory_cross))
            for what, series, ls, marker, theory in lines:
                label = f"Model {i + 1}, {what}"
                if series is not None:
                    (h,) = ax.plot(
                        *series, color=color, linestyle=ls, marker=marker, markersize=3.5, linewidth=1.5, label=label
                    )
                    handles.setdefault(label + " (run)", h)
                if theory is not None:
                    ax.plot(np.arange(len(theory)), theory, color=color, linestyle=":", linewidth=2.4, alpha=0.6)
        ax.set_title(_panel_title(cond), fontsize=10)
        ax.set_xlabel("generation")
        _int_xaxis(ax)
    panels[0][0].set_ylabel("test MSE")
    handles["theory (dotted, model's colour)"] = Line2D([], [], color="#555555", linestyle=":", linewidth=2.4)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="outside lower center",
        ncol=-(-len(handles) // 2),
        fontsize=8,
        frameon=False,
    )  # two rows: a column per model (own task above other tasks)
    other = "mean over the other private tasks" if K > 2 else "the other private task"
    fig.suptitle(
        f"Linear backend: run losses (own task solid, {other} dashed) and the theory's expectation "
        f"mspe/n + σ² (dotted)",
        fontsize=10,
    )
    return fig


# -- completion metrics (the tidy metrics table) ---------------------------------------------------
@dataclass(frozen=True)
class MetricPanel:
    """One row of panels of a metric figure: `metric` of `model` (an entity name; `models` = the
    mean over the entities; `all` = the pooled row) per dataset."""

    metric: str
    ylabel: str
    model: str = "models"


def metric_series(frame, run: RunData, metric: str, model: str, dataset: str):
    """(generations, value, low, high) of one metric; for model='models' the mean over the
    entities of value, low and high. None without rows."""
    if frame.empty:
        return None
    sub = frame[(frame["metric"] == metric) & (frame["dataset"] == dataset)]
    sub = sub[sub["model"].isin(run.entities)] if model == "models" else sub[sub["model"] == model]
    if sub.empty:
        return None
    per_gen = sub.groupby("generation")[["value", "low", "high"]].mean().sort_index()
    return (
        per_gen.index.to_numpy(),
        per_gen["value"].to_numpy(dtype=float),
        per_gen["low"].to_numpy(dtype=float),
        per_gen["high"].to_numpy(dtype=float),
    )


def metric_figure(runs: list[RunData], panels: list[MetricPanel], title: str) -> Optional[Figure]:
    """Rows = `panels`, columns = datasets; one line per condition (α) with its 95% band, and the
    reference answers' value (real text) dotted grey where the metric has one."""
    conds = [c for c in conditions(runs) if any(c.table("metrics")["metric"].isin([p.metric for p in panels]))]
    if not conds:
        return None
    run = runs[0]
    panels = [p for p in panels if any((c.table("metrics")["metric"] == p.metric).any() for c in conds)]
    datasets = _dataset_labels(run)
    multi_beta = len(betas(conds)) > 1
    fig = Figure(figsize=(max(3.6 * len(datasets), 5.0), 2.7 * len(panels) + 1.0), layout="constrained")
    axes = fig.subplots(len(panels), len(datasets), squeeze=False, sharex=True)
    for r, panel in enumerate(panels):
        for col, (label, ds) in enumerate(datasets):
            ax = axes[r][col]
            for n, cond in enumerate(conds):
                s = metric_series(cond.table("metrics"), run, panel.metric, panel.model, ds)
                if s is None:
                    continue
                _plot_band(ax, s, n, cond, conds, multi_beta)
            ref = metric_series(conds[0].table("metrics"), run, panel.metric, "reference", ds)
            if ref is not None:
                ax.plot(ref[0], ref[1], color=PUBLIC_COLOR, linestyle=":", linewidth=1.6, label="reference answers")
            if r == 0:
                ax.set_title(label, fontsize=10)
            if r == len(panels) - 1:
                ax.set_xlabel("generation")
            _int_xaxis(ax)
        axes[r][0].set_ylabel(panel.ylabel, fontsize=9)
    handles: dict[str, Line2D] = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="outside lower center",
        ncol=min(len(handles), 6),
        fontsize=8,
        frameon=False,
    )
    fig.suptitle(title, fontsize=11)
    return fig


LEXICAL_PANELS = [
    MetricPanel("distinct_1", "distinct-1"),
    MetricPanel("distinct_2", "distinct-2"),
    MetricPanel("distinct_4", "distinct-4"),
    MetricPanel("compression_ratio", "compression ratio\n(higher = more repetitive)"),
    MetricPanel("self_bleu", "self-BLEU\n(higher = more alike)"),
]
VENDI_PANELS = [
    MetricPanel("vendi", "Vendi score\n(mean over models)"),
    MetricPanel("vendi", "Vendi score\n(models pooled)", "all"),
]
REAL_PANELS = [
    MetricPanel("mauve", "MAUVE"),
    MetricPanel("precision", "precision (k-NN)"),
    MetricPanel("recall", "recall (k-NN)"),
    MetricPanel("coverage", "coverage (k-NN)"),
]


def lexical_figure(runs: list[RunData]) -> Optional[Figure]:
    return metric_figure(
        runs, LEXICAL_PANELS, "Lexical diversity of each model's completions (mean over models, 95% band)"
    )


def vendi_figure(runs: list[RunData]) -> Optional[Figure]:
    return metric_figure(
        runs, VENDI_PANELS, "Vendi score of the completions' embeddings (effective number of distinct answers)"
    )


def real_text_figure(runs: list[RunData]) -> Optional[Figure]:
    return metric_figure(runs, REAL_PANELS, "Distance of the completions to the real answers (mean over models)")


# -- task accuracy (the accuracy family of the tidy metrics table) --------------------------------
def _mean_series(frame, models: list[str], metric: str, dataset: str):
    """(generations, value, low, high) of `metric` averaged over `models`; None without rows."""
    if frame.empty or not models:
        return None
    sub = frame[(frame["metric"] == metric) & (frame["dataset"] == dataset) & frame["model"].isin(models)]
    if sub.empty:
        return None
    per_gen = sub.groupby("generation")[["value", "low", "high"]].mean().sort_index()
    return (
        per_gen.index.to_numpy(),
        per_gen["value"].to_numpy(dtype=float),
        per_gen["low"].to_numpy(dtype=float),
        per_gen["high"].to_numpy(dtype=float),
    )


def accuracy_figure(runs: list[RunData]) -> Optional[Figure]:
    """Columns = datasets with accuracy rows (judged by acc, else exact_match); top row: the model
    whose private task the dataset is, bottom row: the mean of the other models; one line per
    condition (α) with its 95% band (the models' intervals averaged), chance level dotted."""
    from crossgen.report.tables import primary_accuracy

    conds = conditions(runs)
    run = runs[0]
    columns = []
    for label, ds in _dataset_labels(run):
        metric = next((m for c in conds if (m := primary_accuracy(c.table("metrics"), ds)) is not None), None)
        if metric is not None:
            columns.append((label, ds, metric))
    if not columns:
        return None
    multi_beta = len(betas(conds)) > 1
    fig = Figure(figsize=(max(3.6 * len(columns), 5.0), 2.7 * 2 + 1.0), layout="constrained")
    axes = fig.subplots(2, len(columns), squeeze=False, sharex=True, sharey=True)
    for col, (label, ds, metric) in enumerate(columns):
        own = [m for m, task in zip(run.entities, run.private_tasks) if task == ds]
        others = [m for m in run.entities if m not in own]
        for r, models in enumerate((own, others)):
            ax = axes[r][col]
            for n, cond in enumerate(conds):
                s = _mean_series(cond.table("metrics"), models, metric, ds)
                if s is None:
                    continue
                _plot_band(ax, s, n, cond, conds, multi_beta)
            chance = _mean_series(conds[0].table("metrics"), run.entities, "chance", ds)
            if chance is not None and models:
                ax.plot(chance[0], chance[1], color=PUBLIC_COLOR, linestyle=":", linewidth=1.6, label="chance")
            if r == 0:
                ax.set_title(f"{label}: {metric}", fontsize=10)
            else:
                ax.set_xlabel("generation")
            _int_xaxis(ax)
    axes[0][0].set_ylabel("its own model", fontsize=9)
    axes[1][0].set_ylabel("the other models (mean)", fontsize=9)
    handles: dict[str, Line2D] = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="outside lower center",
        ncol=min(len(handles), 6),
        fontsize=8,
        frameon=False,
    )
    fig.suptitle("Task accuracy per generation (95% bands over the test prompts)", fontsize=11)
    return fig
