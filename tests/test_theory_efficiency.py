"""Pooled-OLS benchmark, relative efficiency, grids and optimal weights."""

import numpy as np
import pytest

from crossgen.theory import (
    FeatureSystem,
    asymptotic,
    efficiency_grid,
    figure2_system,
    optimal_weights,
    pooled_ols_mse,
    relative_efficiency,
    stationary_mse,
)


def test_pooled_ols_hand_example():
    # d = 2: private_0 = [[1, 0]], private_1 = [[2, 0]], public = [[0, 1]] -> S = diag(5, 1)
    s = FeatureSystem(
        [np.array([[1.0, 0.0]]), np.array([[2.0, 0.0]])], np.array([[0.0, 1.0]]), sigma2=2.0, theta=np.array([3.0, 4.0])
    )
    assert pooled_ols_mse(s) == pytest.approx(2.0 * (1 / 5 + 1 / 1), rel=1e-12)  # exact up to rounding


def test_pooled_ols_rank_deficient_adds_bias():
    # nobody sees coordinate 2: S = diag(5, 0), bias theta_2^2 = 16
    s = FeatureSystem(
        [np.array([[1.0, 0.0]]), np.array([[2.0, 0.0]])], np.zeros((1, 2)), sigma2=2.0, theta=np.array([3.0, 4.0])
    )
    assert pooled_ols_mse(s) == pytest.approx(2.0 / 5 + 16.0, rel=1e-12)  # exact up to rounding


def test_efficiency_at_most_one_when_g_full_rank():
    s = figure2_system(seed=1)  # full-rank public: every G is full rank
    eff = efficiency_grid(s, np.linspace(0, 0.95, 20), np.linspace(0, 1, 11))
    assert np.all(eff <= 1 + 1e-10) and np.all(eff > 0)  # <= 1 up to rounding (max here 0.73)


def test_correction7_biased_limit_can_beat_pooled_ols():
    # alpha = 0, beta = 1 and theta inside each entity's private span: no bias, and the entity
    # pays no variance for the directions it never estimates, so efficiency > 1.
    rng = np.random.default_rng(0)
    e = np.eye(3)
    s = FeatureSystem(
        [rng.standard_normal((4, 1)) * e[:1], rng.standard_normal((4, 1)) * e[:1]],
        rng.standard_normal((2, 3)),
        sigma2=1.0,
        theta=e[0],
    )
    assert np.all(relative_efficiency(s, 0.0, 1.0) > 1)


def test_grid_matches_cellwise_and_divergence_is_zero():
    s = figure2_system()
    alphas, betas = [0.0, 0.3, 0.5, 1.0], [0.1, 0.5, 0.9]
    grid = efficiency_grid(s, alphas, betas)
    assert grid.shape == (4, 3, 4)
    for i, a in enumerate(alphas):
        for j, b in enumerate(betas):
            # batched vs one cell: summation order only (observed 7e-16)
            np.testing.assert_allclose(grid[i, j], relative_efficiency(s, a, b), rtol=1e-10)
    assert np.all(grid[-1] == 0)  # alpha = 1 diverges (linear growth)
    mse, _ = stationary_mse(s, np.full((2, 4), 0.5), np.full((2, 4), 0.5))
    np.testing.assert_allclose(mse[0], asymptotic(s, 0.5, 0.5).mse, rtol=1e-10)  # as above


def test_optimal_weights():
    s = figure2_system()
    alphas, betas = np.linspace(0, 1, 11), np.linspace(0, 1, 11)
    opt = optimal_weights(s, alphas, betas)
    eff = opt.efficiency
    group = eff.mean(axis=2)
    assert opt.group_efficiency == pytest.approx(group.max(), rel=1e-12)  # the same numbers, averaged
    i, j = np.unravel_index(np.argmax(group), group.shape)
    assert (opt.group_alpha, opt.group_beta) == (alphas[i], betas[j])
    for k in range(s.K):
        assert opt.entity_efficiency[k] == eff[..., k].max()  # picked from the same grid
        i = int(np.argmin(np.abs(alphas - opt.entity_alpha[k])))
        j = int(np.argmin(np.abs(betas - opt.entity_beta[k])))
        assert eff[i, j, k] == opt.entity_efficiency[k]
    assert 0 < opt.group_alpha < 1 and 0 < opt.group_beta < 1  # mixing helps
