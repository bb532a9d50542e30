"""CLI of the exact theory and its Monte Carlo twin.

Imports stay light (numpy, typer, rich): the theory is loaded inside the commands, and
`crossgen.theory.figures` imports matplotlib and pandas only when a figure is drawn.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import typer
from rich.table import Table

from crossgen.cli.common import stdout
from crossgen.errors import check_fraction, check_int
from crossgen.theory.figures import GRAPHS_MC_REPLICATES, MC_REPLICATES

if TYPE_CHECKING:
    from crossgen.theory import FeatureSystem

theory_app = typer.Typer(no_args_is_help=True, help="Exact linear-regression dynamics (section 5 of the paper).")

FILE_HELP = "theory feature file (.npz): private_0..private_{K-1}, public, optional synthetic_0.., theta, sigma2"
GRAPH_HELP = "interaction graph: complete (the paper, default), ring, directed-ring, star or isolated"
GRAPH_FILE_HELP = "interaction matrix W (K x K, non-negative, rows summing to 1) in a .npy, .csv or .txt file"
FRESH_HELP = "draw the private and public real data anew every generation (default: one draw, reused)"
FILTER_HELP = (
    "keep only synthetic rows whose label is within --threshold of the generating model's prediction "
    "(residual) or of the truth x'theta (verify); the theory has no closed form for it"
)


def _graph_name(graph: Optional[str], graph_file: Optional[Path]) -> Optional[str]:
    """Check --graph and --graph-file before anything is read (the matrix itself is checked
    by `_graph_spec` once K is known)."""
    from crossgen.errors import InputError
    from crossgen.theory.graphs import GRAPHS

    if graph is not None and graph_file is not None:
        raise InputError("--graph-file", str(graph_file), "either --graph or --graph-file, not both")
    if graph is not None and graph not in GRAPHS:
        raise InputError("--graph", graph, "one of " + ", ".join(GRAPHS))
    return graph


def _graph_spec(graph: Optional[str], graph_file: Optional[Path], K: int):
    """The graph argument of the theory functions: None (complete), a name, or the matrix
    read from --graph-file (validated: field --graph-file)."""
    if graph_file is None:
        return graph
    from crossgen.theory.graphs import load_graph_file

    return load_graph_file(graph_file, K, "--graph-file")


def _finite_or_none(values: np.ndarray) -> Optional[list]:
    """The values as floats, or None if one is not finite."""
    out = [float(v) for v in np.ravel(values)]
    return None if any(not math.isfinite(v) for v in out) else out


@theory_app.command("mse")
def mse(
    file: Path = typer.Argument(..., help=FILE_HELP),
    alpha: float = typer.Option(..., "--alpha", help="share of synthetic data, in [0, 1]"),
    beta: float = typer.Option(..., "--beta", help="share of private vs public real data, in [0, 1] (also at t = 0)"),
    generations: int = typer.Option(..., "--generations", help="T: updates after the initial fit"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    graph: Optional[str] = typer.Option(None, "--graph", help=GRAPH_HELP),
    graph_file: Optional[Path] = typer.Option(None, "--graph-file", help=GRAPH_FILE_HELP),
    fresh_real: bool = typer.Option(False, "--fresh-real", help=FRESH_HELP),
) -> None:
    """Per-generation and asymptotic MSE of every entity, spectral radius, relative efficiency."""
    from crossgen.theory import FeatureSystem

    check_fraction("--alpha", alpha), check_fraction("--beta", beta), check_int("--generations", generations, 0)
    _graph_name(graph, graph_file)
    system = FeatureSystem.from_npz(file)
    spec = _graph_spec(graph, graph_file, system.K)
    result = mse_result(system, alpha, beta, generations, graph=spec, fresh_real=fresh_real)
    if as_json:
        print(json.dumps(result))
        return
    setting = [f"graph {graph_file if graph_file is not None else graph}"] if graph or graph_file else []
    _print_mse_table(result, ", ".join(setting + (["fresh real data"] if fresh_real else [])))


def mse_result(
    system: FeatureSystem, alpha: float, beta: float, generations: int, *, graph=None, fresh_real: bool = False
) -> dict:
    """The object `crossgen theory mse --json` prints (keys: K, d, alpha, beta, generations, mse,
    asymptotic_mse, spectral_radius, converges, growth, pooled_ols_mse, relative_efficiency).

    Only what is printed is computed, and the trajectory and the limit share one factorisation
    (`trajectory_with_limit`); costs are listed in docs/theory.md. graph: the interaction
    graph (None: complete; a name or a K x K matrix: the block method of `network`);
    fresh_real: real data drawn anew every generation."""
    from crossgen.theory import pooled_ols_mse, trajectory_with_limit

    traj, limit = trajectory_with_limit(system, alpha, beta, generations, graph=graph, fresh_real=fresh_real)
    pooled = pooled_ols_mse(system)
    asym = None if limit.mse is None else _finite_or_none(limit.mse)  # None: diverges
    return {
        "K": system.K,
        "d": system.d,
        "alpha": alpha,
        "beta": beta,
        "generations": generations,
        "mse": traj.mse.tolist(),
        "asymptotic_mse": asym,
        "spectral_radius": float(limit.spectral_radius),
        "converges": bool(limit.converges),
        "growth": _growth_json(limit.growth),
        "pooled_ols_mse": float(pooled),
        "relative_efficiency": [pooled / m for m in asym] if asym else [0.0] * system.K,
    }


def _growth_json(growth) -> Optional[dict]:
    if growth is None:
        return None
    return {"kind": growth.kind, "per_generation": [float(v) for v in np.ravel(growth.per_generation)]}


def _print_mse_table(r: dict, setting: str = "") -> None:
    extra = f", {setting}" if setting else ""
    table = Table(title=f"MSE per generation (K={r['K']}, d={r['d']}, alpha={r['alpha']}, beta={r['beta']}{extra})")
    table.add_column("generation", justify="right")
    for k in range(r["K"]):
        table.add_column(f"entity {k}", justify="right")
    for t, row in enumerate(r["mse"]):
        table.add_row(str(t), *(f"{v:.5g}" for v in row))
    if r["asymptotic_mse"] is not None:
        table.add_row("limit", *(f"{v:.5g}" for v in r["asymptotic_mse"]), style="bold")
        table.add_row("rel. eff.", *(f"{v:.3f}" for v in r["relative_efficiency"]), style="bold")
    stdout.print(table)
    stdout.print(f"spectral radius of Q: {r['spectral_radius']:.6g}")
    if r["growth"] is not None:
        g = r["growth"]
        what = "MSE increment per generation" if g["kind"] == "linear" else "MSE growth factor per generation"
        stdout.print(
            f"[yellow]diverges[/] ({g['kind']} growth); {what}: " + ", ".join(f"{v:.5g}" for v in g["per_generation"])
        )
    stdout.print(f"pooled OLS MSE (all real data): {r['pooled_ols_mse']:.5g}")


@theory_app.command("optimum")
def optimum(
    file: Path = typer.Argument(..., help=FILE_HELP),
    points: int = typer.Option(41, "--points", help="grid points per axis over [0, 1]"),
    grid_csv: Optional[Path] = typer.Option(None, "--csv", help="also write the whole alpha x beta x entity grid"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Best stationary (alpha, beta) per entity and for the group, by relative efficiency."""
    from crossgen.theory import FeatureSystem, optimal_weights

    check_int("--points", points, 2)
    system = FeatureSystem.from_npz(file)
    grid = np.linspace(0.0, 1.0, points)
    best = optimal_weights(system, grid, grid)
    result = {
        "entity_alpha": best.entity_alpha.tolist(),
        "entity_beta": best.entity_beta.tolist(),
        "entity_efficiency": best.entity_efficiency.tolist(),
        "group_alpha": best.group_alpha,
        "group_beta": best.group_beta,
        "group_efficiency": best.group_efficiency,
    }
    if grid_csv is not None:
        import pandas as pd

        from crossgen.io import write_table

        a, b, ent = np.meshgrid(grid, grid, np.arange(system.K), indexing="ij")
        write_table(
            grid_csv,
            pd.DataFrame(
                {
                    "alpha": a.ravel(),
                    "beta": b.ravel(),
                    "entity": ent.ravel(),
                    "relative_efficiency": best.efficiency.ravel(),
                }
            ),
        )
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"Best (alpha, beta) on a {points} x {points} grid (relative efficiency, 1 = pooled OLS)")
    for column in ("", "alpha", "beta", "relative efficiency"):
        table.add_column(column, justify="right")
    for k in range(system.K):
        table.add_row(
            f"entity {k}",
            f"{best.entity_alpha[k]:.3g}",
            f"{best.entity_beta[k]:.3g}",
            f"{best.entity_efficiency[k]:.4f}",
        )
    table.add_row(
        "group (mean)",
        f"{best.group_alpha:.3g}",
        f"{best.group_beta:.3g}",
        f"{best.group_efficiency:.4f}",
        style="bold",
    )
    stdout.print(table)


