"""Exact linear-regression theory of cross-generational training (paper section 5).

numpy/scipy only. `FeatureSystem` holds the features; `trajectory` gives exact per-generation
mean, variance, MSE and MSPE of every entity (Theorems 1-2, corrected as in docs/DESIGN.md);
`asymptotic` the t -> infinity limit (Theorem 3) or how the MSE diverges; `efficiency` the
pooled-OLS benchmark and alpha-beta grids (Figure 2); `homogenization` how the entities
converge to a consensus; `scenarios` the paper's feature designs; `dense` a literal Kd x Kd
reference used by tests and benchmarks.
"""
from crossgen.theory import dense, scenarios
from crossgen.theory.dynamics import (
    RHO_TOL, Asymptote, Growth, Trajectory, asymptotic, spectral_radius, stationary_mse,
    trajectory,
)
from crossgen.theory.efficiency import (
    OptimalWeights, efficiency_grid, optimal_weights, pooled_ols_mse, relative_efficiency,
)
from crossgen.theory.homogenization import Homogenization, homogenization
from crossgen.theory.scenarios import figure2_system, figure4_system, low_rank_system
from crossgen.theory.system import (
    PINV_RTOL, FeatureSystem, psd_pinv,
)

__all__ = [
    "Asymptote", "FeatureSystem", "Growth", "Homogenization", "OptimalWeights", "PINV_RTOL",
    "RHO_TOL", "Trajectory", "asymptotic", "dense", "efficiency_grid",
    "figure2_system", "figure4_system", "homogenization", "low_rank_system",
    "optimal_weights", "pooled_ols_mse", "psd_pinv", "relative_efficiency", "scenarios",
    "spectral_radius", "stationary_mse", "trajectory",
]
