"""The paper's theory figures (Figures 2 and 4), exact curves with Monte Carlo points on top.

Each figure is written as a PNG and a tidy CSV with the numbers behind it; both are written
to a temporary name and renamed into place, so a file is either whole or absent. The Monte
Carlo points come from `crossgen.theory.simulate` (which shares no algebra with the theory), so a
figure doubles as a visual check of the theory.

* Figure 2: relative efficiency (pooled-OLS MSE / asymptotic MSE of the entity, Theorem 3)
  against alpha, one curve per beta, one panel per entity; K = 4, d = 15, rank 5. The Monte
  Carlo points estimate the MSE at generation ``mc_generation`` (20: every plotted weight has
  rho(Q) < 0.9, and the exact MSE there is within 5e-4 relative of its limit, a tenth of the
  points' standard error of 0.6-0.7% at 4000 replicates; generation 40 doubled their cost).
* Figure 4: MSE over generations (Theorem 2), a 3 x 3 grid of panels (rows beta, columns
  alpha, in {0, 0.5, 1}), a colour per entity; K = 2, d = 50, rank 15.
* The interaction-graph figure (`graphs_figure`, not in the paper): the complete, ring, star
  and isolated graphs (`crossgen.theory.graphs`) at K = 8 (`scenarios.graphs_system`),
  alpha = beta = 0.5: the entities' mean MSE over generations, the asymptotic MSE of every
  entity (Theorem 3 on the graph), and the mean error correlation (homogenization) over
  generations; `graphs_finding` turns its numbers into a sentence.

CSV columns: figure2 ``alpha, beta, entity, source, value, stderr``; figure4 adds
``generation``. ``source`` is 'theory' or 'monte_carlo'; ``stderr`` is empty for theory rows.
Entities are numbered from 0, as in ``SimulationResult.to_frame``. The graph figure's CSV:
``graph, quantity, generation, entity, source, value, stderr`` (see `graphs_data`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crossgen.io import atomic_path
from crossgen.theory import asymptotic, efficiency_grid, homogenization, pooled_ols_mse, trajectory
from crossgen.theory.scenarios import figure2_system, figure4_system, graphs_system
from crossgen.theory.simulate import simulate

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ["alpha", "beta", "entity", "source", "value", "stderr"]

MC_REPLICATES = 4000
"""Monte Carlo replicates per point of both figures (the CLI's default too)."""
MC_GENERATION = 20
"""The generation whose Monte Carlo MSE stands in for Figure 2's limit (module doc)."""


# ----------------------------------------------------------------------------- shared


def _pyplot():
    """matplotlib.pyplot on the Agg backend, imported on first use (it costs ~0.5 s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colours() -> tuple:
    return _pyplot().get_cmap("tab10").colors


def _rows(source: str, values: np.ndarray, stderr: np.ndarray | None = None, **keys) -> pd.DataFrame:
    """Tidy rows for one array of values: one row per entry, keys broadcast alongside."""
    import pandas as pd

    values = np.asarray(values, dtype=float)
    out: dict[str, Any] = {k: np.broadcast_to(np.asarray(v), values.shape).ravel() for k, v in keys.items()}
    out["source"] = source
    out["value"] = values.ravel()
    out["stderr"] = np.nan if stderr is None else np.asarray(stderr, dtype=float).ravel()
    return pd.DataFrame(out)


def _save(fig, frame: pd.DataFrame, out_dir, name: str) -> dict[str, Path]:
    """Write ``name``.png and ``name``.csv atomically into out_dir; return both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"png": out / f"{name}.png", "csv": out / f"{name}.csv"}
    with atomic_path(paths["csv"]) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g")
    with atomic_path(paths["png"]) as tmp:
        fig.savefig(tmp, format="png", dpi=130, bbox_inches="tight")
    _pyplot().close(fig)
    return paths


def _errorbar(ax, x, y, err, colour, marker="o", label=None) -> None:
    ax.errorbar(
        x, y, yerr=err, fmt=marker, color=colour, ms=4.5, capsize=2.5, lw=1, mfc="white", mew=1.2, label=label, zorder=3
    )


# ----------------------------------------------------------------------------- figure 2


