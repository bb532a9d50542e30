"""A sweep trains one generation 0 per group of runs with equal generation-0 settings
(`RunConfig.generation0_key`) in DIR/generation0/<key>/, and every run of the
group starts from it (hard links): each run's files equal those of the run made alone, runs
with other generation-0 settings never share, and a sweep killed inside a shared
generation 0 resumes to the same files."""

import copy
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from crossgen.config import parse_config
from crossgen.experiment import run_experiment
from crossgen.sweep import build_sweep, run_sweep
from crossgen.sweep.grid import generation0_config, shared_generation0
from helpers import tiny_linear

# accumulate-subsample: generation 0 draws mixing.n examples, so it depends on mixing.n
BASE = tiny_linear(generations=2, mixing={"paradigm": "accumulate-subsample", "n": 20})
SPEC = {"name": "g0", "base": BASE, "axes": {"alpha": [0, 0.5, 1]}, "seeds": 2}


def model_file(run: Path, entity: str = "e0") -> Path:
    """Entity's generation-0 weights."""
    return run / "gen_000" / "models" / entity / "model.safetensors"


def alone(tmp: Path, run) -> Path:
    """The run made by itself, with its own generation 0."""
    return run_experiment(run.config, tmp / "alone" / run.rel_dir).root


def assert_same_as_alone(out: Path, sweep, tmp: Path) -> None:
    for run in sweep.runs:
        ref = alone(tmp, run)
        for table in ("losses.csv", "gen_000/losses.csv"):
            assert (out / run.rel_dir / table).read_bytes() == (ref / table).read_bytes(), (run.rel_dir, table)
        # the record of generation 0's updates is copied too (all but their time)
        shared = json.loads((out / run.rel_dir / "manifest.json").read_text())["generations"]["0"]["updates"]
        own = json.loads((ref / "manifest.json").read_text())["generations"]["0"]["updates"]
        assert [{**u, "seconds": 0} for u in shared.values()] == [{**u, "seconds": 0} for u in own.values()]


@pytest.fixture(scope="module")
def alpha_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("alpha")
    sweep = build_sweep(copy.deepcopy(SPEC))
    result = run_sweep(sweep, out)
    assert (result.done, result.failed) == (6, [])
    return sweep, out


def test_an_alpha_axis_trains_generation_0_once_per_seed(alpha_sweep, tmp_path):
    sweep, out = alpha_sweep
    sources = sorted((out / "generation0").glob("*/manifest.json"))
    assert len(sources) == 2  # one per seed, not one per run
    for manifest in sources:
        data = json.loads(manifest.read_text())
        assert data["status"] == "complete" and data["total_generations"] == 1
    # every run's generation-0 checkpoint is its seed's shared one, hard-linked
    inodes = {run.seed: set() for run in sweep.runs}
    for run in sweep.runs:
        inodes[run.seed].add(model_file(out / run.rel_dir).stat().st_ino)
    assert all(len(found) == 1 for found in inodes.values()) and len(set.union(*inodes.values())) == 2
    source_inodes = {model_file(m.parent).stat().st_ino for m in sources}
    assert set.union(*inodes.values()) == source_inodes
    assert_same_as_alone(out, sweep, tmp_path)


def test_the_shared_generation_0_is_no_run_of_the_sweep(alpha_sweep):
    sweep, out = alpha_sweep
    assert len((out / "starts.log").read_text().splitlines()) == 6
    assert len((out / "generation0" / "starts.log").read_text().splitlines()) == 2
    assert json.loads((out / "status.json").read_text())["runs"]["total"] == 6
    table = pd.read_csv(out / "aggregate.csv")
    assert set(table["cell"]) == {c.id for c in sweep.cells} and set(table["n_seeds"]) == {2}
    assert "generation0" not in (out / "report.html").read_text()


