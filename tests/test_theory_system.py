"""FeatureSystem, feature files, weight broadcasting, pseudo-inverses, and input errors."""

import math

import numpy as np
import pytest

from crossgen.errors import InputError
from crossgen.mixture import weight_schedule
from crossgen.theory import (
    PINV_RCOND,
    PINV_RTOL,
    FeatureSystem,
    asymptotic,
    design_pinv,
    efficiency_grid,
    homogenization,
    psd_pinv,
    trajectory,
)


def small(seed=0, K=2, d=4):
    rng = np.random.default_rng(seed)
    return FeatureSystem([rng.standard_normal((5, d)) for _ in range(K)], rng.standard_normal((3, d)))


def message(excinfo):
    return str(excinfo.value)


# ------------------------------------------------------------------ FeatureSystem
def test_defaults_and_grams():
    s = small()
    assert (s.K, s.d, s.sigma2) == (2, 4, 1.0)
    np.testing.assert_array_equal(s.theta, np.ones(4) / 2.0)  # 1/sqrt(4) is exact
    assert s.synthetic_grams is s.private_grams
    # the same products, possibly by another BLAS kernel: rounding only (default allclose)
    assert np.allclose(s.private_grams[1], s.private[1].T @ s.private[1])
    assert np.allclose(s.public_gram, s.public.T @ s.public)
    with pytest.raises(ValueError):
        s.private[0][0, 0] = 1.0  # read-only: cached Grams stay valid


def test_inputs_are_copied():
    x = np.ones((3, 2))
    s = FeatureSystem([x], np.ones((1, 2)))
    x[0, 0] = 5.0
    assert s.private[0][0, 0] == 1.0


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        (
            dict(private=[], public=np.ones((2, 3))),
            "invalid K: 0 (allowed: an integer >= 1 (at least one private feature matrix))",
        ),
        (
            dict(private=[np.ones((2, 3)), np.array([[1.0, np.nan, 0.0]])], public=np.ones((2, 3))),
            "invalid private_1: non-finite values (NaN or inf) (allowed: finite numbers)",
        ),
        (
            dict(private=[np.ones((2, 3))], public=np.ones((2, 5))),
            "invalid public: 5 columns (allowed: 3 columns, the d of private_0)",
        ),
        (
            dict(private=[np.ones((2, 3)), np.ones((2, 4))], public=np.ones((2, 3))),
            "invalid private_1: 4 columns (allowed: 3 columns, the d of private_0)",
        ),
        (
            dict(private=[np.ones(3)], public=np.ones((2, 3))),
            "invalid private_0: shape (3,) (allowed: a 2-D array (rows x d))",
        ),
        (
            dict(private=[np.ones((2, 3))], public=np.ones((2, 3)), synthetic=[np.ones((1, 3))] * 2),
            "invalid synthetic: 2 arrays (allowed: 1 arrays, one per entity)",
        ),
        (
            dict(private=[np.ones((2, 3))], public=np.ones((2, 3)), synthetic=[np.full((1, 3), np.inf)]),
            "invalid synthetic_0: non-finite values (NaN or inf) (allowed: finite numbers)",
        ),
        (
            dict(private=[np.ones((2, 3))], public=np.ones((2, 3)), sigma2=0.0),
            "invalid sigma2: 0.0 (allowed: a finite number > 0)",
        ),
        (
            dict(private=[np.ones((2, 3))], public=np.ones((2, 3)), theta=np.ones(2)),
            "invalid theta: shape (2,) (allowed: a vector of 3 numbers)",
        ),
    ],
)
def test_feature_system_rejects_bad_input(kwargs, expected):
    with pytest.raises(InputError) as e:
        FeatureSystem(**kwargs)
    assert message(e) == expected


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    s = FeatureSystem(
        [rng.standard_normal((4, 3)) for _ in range(3)],
        rng.standard_normal((2, 3)),
        [rng.standard_normal((5, 3)) for _ in range(3)],
        sigma2=0.3,
        theta=np.array([1.0, 2.0, 3.0]),
    )
    path = tmp_path / "f.npz"
    s.to_npz(path)
    t = FeatureSystem.from_npz(path)
    assert (t.K, t.d, t.sigma2) == (3, 3, 0.3)
    assert np.array_equal(t.theta, s.theta)
    for a, b in zip(t.private + t.synthetic + (t.public,), s.private + s.synthetic + (s.public,)):
        assert np.array_equal(a, b)
    assert [p.name for p in tmp_path.iterdir()] == ["f.npz"]  # no temporary left behind