def figure2_data(
    seed: int = 0,
    replicates: int = MC_REPLICATES,
    alphas: Sequence[float] = tuple(np.linspace(0, 1, 41)),
    betas: Sequence[float] = (0.1, 0.5, 0.9),
    mc_alphas: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
    mc_generation: int = MC_GENERATION,
) -> pd.DataFrame:
    """Figure 2's numbers: exact relative efficiency on the alpha grid, and Monte Carlo
    estimates pooled_mse / simulated MSE at ``mc_generation`` (delta-method stderr).

    Every Monte Carlo point uses the same seed (common random numbers across weights).
    """
    import pandas as pd

    system = figure2_system()
    a_grid, b_grid = np.asarray(alphas, float), np.asarray(betas, float)
    K = system.K
    grid = efficiency_grid(system, a_grid, b_grid)  # (na, nb, K)
    frames = [_rows("theory", grid, alpha=a_grid[:, None, None], beta=b_grid[None, :, None], entity=np.arange(K))]
    pooled = pooled_ols_mse(system)
    for b in betas:
        for a in mc_alphas:
            sim = simulate(system, a, b, mc_generation, replicates, seed=seed)
            mse, se = sim.mse[-1], sim.mse_stderr[-1]
            frames.append(
                _rows("monte_carlo", pooled / mse, pooled * se / mse**2, alpha=a, beta=b, entity=np.arange(K))
            )
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def _mc_note(replicates: int) -> str:
    return (
        f"points: Monte Carlo, {replicates} replicates, the same random numbers in every "
        "panel (so their deviations are correlated)"
    )