def test_runs_share_exactly_when_their_generation_0_settings_are_equal(tmp_path):
    """initial_beta, mixing.n and the seed change generation 0 (alpha does not): sharing across
    them would change the numbers and fail the comparison with the runs made alone."""
    data = {
        "name": "mixed",
        "base": {**copy.deepcopy(BASE), "beta": 0.5},
        "axes": {"alpha": [0, 1], "initial_beta": [0.3, 0.7], "mixing.n": [20, 40]},
        "seeds": 2,
    }
    sweep = build_sweep(data)
    out = tmp_path / "sweep"
    assert run_sweep(sweep, out, report=False).done == 16
    owner: dict[int, set] = {}
    for run in sweep.runs:
        setting = (run.config.initial_beta, run.config.mixing.n, run.seed)
        owner.setdefault(model_file(out / run.rel_dir).stat().st_ino, set()).add(setting)
    assert len(owner) == 8 and all(len(settings) == 1 for settings in owner.values())
    assert len(list((out / "generation0").glob("*/manifest.json"))) == 8
    assert_same_as_alone(out, sweep, tmp_path)


def test_no_shared_generation_0_without_two_runs_that_share_it(tmp_path):
    data = {"name": "seeds", "base": copy.deepcopy(BASE), "axes": {"initial_beta": [0.3, 0.7]}, "seeds": 2}
    sweep = build_sweep(data)
    assert shared_generation0(sweep) == []
    run_sweep(sweep, tmp_path, report=False)
    assert not (tmp_path / "generation0").exists()
    inodes = {model_file(tmp_path / r.rel_dir).stat().st_ino for r in sweep.runs}
    assert len(inodes) == 4


def test_generation_0_does_not_depend_on_T_even_with_fresh_real(tmp_path):
    data = {"name": "T", "base": {**copy.deepcopy(BASE), "fresh_real": True}, "axes": {"generations": [1, 3]}}
    sweep = build_sweep(data)
    assert [len(g.runs) for g in shared_generation0(sweep)] == [2]
    run_sweep(sweep, tmp_path / "sweep", report=False)
    assert_same_as_alone(tmp_path / "sweep", sweep, tmp_path)


def test_generation0_key_has_mixing_and_the_generation_0_run_has_the_same_key():
    cfg = parse_config(tiny_linear(mixing={"paradigm": "accumulate-subsample", "n": 20}))
    more = parse_config(tiny_linear(mixing={"paradigm": "accumulate-subsample", "n": 40}))
    assert cfg.generation0_key() != more.generation0_key()
    # per-generation lists (weights, participation) become generation 0's
    listed = tiny_linear(generations=3, alpha=[0, 0.2, 0.4, 0.6], fresh_real=True, graph="ring")
    listed["entities"][1].update(beta=[0.9, 0.1, 0.1, 0.1], generations=[1, 3])
    cfg = parse_config(listed)
    source = generation0_config(cfg)
    assert source.generations == 0 and source.generation0_key() == cfg.generation0_key()
    assert source.schedule("beta")[0].tolist() == [0.5, 0.9]


def test_tracked_runs_keep_their_own_generation_0():
    data = {"name": "tracked", "base": {**copy.deepcopy(BASE), "tracking": {"backend": "tensorboard"}}}
    assert shared_generation0(build_sweep({**data, "axes": {"alpha": [0, 1]}})) == []


def test_a_failed_shared_generation_0_fails_only_its_runs(tmp_path, monkeypatch):
    import crossgen.experiment

    real = crossgen.experiment.run_experiment

    def failing(cfg, out, **kwargs):
        if cfg.generations == 0 and cfg.seed == 1:
            raise RuntimeError("no generation 0 today")
        return real(cfg, out, **kwargs)

    sweep = build_sweep(copy.deepcopy(SPEC))
    monkeypatch.setattr(crossgen.experiment, "run_experiment", failing)
    result = run_sweep(sweep, tmp_path, report=False)
    assert result.done == 3 and sorted((f["cell"], f["seed"]) for f in result.failed) == [
        ("alpha=0", 1),
        ("alpha=0.5", 1),
        ("alpha=1", 1),
    ]
    assert all(
        f["error"].startswith("its shared generation 0 (generation0/") and f["error"].endswith("no generation 0 today")
        for f in result.failed
    )
    assert len((tmp_path / "starts.log").read_text().splitlines()) == 3  # the failed runs never started
    monkeypatch.undo()
    again = run_sweep(sweep, tmp_path, report=False)
    assert (again.ran, again.done, again.failed) == (3, 6, [])


