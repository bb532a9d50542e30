"""Structured O(K d^3) engine vs the literal dense Kd x Kd reference, and the paper's results.

Tolerances: `close` compares arrays relative to the largest entry of the reference. Two exact
algorithms (structured vs dense, closed form vs recursion) differ only by rounding, observed
below 2e-13 on these systems (cond(G) up to ~1e4); RTOL = 1e-10 leaves room for other
BLAS/LAPACK builds, while a wrong formula (a missing transpose, a wrong block) is off by O(1).
"""

import numpy as np
import pytest

from crossgen.errors import InputError
from crossgen.theory import FeatureSystem, asymptotic, dense, system, trajectory, trajectory_with_limit
from crossgen.theory import dynamics as dyn
from crossgen.theory import limit as lim
from crossgen.theory import stationary as st_mod

K, D = 3, 4


def random_system(seed, private_rank=None, public_rank=None, synthetic=True, n=6, sigma2=0.7):
    rng = np.random.default_rng(seed)

    def feats(rows, rank):
        if rank is None:
            return rng.standard_normal((rows, D))
        return rng.standard_normal((rows, rank)) @ rng.standard_normal((rank, D))

    private = [feats(n, private_rank) for _ in range(K)]
    public = feats(5, public_rank)
    syn = [feats(7, None) for _ in range(K)] if synthetic else None
    return FeatureSystem(private, public, syn, sigma2=sigma2, theta=rng.standard_normal(D))


RTOL = 1e-10  # rounding of two exact algorithms (see the module docstring)


def close(a, b, rtol=RTOL):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(np.max(np.abs(b)), 1e-12)  # an all-zero reference compares absolutely
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= rtol * scale, np.max(np.abs(a - b)) / scale


T = 4
rng_w = np.random.default_rng(99)
WEIGHTS = [
    (0.5, 0.5),
    (0.3, 1.0),  # beta = 1: private + synthetic only
    (0.7, 0.0),  # beta = 0: public + synthetic only
    (np.tile([0.2, 0.5, 0.9], (T + 1, 1)), np.tile([0.1, 0.6, 1.0], (T + 1, 1))),  # per entity
    ([0.0, 0.9, 0.1, 0.5, 0.6], [0.2, 0.8, 0.5, 0.0, 1.0]),  # per generation
    (rng_w.uniform(size=(T + 1, K)), rng_w.uniform(size=(T + 1, K))),  # both
]
SYSTEMS = [
    dict(seed=1),
    dict(seed=2, private_rank=2),  # rank-deficient private features
    dict(seed=3, private_rank=1, synthetic=False),  # synthetic = private, rank 1
]


@pytest.mark.parametrize("spec", SYSTEMS)
@pytest.mark.parametrize("w", range(len(WEIGHTS)))
def test_trajectory_matches_dense(spec, w):
    s = random_system(**spec)
    alpha, beta = WEIGHTS[w]
    got = trajectory(s, alpha, beta, T)
    ref = dense.trajectory(s, alpha, beta, T)
    for name in ("mean", "bias2", "variance", "mse", "mspe"):
        close(getattr(got, name), getattr(ref, name))
    blocks = got.cov_blocks(T).transpose(0, 2, 1, 3).reshape(K * D, K * D)
    close(blocks, ref.cov[T])
    close(got.spectral_radius[1:], [np.max(np.abs(np.linalg.eigvals(Q))) for Q in ref.Q[1:]])


