"""The exact theory against a Monte Carlo of the workflow itself (independent of both engines).

The simulation follows the paper's description (section 5 / appendix E) literally: draw the
initial responses, fit weighted min-norm least squares, publish synthetic responses from each
entity's previous estimate, refit on the weighted mix. A wrong sign, missing transpose or
wrong public block in the formulas would show up here even if dense and structured agreed.
"""

import numpy as np

from crossgen.theory import PINV_RTOL, FeatureSystem, homogenization, trajectory

R = 20000
Z = 5  # z-score bound: 52 comparisons, P(|N(0,1)| > 5) = 5.7e-7, false alarm < 3e-5
SLACK = 1e-12  # deterministic quantities (stderr 0) may still differ by rounding


def simulate(system, alpha, beta, T, rng):
    K, th, sd = system.K, system.theta, np.sqrt(system.sigma2)
    noisy = lambda X: X @ th + sd * rng.standard_normal((R, X.shape[0]))
    yt = [noisy(X) for X in system.private]
    ys = noisy(system.public)
    out = []
    est = None
    for t in range(T + 1):
        a = np.zeros(K) if t == 0 else alpha[t]
        b = beta[t]
        pool = 0.0
        if t > 0:
            ysyn = [est[:, j] @ X.T + sd * rng.standard_normal((R, X.shape[0])) for j, X in enumerate(system.synthetic)]
            pool = sum(y @ X for y, X in zip(ysyn, system.synthetic))  # (R, d)
        Sbar = system.synthetic_grams.mean(axis=0)
        new = np.empty((R, K, system.d))
        for k in range(K):
            ab, ac = (1 - a[k]) * b[k], (1 - a[k]) * (1 - b[k])
            G = ab * system.private_grams[k] + ac * system.public_gram + a[k] * Sbar
            rhs = ab * yt[k] @ system.private[k] + ac * ys @ system.public + a[k] / K * pool
            new[:, k] = rhs @ np.linalg.pinv(G, rcond=PINV_RTOL, hermitian=True)  # the estimator's cut-off
        est = new
        out.append(est.copy())
    return np.array(out)  # (T+1, R, K, d)


def test_monte_carlo_matches_exact_mse_mspe_and_cross_moments():
    rng = np.random.default_rng(0)
    d, K, T = 3, 2, 3
    private = [rng.standard_normal((4, 2)) @ rng.standard_normal((2, d)) for _ in range(K)]
    public = rng.standard_normal((3, d))
    synthetic = [rng.standard_normal((5, d)) for _ in range(K)]
    s = FeatureSystem(private, public, synthetic, sigma2=0.8, theta=np.array([1.0, -0.5, 0.3]))
    alpha = np.array([[0, 0], [0.6, 0.3], [0.5, 0.8], [0.7, 0.4]])
    beta = np.array([[0.8, 0.2], [0.5, 0.6], [0.3, 0.9], [1.0, 0.0]])
    sims = simulate(s, alpha, beta, T, rng)
    err = sims - s.theta
    exact = trajectory(s, alpha, beta, T)
    hom = homogenization(s, alpha, beta, T)

    sq = np.sum(err**2, axis=-1)  # (T+1, R, K)
    mc, se = sq.mean(axis=1), sq.std(axis=1) / np.sqrt(R)
    assert np.all(np.abs(mc - exact.mse) < Z * se + SLACK), (mc, exact.mse)
    assert np.all(np.abs(sims.mean(axis=1) - exact.mean) < Z * sims.std(axis=1) / np.sqrt(R) + SLACK)

    # MSPE of entity k on entity m's private features
    for m in range(K):
        q = np.einsum("trki,ij,trkj->trk", err, s.private_grams[m], err)
        mc, se = q.mean(axis=1), q.std(axis=1) / np.sqrt(R)
        assert np.all(np.abs(mc - exact.mspe[:, :, m]) < Z * se + SLACK)

    # cross moment E[e_1 . e_2] behind the error correlation
    cross = np.einsum("tri,tri->tr", err[:, :, 0], err[:, :, 1])
    mc, se = cross.mean(axis=1), cross.std(axis=1) / np.sqrt(R)
    exact_cross = hom.error_correlation[:, 0, 1] * np.sqrt(exact.mse[:, 0] * exact.mse[:, 1])
    assert np.all(np.abs(mc - exact_cross) < Z * se + SLACK)
