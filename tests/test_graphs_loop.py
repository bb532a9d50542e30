"""Interaction graphs in the workflow loop: entity k splits its synthetic share alpha over the
pools with weights W[k, j] (crossgen.theory.graphs), draws only from pools it reads, pools
nobody reads are never written, the default (complete) gives the paper's numbers, and the
linear loop's errors match the theory with W."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from crossgen.backends.linear import feature_system
from crossgen.config import parse_config
from crossgen.data import derive_seed
from crossgen.errors import InputError
from crossgen.experiment import run_experiment
from crossgen.io import read_jsonl
from crossgen.theory.graphs import graph
from crossgen.workflow.loop import MIX, Workflow, interaction_of
from crossgen.workflow.run import build, run_workflow
from crossgen.workflow.store import RunStore
from helpers import tiny_linear

LINEAR = {"backend": "linear", "linear": {"d": 4, "rank": 2, "n_private": 30, "n_public": 20}}


def _config(K=3, **changes):
    settings = dict(generations=2, alpha=0.6, model=LINEAR, mixing={"paradigm": "accumulate-subsample", "n": 3000})
    settings.update(changes)
    return parse_config(tiny_linear(K=K, **settings))


def _workflow(cfg, root):
    data, backend = build(cfg)
    return Workflow(cfg, data, backend, RunStore(root))


def _sources(examples):
    counts: dict[str, int] = {}
    for e in examples:
        counts[e.source] = counts.get(e.source, 0) + 1
    return counts


@pytest.mark.parametrize("name", ["directed-ring", "ring", "star", "isolated"])
def test_each_update_draws_from_the_pools_it_reads_in_the_right_proportions(tmp_path, name):
    """The exact count of each source in every update's draw equals the count of a direct
    multinomial draw (same seed) with probabilities private (1-a)b, public (1-a)(1-b) and pool j
    a W[k, j]; pools with W[k, j] = 0 are never drawn."""
    K = 4
    cfg = _config(K=K, graph=name, generation={"num_prompts": 1000, "lean": False})
    root = run_experiment(cfg, tmp_path / name).root
    wf = _workflow(cfg, root)
    W = graph(name, K)
    a, b = 0.6, 0.5
    for t in (1, 2):
        pools = wf._pools(t)
        for k in range(K):
            drawn = _sources(wf._training_set(t, k, pools)[0])
            names = [f"real:p{k}", "real:pub"] + [f"synthetic:e{j}:{t - 1}" for j in range(K)]
            weights = np.array([(1 - a) * b, (1 - a) * (1 - b)] + [a * W[k, j] for j in range(K)])
            live = weights > 0
            rng = np.random.default_rng(derive_seed(cfg.seed, t, k, MIX))
            which = rng.choice(int(live.sum()), size=3000, p=weights[live] / weights[live].sum())
            expected = dict(zip(np.array(names)[live], np.bincount(which, minlength=int(live.sum())).tolist()))
            assert drawn == {s: n for s, n in expected.items() if n}
            for j in range(K):
                if W[k, j] == 0:
                    assert f"synthetic:e{j}:{t - 1}" not in drawn
                else:  # and the share is right (binomial: 5 standard deviations)
                    share, p = drawn[f"synthetic:e{j}:{t - 1}"] / 3000, a * W[k, j]
                    assert abs(share - p) < 5 * np.sqrt(p * (1 - p) / 3000)


def test_weighted_loss_gives_each_pool_alpha_times_w(tmp_path):
    """Under weighted-loss every example of pool j carries loss weight alpha W[k, j]; pools
    with weight 0 contribute no example."""
    W = [[0.2, 0.8, 0.0], [0.0, 1.0, 0.0], [0.5, 0.25, 0.25]]
    cfg = _config(graph=W, mixing={"paradigm": "weighted-loss", "n": 1})
    root = run_experiment(cfg, tmp_path / "w").root
    wf = _workflow(cfg, root)
    for k in range(3):
        examples, weights = wf._training_set(1, k, wf._pools(1))
        by_source: dict[str, set] = {}
        for e, w in zip(examples, weights):
            by_source.setdefault(e.source, set()).add(w)
        for j in range(3):
            source = f"synthetic:e{j}:0"
            if W[k][j] == 0:
                assert source not in by_source
            else:
                assert by_source[source] == {0.6 * W[k][j]}
                assert sum(e.source == source for e in examples) == 30  # the whole pool


def test_pools_nobody_reads_are_not_written(tmp_path):
    # e0 and e2 read e0's pool only; e1 reads its own but has alpha 0: only D_t,e0 is needed
    W = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    data = tiny_linear(K=3, generations=2, alpha=0.6, model=LINEAR, graph=W)
    data["mixing"] = {"paradigm": "accumulate-subsample", "n": 200}
    data["entities"][1]["alpha"] = 0.0
    store = run_experiment(parse_config(data), tmp_path / "run")
    for t in (1, 2):
        assert store.pool_path(t, "e0").is_file()
        assert not store.pool_path(t, "e1").exists() and not store.pool_path(t, "e2").exists()
        assert set(store.manifest()["generations"][str(t)]["pools"]) == {"e0"}
        counts = pd.read_csv(store.gen_dir(t) / "pool_counts.csv")
        assert counts.entity.tolist() == ["e0"]
    table = pd.read_csv(store.root / "pool_counts.csv")
    assert list(table.columns) == ["generation", "entity", "pool", "generated", "kept"]
    assert table.generation.tolist() == [1, 2]


def test_lean_pools_follow_the_graph(tmp_path):
    """Lean runs complete only drawn entries, all of pools that are read; the draw equals the
    whole-pool run's."""
    W = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.5, 0.5]]
    common = dict(graph=W, mixing={"paradigm": "accumulate-subsample", "n": 40})
    lean_cfg = _config(generation={"num_prompts": 1000, "lean": True}, **common)
    full_cfg = _config(generation={"num_prompts": 1000, "lean": False}, **common)
    lean = _workflow(lean_cfg, run_experiment(lean_cfg, tmp_path / "lean").root)
    full = _workflow(full_cfg, run_experiment(full_cfg, tmp_path / "full").root)
    for t in (1, 2):
        for k in range(3):
            a = lean._training_set(t, k, lean._pools(t))[0]
            b = full._training_set(t, k, full._pools(t))[0]
            assert [np.asarray(e.prompt).tobytes() for e in a] == [np.asarray(e.prompt).tobytes() for e in b]
            assert all(e.answer is not None for e in a)
        for name in ("e0", "e1", "e2"):
            assert len(read_jsonl(lean.store.pool_path(t, name))) < 30  # only drawn entries


