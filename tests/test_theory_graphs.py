"""Interaction graphs W and fresh real data: the exact theory against the dense reference,
closed forms and the Monte Carlo twin (which shares no algebra with it).

Tolerances. Exact against exact (block engine vs dense Kd x Kd reference, complete graph on
the block engine vs the structured engine): RTOL = 1e-10 of the largest entry, rounding only
(observed below 2e-14); a wrong block or a missing W is off by O(1). Monte Carlo: z-scores
|simulated - exact| / stderr with Z = 5; a test makes at most ~100 comparisons and
P(|N(0,1)| > 5) = 5.7e-7, so by Bonferroni a correct theory fails a test with probability
below 6e-5 (and the seeds are fixed: a passing test stays passing). Each statistical test
also checks its power: the same simulation must reject a theory run on a perturbed graph (or
on the other real-data regime) with a z-score above 2 Z.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from crossgen.errors import InputError
from crossgen.theory import (
    FeatureSystem,
    asymptotic,
    dense,
    efficiency_grid,
    homogenization,
    network,
    relative_efficiency,
    trajectory,
    trajectory_with_limit,
)
from crossgen.theory import graphs as gr
from crossgen.theory.dynamics import _network_trajectory, _recursive_trajectory
from crossgen.theory.recursion import weights
from crossgen.theory.simulate import simulate
from crossgen.theory.simulate_reference import simulate_loop

RTOL = 1e-10
Z = 5.0
NAMED = ("ring", "directed-ring", "star", "isolated")


def close(a, b, rtol=RTOL):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape
    scale = max(np.max(np.abs(b)), 1e-12)
    assert np.max(np.abs(a - b)) <= rtol * scale, np.max(np.abs(a - b)) / scale


def system(seed: int = 4, K: int = 4, d: int = 3, rank: int = 2) -> FeatureSystem:
    """Rank-deficient private features, own synthetic features of different sizes."""
    rng = np.random.default_rng(seed)
    return FeatureSystem(
        private=[rng.standard_normal((5, rank)) @ rng.standard_normal((rank, d)) for _ in range(K)],
        public=rng.standard_normal((4, d)),
        synthetic=[rng.standard_normal((4 + k, d)) for k in range(K)],
        sigma2=0.8,
        theta=rng.standard_normal(d),
    )


def random_graph(K: int, seed: int) -> np.ndarray:
    """A dense random row-stochastic W with some zeros (directed, no symmetry)."""
    rng = np.random.default_rng(seed)
    W = rng.uniform(size=(K, K)) * (rng.uniform(size=(K, K)) > 0.3)
    W[np.arange(K), (np.arange(K) + 1) % K] += 0.1
    return W / W.sum(axis=1, keepdims=True)


# ============================================================================ named graphs
def test_named_graphs():
    K = 5
    for name in gr.GRAPHS:
        W = gr.graph(name, K)
        assert W.shape == (K, K) and np.all(W >= 0)
        np.testing.assert_allclose(W.sum(axis=1), 1.0, rtol=0, atol=1e-15)
        assert np.all(np.diag(W) > 0)  # every entity reads its own pool
    assert np.all(gr.graph("complete", K) == 1 / K)
    assert np.array_equal(gr.graph("isolated", K), np.eye(K))
    ring = gr.graph("ring", K)
    assert np.array_equal(ring, ring.T) and np.all((ring > 0).sum(axis=1) == 3)
    assert ring[0, 4] == ring[0, 0] == ring[0, 1] == 1 / 3
    dr = gr.graph("directed-ring", K)
    assert dr[0, 0] == dr[0, 1] == 0.5 and dr[4, 0] == 0.5 and dr[1, 0] == 0  # 0 reads 1, 1 not 0
    star = gr.graph("star", K)
    assert np.all(star[0] == 1 / K) and star[3, 0] == star[3, 3] == 0.5 and star[3, 2] == 0
    assert np.array_equal(gr.graph("ring", 2), gr.graph("complete", 2))  # K = 2: the neighbours coincide
    assert np.array_equal(gr.graph("directed-ring", 1), [[1.0]]) and np.array_equal(gr.graph("ring", 1), [[1.0]])
    assert gr.interaction("ring", 2) is None  # the complete graph: the structured engine
    assert gr.interaction(np.full((3, 3), 1 / 3), 3) is None and gr.interaction("complete", 3) is None
    assert gr.describe(gr.interaction("star", 4)) == "star" and gr.describe(None) == "complete"


@pytest.mark.parametrize(
    "W,message",
    [
        ("wheel", "invalid graph: wheel (allowed: one of complete, ring, directed-ring, star, isolated"),
        (np.eye(2), "invalid graph: shape (2, 2) (allowed: a 3 x 3 matrix (K = 3 entities))"),
        (
            [[1, 0, 0], [0, 1.2, -0.2], [0, 0, 1]],
            "invalid graph[1,2]: -0.2 (allowed: a number >= 0 (a share of alpha))",
        ),
        ([[1, 0, 0], [0, 0.5, 0.4], [0, 0, 1]], "invalid graph[1]: row sum 0.9 (allowed: non-negative weights"),
        ([[1, 0, 0], [0, np.nan, 1], [0, 0, 1]], "invalid graph[1,1]: nan (allowed: a finite number >= 0)"),
        ([["a", 0, 0]] * 3, "invalid graph: "),
    ],
)
def test_invalid_graphs_are_named(W, message):
    s = system(K=3)
    with pytest.raises(InputError) as err:
        trajectory(s, 0.5, 0.5, 2, graph=W)
    assert str(err.value).startswith(message)
    with pytest.raises(InputError):
        simulate(s, 0.5, 0.5, 2, 2, graph=W)


def test_graph_files(tmp_path):
    W = random_graph(3, 0)
    np.save(tmp_path / "w.npy", W)
    np.savetxt(tmp_path / "w.csv", W, delimiter=",", fmt="%.17g")
    np.savetxt(tmp_path / "w.txt", W, fmt="%.17g")
    for name in ("w.npy", "w.csv", "w.txt"):
        assert np.array_equal(gr.load_graph_file(tmp_path / name, 3), W)
    (tmp_path / "bad.csv").write_text("1,0\n0,x\n")
    for path in (tmp_path / "bad.csv", tmp_path / "missing.npy"):
        with pytest.raises(InputError, match=re.escape("allowed: an existing .npy, .csv or .txt file holding a 3 x 3")):
            gr.load_graph_file(path, 3)
    with pytest.raises(InputError, match=r"invalid --graph-file: shape \(3, 3\) \(allowed: a 2 x 2 matrix"):
        gr.load_graph_file(tmp_path / "w.csv", 2, "--graph-file")


# ============================================================================ the complete graph is unchanged
@pytest.mark.parametrize("spec", ["complete", "matrix"])
def test_complete_graph_gives_the_same_numbers_bit_for_bit(spec):
    s = system()
    W = "complete" if spec == "complete" else np.full((4, 4), 0.25)
    for alpha, beta in ((0.5, 0.5), (1.0, 0.5), (np.tile([0.2, 0.6, 0.9, 0.4], (5, 1)), 0.7)):
        a, b = trajectory(s, alpha, beta, 4), trajectory(s, alpha, beta, 4, graph=W)
        assert np.array_equal(a.mse, b.mse) and np.array_equal(a.mean, b.mean) and b.graph is None
        ha, hb = homogenization(s, alpha, beta, 4), homogenization(s, alpha, beta, 4, graph=W)
        assert np.array_equal(ha.error_correlation, hb.error_correlation)
    la, lb = asymptotic(s, 0.5, 0.5), asymptotic(s, 0.5, 0.5, graph=W)
    assert np.array_equal(la.mse, lb.mse)
    ma, mb = simulate(s, 0.5, 0.5, 3, 70, seed=3), simulate(s, 0.5, 0.5, 3, 70, seed=3, graph=W)
    assert np.array_equal(ma.mse, mb.mse)


@pytest.mark.parametrize("fresh", [False, True])
def test_block_engine_on_the_complete_graph_matches_the_structured_one(fresh):
    s = system()
    W = np.full((4, 4), 0.25)
    alpha = np.random.default_rng(1).uniform(size=(5, 4))
    beta = np.random.default_rng(2).uniform(size=(5, 4))
    a, b = weights(s, alpha, beta, 4)
    net = _network_trajectory(s, W, a, b, None, fresh)
    ref = _recursive_trajectory(s, a, b, None, fresh)
    close(net.mse, ref.mse)
    close(net.mean, ref.mean)
    close(net.spectral_radius, ref.spectral_radius)
    close(net.mspe, ref.mspe)
    close(net.cov_blocks(3), ref.cov_blocks(3))
    k = np.full(4, 0.6)
    close(network.limit(s, W, k, k * 0.5, k, fresh_real=fresh).mse, asymptotic(s, 0.6, 0.3, fresh_real=fresh).mse)


# ============================================================================ against the dense reference
@pytest.mark.parametrize("name", NAMED + ("random",))
@pytest.mark.parametrize("fresh", [False, True])
def test_block_engine_matches_dense(name, fresh):
    s = system()
    W = random_graph(4, 7) if name == "random" else gr.graph(name, 4)
    alpha = np.array([0.0, 0.6, 0.3, 0.8, 0.5])  # per generation
    beta = np.random.default_rng(3).uniform(0.1, 1, size=(5, 4))  # per generation and entity
    ex, dn = (
        trajectory(s, alpha, beta, 4, graph=W, fresh_real=fresh),
        dense.trajectory(s, alpha, beta, 4, W=W, fresh_real=fresh),
    )
    close(ex.mse, dn.mse)
    close(ex.mean, dn.mean)
    close(ex.mspe, dn.mspe)
    close(ex.cov_blocks(2), dn.cov[2].reshape(4, 3, 4, 3).transpose(0, 2, 1, 3))
    close(ex.spectral_radius[1:], [np.max(np.abs(np.linalg.eigvals(q))) for q in dn.Q[1:]])
    lim, dl = (
        asymptotic(s, 0.6, 0.5, graph=W, fresh_real=fresh, mspe=True),
        dense.asymptotic(s, 0.6, 0.5, W=W, fresh_real=fresh),
    )
    assert lim.converges
    close(lim.mse, dl.mse)
    close(lim.mspe, dl.mspe)
    close(lim.mean, dl.mean)
    assert abs(lim.spectral_radius - dl.spectral_radius) < 1e-12
    hom = homogenization(s, alpha, beta, 4, graph=W, fresh_real=fresh)
    cross = np.einsum("tkala->tkl", dn.cov.reshape(5, 4, 3, 4, 3))  # tr Cov(theta_tk, theta_tl)
    e = dn.mean - s.theta
    second = cross + np.einsum("tka,tla->tkl", e, e)
    close(
        hom.error_correlation,
        second / np.sqrt(np.einsum("tkk->tk", second)[:, :, None] * np.einsum("tkk->tk", second)[:, None, :]),
    )


def test_synthetic_schedule_on_graphs_matches_dense():
    s = system(K=3)
    rng = np.random.default_rng(8)
    schedule = [[rng.standard_normal((3 + k + t, 3)) for k in range(3)] for t in range(3)]
    for W in (None, gr.graph("star", 3), random_graph(3, 1)):
        for fresh in (False, True):
            ex = trajectory(s, 0.6, 0.4, 3, schedule, graph=W, fresh_real=fresh)
            dn = dense.trajectory(s, 0.6, 0.4, 3, schedule, W=W, fresh_real=fresh)
            close(ex.mse, dn.mse)
            close(ex.mspe, dn.mspe)


def test_trajectory_converges_to_the_limit_on_graphs():
    s = system()
    for g in NAMED:
        for fresh in (False, True):
            traj, lim = trajectory_with_limit(s, 0.6, 0.5, 300, graph=g, fresh_real=fresh)
            assert lim.spectral_radius < 0.95  # so rho^300 < 2e-7: the trajectory has reached the limit
            close(traj.mse[-1], lim.mse, rtol=1e-9)
            close(lim.mse, asymptotic(s, 0.6, 0.5, graph=g, fresh_real=fresh).mse)


def test_relative_efficiency_and_grid_on_a_graph():
    s = system()
    grid = efficiency_grid(s, [0.2, 0.6], [0.5, 0.9], graph="star")
    close(grid[1, 0], relative_efficiency(s, 0.6, 0.5, graph="star"))
    close(
        efficiency_grid(s, [0.2, 0.6], [0.5], fresh_real=True)[1, 0], relative_efficiency(s, 0.6, 0.5, fresh_real=True)
    )


# ============================================================================ W = I: K single-model loops
def test_isolated_graph_is_k_single_model_loops():
    s = system()
    alpha, beta = np.array([0.0, 0.6, 0.3, 0.9]), np.array([0.7, 0.5, 0.2, 0.8])
    for fresh in (False, True):
        net = trajectory(s, alpha, beta, 3, graph="isolated", fresh_real=fresh)
        lim = asymptotic(s, 0.6, 0.5, graph="isolated", fresh_real=fresh)
        for k in range(s.K):
            one = FeatureSystem([s.private[k]], s.public, [s.synthetic[k]], sigma2=s.sigma2, theta=s.theta)
            close(net.mse[:, k], trajectory(one, alpha, beta, 3, fresh_real=fresh).mse[:, 0])
            close(lim.mse[k], asymptotic(one, 0.6, 0.5, fresh_real=fresh).mse[0])


def test_isolated_closed_forms():
    """beta = 1, synthetic = private features, full rank: G = S~, so for one entity
    theta_t = (1-a) b_t + a theta_{t-1} + a X+ w_t. Fixed data (b_t = b): MSE_t = c (1 +
    a^2 (1 - a^(2t)) / (1 - a^2)), c = sigma^2 tr(S~^-1); fresh data: v_t = ((1-a)^2 + a^2) c +
    a^2 v_{t-1}, limit c (1 - 2a + 2a^2) / (1 - a^2); a = 1: MSE grows by c per generation."""
    rng = np.random.default_rng(0)
    s = FeatureSystem([rng.standard_normal((6, 3)) for _ in range(3)], rng.standard_normal((4, 3)), sigma2=0.6)
    c = s.sigma2 * np.array([np.trace(np.linalg.inv(S)) for S in s.private_grams])
    a, T = 0.6, 6
    t = np.arange(T + 1)[:, None]
    fixed = trajectory(s, a, 1.0, T, graph="isolated").mse
    close(fixed, c * (1 + a**2 * (1 - a ** (2 * t)) / (1 - a**2)))
    close(asymptotic(s, a, 1.0, graph="isolated").mse, c / (1 - a**2))
    fresh = trajectory(s, a, 1.0, T, graph="isolated", fresh_real=True).mse
    v = [c]
    for _ in range(T):
        v.append(((1 - a) ** 2 + a**2) * c + a**2 * v[-1])
    close(fresh, np.array(v))
    close(asymptotic(s, a, 1.0, graph="isolated", fresh_real=True).mse, c * (1 - 2 * a + 2 * a**2) / (1 - a**2))
    growth = asymptotic(s, 1.0, 0.5, graph="isolated").growth
    assert growth is not None and growth.kind == "linear"
    close(growth.per_generation, c)  # sigma^2 tr(S_k^+): each entity alone
    close(np.diff(trajectory(s, 1.0, 0.5, 3, graph="isolated").mse, axis=0), np.tile(c, (3, 1)))


def test_growth_on_graphs():
    s = system(K=4, rank=2)
    # beta = 1 and rank-2 private data: an isolated entity has nothing in the other direction
    lim = asymptotic(s, 0.3, 1.0, graph="isolated")
    assert not lim.converges and lim.growth.kind == "linear" and lim.mean is not None
    long = trajectory(s, 0.3, 1.0, 2000, graph="isolated")
    close(long.mse[-1] - long.mse[-2], lim.growth.per_generation, rtol=1e-6)
    close(long.mean[-1], lim.mean, rtol=1e-9)
    assert asymptotic(s, 0.3, 1.0, graph="ring").converges  # the neighbours' private data cover it
    # rho > 1: entities 0, 1 read each other (geometric), entity 2 reads only itself (beta 0.5: converges)
    rng = np.random.default_rng(4)
    d = 4
    s3 = FeatureSystem(
        [rng.standard_normal((6, 2)) @ rng.standard_normal((2, d)) for _ in range(3)],
        rng.standard_normal((5, d)),
        [rng.standard_normal((7, d)) for _ in range(3)],
    )
    W = np.array([[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0, 1.0]])
    a, b = np.full(3, 0.3), np.array([1.0, 1.0, 0.5])
    lim = asymptotic(s3, a, b, graph=W)
    assert lim.growth.kind == "geometric"
    ratio = trajectory(s3, np.tile(a, (201, 1)), np.tile(b, (201, 1)), 200, graph=W).mse
    close(lim.growth.per_generation, ratio[-1] / ratio[-2], rtol=1e-5)  # the ratio approaches rho^2 slowly
    assert lim.growth.per_generation[2] == 1.0 and lim.growth.per_generation[0] > 1.05


# ============================================================================ Monte Carlo
def z_max(sim_mse, sim_se, exact) -> float:
    z = np.abs(sim_mse - exact) / sim_se
    return float(np.max(z[np.isfinite(z)]))


@pytest.mark.parametrize("name", NAMED + ("random",))
@pytest.mark.parametrize("fresh", [False, True])
def test_monte_carlo_matches_theory_on_graphs(name, fresh):
    s = system()
    W = random_graph(4, 7) if name == "random" else gr.graph(name, 4)
    alpha, beta = np.array([0.0, 0.6, 0.8, 0.4]), 0.5
    sim = simulate(s, alpha, beta, 3, 8000, seed=11, graph=W, fresh_real=fresh)
    exact = trajectory(s, alpha, beta, 3, graph=W, fresh_real=fresh)
    assert z_max(sim.mse, sim.mse_stderr, exact.mse) < Z
    assert z_max(sim.mean, sim.mean_stderr, exact.mean) < Z
    # power: a theory on a perturbed W, or in the other real-data regime, is rejected
    wrong = 0.5 * W + 0.5 * (np.eye(4) if name != "isolated" else np.full((4, 4), 0.25))
    assert z_max(sim.mse, sim.mse_stderr, trajectory(s, alpha, beta, 3, graph=wrong, fresh_real=fresh).mse) > 2 * Z
    other = trajectory(s, alpha, beta, 3, graph=W, fresh_real=not fresh).mse
    assert z_max(sim.mse, sim.mse_stderr, other) > 2 * Z


def test_monte_carlo_directed_ring_orientation_and_cross_moments():
    """The directed ring read the wrong way round (k reads k-1) is rejected; the entities'
    error cross moments E[e_k . e_l] (homogenization) match."""
    s = system()
    W = gr.graph("directed-ring", 4)
    sim = simulate(s, 0.7, 0.4, 3, 8000, seed=5, graph=W, keep_estimates=True)
    exact = trajectory(s, 0.7, 0.4, 3, graph=W)
    assert z_max(sim.mse, sim.mse_stderr, exact.mse) < Z
    assert z_max(sim.mse, sim.mse_stderr, trajectory(s, 0.7, 0.4, 3, graph=W.T).mse) > 2 * Z
    err = sim.estimates - s.theta
    cross = np.einsum("rtki,rtli->rtkl", err, err)
    mc, se = cross.mean(axis=0), cross.std(axis=0, ddof=1) / np.sqrt(err.shape[0])
    hom = homogenization(s, 0.7, 0.4, 3, graph=W)
    expect = hom.error_correlation * np.sqrt(exact.mse[:, :, None] * exact.mse[:, None, :])
    assert z_max(mc, se, expect) < Z


def test_monte_carlo_fresh_real_on_the_complete_graph():
    s = system()
    sim = simulate(s, 0.7, 0.6, 4, 8000, seed=2, fresh_real=True)
    exact = trajectory(s, 0.7, 0.6, 4, fresh_real=True)
    assert z_max(sim.mse, sim.mse_stderr, exact.mse) < Z
    assert z_max(sim.mse, sim.mse_stderr, trajectory(s, 0.7, 0.6, 4).mse) > 2 * Z
    long = simulate(s, 0.7, 0.6, 40, 4000, seed=3, fresh_real=True)
    assert z_max(long.mse[-1], long.mse_stderr[-1], asymptotic(s, 0.7, 0.6, fresh_real=True).mse) < Z


def test_batched_twin_equals_its_literal_loop_on_graphs():
    s = system()
    for g, fresh in (("star", False), ("directed-ring", True), (random_graph(4, 2), False)):
        batched = simulate(s, 0.5, 0.4, 3, 70, seed=9, graph=g, fresh_real=fresh, keep_estimates=True).estimates
        np.testing.assert_allclose(
            batched, simulate_loop(s, 0.5, 0.4, 3, 70, seed=9, graph=g, fresh_real=fresh), atol=1e-11
        )


# ============================================================================ fresh real data
def test_fresh_real_closed_form_equals_recursion_and_dense():
    s = system()
    for alpha, beta in ((0.5, 0.5), (0.9, 0.2), (0.3, 1.0)):
        closed = trajectory(s, alpha, beta, 6, fresh_real=True)
        a, b = weights(s, alpha, beta, 6)
        close(closed.mse, _recursive_trajectory(s, a, b, None, True).mse)
        close(closed.mse, dense.trajectory(s, alpha, beta, 6, fresh_real=True).mse)
        lim = asymptotic(s, alpha, beta, fresh_real=True, mspe=True)
        dl = dense.asymptotic(s, alpha, beta, fresh_real=True)
        close(lim.mse, dl.mse)
        close(lim.mspe, dl.mspe)
        fixed = asymptotic(s, alpha, beta)
        close(lim.mean, fixed.mean)  # the mean does not depend on the regime


def test_fresh_real_divergence_grows_linearly():
    s = system()
    for g in (None, "star"):
        lim = asymptotic(s, 1.0, 0.5, graph=g, fresh_real=True)
        long = trajectory(s, 1.0, 0.5, 400, graph=g, fresh_real=True)
        assert lim.growth.kind == "linear"
        close(long.mse[-1] - long.mse[-2], lim.growth.per_generation, rtol=1e-6)


# ============================================================================ the figure
def test_graphs_figure_and_finding(tmp_path):
    import pandas as pd

    from crossgen.theory.figures import GRAPH_COLUMNS, graphs_figure, graphs_finding

    paths = graphs_figure(tmp_path, seed=1, replicates=64, generations=3)
    assert set(paths) == {"png", "csv"} and all(p.is_file() for p in paths.values())
    frame = pd.read_csv(paths["csv"])
    assert list(frame.columns) == GRAPH_COLUMNS
    assert set(frame.graph) == {"complete", "ring", "star", "isolated"}
    th = frame[(frame.source == "theory") & (frame.quantity == "asymptotic_mse")]
    assert len(th) == 4 * 8
    text = graphs_finding(frame)
    limit = th.groupby("graph").value.mean()
    assert f"the {limit.idxmin()} graph has the lowest asymptotic MSE" in text
    assert f"the {limit.idxmax()} graph the highest" in text
    assert "in the star the hub's limit" in text
    json.dumps(text)  # plain text