def test_synthetic_schedule_matches_dense():
    s = random_system(4, private_rank=2)
    rng = np.random.default_rng(5)
    sched = [[rng.standard_normal((int(rng.integers(1, 8)), D)) for _ in range(K)] for _ in range(T)]
    alpha, beta = rng.uniform(size=(T + 1, K)), rng.uniform(size=(T + 1, K))
    got = trajectory(s, alpha, beta, T, synthetic_schedule=sched)
    ref = dense.trajectory(s, alpha, beta, T, synthetic_schedule=sched)
    for name in ("mean", "variance", "mse", "mspe"):
        close(getattr(got, name), getattr(ref, name))
    close(got.cov_blocks(2).transpose(0, 2, 1, 3).reshape(K * D, K * D), ref.cov[2])
    # the schedule matters: without it the answer differs
    assert not np.allclose(trajectory(s, alpha, beta, T).mse, got.mse)


@pytest.mark.parametrize("spec", SYSTEMS)
@pytest.mark.parametrize(
    "alpha,beta", [(0.5, 0.5), (0.3, 1.0), (0.7, 0.0), ([0.2, 0.5, 0.9], [0.1, 0.6, 1.0]), (0.95, 0.3)]
)
def test_asymptotic_matches_dense(spec, alpha, beta):
    s = random_system(**spec)
    got = asymptotic(s, alpha, beta, mspe=True)
    ref = dense.asymptotic(s, alpha, beta)
    # eigenvalues of a d x d vs a Kd x Kd matrix: rounding only (observed < 1e-14)
    assert abs(got.spectral_radius - ref.spectral_radius) < 1e-10
    if ref.spectral_radius > 1:  # see test_geometric_growth_with_uniform_weights
        assert got.growth.kind == "geometric" and got.mse is None
        return
    assert got.converges and got.growth is None
    for name in ("mean", "bias2", "variance", "mse", "mspe"):
        close(getattr(got, name), getattr(ref, name))


def test_asymptotic_is_the_limit_of_the_trajectory():
    s = random_system(6, private_rank=2)
    asym = asymptotic(s, 0.6, 0.4)
    tr = trajectory(s, 0.6, 0.4, 200)
    # rho(Q) = 0.915: the transient left after 200 generations is ~rho^200 = 2e-8 of the
    # initial gap, observed 6e-10 relative
    close(tr.mse[-1], asym.mse, rtol=1e-8)
    close(tr.mean[-1], asym.mean, rtol=1e-8)


def test_eq2_lyapunov_and_structured_covariance_agree():
    s = random_system(7, private_rank=2)
    a, b = np.array([0.4, 0.6, 0.5]), np.array([0.3, 0.5, 0.9])
    c_eq2 = dense.eq2_covariance(s, a, b)
    c_lyap = dense.lyapunov_covariance(s, a, b)
    close(c_eq2, c_lyap)
    st = st_mod.factorise(s, a[None], b[None])
    X = lim.solve_stein(st.A, s.synthetic_grams.sum(axis=0), st.lam, st.V)[0]
    A = st.A[0]
    Sig = s.synthetic_grams.sum(axis=0)
    # the residual of a 4 x 4 solve is a few eps of ||X|| (observed 1e-15)
    assert np.linalg.norm(X - A @ X @ A.T - Sig) <= 1e-12 * np.linalg.norm(X)
    U = (st.u[0][:, None, None] * st.H[0]).reshape(K * D, D)
    close(s.sigma2 * U @ X @ U.T, c_lyap)
    # the paper's eq. (2) without the transpose fix (vec(Q S^+ Q)) is different
    _, _, Q, S = dense.matrices(s, a, b)
    wrong = np.linalg.solve(
        np.eye((K * D) ** 2) - np.kron(Q, Q), (s.sigma2 * Q @ np.linalg.pinv(S) @ Q).reshape(-1, order="F")
    )
    assert not np.allclose(wrong.reshape(K * D, K * D, order="F"), c_lyap)  # O(1) apart: any tolerance


def test_stein_fallback_on_defective_matrix():
    A = np.array([[[0.5, 1.0], [0.0, 0.5]], [[0.2, 0.0], [0.0, -0.3]]])  # Jordan block first
    Q = np.array([[1.0, 0.2], [0.2, 2.0]])
    X = lim.solve_stein(A, Q)
    for i in range(2):  # entries O(1): a few eps of rounding (observed 4e-16)
        assert np.allclose(X[i], A[i] @ X[i] @ A[i].T + Q, atol=1e-12)