def test_complete_graph_by_name_or_matrix_gives_the_default_numbers(tmp_path):
    default = run_experiment(_config(mixing={"paradigm": "weighted-loss", "n": 1}), tmp_path / "a").root
    K = 3
    as_matrix = _config(graph=[[1 / K] * K] * K, mixing={"paradigm": "weighted-loss", "n": 1})
    assert interaction_of(as_matrix) is None  # exactly 1/K everywhere: the complete graph
    matrix = run_experiment(as_matrix, tmp_path / "b").root
    pd.testing.assert_frame_equal(pd.read_csv(default / "losses.csv"), pd.read_csv(matrix / "losses.csv"))


def test_graph_from_a_matrix_file(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("1,0,0\n0.5,0.5,0\n0,0,1\n")
    cfg = _config(graph=str(path))
    np.testing.assert_array_equal(interaction_of(cfg), [[1, 0, 0], [0.5, 0.5, 0], [0, 0, 1]])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "rnig",
            "invalid graph: rnig (allowed: one of complete, ring, directed-ring, star, isolated, a 3 x 3 matrix "
            "(rows of numbers >= 0 summing to 1) or the path of an existing .npy, .csv or .txt file holding one)",
        ),
        ([[1, 0], [0, 1]], "invalid graph: shape (2, 2) (allowed: a 3 x 3 matrix (K = 3 entities))"),
        (
            [[0.5, 0.6, 0], [0, 1, 0], [0, 0, 1]],
            "invalid graph[0]: row sum 1.1 (allowed: non-negative weights summing to 1 in every row)",
        ),
        (
            [[1.5, -0.5, 0], [0, 1, 0], [0, 0, 1]],
            "invalid graph[0,1]: -0.5 (allowed: a number >= 0 (a share of alpha))",
        ),
    ],
)
def test_bad_graph_is_refused_before_anything_is_written(tmp_path, value, message):
    cfg = _config(graph=value)
    with pytest.raises(InputError) as info:
        run_workflow(cfg, tmp_path / "run")
    assert str(info.value) == message
    assert not (tmp_path / "run").exists()


