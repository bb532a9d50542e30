"""A killed sweep continues where it stopped, and no finished run is ever started again.

Both tests kill `python -m crossgen sweep` with SIGKILL: once between runs (the fault
injection point sweep.finished<N> of the runner), once from outside in the middle of runs
of a process pool (its workers must die with it). The resumed sweeps must give the same
table as each other: resuming changes no number.
"""

import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from helpers import tiny_linear

BASE = tiny_linear(generations=6)
SWEEP = {"name": "resume", "base": BASE, "axes": {"alpha": [0, 0.5, 1], "beta": [0.3, 0.7]}, "seeds": 2}
RUNS = 12


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "sweep.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(SWEEP)))
    return path


def sweep_cmd(spec, out, *extra):
    return [sys.executable, "-m", "crossgen", "sweep", str(spec), "--out", str(out), *extra]


def env(**extra):
    e = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    e.pop("CROSSGEN_KILL_AT", None)
    e.update(extra)
    return e


def starts(out: Path) -> list[tuple[str, int]]:
    path = out / "starts.log"
    if not path.exists():
        return []
    return [(p[1], int(p[2])) for p in (line.split("\t") for line in path.read_text().splitlines())]


def complete(out: Path) -> set[tuple[str, int]]:
    done = set()
    for manifest in (out / "cells").glob("*/seed_*/manifest.json"):
        try:
            if json.loads(manifest.read_text())["status"] == "complete":
                done.add((manifest.parent.parent.name, int(manifest.parent.name.removeprefix("seed_"))))
        except (ValueError, KeyError):  # being replaced right now
            pass
    return done


@pytest.fixture(scope="module")
def killed_between_runs(spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("between")
    first = subprocess.run(
        sweep_cmd(spec, out), env=env(CROSSGEN_KILL_AT="sweep.finished4"), capture_output=True, text=True, timeout=120
    )
    at_kill = (first.returncode, complete(out), starts(out))
    second = subprocess.run(sweep_cmd(spec, out), env=env(), capture_output=True, text=True, timeout=120)
    return out, at_kill, second


def test_sweep_killed_between_runs_resumes_and_runs_each_run_once(killed_between_runs):
    out, (code, done_at_kill, starts_at_kill), second = killed_between_runs
    assert code == -signal.SIGKILL
    assert len(done_at_kill) == 4 and len(starts_at_kill) == 4
    assert second.returncode == 0, second.stderr
    assert len(complete(out)) == RUNS
    counts = Counter(starts(out))
    assert len(counts) == RUNS and set(counts.values()) == {1}  # every run started exactly once
    assert "8 runs executed, 4 already complete" in second.stderr
    assert json.loads((out / "status.json").read_text())["runs"]["done"] == RUNS


def test_sweep_killed_mid_run_in_a_process_pool_never_restarts_a_finished_run(spec, tmp_path, killed_between_runs):
    out = tmp_path / "pool"
    proc = subprocess.Popen(
        sweep_cmd(spec, out, "--executor", "process", "--workers", "2", "--batch", "1"),
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90
    while len(complete(out)) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(1.0)  # the pool's workers die with the sweep: nothing starts or finishes after this
    done_at_kill, starts_at_kill = complete(out), starts(out)
    time.sleep(0.5)
    assert starts(out) == starts_at_kill and complete(out) == done_at_kill
    assert 3 <= len(done_at_kill) < RUNS, "the sweep finished before it could be killed"
    interrupted = set(starts_at_kill) - done_at_kill  # started, not finished: resumed from their files
    resumed = subprocess.run(sweep_cmd(spec, out), env=env(), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert len(complete(out)) == RUNS
    again = starts(out)[len(starts_at_kill) :]
    assert not set(again) & done_at_kill  # no finished run was started again
    assert set(again) == set(complete(out)) - done_at_kill
    counts = Counter(starts(out))
    assert {run for run, n in counts.items() if n > 1} <= interrupted
    # resuming changes no number: the same table as the sweep killed between runs
    reference = killed_between_runs[0]
    assert (out / "aggregate.csv").read_text() == (reference / "aggregate.csv").read_text()


def test_a_worker_that_dies_fails_only_its_own_runs(tmp_path, monkeypatch):
    """A pool worker SIGKILLed inside a run (CROSSGEN_KILL_AT, inherited by the workers) breaks
    the pool: a run that kills its worker twice is reported failed, the others still run
    on fresh pools."""
    from crossgen.sweep import build_sweep, run_sweep

    data = copy.deepcopy(SWEEP)
    data["axes"] = {"generations": [1, 3]}
    sweep = build_sweep(data)
    monkeypatch.setenv("CROSSGEN_KILL_AT", "gen2.losses")  # only T=3 runs get there, every attempt
    result = run_sweep(sweep, tmp_path, executor="process", workers=1, batch=1)  # 1: no collateral kills
    failed = sorted((f["cell"], f["seed"]) for f in result.failed)
    assert failed == [("generations=3", 0), ("generations=3", 1)]
    assert all("worker died" in f["error"] for f in result.failed)
    assert result.done == 2 and complete(tmp_path) == {("generations=1", 0), ("generations=1", 1)}
    monkeypatch.delenv("CROSSGEN_KILL_AT")
    again = run_sweep(sweep, tmp_path)
    assert (again.ran, again.failed, again.done) == (2, [], 4)
