"""Run directory: atomic writes, creation, resumption, completion marks."""

import json

import pandas as pd
import pytest

from crossgen.config import parse_config
from crossgen.errors import InputError
from crossgen.io import atomic_path, read_jsonl, write_jsonl, write_table
from crossgen.workflow.store import RunStore

CFG = {
    "generations": 2,
    "entities": [{"name": "a", "task": {"name": "offline_science", "source": "offline"}}],
    "public": {"name": "offline_stories", "source": "offline"},
    "model": {"scratch": {}},
}


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_replaced_whole(tmp_path):
    target = tmp_path / "model"
    for content in ("one", "two"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "w").write_text(content)
    assert (target / "w").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_create_writes_config_and_manifest(tmp_path):
    cfg = parse_config(CFG)
    store = RunStore.create(tmp_path / "run", cfg)
    manifest = json.loads((store.root / "manifest.json").read_text())
    assert manifest["status"] == "running" and manifest["total_generations"] == 3
    assert manifest["versions"]["numpy"]
    assert store.config() == cfg


def test_existing_directory_needs_resume(tmp_path):
    cfg = parse_config(CFG)
    RunStore.create(tmp_path / "run", cfg)
    with pytest.raises(InputError) as exc:
        RunStore.create(tmp_path / "run", cfg)
    assert str(exc.value) == (
        f"invalid --out: {tmp_path / 'run'} (allowed: a new or empty directory, or --resume to continue the run in it)"
    )


def test_resume_checks_config_and_directory(tmp_path):
    cfg = parse_config(CFG)
    RunStore.create(tmp_path / "run", cfg)
    assert RunStore.resume(tmp_path / "run", cfg).root == tmp_path / "run"
    other = parse_config({**CFG, "seed": 3})
    with pytest.raises(InputError, match=r"^invalid config: differs from the run's config.yaml"):
        RunStore.resume(tmp_path / "run", other)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x").write_text("")
    with pytest.raises(InputError, match=r"allowed: a crossgen run directory"):
        RunStore.resume(tmp_path / "empty")


def test_completion_marks_and_tables(tmp_path):
    store = RunStore.create(tmp_path / "run", parse_config(CFG))
    for t in range(3):
        write_table(
            store.losses_path(t), pd.DataFrame({"generation": [t], "model": ["a"], "task": ["x"], "loss": [t + 0.5]})
        )
    store.mark_complete(0, 1.0)
    store.mark_complete(1, 1.0)
    store.refresh_tables()
    # generation 2 wrote its file but is not complete: it must not appear in the tidy table
    assert pd.read_csv(store.root / "losses.csv")["generation"].tolist() == [0, 1]
    assert store.manifest()["status"] == "running"
    store.mark_complete(2, 1.0)
    assert store.manifest()["status"] == "complete"


def test_jsonl_round_trip(tmp_path):
    rows = [{"prompt": "a", "answer": "b", "source": "synthetic:a:0"}, {"prompt": [1.0, 2.0], "answer": 3.0}]
    write_jsonl(tmp_path / "p.jsonl", rows)
    assert read_jsonl(tmp_path / "p.jsonl") == rows