@theory_app.command("figure2")
def figure2(
    out_dir: Path = typer.Option(Path("figures"), "--out", help="folder for figure2.png and figure2.csv"),
    seed: int = typer.Option(0, "--seed"),
    replicates: int = typer.Option(MC_REPLICATES, "--replicates", help="Monte Carlo replicates per overlaid point"),
) -> None:
    """The paper's Figure 2: relative efficiency over alpha and beta (K=4, d=15, rank 5)."""
    from crossgen.theory.figures import figure2 as make

    check_int("--seed", seed, 0), check_int("--replicates", replicates, 1)
    for path in make(out_dir, seed=seed, replicates=replicates).values():
        stdout.print(str(path))


@theory_app.command("figure4")
def figure4(
    out_dir: Path = typer.Option(Path("figures"), "--out", help="folder for figure4.png and figure4.csv"),
    seed: int = typer.Option(0, "--seed"),
    replicates: int = typer.Option(MC_REPLICATES, "--replicates", help="Monte Carlo replicates"),
    generations: int = typer.Option(15, "--generations"),
) -> None:
    """The paper's Figure 4: MSE over generations (K=2, d=50, rank 15), alpha, beta in {0, .5, 1}."""
    from crossgen.theory.figures import figure4 as make

    check_int("--seed", seed, 0), check_int("--replicates", replicates, 1)
    check_int("--generations", generations, 0)
    for path in make(out_dir, seed=seed, replicates=replicates, generations=generations).values():
        stdout.print(str(path))