def test_theorem2_closed_form_mean():
    # G_0 rank-deficient (beta_0 = 1, private rank 2): biased start; G_1.. full rank.
    s = random_system(8, private_rank=2)
    beta = [1.0, 0.5, 0.2, 0.7, 0.4]
    alpha = [0.0, 0.5, 0.8, 0.3, 0.6]
    closed = dense.theorem2_mean(s, alpha, beta, T)
    got = trajectory(s, alpha, beta, T)
    close(got.mean, closed)
    assert got.bias2[0].max() > 1e-3  # the start really is biased (bias2 ~ 0.1)


def test_general_mean_differs_from_theorem2_when_g_rank_deficient():
    # correction 4: with rank-deficient G_t the closed form is wrong, M_t E[b] is right.
    rng = np.random.default_rng(9)
    mask = np.array([1.0, 1.0, 1.0, 0.0])  # nobody sees coordinate 4
    s = FeatureSystem(
        [rng.standard_normal((3, D)) * mask for _ in range(K)],
        rng.standard_normal((2, D)) * mask,
        theta=rng.standard_normal(D),
    )
    got = trajectory(s, 0.5, 0.9, 3)
    ref = dense.trajectory(s, 0.5, 0.9, 3)
    close(got.mean, ref.mean)
    # the closed form misses the unseen coordinate entirely: O(1) apart, far above 1e-6
    assert not np.allclose(got.mean, dense.theorem2_mean(s, 0.5, 0.9, 3), atol=1e-6)


def test_alpha_one_grows_linearly_by_trace_of_sbar_pinv_over_k():
    s = random_system(10, private_rank=2)
    inc = s.sigma2 * np.trace(np.linalg.pinv(s.synthetic_grams.mean(axis=0))) / K
    tr = trajectory(s, 1.0, 0.5, 8)
    steps = np.diff(tr.mse, axis=0)[1:]  # MSE_{t+1} - MSE_t for t >= 1
    close(steps, np.full_like(steps, inc))
    asym = asymptotic(s, 1.0, 0.5)
    assert not asym.converges and asym.mse is None and asym.variance is None
    assert abs(asym.spectral_radius - 1) < lim.RHO_TOL  # exactly 1 up to rounding (1e-15)
    assert asym.growth.kind == "linear"
    close(asym.growth.per_generation, np.full(K, inc))
    close(asym.mean, tr.mean[-1])  # the mean stays put


def test_alpha_zero_trajectory_is_constant():
    s = random_system(11, private_rank=2)
    tr = trajectory(s, 0.0, 0.3, 5)
    for name in ("mean", "variance", "mse", "mspe"):  # the same numbers every generation:
        v = getattr(tr, name)  # only rounding (observed 0) may differ
        close(v, np.broadcast_to(v[0], v.shape), rtol=1e-12)
    assert np.all(tr.spectral_radius == 0)


def test_alpha_at_generation_zero_is_ignored():
    s = random_system(12)
    a = trajectory(s, [0.9, 0.5, 0.5], 0.4, 2)
    b = trajectory(s, [0.0, 0.5, 0.5], 0.4, 2)
    close(a.mse, b.mse, rtol=0)  # the same computation: bit for bit
    assert a.alpha[0].tolist() == [0.0] * K


def lemma1_system(seed, lam, gamma, private_rank=None):
    """Synthetic Grams S_k = gamma (lam S~_k + (1 - lam) S*) via stacked features."""
    rng = np.random.default_rng(seed)
    priv = [
        rng.standard_normal((6, private_rank)) @ rng.standard_normal((private_rank, D))
        if private_rank
        else rng.standard_normal((6, D))
        for _ in range(K)
    ]
    pub = rng.standard_normal((2, D))  # public rank 2 < d
    syn = [np.vstack([np.sqrt(gamma * lam) * x, np.sqrt(gamma * (1 - lam)) * pub]) for x in priv]
    return FeatureSystem(priv, pub, syn)


