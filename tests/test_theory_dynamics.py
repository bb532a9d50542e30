"""Structured O(K d^3) engine vs the literal dense Kd x Kd reference, and the paper's results."""
import numpy as np
import pytest

from crossgen.theory import FeatureSystem, asymptotic, dense, trajectory
from crossgen.theory import dynamics as dyn

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


def close(a, b, rtol=1e-8):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(np.max(np.abs(b)), 1e-12)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= rtol * scale, np.max(np.abs(a - b)) / scale


T = 4
rng_w = np.random.default_rng(99)
WEIGHTS = [
    (0.5, 0.5),
    (0.3, 1.0),                                            # beta = 1: private + synthetic only
    (0.7, 0.0),                                            # beta = 0: public + synthetic only
    (np.tile([0.2, 0.5, 0.9], (T + 1, 1)), np.tile([0.1, 0.6, 1.0], (T + 1, 1))),  # per entity
    ([0.0, 0.9, 0.1, 0.5, 0.6], [0.2, 0.8, 0.5, 0.0, 1.0]),                      # per generation
    (rng_w.uniform(size=(T + 1, K)), rng_w.uniform(size=(T + 1, K))),           # both
]
SYSTEMS = [
    dict(seed=1),
    dict(seed=2, private_rank=2),                          # rank-deficient private features
    dict(seed=3, private_rank=1, synthetic=False),         # synthetic = private, rank 1
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
    close(got.spectral_radius[1:],
          [np.max(np.abs(np.linalg.eigvals(Q))) for Q in ref.Q[1:]])


def test_synthetic_schedule_matches_dense():
    s = random_system(4, private_rank=2)
    rng = np.random.default_rng(5)
    sched = [[rng.standard_normal((int(rng.integers(1, 8)), D)) for _ in range(K)]
             for _ in range(T)]
    alpha, beta = rng.uniform(size=(T + 1, K)), rng.uniform(size=(T + 1, K))
    got = trajectory(s, alpha, beta, T, synthetic_schedule=sched)
    ref = dense.trajectory(s, alpha, beta, T, synthetic_schedule=sched)
    for name in ("mean", "variance", "mse", "mspe"):
        close(getattr(got, name), getattr(ref, name))
    close(got.cov_blocks(2).transpose(0, 2, 1, 3).reshape(K * D, K * D), ref.cov[2])
    # the schedule matters: without it the answer differs
    assert not np.allclose(trajectory(s, alpha, beta, T).mse, got.mse)


@pytest.mark.parametrize("spec", SYSTEMS)
@pytest.mark.parametrize("alpha,beta", [(0.5, 0.5), (0.3, 1.0), (0.7, 0.0),
                                        ([0.2, 0.5, 0.9], [0.1, 0.6, 1.0]), (0.95, 0.3)])
def test_asymptotic_matches_dense(spec, alpha, beta):
    s = random_system(**spec)
    got = asymptotic(s, alpha, beta, mspe=True)
    ref = dense.asymptotic(s, alpha, beta)
    assert abs(got.spectral_radius - ref.spectral_radius) < 1e-10
    if ref.spectral_radius > 1:                  # see test_geometric_growth_with_uniform_weights
        assert got.growth.kind == "geometric" and got.mse is None
        return
    assert got.converges and got.growth is None
    for name in ("mean", "bias2", "variance", "mse", "mspe"):
        close(getattr(got, name), getattr(ref, name))


def test_asymptotic_is_the_limit_of_the_trajectory():
    s = random_system(6, private_rank=2)
    asym = asymptotic(s, 0.6, 0.4)
    tr = trajectory(s, 0.6, 0.4, 200)
    close(tr.mse[-1], asym.mse, rtol=1e-9)
    close(tr.mean[-1], asym.mean, rtol=1e-9)


def test_eq2_lyapunov_and_structured_covariance_agree():
    s = random_system(7, private_rank=2)
    a, b = np.array([0.4, 0.6, 0.5]), np.array([0.3, 0.5, 0.9])
    c_eq2 = dense.eq2_covariance(s, a, b)
    c_lyap = dense.lyapunov_covariance(s, a, b)
    close(c_eq2, c_lyap, rtol=1e-10)
    st = dyn._stationary_setup(s, a[None], b[None])
    X = dyn.solve_stein(st.A, s.synthetic_grams.sum(axis=0), st.lam, st.V)[0]
    A = st.A[0]
    Sig = s.synthetic_grams.sum(axis=0)
    assert np.linalg.norm(X - A @ X @ A.T - Sig) <= 1e-12 * np.linalg.norm(X)
    U = (st.u[0][:, None, None] * st.H[0]).reshape(K * D, D)
    close(s.sigma2 * U @ X @ U.T, c_lyap, rtol=1e-10)
    # the paper's eq. (2) without the transpose fix (vec(Q S^+ Q)) is different
    _, _, Q, S = dense.matrices(s, a, b)
    wrong = np.linalg.solve(np.eye((K * D) ** 2) - np.kron(Q, Q),
                            (s.sigma2 * Q @ np.linalg.pinv(S) @ Q).reshape(-1, order="F"))
    assert not np.allclose(wrong.reshape(K * D, K * D, order="F"), c_lyap)


def test_stein_fallback_on_defective_matrix():
    A = np.array([[[0.5, 1.0], [0.0, 0.5]], [[0.2, 0.0], [0.0, -0.3]]])   # Jordan block first
    Q = np.array([[1.0, 0.2], [0.2, 2.0]])
    X = dyn.solve_stein(A, Q)
    for i in range(2):
        assert np.allclose(X[i], A[i] @ X[i] @ A[i].T + Q, atol=1e-12)


def test_theorem2_closed_form_mean():
    # G_0 rank-deficient (beta_0 = 1, private rank 2): biased start; G_1.. full rank.
    s = random_system(8, private_rank=2)
    beta = [1.0, 0.5, 0.2, 0.7, 0.4]
    alpha = [0.0, 0.5, 0.8, 0.3, 0.6]
    closed = dense.theorem2_mean(s, alpha, beta, T)
    got = trajectory(s, alpha, beta, T)
    close(got.mean, closed, rtol=1e-9)
    assert got.bias2[0].max() > 1e-3                     # the start really is biased


def test_general_mean_differs_from_theorem2_when_g_rank_deficient():
    # correction 4: with rank-deficient G_t the closed form is wrong, M_t E[b] is right.
    rng = np.random.default_rng(9)
    mask = np.array([1.0, 1.0, 1.0, 0.0])                  # nobody sees coordinate 4
    s = FeatureSystem([rng.standard_normal((3, D)) * mask for _ in range(K)],
                      rng.standard_normal((2, D)) * mask, theta=rng.standard_normal(D))
    got = trajectory(s, 0.5, 0.9, 3)
    ref = dense.trajectory(s, 0.5, 0.9, 3)
    close(got.mean, ref.mean)
    assert not np.allclose(got.mean, dense.theorem2_mean(s, 0.5, 0.9, 3), atol=1e-6)


def test_alpha_one_grows_linearly_by_trace_of_sbar_pinv_over_k():
    s = random_system(10, private_rank=2)
    inc = s.sigma2 * np.trace(np.linalg.pinv(s.synthetic_grams.mean(axis=0))) / K
    tr = trajectory(s, 1.0, 0.5, 8)
    steps = np.diff(tr.mse, axis=0)[1:]                  # MSE_{t+1} - MSE_t for t >= 1
    close(steps, np.full_like(steps, inc), rtol=1e-10)
    asym = asymptotic(s, 1.0, 0.5)
    assert not asym.converges and asym.mse is None and asym.variance is None
    assert abs(asym.spectral_radius - 1) < 1e-9
    assert asym.growth.kind == "linear"
    close(asym.growth.per_generation, np.full(K, inc), rtol=1e-10)
    close(asym.mean, tr.mean[-1], rtol=1e-9)             # the mean stays put


def test_alpha_zero_trajectory_is_constant():
    s = random_system(11, private_rank=2)
    tr = trajectory(s, 0.0, 0.3, 5)
    for name in ("mean", "variance", "mse", "mspe"):
        v = getattr(tr, name)
        close(v, np.broadcast_to(v[0], v.shape), rtol=1e-12)
    assert np.all(tr.spectral_radius == 0)


def test_alpha_at_generation_zero_is_ignored():
    s = random_system(12)
    a = trajectory(s, [0.9, 0.5, 0.5], 0.4, 2)
    b = trajectory(s, [0.0, 0.5, 0.5], 0.4, 2)
    close(a.mse, b.mse, rtol=0)
    assert a.alpha[0].tolist() == [0.0] * K


def lemma1_system(seed, lam, gamma, private_rank=None):
    """Synthetic Grams S_k = gamma (lam S~_k + (1 - lam) S*) via stacked features."""
    rng = np.random.default_rng(seed)
    priv = [rng.standard_normal((6, private_rank)) @ rng.standard_normal((private_rank, D))
            if private_rank else rng.standard_normal((6, D)) for _ in range(K)]
    pub = rng.standard_normal((2, D))                    # public rank 2 < d
    syn = [np.vstack([np.sqrt(gamma * lam) * x, np.sqrt(gamma * (1 - lam)) * pub]) for x in priv]
    return FeatureSystem(priv, pub, syn)


@pytest.mark.parametrize("lam", [1.0, 0.6, 0.2])
def test_lemma1_spectral_radius_below_one(lam):
    s = lemma1_system(13, lam, gamma=2.5, private_rank=3)
    assert np.allclose(s.synthetic_grams, 2.5 * (lam * s.private_grams + (1 - lam) * s.public_gram))
    for alpha in (0.01, 0.3, 0.7, 0.99):
        for beta in np.linspace(0.01, lam, 4):
            rho = asymptotic(s, alpha, beta).spectral_radius
            assert rho < 1 - 1e-9, (alpha, beta, rho)
            assert abs(rho - dense.asymptotic(s, alpha, beta).spectral_radius) < 1e-10


def test_correction6_beta_zero_with_public_not_spanning_has_rho_one():
    s = random_system(14, public_rank=2, synthetic=False)   # S ~ S~ (full rank), S* rank 2
    for alpha in (0.2, 0.5, 0.9):
        asym = asymptotic(s, alpha, 0.0)
        assert abs(asym.spectral_radius - 1) <= 1e-9
        assert not asym.converges and asym.growth.kind == "linear"
    # the reported increment is the trajectory's (alpha = 0.5 mixes fast)
    asym = asymptotic(s, 0.5, 0.0)
    tr = trajectory(s, 0.5, 0.0, 300)
    close(tr.mse[-1] - tr.mse[-2], asym.growth.per_generation, rtol=1e-7)
    close(tr.mean[-1], asym.mean, rtol=1e-7)
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
    assert asym.spectral_radius > 1.01 and not asym.converges and asym.mse is None
    assert asym.growth.kind == "geometric"
    close(asym.growth.per_generation, np.full(K, asym.spectral_radius ** 2), rtol=1e-12)
    tr = trajectory(s, 0.3, 1.0, 300)
    close(tr.mse[-1] / tr.mse[-2], asym.growth.per_generation, rtol=1e-3)
    # an entity that never uses synthetic data does not grow
    mixed = asymptotic(s, [0.3, 0.3, 0.0], 1.0)
    if not mixed.converges:
        assert mixed.growth.per_generation[2] == 1.0
