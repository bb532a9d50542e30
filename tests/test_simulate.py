"""The Monte Carlo simulator against the exact theory, a literal loop, and its own contracts.

Statistical checks use z-scores |simulated - exact| / standard error with the bound Z_BOUND.
Each test makes at most a few hundred comparisons; P(|N(0,1)| > 4.5) = 6.8e-6, so by
Bonferroni the chance that a correct simulator fails a test is below 0.3% per test (and the
seeds are fixed, so a passing test stays passing).
"""

from __future__ import annotations

import numpy as np
import pytest

from crossgen.errors import InputError
from crossgen.theory import FeatureSystem, asymptotic, trajectory
from crossgen.theory.simulate import BLOCK, SimulationResult, simulate
from crossgen.theory.simulate_reference import simulate_loop

Z_BOUND = 4.5  # z-score bound (see the module docstring): false alarm < 0.3% per test
R = 4000  # replicates of the statistical checks (each simulate() call takes ~10-50 ms)


def low_rank(rng, rows: int, rank: int, d: int) -> np.ndarray:
    """rows x d features spanning a random rank-`rank` subspace."""
    return rng.standard_normal((rows, rank)) @ rng.standard_normal((rank, d))


def rank_deficient_system(seed: int = 0) -> FeatureSystem:
    """K = 2, d = 4: private ranks 3 and 2, public rank 2, so several G_k are singular."""
    rng = np.random.default_rng(seed)
    d = 4
    return FeatureSystem(
        private=[low_rank(rng, 6, 3, d), low_rank(rng, 4, 2, d)],
        public=rng.standard_normal((2, d)),
        sigma2=0.7,
        theta=rng.standard_normal(d),
    )


def three_entity_system(seed: int = 1) -> FeatureSystem:
    """K = 3, d = 3, synthetic features different from the private ones."""
    rng = np.random.default_rng(seed)
    d = 3
    return FeatureSystem(
        private=[low_rank(rng, 5, 2, d) for _ in range(3)],
        public=rng.standard_normal((4, d)),
        synthetic=[rng.standard_normal((3 + k, d)) for k in range(3)],
        sigma2=1.3,
    )


# (T+1, K) weights: per entity and per generation, with an all-synthetic row (alpha = 1) and
# beta_0 = 1 for entity 0 (private data only: a biased start, its private rank is 3 < d).
ALPHA = np.array([[0, 0], [0.5, 0.3], [0.5, 0.3], [1, 1], [0.2, 0.9], [0.5, 0.5]])
BETA = np.array([[1, 0.8], [0.5, 0.2], [1, 0], [0.5, 0.5], [0.3, 0.3], [0.5, 0.5]])

CASES = {
    "rank-deficient, per-entity weights": (rank_deficient_system, ALPHA, BETA, 5),
    "three entities, own synthetic features": (three_entity_system, 0.5, 0.5, 4),
    "alpha = 1 (synthetic only: variance grows)": (rank_deficient_system, 1.0, 0.5, 6),
    "beta = 0 (public only)": (three_entity_system, 0.4, 0.0, 4),
}


def assert_z(sim: np.ndarray, stderr: np.ndarray, exact: np.ndarray, what: str) -> None:
    """|sim - exact| <= Z_BOUND stderr everywhere; where stderr is 0 (a direction with no
    randomness), sim must equal exact up to rounding."""
    diff = np.abs(sim - exact)
    scale = 1.0 + np.abs(exact)
    still = stderr <= 1e-12 * scale  # no randomness: a stderr of rounding noise only
    # the same min-norm fit computed two ways: rounding (observed < 1e-14), far below 1e-8
    assert np.all(diff[still] <= 1e-8 * scale[still]), f"{what}: deterministic part differs"
    z = np.where(still, 0.0, diff / np.where(still, 1.0, stderr))
    worst = np.unravel_index(np.argmax(z), z.shape)
    assert z[worst] < Z_BOUND, f"{what}: z = {z[worst]:.2f} at {worst}"