@pytest.mark.parametrize("lam", [1.0, 0.6, 0.2])
def test_lemma1_spectral_radius_below_one(lam):
    s = lemma1_system(13, lam, gamma=2.5, private_rank=3)
    # the stacked features give exactly these Grams, up to rounding (default tolerances)
    assert np.allclose(s.synthetic_grams, 2.5 * (lam * s.private_grams + (1 - lam) * s.public_gram))
    for alpha in (0.01, 0.3, 0.7, 0.99):
        for beta in np.linspace(0.01, lam, 4):
            rho = asymptotic(s, alpha, beta).spectral_radius
            assert rho < 1 - lim.RHO_TOL, (alpha, beta, rho)  # converges, by the engine's rule
            # d x d vs Kd x Kd eigenvalues: rounding only (observed < 1e-14)
            assert abs(rho - dense.asymptotic(s, alpha, beta).spectral_radius) < 1e-10


def test_correction6_beta_zero_with_public_not_spanning_has_rho_one():
    s = random_system(14, public_rank=2, synthetic=False)  # S ~ S~ (full rank), S* rank 2
    for alpha in (0.2, 0.5, 0.9):
        asym = asymptotic(s, alpha, 0.0)
        assert abs(asym.spectral_radius - 1) <= lim.RHO_TOL  # exactly 1 up to rounding
        assert not asym.converges and asym.growth.kind == "linear"
    # the reported increment is the trajectory's (alpha = 0.5 mixes fast): the other
    # eigenvalues of A are <= 0.33, so by t = 300 only rounding accumulated over 300 steps
    # remains (observed 2e-11)
    asym = asymptotic(s, 0.5, 0.0)
    tr = trajectory(s, 0.5, 0.0, 300)
    close(tr.mse[-1] - tr.mse[-2], asym.growth.per_generation, rtol=1e-8)
    close(tr.mean[-1], asym.mean, rtol=1e-8)
    assert np.all(asym.growth.per_generation > 0)
    # ... while a small beta > 0 converges (Lemma 1 needs beta > 0)
    assert asymptotic(s, 0.5, 0.05).converges


def test_beta_zero_with_full_rank_public_converges():
    s = random_system(15, synthetic=False)
    assert asymptotic(s, 0.5, 0.0).converges


def test_geometric_growth_with_uniform_weights():
    # Synthetic features unlike the real ones (Lemma 1's condition fails) and beta = 1 can
    # make rho(Q) > 1 even with weights shared by all entities: the MSE grows geometrically.
    s = random_system(**SYSTEMS[1])
    asym = asymptotic(s, 0.3, 1.0)
    assert asym.spectral_radius > 1.01 and not asym.converges and asym.mse is None  # rho = 1.0166
    assert asym.growth.kind == "geometric"
    close(asym.growth.per_generation, np.full(K, asym.spectral_radius**2), rtol=1e-12)  # = rho^2
    tr = trajectory(s, 0.3, 1.0, 300)
    # terms growing like rho^t beside the leading rho^(2t) make the ratio approach rho^2
    # like rho^-t = 7e-3 at t = 300 (observed 2e-4)
    close(tr.mse[-1] / tr.mse[-2], asym.growth.per_generation, rtol=1e-2)
    # an entity that never uses synthetic data does not grow
    mixed = asymptotic(s, [0.3, 0.3, 0.0], 1.0)
    if not mixed.converges:
        assert mixed.growth.per_generation[2] == 1.0