@theory_app.command("figure-graphs")
def figure_graphs(
    out_dir: Path = typer.Option(Path("figures"), "--out", help="folder for graphs.png and graphs.csv"),
    seed: int = typer.Option(0, "--seed"),
    replicates: int = typer.Option(GRAPHS_MC_REPLICATES, "--replicates", help="Monte Carlo replicates per graph"),
    generations: int = typer.Option(20, "--generations"),
) -> None:
    """MSE, asymptotic MSE and homogenization on the complete, ring, star and isolated graphs
    (K = 8, d = 10, rank 3, alpha = beta = 0.5; not in the paper), and the finding they give."""
    from crossgen.theory.figures import graphs_figure, graphs_finding

    check_int("--seed", seed, 0), check_int("--replicates", replicates, 2)
    check_int("--generations", generations, 1)
    paths = graphs_figure(out_dir, seed=seed, replicates=replicates, generations=generations)
    for path in paths.values():
        stdout.print(str(path))
    import pandas as pd

    stdout.print(graphs_finding(pd.read_csv(paths["csv"])))


def simulate(
    file: Path = typer.Argument(..., help=FILE_HELP),
    alpha: float = typer.Option(..., "--alpha"),
    beta: float = typer.Option(..., "--beta"),
    generations: int = typer.Option(..., "--generations"),
    replicates: int = typer.Option(1000, "--replicates"),
    seed: int = typer.Option(0, "--seed"),
    compare: bool = typer.Option(True, "--compare/--no-compare", help="print the theory's MSE beside it"),
    as_json: bool = typer.Option(False, "--json"),
    graph: Optional[str] = typer.Option(None, "--graph", help=GRAPH_HELP),
    graph_file: Optional[Path] = typer.Option(None, "--graph-file", help=GRAPH_FILE_HELP),
    fresh_real: bool = typer.Option(False, "--fresh-real", help=FRESH_HELP),
    pool_filter: Optional[str] = typer.Option(None, "--filter", help=FILTER_HELP),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="the filter's threshold (> 0; inf keeps all)"),
) -> None:
    """Monte Carlo of the linear workflow (sample, fit, generate, pool, refit) from a feature file."""
    from crossgen.theory import FeatureSystem, trajectory
    from crossgen.theory.simulate import simulate as run_mc

    check_fraction("--alpha", alpha), check_fraction("--beta", beta), check_int("--generations", generations, 0)
    check_int("--replicates", replicates, 1), check_int("--seed", seed, 0)
    _graph_name(graph, graph_file)
    keep = _pool_filter(pool_filter, threshold)
    system = FeatureSystem.from_npz(file)
    spec = _graph_spec(graph, graph_file, system.K)
    result = run_mc(
        system,
        alpha,
        beta,
        generations,
        replicates=replicates,
        seed=seed,
        graph=spec,
        fresh_real=fresh_real,
        pool_filter=keep,
    )
    theory = trajectory(system, alpha, beta, generations, graph=spec, fresh_real=fresh_real).mse if compare else None
    if as_json:
        print(
            json.dumps(
                {
                    "mse": result.mse.tolist(),
                    "mse_stderr": result.mse_stderr.tolist(),
                    "replicates": replicates,
                    "seed": seed,
                    "theory_mse": None if theory is None else theory.tolist(),
                    **_kept_json(keep, result),
                }
            )
        )
        return
    title = f"Monte Carlo MSE ({replicates} replicates, alpha={alpha}, beta={beta}"
    title += ")" if keep is None else f", filter {keep.kind} <= {keep.threshold:g}; theory without the filter)"
    table = Table(title=title)
    table.add_column("generation", justify="right")
    for k in range(system.K):
        table.add_column(f"entity {k}", justify="right")
        if theory is not None:
            table.add_column("theory", justify="right", style="dim")
    if result.kept is not None:
        table.add_column("kept", justify="right")
    for t in range(generations + 1):
        cells = []
        for k in range(system.K):
            cells.append(f"{result.mse[t, k]:.4g} ± {result.mse_stderr[t, k]:.2g}")
            if theory is not None:
                cells.append(f"{theory[t, k]:.4g}")
        if result.kept is not None:
            cells.append("" if t == 0 else f"{result.kept[t].mean():.3f}")
        table.add_row(str(t), *cells)
    stdout.print(table)