def test_npz_defaults(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(path, private_0=np.eye(2), private_1=np.eye(2), public=np.eye(2))
    s = FeatureSystem.from_npz(path)
    assert s.K == 2 and s.sigma2 == 1.0 and s.synthetic_grams is s.private_grams


@pytest.mark.parametrize(
    "arrays,expected",
    [
        (dict(private_0=np.eye(2)), "invalid public: missing (allowed: an array named 'public' in the .npz file)"),
        (
            dict(public=np.eye(2)),
            "invalid private_0: missing (allowed: an array named 'private_0' in the .npz file "
            "(private_0 .. private_{K-1}))",
        ),
        (
            dict(private_0=np.eye(2), private_2=np.eye(2), public=np.eye(2)),
            "invalid private_1: missing (allowed: arrays private_0 .. private_2 without gaps)",
        ),
        (
            dict(private_0=np.eye(2), private_1=np.eye(2), public=np.eye(2), synthetic_0=np.eye(2)),
            "invalid synthetic_1: missing (allowed: all of synthetic_0 .. synthetic_1, or none)",
        ),
        (
            dict(private_0=np.eye(2), public=np.eye(2), sigma2=np.array([1.0, 2.0])),
            "invalid sigma2: array of shape (2,) (allowed: a finite number > 0)",
        ),
    ],
)
def test_npz_missing_arrays(tmp_path, arrays, expected):
    path = tmp_path / "f.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError) as e:
        FeatureSystem.from_npz(path)
    assert message(e) == expected


def test_npz_not_a_file(tmp_path):
    with pytest.raises(InputError) as e:
        FeatureSystem.from_npz(tmp_path / "nope.npz")
    assert message(e).startswith("invalid file: ")
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    with pytest.raises(InputError) as e:
        FeatureSystem.from_npz(bad)
    assert "a readable .npz file" in message(e)


# ------------------------------------------------------------------ weights
def test_weight_schedule_shapes():
    assert weight_schedule("alpha", 0.25, 2, 3).tolist() == [[0.25] * 3] * 3
    per_gen = weight_schedule("alpha", [0.0, 0.5, 1.0], 2, 3)
    assert per_gen[:, 0].tolist() == [0.0, 0.5, 1.0] and per_gen.shape == (3, 3)
    full = np.arange(6).reshape(3, 2) / 10
    assert np.array_equal(weight_schedule("beta", full, 2, 2), full)
    assert weight_schedule("beta", 1, 0, 1).shape == (1, 1)


@pytest.mark.parametrize(
    "value,generations,expected",
    [
        (1.5, 3, "invalid alpha: 1.5 (allowed: a number in [0, 1])"),
        (float("nan"), 3, "invalid alpha: nan (allowed: a number in [0, 1])"),
        ([0.0, 0.5, -0.2, 0.1], 3, "invalid alpha[2]: -0.2 (allowed: a number in [0, 1])"),
        (np.array([[0, 0], [0, 0], [0, 0], [0.5, 2.0]]), 3, "invalid alpha[3,1]: 2.0 (allowed: a number in [0, 1])"),
        (
            [0.5, 0.5],
            3,
            "invalid alpha: shape (2,) (allowed: a number in [0, 1], 4 such numbers "
            "(one per generation t = 0..3), or a (4, 2) array)",
        ),
        (
            "abc",
            3,
            "invalid alpha: abc (allowed: a number in [0, 1], 4 such numbers "
            "(one per generation t = 0..3), or a (4, 2) array)",
        ),
        (0.5, -1, "invalid generations: -1 (allowed: an integer >= 0)"),
        (0.5, 2.5, "invalid generations: 2.5 (allowed: an integer >= 0)"),
    ],
)
def test_weight_schedule_errors(value, generations, expected):
    with pytest.raises(InputError) as e:
        weight_schedule("alpha", value, generations, 2)
    assert message(e) == expected


@pytest.mark.parametrize(
    "call,expected",
    [
        (lambda s: trajectory(s, 1.2, 0.5, 3), "invalid alpha: 1.2 (allowed: a number in [0, 1])"),
        (lambda s: trajectory(s, 0.5, -0.1, 3), "invalid beta: -0.1 (allowed: a number in [0, 1])"),
        (lambda s: trajectory(s, 0.5, 0.5, -1), "invalid generations: -1 (allowed: an integer >= 0)"),
        (lambda s: asymptotic(s, 1.01, 0.5), "invalid alpha: 1.01 (allowed: a number in [0, 1])"),
        (lambda s: asymptotic(s, 0.5, [0.5, 7.0]), "invalid beta[1]: 7.0 (allowed: a number in [0, 1])"),
        (
            lambda s: asymptotic(s, 0.5, [0.5, 0.5, 0.5]),
            "invalid beta: shape (3,) (allowed: a number in [0, 1] or 2 such numbers (one per entity))",
        ),
        (lambda s: homogenization(s, 0.5, 2.0, 2), "invalid beta: 2.0 (allowed: a number in [0, 1])"),
        (lambda s: efficiency_grid(s, [0.0, 1.5], [0.5]), "invalid alphas[1]: 1.5 (allowed: a number in [0, 1])"),
        (lambda s: efficiency_grid(s, [0.5], []), "invalid betas: [] (allowed: a non-empty list of numbers in [0, 1])"),
        (
            lambda s: trajectory(s, 0.5, 0.5, 2, synthetic_schedule=[[np.eye(4)] * 2]),
            "invalid synthetic_schedule: 1 generations (allowed: 2 generations (t = 1..2), each 2 feature arrays)",
        ),
        (
            lambda s: trajectory(s, 0.5, 0.5, 1, synthetic_schedule=[[np.eye(4), np.eye(3)]]),
            "invalid synthetic_schedule[0][1]: 3 columns (allowed: 4 columns, the d of private_0)",
        ),
        (lambda s: trajectory(s, 0.5, 0.5, 2).cov_blocks(3), "invalid t: 3 (allowed: an integer in [0, 2])"),
    ],
)
def test_engine_input_errors(call, expected):
    with pytest.raises(InputError) as e:
        call(small())
    assert message(e) == expected


# ------------------------------------------------------------------ pseudo-inverse
def test_psd_pinv_matches_numpy_on_mixed_ranks():
    rng = np.random.default_rng(3)
    mats = []
    for r in (5, 3, 1, 0):
        X = rng.standard_normal((5, r))
        mats.append(X @ X.T)
    mats.append(np.diag([1.0, 1e-13, 2.0, 3.0, 4.0]))  # numerically rank 4
    G = np.array(mats)
    got = psd_pinv(G)
    for g, h in zip(G, got):
        # numpy's eigenvalue pinv with the same cut-off; entries O(1), so only rounding
        # (observed 8e-12, on the numerically rank-deficient matrix) separates the two
        assert np.allclose(h, np.linalg.pinv(g, rcond=PINV_RTOL, hermitian=True), rtol=1e-10, atol=1e-10)
        # symmetric: exactly on the inverse path, up to rounding (1e-16) on the eigen path
        assert np.allclose(h, h.T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(psd_pinv(G[:1])[0], np.linalg.inv(G[0]), rtol=1e-12)  # the inverse itself


def test_an_exactly_singular_matrix_leaves_the_others_on_the_fast_path():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6, 3))
    G = np.array([X.T @ X, np.diag([1.0, 0.0, 2.0]), X.T @ X + np.eye(3)])
    got = psd_pinv(G)  # inv() raises for G[1]
    for i in (0, 2):
        np.testing.assert_array_equal(got[i], psd_pinv(G[i : i + 1])[0])  # bit for bit
    np.testing.assert_array_equal(got[1], np.diag([1.0, 0.0, 0.5]))