# ------------------------------------------------------------------ closed form and sharing
STATIONARY = [
    (0.5, 0.5),
    (0.3, 1.0),
    (0.7, 0.0),
    (0.0, 0.4),
    (1.0, 0.5),
    ([0.2, 0.5, 0.9], [0.1, 0.6, 1.0]),
    ([0.0, 0.5, 1.0], [1.0, 0.0, 0.3]),
]


@pytest.mark.parametrize("spec", SYSTEMS)
@pytest.mark.parametrize("alpha,beta", STATIONARY)
def test_stationary_closed_form_matches_recursion(spec, alpha, beta):
    """Stationary weights take the closed form in powers of A; it equals the recursion."""
    s = random_system(**spec)
    a, b = dyn.weights(s, np.broadcast_to(alpha, (9, K)), np.broadcast_to(beta, (9, K)), 8)
    fast, slow = dyn._stationary_trajectory(s, a, b), dyn._recursive_trajectory(s, a, b, None)
    for name in ("mean", "variance", "mse", "spectral_radius"):
        close(getattr(fast, name), getattr(slow, name), rtol=1e-12)  # observed 4e-14


@pytest.mark.parametrize("alpha,beta", [(0.5, 0.5), (1.0, 0.5), (0.0, 0.3), ([0.2, 0.5, 0.9], 0.6)])
@pytest.mark.parametrize("T", [0, 1, 6])
def test_trajectory_with_limit_is_the_two_calls(alpha, beta, T):
    s = random_system(2, private_rank=2)
    traj, limit = trajectory_with_limit(s, alpha, beta, T)
    a, b = np.broadcast_to(alpha, (T + 1, K)), np.broadcast_to(beta, (T + 1, K))
    alone, limit_alone = trajectory(s, a, b, T), asymptotic(s, alpha, beta)
    for name in ("mean", "variance", "mse", "spectral_radius"):  # the same computation
        np.testing.assert_array_equal(getattr(traj, name), getattr(alone, name))
    assert limit.converges == limit_alone.converges
    # the shared factorisation computes its products with generation 0's, two blocks wide:
    # another BLAS kernel, so the limit may differ in the last bits (observed 3e-15)
    close(limit.spectral_radius, limit_alone.spectral_radius, rtol=1e-13)
    for name in ("mse", "mean", "variance"):
        got, want = getattr(limit, name), getattr(limit_alone, name)
        assert (got is None) == (want is None)
        if got is not None:
            close(got, want, rtol=1e-13)
    close(traj.mspe, dense.trajectory(s, a, b, T).mspe)  # MSPE on request


def test_trajectory_with_limit_rejects_bad_input():
    s = random_system(1)
    with pytest.raises(InputError, match=r"^invalid alpha: 1.5 \(allowed: a number in \[0, 1\]"):
        trajectory_with_limit(s, 1.5, 0.5, 3)
    with pytest.raises(InputError, match=r"^invalid generations: -1 \(allowed: an integer >= 0\)$"):
        trajectory_with_limit(s, 0.5, 0.5, -1)
    with pytest.raises(InputError, match=r"^invalid beta: shape \(2,\)"):
        trajectory_with_limit(s, 0.5, [0.5, 0.5], 3)


def test_blocks_of_entities_give_the_same_numbers(monkeypatch):
    """Large systems are processed block by block of entities; small blocks change only the
    summation order of the K-sums."""
    s = random_system(3, private_rank=2)
    rows = [trajectory(s, 0.6, 0.4, 5), asymptotic(s, 0.6, 0.4), trajectory(s, 0.6, 0.4, 0)]
    monkeypatch.setattr(system, "BLOCK_ELEMENTS", D * D)  # one entity per block
    blocked = [trajectory(s, 0.6, 0.4, 5), asymptotic(s, 0.6, 0.4), trajectory(s, 0.6, 0.4, 0)]
    for got, want in zip(blocked, rows):
        close(got.mse, want.mse, rtol=1e-13)  # observed 0 (bit for bit)
    assert len(list(system.blocks(1, K, D))) == K
