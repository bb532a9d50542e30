"""checkpoints: needed keeps only generation 0 and the newest complete generation's models,
and a run killed with SIGKILL and resumed still equals an uninterrupted one."""

import os
import signal
import subprocess
import sys

import pandas as pd

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(out, *extra, **env):
    args = [sys.executable, "-m", "crossgen", "run", "linear", "--out", str(out), "--set", "generations=3", *extra]
    return subprocess.run(args, capture_output=True, text=True, env={**ENV, **env})


def _models(root):
    return sorted(p.parent.name for p in root.glob("gen_*/models"))


def test_needed_keeps_generation_0_and_the_newest_and_resumes_exactly(tmp_path):
    every = _run(tmp_path / "all")
    assert every.returncode == 0, every.stderr
    assert _models(tmp_path / "all") == ["gen_000", "gen_001", "gen_002", "gen_003"]

    killed = _run(tmp_path / "lean", "--set", "checkpoints=needed", CROSSGEN_KILL_AT="gen2.complete")
    assert killed.returncode == -signal.SIGKILL
    assert _models(tmp_path / "lean") == ["gen_000", "gen_002"]
    resumed = _run(tmp_path / "lean", "--set", "checkpoints=needed", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _models(tmp_path / "lean") == ["gen_000", "gen_003"]
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "lean" / "losses.csv"), pd.read_csv(tmp_path / "all" / "losses.csv")
    )