@pytest.mark.parametrize("case", list(CASES))
def test_mse_and_mean_match_theory(case):
    make, alpha, beta, T = CASES[case]
    system = make()
    sim = simulate(system, alpha, beta, T, R, seed=11)
    exact = trajectory(system, alpha, beta, T)
    assert_z(sim.mse, sim.mse_stderr, exact.mse, "mse")
    assert_z(sim.mean, sim.mean_stderr, exact.mean, "mean")
    # the variance is a sum of sample variances: compare on a relative scale only; with
    # R = 4000 its relative sd is ~sqrt(2/R) = 2% (observed up to 3.4%), so 15% is ~7 sd
    np.testing.assert_allclose(sim.variance, exact.variance, rtol=0.15, atol=1e-10)


def test_joint_covariance_matches_theory():
    """Sample covariance of the stacked (theta_t1 .. theta_tK) vs the exact K x K blocks.

    Two views per generation: every entry, z = (S_ij - Sigma_ij) / se_ij with se_ij the
    standard error of the mean of the centred products; and every eigen-direction v of Sigma,
    z = (v'Sv - v'Sigma v) / se, where directions of zero exact variance (the unidentified
    ones, and entities made identical by alpha = 1) must show no sample variance at all.
    Max |z| < Z_BOUND, Bonferroni over the ~250 comparisons.
    """
    system = rank_deficient_system()
    T = ALPHA.shape[0] - 1
    sim = simulate(system, ALPHA, BETA, T, R, seed=5, keep_estimates=True)
    exact = trajectory(system, ALPHA, BETA, T)
    K, d = system.K, system.d
    iu = np.triu_indices(K * d)
    for t in range(T + 1):
        centred = sim.estimates[:, t].reshape(R, K * d)
        centred = centred - centred.mean(axis=0)
        sigma = exact.cov_blocks(t).transpose(0, 2, 1, 3).reshape(K * d, K * d)
        products = (centred[:, :, None] * centred[:, None, :])[:, iu[0], iu[1]]
        assert_z(
            products.sum(0) / (R - 1), products.std(0, ddof=1) / np.sqrt(R), sigma[iu], f"covariance entries, t={t}"
        )
        lam, vecs = np.linalg.eigh(sigma)
        proj2 = (centred @ vecs) ** 2
        null = lam <= 1e-9 * lam.max()  # exact zeros, up to rounding of eigh
        # no sample variance along them either, beyond rounding of the estimates
        assert np.all(proj2[:, null].sum(0) / (R - 1) <= 1e-8 * lam.max()), t
        assert_z(
            proj2[:, ~null].sum(0) / (R - 1),
            proj2[:, ~null].std(0, ddof=1) / np.sqrt(R),
            lam[~null],
            f"covariance eigen-directions, t={t}",
        )


def test_long_run_matches_asymptotic_mse():
    """Theorem 3: with stationary weights the simulated MSE at T = 60 matches the limit."""
    system = three_entity_system()
    T = 60
    limit = asymptotic(system, 0.5, 0.5)
    assert limit.converges  # rho(Q) = 0.86: by T = 60 the exact MSE is within 6e-6 of it
    np.testing.assert_allclose(trajectory(system, 0.5, 0.5, T).mse[T], limit.mse, rtol=1e-4)
    sim = simulate(system, 0.5, 0.5, T, 2000, seed=2)
    assert_z(sim.mse[T], sim.mse_stderr[T], limit.mse, "asymptotic mse")