def test_copies_where_the_file_system_cannot_link(tmp_path, monkeypatch):
    source = run_experiment(parse_config(BASE), tmp_path / "a").root

    def no_link(src, dst):
        raise OSError("no hard links here")

    monkeypatch.setattr(os, "link", no_link)
    copied = run_experiment(parse_config({**BASE, "alpha": 1.0}), tmp_path / "b", generation0_from=source).root
    assert model_file(copied).read_bytes() == model_file(source).read_bytes()
    assert model_file(copied).stat().st_ino != model_file(source).stat().st_ino


@pytest.mark.parametrize("executor", ["process", "ray"])
def test_a_process_pool_and_ray_share_generation_0_too(alpha_sweep, tmp_path, executor):
    if executor == "ray":
        pytest.importorskip("ray")
    sweep, reference = alpha_sweep
    out = tmp_path / executor
    assert run_sweep(sweep, out, executor=executor, workers=2, batch=1).done == 6
    for run in sweep.runs:
        assert (out / run.rel_dir / "losses.csv").read_bytes() == (reference / run.rel_dir / "losses.csv").read_bytes()
    assert len(list((out / "generation0").glob("*/manifest.json"))) == 2


def test_a_sweep_killed_inside_a_shared_generation_0_resumes_to_the_same_files(alpha_sweep, tmp_path):
    sweep, reference = alpha_sweep
    spec, out = tmp_path / "sweep.yaml", tmp_path / "out"
    spec.write_text(yaml.safe_dump(copy.deepcopy(SPEC)))
    cmd = [sys.executable, "-m", "crossgen", "sweep", str(spec), "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "CROSSGEN_KILL_AT"}
    killed = subprocess.run(cmd, env={**env, "CROSSGEN_KILL_AT": "gen0.losses"}, capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert not (out / "starts.log").exists()  # killed in the first shared generation 0, before any run
    (partial,) = (out / "generation0").glob("*/manifest.json")
    assert json.loads(partial.read_text())["status"] == "running"
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    lines = (out / "generation0" / "starts.log").read_text().splitlines()
    started = Counter(Path(line.split("\t")[1]).name for line in lines)
    assert sorted(started.values()) == [1, 2] and started[partial.parent.name] == 2  # the killed one resumed
    for run in sweep.runs:
        for table in ("losses.csv", "gen_000/losses.csv", "gen_001/losses.csv"):
            assert (out / run.rel_dir / table).read_bytes() == (reference / run.rel_dir / table).read_bytes()
    assert (out / "aggregate.csv").read_bytes() == (reference / "aggregate.csv").read_bytes()


def test_a_tiny_hf_sweep_shares_byte_identical_checkpoints(tmp_path):
    pytest.importorskip("transformers")
    from test_workflow_hf import TINY

    data = {"name": "hf", "base": {**copy.deepcopy(TINY), "generations": 1}, "axes": {"alpha": [0, 1]}}
    sweep = build_sweep(data)
    out = tmp_path / "sweep"
    assert run_sweep(sweep, out, report=False).done == 2
    (source,) = (out / "generation0").glob("*/manifest.json")
    weights = model_file(source.parent, "science")
    for run in sweep.runs:
        assert model_file(out / run.rel_dir, "science").stat().st_ino == weights.stat().st_ino
    run = sweep.runs[1]
    ref = alone(tmp_path, run)  # its own generation 0: the same weights, byte for byte
    assert model_file(ref, "science").read_bytes() == weights.read_bytes()
    assert (out / run.rel_dir / "losses.csv").read_bytes() == (ref / "losses.csv").read_bytes()
