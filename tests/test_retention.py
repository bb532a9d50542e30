"""checkpoints: needed keeps only generation 0 and the newest complete generation's models,
and a run killed with SIGKILL and resumed still equals an uninterrupted one."""

import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from helpers import crossgen_here

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(out, *extra, **env):
    args = [sys.executable, "-m", "crossgen", "run", "linear", "--out", str(out), "--set", "generations=3", *extra]
    return subprocess.run(args, capture_output=True, text=True, env={**ENV, **env})


def _resume(out, *extra):
    """Resume a run in this process (only a killed run needs a process of its own)."""
    args = ["run", "--no-report", "linear", "--out", str(out), "--set", "generations=3", *extra, "--resume"]
    return crossgen_here(*args)


@pytest.fixture(scope="module")
def every(tmp_path_factory):
    """The run with every checkpoint kept, uninterrupted, in this process."""
    out = tmp_path_factory.mktemp("retention") / "all"
    assert crossgen_here("run", "--no-report", "linear", "--out", str(out), "--set", "generations=3") == 0
    return out


def _models(root):
    return sorted(p.parent.name for p in root.glob("gen_*/models"))


def test_needed_keeps_generation_0_and_the_newest_and_resumes_exactly(tmp_path, every):
    assert _models(every) == ["gen_000", "gen_001", "gen_002", "gen_003"]

    killed = _run(tmp_path / "lean", "--set", "checkpoints=needed", CROSSGEN_KILL_AT="gen2.complete")
    assert killed.returncode == -signal.SIGKILL
    assert _models(tmp_path / "lean") == ["gen_000", "gen_002"]
    assert _resume(tmp_path / "lean", "--set", "checkpoints=needed") == 0
    assert _models(tmp_path / "lean") == ["gen_000", "gen_003"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "lean" / "losses.csv"), pd.read_csv(every / "losses.csv"))


def test_latest_keeps_only_the_newest_and_resumes_exactly(tmp_path, every):
    killed = _run(tmp_path / "latest", "--set", "checkpoints=latest", CROSSGEN_KILL_AT="gen2.complete")
    assert killed.returncode == -signal.SIGKILL
    assert _models(tmp_path / "latest") == ["gen_002"]
    assert _resume(tmp_path / "latest", "--set", "checkpoints=latest") == 0
    assert _models(tmp_path / "latest") == ["gen_003"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "latest" / "losses.csv"), pd.read_csv(every / "losses.csv"))


def test_an_entity_s_previous_checkpoint_goes_as_soon_as_its_new_one_is_written(tmp_path, every):
    """Sequential executor: after the first entity's update of generation 2, its generation-1
    model is gone while the second entity's is still there (peak disk: K + 1 models, not 2K)."""
    out = tmp_path / "run"
    killed = _run(out, "--set", "checkpoints=latest", CROSSGEN_KILL_AT="gen2.train.entity0")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = sorted(str(p.relative_to(out)) for p in out.glob("gen_*/models/*"))
    assert left == [f"gen_001/models/entity{k}" for k in (1, 2, 3)] + ["gen_002/models/entity0"]
    assert _resume(out, "--set", "checkpoints=latest") == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "losses.csv"), pd.read_csv(every / "losses.csv"))


def test_latest_is_refused_where_generation_0_is_the_reference_model(tmp_path):
    from crossgen.config import parse_config
    from crossgen.errors import InputError
    from test_workflow_hf import TINY

    scored = {**TINY, "checkpoints": "latest", "evaluation": {**TINY["evaluation"], "embedding_prompts": 2}}
    assert parse_config({**TINY, "checkpoints": "latest"}).checkpoints == "latest"  # no completions to score
    try:
        parse_config(scored)
    except InputError as exc:
        assert str(exc).startswith("invalid checkpoints: latest (allowed: 'needed' or 'all' while evaluation.")
    else:
        raise AssertionError("checkpoints: latest with a generation-0 reference model was accepted")
    other = {**scored, "evaluation": {**scored["evaluation"], "reference_model": "x/y"}}
    assert parse_config(other).checkpoints == "latest"


def test_a_run_that_deleted_its_generation_0_cannot_lend_it(tmp_path):
    from crossgen.config import parse_config
    from crossgen.errors import InputError
    from crossgen.workflow.run import run_workflow
    from helpers import tiny_linear

    source = run_workflow(parse_config(tiny_linear(checkpoints="latest")), tmp_path / "a")
    assert not (source.root / "gen_000" / "models").exists()
    with pytest.raises(InputError, match=r"^invalid generation0_from: .* \(allowed: a run that still holds its"):
        run_workflow(
            parse_config(tiny_linear(checkpoints="latest", alpha=1.0)), tmp_path / "b", generation0_from=source.root
        )
    assert not (tmp_path / "b").exists()