def test_graph_is_not_part_of_the_generation0_key():
    assert _config(graph="isolated").generation0_key() == _config().generation0_key()


def test_a_worker_rebuilding_the_workflow_gets_the_same_w(tmp_path):
    cfg = _config(graph="star", generations=0)
    store = run_experiment(cfg, tmp_path / "run")
    rebuilt = _workflow(RunStore(store.root).config(), store.root)
    np.testing.assert_array_equal(rebuilt.W, graph("star", 3))


@pytest.mark.parametrize("name", ["directed-ring", "isolated"])
def test_loop_matches_theory_with_a_graph_in_weighted_loss_mode(tmp_path, monkeypatch, name):
    """Averaged over seeds, the loop's parameter error and test losses equal the theory's
    per-generation MSE and MSPE/n + sigma2 under W (z-scores, as in test_workflow_linear), and
    differ from the complete graph's theory (the check has power)."""
    from safetensors.numpy import load_file

    from crossgen.theory import trajectory

    monkeypatch.setattr(os, "fsync", lambda fd: None)  # speed only: durability is not under test here
    runs, K, T = 60, 3, 2
    small = {"backend": "linear", "linear": {"d": 4, "rank": 2, "n_private": 12, "n_public": 6, "sigma2": 1.0}}
    base = tiny_linear(K=K, generations=T, alpha=0.6, beta=0.4, model=small, graph=name)
    cfg0 = parse_config(base)
    system = feature_system(cfg0)
    theory = trajectory(system, cfg0.alpha, cfg0.beta, T, graph=name)
    complete = trajectory(system, cfg0.alpha, cfg0.beta, T)
    errors = np.zeros((runs, T + 1, K))
    losses = np.zeros((runs, T + 1, K, K))
    names = [f"e{k}" for k in range(K)]
    for seed in range(runs):
        store = run_workflow(parse_config({**base, "seed": seed}), tmp_path / f"s{seed}")
        frame = pd.read_csv(store.root / "losses.csv")
        for t in range(T + 1):
            for k, entity in enumerate(names):
                theta = load_file(str(store.model_dir(t, entity) / "model.safetensors"))["theta"]
                errors[seed, t, k] = np.sum((theta - system.theta) ** 2)
                rows = frame[(frame.generation == t) & (frame.model == entity)].set_index("task").loss
                losses[seed, t, k] = [rows[f"p{m}"] for m in range(K)]
    stderr = errors.std(0, ddof=1) / np.sqrt(runs)
    z_mse = (errors.mean(0) - theory.mse) / stderr
    assert np.abs(z_mse).max() < 4, z_mse
    n = np.array([len(x) for x in system.private])
    expected = theory.mspe / n[None, None, :] + system.sigma2
    z_loss = (losses.mean(0) - expected) / (losses.std(0, ddof=1) / np.sqrt(runs))
    assert np.abs(z_loss).max() < 4, z_loss
    # the check has power: the complete graph's theory fails it (sum of the 9 squared z-scores,
    # about 9 for the right theory, is far above 30: 66 for directed-ring, 180 for isolated, seeds 0-59)
    assert np.sum(z_mse**2) < 30
    assert np.sum(((errors.mean(0) - complete.mse) / stderr) ** 2) > 30


def test_manifest_records_pools_per_graph(tmp_path):
    cfg = _config(graph="isolated", generations=1)
    store = run_experiment(cfg, tmp_path / "run")
    manifest = json.loads((store.root / "manifest.json").read_text())
    assert set(manifest["generations"]["1"]["pools"]) == {"e0", "e1", "e2"}