def test_synthetic_schedule_matches_theory_and_loop():
    system = three_entity_system()
    rng = np.random.default_rng(9)
    T = 3
    schedule = [[rng.standard_normal((2 + t + k, system.d)) for k in range(system.K)] for t in range(T)]
    alpha, beta = 0.6, 0.3
    sim = simulate(system, alpha, beta, T, R, seed=4, synthetic_schedule=schedule, keep_estimates=True)
    exact = trajectory(system, alpha, beta, T, synthetic_schedule=schedule)
    assert_z(sim.mse, sim.mse_stderr, exact.mse, "mse")
    loop = simulate_loop(system, alpha, beta, T, 70, seed=4, synthetic_schedule=schedule)
    # pinv-by-SVD vs lstsq on the same noise: rounding only (observed 9e-15)
    np.testing.assert_allclose(sim.estimates[:70], loop, rtol=1e-9, atol=1e-11)


def test_default_schedule_is_the_system_synthetic_features():
    system = three_entity_system()
    explicit = [list(system.synthetic)] * 3
    a = simulate(system, 0.5, 0.5, 3, 100, seed=1)
    b = simulate(system, 0.5, 0.5, 3, 100, seed=1, synthetic_schedule=explicit)
    np.testing.assert_array_equal(a.mse, b.mse)


