"""Exact linear-regression theory of cross-generational training (paper section 5).

numpy only on the paths a user calls (scipy is imported for a rare fallback, and by `dense`).
`FeatureSystem` holds the features; `trajectory` gives exact per-generation mean, variance,
MSE and MSPE of every entity (Theorems 1-2, corrected as in docs/DESIGN.md); `asymptotic` the
t -> infinity limit (Theorem 3) or how the MSE diverges; `trajectory_with_limit` both for the
price of one; `efficiency` the pooled-OLS benchmark and alpha-beta grids (Figure 2);
`homogenization` how the entities converge to a consensus; `scenarios` the paper's feature
designs; `simulate` the Monte Carlo twin; `figures` the paper's Figures 2 and 4 (and the
interaction-graph figure); `dense` a literal Kd x Kd reference used by tests and benchmarks
(imported on first use). Module map and costs: docs/theory.md.

Two generalisations of the paper's setting run through all of these (keyword arguments
``graph=`` and ``fresh_real=``): an interaction graph W (`graphs`: who reads whose synthetic
pool; the complete graph is the paper's and keeps the structured O(K d^3) engine, any other
W runs the block method of `network`), and real data drawn anew every generation.
"""

from crossgen.theory import scenarios
from crossgen.theory.dynamics import Trajectory, trajectory, trajectory_with_limit
from crossgen.theory.efficiency import (
    OptimalWeights,
    efficiency_grid,
    optimal_weights,
    pooled_ols_mse,
    relative_efficiency,
)
from crossgen.theory.graphs import GRAPHS, graph
from crossgen.theory.homogenization import Homogenization, homogenization
from crossgen.theory.limit import Asymptote, Growth, asymptotic, stationary_mse
from crossgen.theory.recursion import spectral_radius
from crossgen.theory.scenarios import figure2_system, figure4_system, low_rank_system
from crossgen.theory.stationary import RHO_TOL
from crossgen.theory.system import PINV_RCOND, PINV_RTOL, FeatureSystem, design_pinv, psd_pinv

__all__ = [
    "GRAPHS",
    "PINV_RCOND",
    "PINV_RTOL",
    "RHO_TOL",
    "Asymptote",
    "FeatureSystem",
    "Growth",
    "Homogenization",
    "OptimalWeights",
    "Trajectory",
    "asymptotic",
    "dense",
    "design_pinv",
    "efficiency_grid",
    "figure2_system",
    "figure4_system",
    "graph",
    "homogenization",
    "low_rank_system",
    "optimal_weights",
    "pooled_ols_mse",
    "psd_pinv",
    "relative_efficiency",
    "scenarios",
    "spectral_radius",
    "stationary_mse",
    "trajectory",
    "trajectory_with_limit",
]


def __getattr__(name: str):
    if name == "dense":  # scipy-based; only tests and benchmarks need it
        import importlib

        return importlib.import_module("crossgen.theory.dense")
    raise AttributeError(f"module 'crossgen.theory' has no attribute {name!r}")
