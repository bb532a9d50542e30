"""Pool filters in the Monte Carlo twin (`simulate(..., pool_filter=PoolFilter(kind, c))`):
an infinite threshold is the unfiltered simulation bit for bit, the fraction kept follows its
closed form for Gaussian noise, a verifier changes the MSE in the predicted direction, and
bad filters are one-line input errors (API and CLI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import norm

from crossgen.errors import InputError
from crossgen.theory import trajectory
from crossgen.theory.scenarios import low_rank_system
from crossgen.theory.simulate import PoolFilter, simulate
from helpers import run_cli

SYSTEM = low_rank_system(K=3, d=6, rank=3, n_private=24, n_public=12, seed=1, sigma2=1.0)
INF = float("inf")


@pytest.mark.parametrize("kind", ["residual", "verify"])
@pytest.mark.parametrize(
    "setting",
    [
        {"alpha": 1.0, "beta": 0.5},
        {"alpha": 0.5, "beta": 0.5, "graph": "directed-ring"},
        {"alpha": 0.5, "beta": 0.7, "fresh_real": True},
    ],
)
def test_infinite_threshold_is_the_unfiltered_simulation(kind, setting):
    """Same seed, same numbers: the filter draws no random number and refits nothing when it
    keeps every row (and says so: kept = 1 at every generation)."""
    weights = {k: setting[k] for k in ("alpha", "beta")}
    extra = {k: v for k, v in setting.items() if k not in weights}
    base = simulate(SYSTEM, generations=3, replicates=130, seed=5, keep_estimates=True, **weights, **extra)
    kept = simulate(
        SYSTEM,
        generations=3,
        replicates=130,
        seed=5,
        keep_estimates=True,
        pool_filter=PoolFilter(kind, INF),
        **weights,
        **extra,
    )
    np.testing.assert_array_equal(kept.estimates, base.estimates)
    np.testing.assert_array_equal(kept.mse, base.mse)
    np.testing.assert_array_equal(kept.variance, base.variance)
    assert np.isnan(kept.kept[0]).all() and (kept.kept[1:] == 1).all()
    assert base.kept is None


def test_residual_filter_keeps_the_gaussian_fraction():
    """Under the generating model j, a synthetic label's residual y - x'thetahat_{t-1,j} is its
    own noise, N(0, sigma2), whatever thetahat: each row is kept with probability
    2 Phi(r / sigma) - 1, at every generation and in every pool."""
    r = 0.8
    result = simulate(SYSTEM, 0.5, 0.5, 3, 3000, seed=2, pool_filter=PoolFilter("residual", r))
    expected = 2 * norm.cdf(r / np.sqrt(SYSTEM.sigma2)) - 1
    z = (result.kept[1:] - expected) / result.kept_stderr[1:]
    assert np.abs(z).max() < 5, z
    # power: a threshold 5% off would be rejected
    wrong = 2 * norm.cdf(1.05 * r) - 1
    assert np.abs((result.kept[1:] - wrong) / result.kept_stderr[1:]).min() > 5


def test_verifier_keeps_the_fraction_its_closed_form_gives():
    """At generation 1 pool j is published by thetahat_0j, which is linear in the real noise
    and so Gaussian: thetahat_0j ~ N(m_j, C_j) (the theory's generation-0 mean and covariance
    block). Row x's label deviates from the truth by
        y - x'theta = x'(thetahat_0j - theta) + w,   w ~ N(0, sigma2) independent,
    i.e. N(mu_x, v_x) with mu_x = x'(m_j - theta) and v_x = x'C_j x + sigma2 -- not the noise
    alone. So pool j keeps on average mean_x [Phi((c - mu_x)/sqrt v_x) - Phi((-c - mu_x)/sqrt v_x)]
    of its rows. (From generation 2 on the filtered estimates are no longer Gaussian.)"""
    c = 1.0
    result = simulate(SYSTEM, 1.0, 0.5, 1, 6000, seed=4, pool_filter=PoolFilter("verify", c))
    theory = trajectory(SYSTEM, 1.0, 0.5, 1)
    cov = theory.cov_blocks(0)
    expected = []
    for j, x in enumerate(SYSTEM.private):  # synthetic features = private ones
        mu = x @ (theory.mean[0, j] - SYSTEM.theta)
        sd = np.sqrt(np.einsum("rd,de,re->r", x, cov[j, j], x) + SYSTEM.sigma2)
        expected.append(np.mean(norm.cdf((c - mu) / sd) - norm.cdf((-c - mu) / sd)))
    z = (result.kept[1] - np.array(expected)) / result.kept_stderr[1]
    assert np.abs(z).max() < 5, z
    # power: the noise-only fraction P(|w| <= c), which forgets the model's own error, fails
    naive = 2 * norm.cdf(c / np.sqrt(SYSTEM.sigma2)) - 1
    assert ((naive - result.kept[1]) / result.kept_stderr[1]).min() > 5


def test_verifier_stops_the_collapse_at_alpha_1():
    """Direction. At alpha = 1 every update fits synthetic labels only; without a filter each
    generation adds its synthetic noise to the error, so the MSE grows linearly
    (+ sigma2 tr(Sbar^+)/K per generation). The verifier keeps a label only when
    |y - x'theta| <= c, so every label the fit sees is within c of the truth: with c = sigma the
    kept deviations have second moment below c^2 = sigma2 (a normal truncated to [-c, c]), and
    those of generation t >= 2 no longer carry thetahat_{t-1}'s accumulated error. The fit is
    linear in the kept deviations, so its error stays bounded instead of accumulating: the
    filtered MSE at T is lower than the unfiltered one, and it does not grow after generation
    1. Common random numbers (same seed) make the per-replicate differences tight; the test
    uses independent-sample standard errors, which is conservative."""
    T = 4
    base = simulate(SYSTEM, 1.0, 0.5, T, 2000, seed=7)
    ver = simulate(SYSTEM, 1.0, 0.5, T, 2000, seed=7, pool_filter=PoolFilter("verify", 1.0))
    gap = base.mse[T] - ver.mse[T]
    z = gap / np.hypot(base.mse_stderr[T], ver.mse_stderr[T])
    assert (z > 10).all(), z
    np.testing.assert_array_equal(ver.mse[0], base.mse[0])  # generation 0 has no pools
    growth = (ver.mse[T] - ver.mse[1]) / np.hypot(ver.mse_stderr[T], ver.mse_stderr[1])
    assert (growth < 3).all(), growth  # bounded: no significant growth after generation 1
    assert (base.mse[T] - base.mse[1] > 1.0).all()  # while the unfiltered MSE keeps climbing


def test_a_generous_residual_filter_lowers_the_synthetic_noise_at_alpha_1():
    """Direction. The residual filter drops the rows with |w| > r: the kept synthetic noise
    is a normal truncated to [-r, r], of variance sigma2 (1 - 2 z phi(z) / (2 Phi(z) - 1)),
    z = r / sigma, which at r = 2 sigma is 0.77 sigma2 while 95% of the rows stay, so each
    generation adds less noise to the error than without the filter (the weight of a row is
    unchanged, so at alpha = 1 only the number of rows and their noise change)."""
    T = 4
    base = simulate(SYSTEM, 1.0, 0.5, T, 2000, seed=9)
    res = simulate(SYSTEM, 1.0, 0.5, T, 2000, seed=9, pool_filter=PoolFilter("residual", 2.0))
    z = (base.mse[T] - res.mse[T]) / np.hypot(base.mse_stderr[T], res.mse_stderr[T])
    assert (z > 3).all(), z


@pytest.mark.parametrize(
    ("kind", "threshold", "message"),
    [
        ("truth", 1.0, "invalid pool_filter.kind: truth (allowed: residual or verify)"),
        ("verify", 0.0, "invalid pool_filter.threshold: 0.0 (allowed: a number > 0 (inf keeps every row))"),
        ("verify", float("nan"), "invalid pool_filter.threshold: nan (allowed: a number > 0 (inf keeps every row))"),
        ("residual", "1", "invalid pool_filter.threshold: 1 (allowed: a number > 0 (inf keeps every row))"),
    ],
)
def test_bad_filters_are_named(kind, threshold, message):
    with pytest.raises(InputError) as info:
        PoolFilter(kind, threshold)
    assert str(info.value) == message


def test_cli_prints_the_fraction_kept(tmp_path, capsys):
    path = tmp_path / "f.npz"
    SYSTEM.to_npz(path)
    common = [str(path), "--alpha", "1", "--beta", "0.5", "--generations", "2", "--replicates", "200", "--json"]
    code, out, _ = run_cli(capsys, "simulate", *common, "--filter", "residual", "--threshold", "1")
    assert code == 0
    result = json.loads(out)
    api = simulate(SYSTEM, 1.0, 0.5, 2, 200, seed=0, pool_filter=PoolFilter("residual", 1.0))
    np.testing.assert_array_equal(result["mse"], api.mse)
    assert result["filter"] == {"kind": "residual", "threshold": 1.0}
    assert result["kept"][0] is None and np.allclose(result["kept"][1:], api.kept[1:])
    code, out, err = run_cli(capsys, "simulate", *common, "--threshold", "1")
    assert code == 2 and out == ""
    assert err.strip() == "error: invalid --threshold: 1.0 (allowed: only with --filter (residual or verify))"
    code, out, err = run_cli(capsys, "simulate", *common, "--filter", "verify")
    assert code == 2 and out == ""
    assert err.strip() == "error: invalid --threshold: None (allowed: a number > 0 with --filter (inf keeps every row))"