def test_batched_equals_literal_per_replicate_loop():
    """The batched pseudo-inverses reproduce a per-replicate lstsq loop on the same noise."""
    system = rank_deficient_system()
    T = ALPHA.shape[0] - 1
    sim = simulate(system, ALPHA, BETA, T, 150, seed=8, keep_estimates=True)
    loop = simulate_loop(system, ALPHA, BETA, T, 150, seed=8)
    # pinv-by-SVD vs lstsq on the same noise: rounding only (observed 9e-15 on entries <= 5)
    np.testing.assert_allclose(sim.estimates, loop, rtol=1e-9, atol=1e-11)
    err = loop - system.theta
    # blockwise (Chan) statistics vs numpy's on the same estimates: rounding (observed 2e-15)
    np.testing.assert_allclose(sim.mse, (err**2).sum(-1).mean(0), rtol=1e-9)
    np.testing.assert_allclose(sim.mean, loop.mean(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sim.variance, loop.var(0, ddof=1).sum(-1), rtol=1e-8)


def test_simulation_and_theory_drop_the_same_directions():
    """One pseudo-inverse cut-off: a design direction whose singular value is ~3e-6 of the
    largest (below PINV_RCOND = 1e-5) is left out by the simulated fits as by the theory's
    G^+ (kept, it would add a variance ~ sigma2 / (3e-6)^2 to the simulated MSE)."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((8, 3)) * np.array([1.0, 0.7, 3e-6])
    system = FeatureSystem([X], rng.standard_normal((4, 3)), sigma2=0.5, theta=np.array([0.3, -0.2, 1.0]))
    sim = simulate(system, 0.0, 1.0, 0, R, seed=3)  # beta = 1: private data only
    exact = trajectory(system, 0.0, 1.0, 0)
    assert exact.bias2[0, 0] > 0.99  # theta_3 = 1 is not estimated
    assert_z(sim.mse, sim.mse_stderr, exact.mse, "mse")
    assert_z(sim.mean, sim.mean_stderr, exact.mean, "mean")


# ----------------------------------------------------------------------------- contracts


def _arrays(result: SimulationResult):
    return [result.mse, result.mse_stderr, result.mean, result.mean_stderr, result.variance]


def test_same_seed_same_numbers_and_different_seed_different():
    system = rank_deficient_system()
    a = simulate(system, 0.5, 0.5, 3, 300, seed=1)
    b = simulate(system, 0.5, 0.5, 3, 300, seed=1)
    c = simulate(system, 0.5, 0.5, 3, 300, seed=2)
    for x, y in zip(_arrays(a), _arrays(b)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.mse, c.mse)
    assert (a.seed, a.replicates) == (1, 300)


@pytest.mark.parametrize("chunk", [1, BLOCK, 100, 10_000])
def test_chunking_does_not_change_the_numbers(chunk):
    system = rank_deficient_system()
    T = ALPHA.shape[0] - 1
    whole = simulate(system, ALPHA, BETA, T, 3 * BLOCK + 7, seed=3, keep_estimates=True)
    parts = simulate(system, ALPHA, BETA, T, 3 * BLOCK + 7, seed=3, keep_estimates=True, chunk=chunk)
    for x, y in zip(_arrays(whole) + [whole.estimates], _arrays(parts) + [parts.estimates]):
        np.testing.assert_array_equal(x, y)


def test_fewer_replicates_are_a_prefix_of_more():
    system = three_entity_system()
    small = simulate(system, 0.5, 0.5, 2, 70, seed=6, keep_estimates=True)
    large = simulate(system, 0.5, 0.5, 2, 200, seed=6, keep_estimates=True)
    np.testing.assert_array_equal(small.estimates, large.estimates[:70])


def test_result_shapes_frame_and_progress():
    system = three_entity_system()
    calls = []
    res = simulate(system, 0.5, 0.5, 2, 130, seed=0, chunk=64, progress=lambda done, total: calls.append((done, total)))
    K, d = system.K, system.d
    assert res.mse.shape == res.mse_stderr.shape == res.variance.shape == (3, K)
    assert res.mean.shape == res.mean_stderr.shape == (3, K, d)
    assert res.estimates is None and res.generations == 2
    assert calls == [(i, 9) for i in range(1, 10)]  # 3 chunks x 3 generations
    frame = res.to_frame()
    assert list(frame.columns) == ["generation", "entity", "mse", "mse_stderr"]
    assert len(frame) == 3 * K
    row = frame[(frame.generation == 2) & (frame.entity == 1)].iloc[0]
    assert row.mse == res.mse[2, 1] and row.mse_stderr == res.mse_stderr[2, 1]


def test_single_replicate_has_nan_spread():
    res = simulate(three_entity_system(), 0.5, 0.5, 1, 1, seed=0)
    assert np.all(np.isfinite(res.mse)) and np.all(np.isnan(res.mse_stderr))
    assert np.all(np.isnan(res.variance))


def test_zero_generations_is_the_initial_fit_only():
    system = rank_deficient_system()
    sim = simulate(system, 0.0, 0.5, 0, R, seed=0)
    assert sim.mse.shape == (1, 2)
    assert_z(sim.mse, sim.mse_stderr, trajectory(system, 0.0, 0.5, 0).mse, "mse")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"generations": -1}, "invalid generations: -1 (allowed: an integer >= 0)"),
        ({"generations": 2.0}, "invalid generations: 2.0 (allowed: an integer >= 0)"),
        ({"replicates": 0}, "invalid replicates: 0 (allowed: an integer >= 1)"),
        ({"replicates": True}, "invalid replicates: True (allowed: an integer >= 1)"),
        ({"seed": -3}, "invalid seed: -3 (allowed: an integer >= 0)"),
        ({"chunk": 0}, "invalid chunk: 0 (allowed: an integer >= 1)"),
        ({"alpha": 1.5}, "invalid alpha: 1.5 (allowed: a number in [0, 1])"),
        (
            {"beta": [0.5, 0.2]},
            "invalid beta: shape (2,) (allowed: a number in [0, 1], "
            "3 such numbers (one per generation t = 0..2), or a (3, 2) array)",
        ),
        (
            {"synthetic_schedule": [[np.ones((2, 4))] * 2]},
            "invalid synthetic_schedule: 1 generations (allowed: 2 generations (t = 1..2), each 2 feature arrays)",
        ),
        (
            {"synthetic_schedule": [[np.ones((2, 4))] * 2, [np.ones((2, 3))] * 2]},
            "invalid synthetic_schedule[1][0]: 3 columns (allowed: 4 columns, the d of private_0)",
        ),
        ({"progress": "bar"}, "invalid progress: bar (allowed: a callable(done, total) or None)"),
    ],
)
def test_invalid_input_raises_input_error(kwargs, message):
    args = {"alpha": 0.5, "beta": 0.5, "generations": 2, "replicates": 10} | kwargs
    with pytest.raises(InputError) as info:
        simulate(rank_deficient_system(), **args)
    assert str(info.value) == message