def test_one_cut_off_for_gram_matrices_and_designs():
    """An eigenvalue cut-off r on D'D is the singular-value cut-off sqrt(r) on D: the theory
    (psd_pinv), the Monte Carlo twin (design_pinv) and the linear backend (numpy's pinv with
    RCOND) drop the same directions."""
    import crossgen.backends.linear as linear

    assert math.sqrt(PINV_RTOL) == PINV_RCOND == linear.RCOND
    rng = np.random.default_rng(5)
    U, _ = np.linalg.qr(rng.standard_normal((8, 4)))
    V, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    D = U @ np.diag([1.0, 1e-3, 2e-5, 5e-6]) @ V.T  # 2e-5 kept, 5e-6 dropped
    by_design = design_pinv(D)
    assert np.linalg.matrix_rank(by_design, tol=1.0) == 3  # singular values 1e0..5e4
    # the same SVD cut-off in numpy: rounding only (observed 2e-12 on entries up to 2.5e4)
    np.testing.assert_allclose(np.linalg.pinv(D, rcond=PINV_RCOND), by_design, rtol=0, atol=1e-8 * 5e4)
    # via the Gram matrix: its kept eigenvalue 4e-10 carries an absolute rounding error of
    # ~eps * ||D'D||, i.e. ~1e-6 relative (observed 2e-7 of the largest entry)
    np.testing.assert_allclose(psd_pinv(D.T @ D) @ D.T, by_design, rtol=0, atol=1e-5 * 5e4)
    np.testing.assert_array_equal(design_pinv(np.zeros((0, 4))), np.zeros((4, 0)))