def _pool_filter(kind: Optional[str], threshold: Optional[float]):
    """--filter and --threshold as a `PoolFilter` (None without --filter), checked before
    anything is read."""
    from crossgen.errors import InputError
    from crossgen.theory.simulate import FILTER_KINDS, PoolFilter

    if kind is None:
        if threshold is not None:
            raise InputError("--threshold", threshold, f"only with --filter ({' or '.join(FILTER_KINDS)})")
        return None
    if kind not in FILTER_KINDS:
        raise InputError("--filter", kind, " or ".join(FILTER_KINDS))
    if threshold is None or not threshold > 0:
        raise InputError("--threshold", threshold, "a number > 0 with --filter (inf keeps every row)")
    return PoolFilter(kind, threshold)


def _kept_json(keep, result) -> dict:
    """The filter and the fraction of each pool kept per generation (null at generation 0)."""
    if keep is None:
        return {}
    rows = [None if t == 0 else row.tolist() for t, row in enumerate(result.kept)]
    stderr = [None if t == 0 else row.tolist() for t, row in enumerate(result.kept_stderr)]
    threshold = keep.threshold if math.isfinite(keep.threshold) else "inf"  # JSON has no infinity
    return {"filter": {"kind": keep.kind, "threshold": threshold}, "kept": rows, "kept_stderr": stderr}
