"""The workflow loop with a tiny from-scratch transformers model: a run killed with
SIGKILL mid-generation and resumed gives exactly the numbers of an uninterrupted run."""

import pandas as pd
import pytest
import yaml

from helpers import crossgen, crossgen_here

pytest.importorskip("transformers")

TINY = {
    "name": "tiny-hf",
    "seed": 0,
    "device": "cpu",
    "generations": 2,
    "alpha": 0.5,
    "beta": 0.5,
    "entities": [
        {
            "name": "science",
            "task": {"name": "offline_science", "source": "offline", "train_size": 200, "test_size": 20},
        },
        {
            "name": "arithmetic",
            "task": {"name": "offline_arithmetic", "source": "offline", "train_size": 200, "test_size": 20},
        },
    ],
    "public": {"name": "offline_stories", "source": "offline", "train_size": 200, "test_size": 20},
    "mixing": {"paradigm": "accumulate-subsample", "n": 64},
    "model": {
        "backend": "hf",
        "scratch": {"n_layer": 1, "n_head": 2, "n_embd": 32, "n_positions": 128, "vocab_size": 300},
    },
    "initial_training": {
        "max_steps": 15,
        "learning_rate": 3e-3,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "max_seq_length": 96,
    },
    "training": {
        "max_steps": 4,
        "learning_rate": 1e-3,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "max_seq_length": 96,
    },
    "generation": {"num_prompts": 16, "max_new_tokens": 12, "batch_size": 16},
    "evaluation": {"test_size": 20, "batch_size": 20, "embedding_prompts": 0},
    "resources": {"cpus": 1, "threads": 1},
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of TINY: (config path, run directory)."""
    root = tmp_path_factory.mktemp("hf")
    config = root / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    assert crossgen_here("run", str(config), "--out", str(root / "ref")) == 0
    return config, root / "ref"


def test_hf_run_killed_twice_and_resumed_equals_uninterrupted(tmp_path, reference):
    """Killed while writing a pool, resumed and killed again while training, resumed to the end."""
    config, ref_dir = reference
    out = str(tmp_path / "run")
    killed = crossgen("run", str(config), "--out", out, env={"CROSSGEN_KILL_AT": "gen1.pool.arithmetic"})
    assert killed.returncode == -9
    run = tmp_path / "run"
    assert (run / "gen_001" / "pool" / "arithmetic.jsonl").is_file() and not (run / "gen_001" / "models").exists()
    killed = crossgen("run", str(config), "--out", out, "--resume", env={"CROSSGEN_KILL_AT": "gen2.train.science"})
    assert killed.returncode == -9
    assert (run / "gen_002" / "models" / "science").is_dir() and not (run / "gen_002" / "losses.csv").exists()
    assert crossgen_here("run", "--no-report", str(config), "--out", out, "--resume") == 0
    assert (ref_dir / "report.html").is_file() and not (tmp_path / "run" / "report.html").exists()  # --no-report
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "run" / "losses.csv"), pd.read_csv(ref_dir / "losses.csv"))
    ref_pool = (ref_dir / "gen_002" / "pool" / "science.jsonl").read_text()
    assert (tmp_path / "run" / "gen_002" / "pool" / "science.jsonl").read_text() == ref_pool
    losses = pd.read_csv(ref_dir / "losses.csv")
    assert len(losses) == 3 * 2 * 3 and losses.loss.notna().all()


def test_bad_model_path_is_refused_before_anything_is_written(tmp_path):
    data = dict(TINY, model={"backend": "hf", "name_or_path": str(tmp_path / "no-such-model")})
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(data))
    proc = crossgen("run", str(config), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"error: invalid model.name_or_path: {tmp_path / 'no-such-model'} (allowed: ")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_bad_embedding_model_is_refused_before_anything_is_written(tmp_path):
    data = dict(
        TINY,
        evaluation={**TINY["evaluation"], "embedding_prompts": 2, "embedding_model": str(tmp_path / "no-such-encoder")},
    )
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(data))
    proc = crossgen("run", str(config), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(
        f"error: invalid evaluation.embedding_model: {tmp_path / 'no-such-encoder'} (allowed: "
    )
    assert not (tmp_path / "run").exists()


def test_a_run_whose_checkpoints_do_not_fit_is_refused_up_front(tmp_path, monkeypatch, capsys):
    from collections import namedtuple

    from crossgen.cli import main
    from crossgen.workflow import run as run_module

    usage = namedtuple("usage", "total used free")
    # 50 kB free: far less than a tiny model's checkpoints
    monkeypatch.setattr(run_module.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 50_000, 50_000))
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    code = main(["run", str(config), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: invalid checkpoints: all (allowed: a setting whose checkpoints fit: about ")
    assert "GB needed, 0.0 GB free on" in err[0]
    assert not (tmp_path / "run").exists()
