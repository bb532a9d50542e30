"""The workflow loop on the linear backend: run directory, resume after kill -9, and the
loop's per-generation errors against the exact theory (weighted-loss mode)."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from crossgen.backends.linear import feature_system
from crossgen.config import load_config, parse_config
from crossgen.errors import InputError
from crossgen.experiment import run_experiment
from crossgen.io import read_jsonl
from crossgen.presets import resolve_config
from crossgen.workflow.store import RunStore
from helpers import crossgen_here, tiny_linear

SMALL = tiny_linear(
    name="small-linear",
    alpha=0.6,
    beta=0.4,
    model={"backend": "linear", "linear": {"d": 4, "rank": 2, "n_private": 12, "n_public": 6, "sigma2": 1.0}},
)


def small(**changes):
    data = json.loads(json.dumps(SMALL))
    data.update(changes)
    return parse_config(data)


def test_run_directory_contract(tmp_path):
    cfg = small()
    store = run_experiment(cfg, tmp_path / "run")
    root = store.root
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert set(manifest["generations"]) == {"0", "1", "2", "3"}
    assert (root / "config.yaml").is_file() and (root / "initial" / "model.safetensors").is_file()
    for t in range(4):
        for name in ("e0", "e1"):
            assert (store.model_dir(t, name) / "model.safetensors").is_file()
    pool = read_jsonl(store.pool_path(2, "e1"))
    assert len(pool) == 12  # every private prompt once (num_prompts >= n_private)
    assert {row["source"] for row in pool} == {"synthetic:e1:1"}
    losses = pd.read_csv(root / "losses.csv")
    assert list(losses.columns) == ["generation", "model", "task", "loss", "bits_per_byte"]
    assert losses.bits_per_byte.isna().all()  # no text: no bytes (written empty)
    assert len(losses) == 4 * 2 * 3  # generations x models x tasks (two private + public)
    assert not list(root.rglob(".*.tmp-*"))  # no temporary leftovers


def test_existing_directory_without_resume_is_refused(tmp_path):
    run_experiment(small(generations=0), tmp_path / "run")
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    with pytest.raises(InputError, match=r"^invalid --out: .* \(allowed: a new or empty directory"):
        run_experiment(small(generations=0), tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before


def test_resume_continues_and_skips_complete_generations(tmp_path):
    full = run_experiment(small(), tmp_path / "full")
    partial = run_experiment(small(generations=1), tmp_path / "part")
    # Same config as `full` but stopped after generation 1: make it look like a run of T=3
    # interrupted there, then resume; the numbers must equal the uninterrupted run's.
    manifest = partial.manifest()
    manifest["total_generations"] = 4
    (partial.root / "manifest.json").write_text(json.dumps(manifest))
    (partial.root / "config.yaml").write_text((full.root / "config.yaml").read_text())
    resumed = run_experiment(small(), tmp_path / "part", resume=True)
    pd.testing.assert_frame_equal(pd.read_csv(resumed.root / "losses.csv"), pd.read_csv(full.root / "losses.csv"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """SMALL run without interruption, in this process: (config path, run directory)."""
    import yaml

    root = tmp_path_factory.mktemp("uninterrupted")
    config = root / "cfg.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    assert crossgen_here("run", "--no-report", str(config), "--out", str(root / "ref")) == 0
    return config, root / "ref"


@pytest.mark.parametrize(
    "point", ["initial", "gen0.train.e1", "gen1.pool.e0", "gen2.train.e0", "gen2.losses", "gen3.complete"]
)
def test_kill_minus_9_then_resume_gives_identical_numbers(tmp_path, uninterrupted, point):
    """SIGKILL the CLI at a named point, resume (in this process), compare with an
    uninterrupted run."""
    config, ref = uninterrupted
    cmd = [sys.executable, "-m", "crossgen", "run", str(config), "--out"]
    env = {**os.environ, "CROSSGEN_KILL_AT": point}
    killed = subprocess.run([*cmd, str(tmp_path / "run")], env=env, capture_output=True, text=True)
    assert killed.returncode == -9
    assert crossgen_here("run", "--no-report", str(config), "--out", str(tmp_path / "run"), "--resume") == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "run" / "losses.csv"), pd.read_csv(ref / "losses.csv"))
    for t in range(4):
        a = (RunStore(tmp_path / "run").model_dir(t, "e1") / "model.safetensors").read_bytes()
        b = (RunStore(ref).model_dir(t, "e1") / "model.safetensors").read_bytes()
        assert a == b


def test_an_entity_writes_its_next_pool_right_after_its_own_update(tmp_path, monkeypatch):
    """Each entity's training, evaluation and pool of the next generation run as one task, in
    that order: no barrier between them (the last generation writes no pool)."""
    from crossgen.workflow import loop

    points: list[str] = []
    monkeypatch.setattr(loop, "kill_point", points.append)
    run_experiment(small(generations=2), tmp_path / "run")
    steps = [p for p in points if ".train." in p or ".pool." in p or p.endswith(".losses")]
    assert steps == [
        "gen0.train.e0", "gen1.pool.e0", "gen0.train.e1", "gen1.pool.e1", "gen0.losses",
        "gen1.train.e0", "gen2.pool.e0", "gen1.train.e1", "gen2.pool.e1", "gen1.losses",
        "gen2.train.e0", "gen2.train.e1", "gen2.losses",
    ]  # fmt: skip


def test_cli_refuses_bad_input_with_exit_code_2(tmp_path):
    import yaml

    bad = dict(SMALL, alpha=1.5)
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(bad))
    proc = subprocess.run(
        [sys.executable, "-m", "crossgen", "run", str(config), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: invalid alpha: 1.5 (allowed: a number in [0, 1], or a list of 4 such numbers (one per generation 0..T))"
    ]
    assert not (tmp_path / "r").exists()


def test_loop_matches_theory_in_weighted_loss_mode(tmp_path):
    """Averaged over seeds, the loop's parameter error and test losses equal the theory's
    per-generation MSE and MSPE/n + sigma2 (z-scores; 2 x 4 x 2 MSE values and 2 x 4 x 2
    loss values are compared, so |z| < 4 keeps the family-wise false alarm rate tiny)."""
    from safetensors.numpy import load_file

    from crossgen.theory import trajectory

    runs = 200
    cfg0 = small(generations=3)
    system = feature_system(cfg0)
    theory = trajectory(system, cfg0.alpha, cfg0.beta, cfg0.generations)
    errors = np.zeros((runs, 4, 2))
    losses = np.zeros((runs, 4, 2, 2))
    for seed in range(runs):
        store = run_experiment(small(seed=seed), tmp_path / f"s{seed}")
        frame = pd.read_csv(store.root / "losses.csv")
        for t in range(4):
            for k, name in enumerate(("e0", "e1")):
                theta = load_file(str(store.model_dir(t, name) / "model.safetensors"))["theta"]
                errors[seed, t, k] = np.sum((theta - system.theta) ** 2)
                for m, task in enumerate(("p0", "p1")):
                    row = frame[(frame.generation == t) & (frame.model == name) & (frame.task == task)]
                    losses[seed, t, k, m] = row.loss.item()
    z_mse = (errors.mean(0) - theory.mse) / (errors.std(0, ddof=1) / np.sqrt(runs))
    assert np.abs(z_mse).max() < 4, z_mse
    n = np.array([len(x) for x in system.private])
    expected = theory.mspe / n[None, None, :] + system.sigma2
    z_loss = (losses.mean(0) - expected) / (losses.std(0, ddof=1) / np.sqrt(runs))
    assert np.abs(z_loss).max() < 4, z_loss
    # and the check has power: a wrong theory (e.g. sigma2 missing from Cov, correction 3) fails it
    assert np.abs(errors.mean(0) - theory.bias2).max() > 0.05


def test_linear_preset_runs(tmp_path):
    cfg = load_config(resolve_config("linear"))
    cfg = cfg.model_copy(update={"generations": 2})
    store = run_experiment(cfg, tmp_path / "lin")
    assert store.manifest()["status"] == "complete"


def test_no_pool_is_written_when_nobody_trains_on_it(tmp_path):
    store = run_experiment(small(alpha=0.0, generations=2), tmp_path / "a0")
    assert not list(store.root.rglob("pool"))
    accumulate = small(alpha=[0.0, 0.0, 0.5], generations=2, mixing={"paradigm": "accumulate", "n": 50})
    store = run_experiment(accumulate, tmp_path / "acc")
    # D_1 is written because generation 2 trains on every pool so far; the draw uses both.
    assert store.pool_path(1, "e0").is_file() and store.pool_path(2, "e0").is_file()


def test_resume_repairs_tables_of_a_run_killed_between_mark_and_refresh(tmp_path):
    store = run_experiment(small(generations=1), tmp_path / "run")
    (store.root / "losses.csv").write_text("generation,model,task,loss\n")  # stale, as after such a kill
    run_experiment(small(generations=1), tmp_path / "run", resume=True)
    assert len(pd.read_csv(store.root / "losses.csv")) == 2 * 2 * 3