def plot_figure2(frame: pd.DataFrame, mc_generation: int = MC_GENERATION, replicates: int = MC_REPLICATES):
    """One panel per entity: efficiency vs alpha, a line per beta, MC points with error bars."""
    plt, colours = _pyplot(), _colours()
    entities = sorted(frame.entity.unique())
    betas = sorted(frame.beta.unique())
    fig, axes = plt.subplots(1, len(entities), figsize=(3.4 * len(entities), 3.6), sharey=True, squeeze=False)
    for ax, k in zip(axes[0], entities):
        for i, b in enumerate(betas):
            sel = frame[(frame.entity == k) & (frame.beta == b)]
            th, mc = sel[sel.source == "theory"], sel[sel.source == "monte_carlo"]
            ax.plot(th.alpha, th.value, color=colours[i], lw=1.8, label=f"β = {b:g}")
            _errorbar(ax, mc.alpha, mc.value, mc.stderr, colours[i])
        ax.set_title(f"entity {k}")
        ax.set_xlabel("α (share of synthetic data)")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("relative efficiency\n(pooled-OLS MSE / asymptotic MSE)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    mc = axes[0, 0].errorbar([], [], yerr=[], fmt="o", color="grey", mfc="white", capsize=2.5)
    fig.legend(
        handles + [mc],
        labels + [f"Monte Carlo, generation {mc_generation}, ±1 s.e."],
        loc="lower center",
        ncol=len(betas) + 1,
        frameon=False,
        bbox_to_anchor=(0.5, -0.08),
    )
    fig.suptitle(
        "Figure 2: relative efficiency of the workflow's limit "
        "(K = 4, d = 15, rank 5; β: private share of the real data)\n" + _mc_note(replicates),
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def figure2(
    out_dir,
    seed: int = 0,
    replicates: int = MC_REPLICATES,
    alphas: Sequence[float] = tuple(np.linspace(0, 1, 41)),
    betas: Sequence[float] = (0.1, 0.5, 0.9),
    mc_alphas: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
    mc_generation: int = MC_GENERATION,
) -> dict[str, Path]:
    """Draw the paper's Figure 2 (relative efficiency over alpha, a curve per beta, Monte Carlo
    points on top) for its system (`scenarios.figure2_system`).

    Parameters
    ----------
    out_dir : path
        Folder for figure2.png and figure2.csv (created if missing; each file is written
        whole or not at all).
    seed, replicates : int
        Monte Carlo seed and replicates per point (default `MC_REPLICATES`).
    alphas, betas : sequence of float
        The exact curves' alpha grid and the betas (one curve each).
    mc_alphas : sequence of float
        Alphas of the Monte Carlo points.
    mc_generation : int
        Generation at which the Monte Carlo MSE stands in for the limit.

    Returns
    -------
    dict
        {'png': path, 'csv': path}.
    """
    frame = figure2_data(seed, replicates, alphas, betas, mc_alphas, mc_generation)
    return _save(plot_figure2(frame, mc_generation, replicates), frame, out_dir, "figure2")


# ----------------------------------------------------------------------------- figure 4

FIGURE4_WEIGHTS = (0.0, 0.5, 1.0)


def figure4_data(
    seed: int = 0, replicates: int = MC_REPLICATES, generations: int = 15, weights: Sequence[float] = FIGURE4_WEIGHTS
) -> pd.DataFrame:
    """Figure 4's numbers: exact MSE per generation and entity (Theorem 2, beta applied from
    generation 0 on) and the simulated MSE with its stderr, for every (alpha, beta) pair."""
    import pandas as pd

    system = figure4_system()
    gen = np.arange(generations + 1)[:, None]
    ent = np.arange(system.K)[None, :]
    frames = []
    for b in weights:
        for a in weights:
            exact = trajectory(system, a, b, generations).mse
            sim = simulate(system, a, b, generations, replicates, seed=seed)
            keys: dict[str, Any] = dict(generation=gen, alpha=a, beta=b, entity=ent)
            frames.append(_rows("theory", exact, **keys))
            frames.append(_rows("monte_carlo", sim.mse, sim.mse_stderr, **keys))
    return pd.concat(frames, ignore_index=True)[["generation"] + COLUMNS]


def plot_figure4(frame: pd.DataFrame, replicates: int = MC_REPLICATES):
    """A grid of panels, rows beta and columns alpha, each with its own MSE scale (the
    curves differ by orders of magnitude between panels): theory lines and Monte Carlo points
    with error bars, a colour per entity."""
    from matplotlib.ticker import MaxNLocator

    plt, colours = _pyplot(), _colours()
    betas, alphas = sorted(frame.beta.unique()), sorted(frame.alpha.unique())
    entities = sorted(frame.entity.unique())
    fig, axes = plt.subplots(
        len(betas), len(alphas), figsize=(3.6 * len(alphas), 2.6 * len(betas)), sharex=True, squeeze=False
    )
    for (i, b), (j, a) in itertools.product(enumerate(betas), enumerate(alphas)):
        ax = axes[i, j]
        for k in entities:
            sel = frame[(frame.beta == b) & (frame.alpha == a) & (frame.entity == k)]
            th, mc = sel[sel.source == "theory"], sel[sel.source == "monte_carlo"]
            ax.plot(th.generation, th.value, color=colours[k], lw=1.6, label=f"entity {k}, theory")
            _errorbar(ax, mc.generation, mc.value, mc.stderr, colours[k], label=f"entity {k}, Monte Carlo ±1 s.e.")
        ax.set_title(f"α = {a:g}, β = {b:g}", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if i == len(betas) - 1:
            ax.set_xlabel("generation t")
        if j == 0:
            ax.set_ylabel("MSE  E‖θ̂ₜₖ − θ‖²")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2 * len(entities), frameon=False, bbox_to_anchor=(0.5, -0.04))
    fig.suptitle(
        "Figure 4: MSE over generations (K = 2, d = 50, rank 15); "
        "α: share of synthetic data, β: private share of the real data\n" + _mc_note(replicates),
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def figure4(
    out_dir,
    seed: int = 0,
    replicates: int = MC_REPLICATES,
    generations: int = 15,
    weights: Sequence[float] = FIGURE4_WEIGHTS,
) -> dict[str, Path]:
    """Draw the paper's Figure 4 (MSE over generations, a panel per (alpha, beta), exact lines
    and Monte Carlo points) for its system (`scenarios.figure4_system`).

    Parameters
    ----------
    out_dir : path
        Folder for figure4.png and figure4.csv (each written whole or not at all).
    seed, replicates : int
        Monte Carlo seed and replicates (default `MC_REPLICATES`).
    generations : int
        T, the last generation shown.
    weights : sequence of float
        The values of alpha (columns) and beta (rows).

    Returns
    -------
    dict
        {'png': path, 'csv': path}.
    """
    frame = figure4_data(seed, replicates, generations, weights)
    return _save(plot_figure4(frame, replicates), frame, out_dir, "figure4")


# ----------------------------------------------------------------------------- interaction graphs

GRAPHS_FIGURE = ("complete", "ring", "star", "isolated")
"""The graphs of `graphs_figure` (named topologies of `crossgen.theory.graphs`)."""

GRAPHS_MC_REPLICATES = 1000
"""Monte Carlo replicates per graph of `graphs_figure` (cheap: K = 8, d = 10)."""

GRAPH_COLUMNS = ["graph", "quantity", "generation", "entity", "source", "value", "stderr"]


def graphs_data(
    seed: int = 0,
    replicates: int = GRAPHS_MC_REPLICATES,
    generations: int = 20,
    alpha: float = 0.5,
    beta: float = 0.5,
    graphs: Sequence[str] = GRAPHS_FIGURE,
) -> pd.DataFrame:
    """The interaction-graph figure's numbers, for `scenarios.graphs_system` (K = 8).

    Rows (``quantity``; ``generation`` or ``entity`` empty where they do not apply):

    * ``mse``: per generation and entity, theory (Theorem 2 on the graph) and Monte Carlo;
    * ``group_mse``: the mean over the entities per generation, theory and Monte Carlo (its
      stderr from the per-replicate mean, so the entities' correlation is accounted for);
    * ``asymptotic_mse``: per entity (Theorem 3 on the graph), theory only;
    * ``spectral_radius``: rho(Q) of the stationary update, theory only;
    * ``mean_error_correlation``: per generation (homogenization: 1 = the entities err
      identically), theory and Monte Carlo (sample correlations, no stderr).

    Every graph's Monte Carlo uses the same seed (common random numbers).
    """
    import pandas as pd

    system = graphs_system()
    K, T = system.K, generations
    gen = np.arange(T + 1)
    frames = []

    def rows(graph, quantity, source, value, stderr=None, generation=np.nan, entity=np.nan):
        frame = _rows(source, value, stderr, generation=generation, entity=entity)
        frame["graph"], frame["quantity"] = graph, quantity
        frames.append(frame)

    for g in graphs:
        exact = trajectory(system, alpha, beta, T, graph=g)
        limit = asymptotic(system, alpha, beta, graph=g)
        hom = homogenization(system, alpha, beta, T, graph=g)
        rows(g, "mse", "theory", exact.mse, generation=gen[:, None], entity=np.arange(K)[None, :])
        rows(g, "group_mse", "theory", exact.mse.mean(axis=1), generation=gen)
        if limit.mse is not None:
            rows(g, "asymptotic_mse", "theory", limit.mse, entity=np.arange(K))
        rows(g, "spectral_radius", "theory", np.array([limit.spectral_radius]))
        rows(g, "mean_error_correlation", "theory", hom.mean_error_correlation, generation=gen)
        sim = simulate(system, alpha, beta, T, replicates, seed=seed, graph=g, keep_estimates=True)
        assert sim.estimates is not None
        err = sim.estimates - system.theta  # (R, T+1, K, d)
        rows(g, "mse", "monte_carlo", sim.mse, sim.mse_stderr, generation=gen[:, None], entity=np.arange(K)[None, :])
        group = np.sum(err**2, axis=-1).mean(axis=-1)  # (R, T+1)
        se = group.std(axis=0, ddof=1) / np.sqrt(replicates) if replicates > 1 else np.full(T + 1, np.nan)
        rows(g, "group_mse", "monte_carlo", group.mean(axis=0), se, generation=gen)
        rows(g, "mean_error_correlation", "monte_carlo", _mc_error_correlation(err), generation=gen)
    return pd.concat(frames, ignore_index=True)[GRAPH_COLUMNS]


def _mc_error_correlation(err: np.ndarray) -> np.ndarray:
    """(T+1,) mean over pairs k < l of E[e_k . e_l] / sqrt(E|e_k|^2 E|e_l|^2), from samples
    err (R, T+1, K, d) (the Monte Carlo twin of `homogenization.mean_error_correlation`)."""
    K = err.shape[2]
    second = np.einsum("rtki,rtli->tkl", err, err) / err.shape[0]
    diag = np.einsum("tkk->tk", second)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = second / np.sqrt(diag[:, :, None] * diag[:, None, :])
    iu = np.triu_indices(K, 1)
    return corr[:, iu[0], iu[1]].mean(axis=1) if K > 1 else np.full(err.shape[1], np.nan)


def graphs_finding(frame: pd.DataFrame) -> str:
    """One sentence computed from `graphs_data`'s theory rows: which graph has the lowest and
    the highest asymptotic MSE (mean over the entities), which converges slowest (largest
    rho(Q): the distance to the limit shrinks by about that factor per generation), which
    homogenizes most and least (mean error correlation at the last generation), and, for a
    star, its hub against its leaves."""
    th = frame[frame.source == "theory"]
    graphs = list(dict.fromkeys(th.graph))
    rho = {g: float(th[(th.graph == g) & (th.quantity == "spectral_radius")].value.iloc[0]) for g in graphs}
    limit = {}
    for g in graphs:
        sel = th[(th.graph == g) & (th.quantity == "asymptotic_mse")]
        limit[g] = float(sel.value.mean()) if len(sel) else float("inf")
    corr_rows = th[th.quantity == "mean_error_correlation"]
    last = corr_rows.generation.max()
    corr = {g: float(corr_rows[(corr_rows.graph == g) & (corr_rows.generation == last)].value.iloc[0]) for g in graphs}
    K = int(th[th.quantity == "mse"].entity.max()) + 1
    best, worst = min(graphs, key=lambda g: limit[g]), max(graphs, key=lambda g: limit[g])
    slow, fast = max(graphs, key=lambda g: rho[g]), min(graphs, key=lambda g: rho[g])
    most, least = max(graphs, key=lambda g: corr[g]), min(graphs, key=lambda g: corr[g])
    text = (
        f"With K = {K} entities, the {best} graph has the lowest asymptotic MSE ({limit[best]:.3g}, mean over "
        f"entities) and the {worst} graph the highest ({limit[worst]:.3g}, {limit[worst] / limit[best]:.2g}x); "
        f"the {slow} graph converges slowest (rho(Q) = {rho[slow]:.3g}, against {rho[fast]:.3g} for the {fast} "
        f"graph); the {most} graph homogenizes most (mean error correlation {corr[most]:.2f} at generation "
        f"{int(last)}) and the {least} graph least ({corr[least]:.2f})"
    )
    if "star" in graphs and np.isfinite(limit["star"]):
        star = th[(th.graph == "star") & (th.quantity == "asymptotic_mse")].sort_values("entity").value.to_numpy()
        text += f"; in the star the hub's limit is {star[0]:.3g} against {star[1:].mean():.3g} for the leaves"
    return text + "."


def plot_graphs(frame: pd.DataFrame, replicates: int = GRAPHS_MC_REPLICATES, alpha: float = 0.5, beta: float = 0.5):
    """Three panels: the entities' mean MSE over generations (theory lines, Monte Carlo points,
    the limit dashed), the asymptotic MSE of every entity, and the mean error correlation."""
    from matplotlib.ticker import MaxNLocator

    plt, colours = _pyplot(), _colours()
    graphs = list(dict.fromkeys(frame.graph))
    fig, axes = plt.subplots(1, 3, figsize=(14.5, 4.0))
    for i, g in enumerate(graphs):
        c = colours[i % len(colours)]
        sel = frame[frame.graph == g]
        grp = sel[sel.quantity == "group_mse"]
        th, mc = grp[grp.source == "theory"], grp[grp.source == "monte_carlo"]
        axes[0].plot(th.generation, th.value, color=c, lw=1.8, label=g)
        _errorbar(axes[0], mc.generation, mc.value, mc.stderr, c)
        lim = sel[sel.quantity == "asymptotic_mse"]
        if len(lim):
            axes[0].axhline(lim.value.mean(), color=c, lw=1, ls="--", alpha=0.7)
            axes[1].plot(lim.entity, lim.value, color=c, lw=1.2, marker="o", label=g)
            mse = sel[(sel.quantity == "mse") & (sel.source == "monte_carlo")]
            end = mse[mse.generation == mse.generation.max()]
            _errorbar(axes[1], end.entity, end.value, end.stderr, c, marker="s")
        cor = sel[sel.quantity == "mean_error_correlation"]
        th, mc = cor[cor.source == "theory"], cor[cor.source == "monte_carlo"]
        axes[2].plot(th.generation, th.value, color=c, lw=1.8, label=g)
        axes[2].plot(mc.generation, mc.value, "o", color=c, ms=4, mfc="white", mew=1.2)
    axes[0].set(xlabel="generation t", ylabel="mean MSE over entities", title="MSE over generations (limit dashed)")
    axes[0].set_yscale("log")
    axes[1].set(
        xlabel="entity (star: 0 is the hub)",
        ylabel="asymptotic MSE",
        title="limit per entity (squares: Monte Carlo, last generation)",
    )
    axes[2].set(xlabel="generation t", ylabel="mean error correlation", title="homogenization")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(graphs), frameon=False, bbox_to_anchor=(0.5, -0.07))
    fig.suptitle(
        f"Interaction graphs (K = 8, d = 10, private rank 3; α = {alpha:g}, β = {beta:g}): theory lines, "
        f"Monte Carlo points ({replicates} replicates, ±1 s.e.)",
        fontsize=11,
    )
    fig.tight_layout()
    return fig


def graphs_figure(
    out_dir,
    seed: int = 0,
    replicates: int = GRAPHS_MC_REPLICATES,
    generations: int = 20,
    alpha: float = 0.5,
    beta: float = 0.5,
    graphs: Sequence[str] = GRAPHS_FIGURE,
) -> dict[str, Path]:
    """Draw the interaction-graph figure (`graphs_data`; not in the paper) as graphs.png and
    graphs.csv in out_dir (each written whole or not at all).

    Returns
    -------
    dict
        {'png': path, 'csv': path}.
    """
    frame = graphs_data(seed, replicates, generations, alpha, beta, graphs)
    return _save(plot_graphs(frame, replicates, alpha, beta), frame, out_dir, "graphs")
