"""Consensus distance and error correlations against the dense covariance."""

import numpy as np
import pytest

from crossgen.theory import FeatureSystem, dense, homogenization


def system(seed=0, K=3, d=4):
    rng = np.random.default_rng(seed)
    priv = [rng.standard_normal((5, 2)) @ rng.standard_normal((2, d)) for _ in range(K)]
    return FeatureSystem(
        priv,
        rng.standard_normal((3, d)),
        [rng.standard_normal((6, d)) for _ in range(K)],
        sigma2=0.5,
        theta=rng.standard_normal(d),
    )


def test_matches_dense_cross_blocks():
    s = system()
    K, d, T = s.K, s.d, 4
    rng = np.random.default_rng(1)
    alpha, beta = rng.uniform(size=(T + 1, K)), rng.uniform(size=(T + 1, K))
    got = homogenization(s, alpha, beta, T)
    ref = dense.trajectory(s, alpha, beta, T)
    for t in range(T + 1):
        e = ref.mean[t] - s.theta
        E = np.array(
            [
                [np.trace(ref.cov[t][k * d : (k + 1) * d, m * d : (m + 1) * d]) + e[k] @ e[m] for m in range(K)]
                for k in range(K)
            ]
        )
        corr = E / np.sqrt(np.outer(np.diag(E), np.diag(E)))
        # structured vs dense: rounding only (observed 3e-15); correlations are O(1)
        np.testing.assert_allclose(got.error_correlation[t], corr, rtol=1e-10, atol=1e-12)
        assert got.mean_error_correlation[t] == pytest.approx(corr[np.triu_indices(K, 1)].mean(), rel=1e-10)
        spread = ref.mean[t] - ref.mean[t].mean(axis=0)
        assert got.consensus_distance[t] == pytest.approx(np.sum(spread**2) / K, rel=1e-10)


def test_alpha_one_homogenizes_completely():
    s = system(2)
    h = homogenization(s, 1.0, 0.5, 3)
    # from generation 1 on every entity fits the same pooled synthetic data
    # identical means up to rounding: the squared spread is ~eps^2 (observed 8e-34)
    assert np.allclose(h.consensus_distance[1:], 0, atol=1e-20)
    assert np.allclose(h.mean_error_correlation[1:], 1.0, rtol=0, atol=1e-12)  # rounding (observed 0)
    assert h.mean_error_correlation[0] < 0.99


def test_single_entity_has_no_pairs():
    s = system(3, K=1)
    h = homogenization(s, 0.5, 0.5, 2)
    assert np.all(np.isnan(h.mean_error_correlation))
    np.testing.assert_array_equal(h.error_correlation, 1.0)  # E / sqrt(E E) of one entity
