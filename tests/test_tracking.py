"""Experiment tracking: a tiny run with tracking tensorboard writes event files whose scalars
(read back with TensorBoard's EventAccumulator) are the numbers of the run's tables, with a
training curve per (generation, entity); a missing package is refused before anything is
written; the tags of every table; wandb through a stand-in module (no network)."""

from __future__ import annotations

import math
import os
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crossgen.config import parse_config
from crossgen.errors import InputError
from crossgen.io import write_table
from crossgen.tracking import generation_scalars
from crossgen.workflow.store import RunStore
from helpers import tiny_linear

NAMES = ["science", "arithmetic"]


def tiny_hf(**tracking) -> dict:
    """Two entities, one update after generation 0, accuracy on 8 test examples, no embeddings."""
    return {
        "name": "tracked",
        "seed": 0,
        "device": "cpu",
        "generations": 1,
        "entities": [
            {"name": "science", "task": {"name": "offline_science", "source": "offline", "train_size": 80}},
            {"name": "arithmetic", "task": {"name": "offline_arithmetic", "source": "offline", "train_size": 80}},
        ],
        "public": {"name": "offline_stories", "source": "offline", "train_size": 80},
        "mixing": {"paradigm": "accumulate-subsample", "n": 16},
        "model": {
            "backend": "hf",
            "scratch": {"n_layer": 1, "n_head": 2, "n_embd": 32, "n_positions": 128, "vocab_size": 300},
        },
        "initial_training": {"max_steps": 4, "learning_rate": 3e-3, "per_device_train_batch_size": 8},
        "training": {"max_steps": 3, "learning_rate": 1e-3, "per_device_train_batch_size": 8},
        "generation": {"num_prompts": 8, "max_new_tokens": 8, "batch_size": 16},
        "evaluation": {"test_size": 8, "batch_size": 16, "embedding_prompts": 0},
        "resources": {"cpus": 1, "threads": 1},
        "tracking": tracking,
    }


def _scalars(folder: Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of the event files in `folder`, through TensorBoard's public reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def test_a_tiny_run_tracked_with_tensorboard_logs_its_tables_and_training_curves(tmp_path):
    pytest.importorskip("tensorboard")
    from crossgen.experiment import run_experiment

    cfg = parse_config(tiny_hf(backend="tensorboard", logging_steps=1))
    out = tmp_path / "run"
    run_experiment(cfg, out)
    logged = _scalars(out / "tensorboard" / "metrics")

    expected: dict[str, dict[int, float]] = {}
    for r in pd.read_csv(out / "losses.csv").itertuples():
        expected.setdefault(f"loss/{r.model}/{r.task}", {})[r.generation] = r.loss
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics.metric) == {"acc", "acc_norm", "chance", "exact_match"}  # the accuracy family
    for r in metrics.itertuples():
        expected.setdefault(f"{r.metric}/{r.model}/{r.dataset}", {})[r.generation] = r.value
    assert len(expected) == 2 * 3 + 2 * 4  # 2 models x (3 losses + acc, acc_norm, chance, exact_match)
    assert set(logged) == set(expected)
    for tag, values in expected.items():
        assert logged[tag].keys() == values.keys() == {0, 1}, tag
        for step, value in values.items():
            assert logged[tag][step] == pytest.approx(value, rel=1e-6, abs=1e-7), (tag, step)  # float32 in events

    for t, steps in ((0, 4), (1, 3)):
        for name in NAMES:
            curve = _scalars(out / "tensorboard" / "train" / f"gen_{t:03d}" / name)
            assert sorted(curve["train/loss"]) == list(range(1, steps + 1))  # every step (logging_steps 1)
            assert all(math.isfinite(v) and v > 0 for v in curve["train/loss"].values())
            assert "train/learning_rate" in curve

    from crossgen.backends.hf.train import REPORTING

    assert REPORTING.get() is None and "TENSORBOARD_LOGGING_DIR" not in os.environ  # nothing left behind


def test_the_tracked_progress_forwards_every_event_and_announces_each_update(tmp_path):
    from crossgen.tracking import Tracker
    from crossgen.workflow.progress import Progress

    calls: list[tuple] = []

    class Recorder(Progress):
        def __getattribute__(self, name):
            if name.startswith("_") or not callable(getattr(Progress, name, None)):
                return object.__getattribute__(self, name)
            return lambda *args, **kw: calls.append((name, *args))

    class Announced(Tracker):
        def before_update(self, t, entity):
            calls.append(("before_update", t, entity))

    progress = Announced(parse_config(tiny_linear()), tmp_path).progress(Recorder())
    progress.start_run(2, ["e0"])
    progress.generation_start(0)
    progress.train_start(0, "e0", 5)
    progress.train_step(1, 5)
    progress.phase("x")
    progress.generation_done(0, skipped=False)
    progress.finish()
    assert calls == [
        ("start_run", 2, ["e0"]),
        ("generation_start", 0),
        ("before_update", 0, "e0"),
        ("train_start", 0, "e0", 5),
        ("train_step", 1, 5),
        ("phase", "x"),
        ("generation_done", 0),
        ("finish",),
    ]


def test_a_missing_tracker_package_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    import importlib.util

    from crossgen.experiment import run_experiment

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find_spec(name, *a))
    cfg = parse_config(tiny_linear(tracking={"backend": "wandb"}))
    with pytest.raises(InputError) as err:
        run_experiment(cfg, tmp_path / "run")
    assert str(err.value) == (
        "invalid tracking.backend: wandb (allowed: a tracker whose package is installed "
        "(wandb is not: pip install 'crossgen[wandb]'), or none)"
    )
    assert not (tmp_path / "run").exists()


def test_tracking_settings_are_validated_and_leave_generation0_alone():
    with pytest.raises(InputError, match=r"^invalid tracking.backend: comet"):
        parse_config(tiny_linear(tracking={"backend": "comet"}))
    with pytest.raises(InputError, match=r"^invalid tracking.logging_steps: 0"):
        parse_config(tiny_linear(tracking={"backend": "tensorboard", "logging_steps": 0}))
    plain, tracked = parse_config(tiny_linear()), parse_config(tiny_linear(tracking={"backend": "tensorboard"}))
    assert plain.tracking.backend == "none"
    assert plain.generation0_key() == tracked.generation0_key()


def test_every_table_of_a_generation_becomes_tagged_scalars(tmp_path):
    store = RunStore.create(tmp_path / "run", parse_config(tiny_linear()))
    gen = store.gen_dir(2)
    write_table(gen / "losses.csv", pd.DataFrame([{"generation": 2, "model": "e0", "task": "p1", "loss": 0.25}]))
    write_table(
        gen / "similarity.csv",
        pd.DataFrame([{"generation": 2, "dataset": "p0", "model_a": "e0", "model_b": "e1", "cosine": 0.5}]),
    )
    write_table(
        gen / "homogenization.csv",
        pd.DataFrame(
            [
                {"generation": 2, "dataset": "p0", "metric": "spread", "model": "all", "value": 0.125},
                {"generation": 2, "dataset": "p0", "metric": "diversity", "model": "e1", "value": 0.75},
            ]
        ),
    )
    write_table(gen / "semantic.csv", pd.DataFrame([{"generation": 2, "model": "e1", "task": "pub", "distance": 0.3}]))
    rows = [
        {"generation": 2, "model": "e0", "dataset": "p0", "metric": "acc", "value": 0.5, "low": 0.25, "high": 0.75},
        {"generation": 2, "model": "NA", "dataset": "p1", "metric": "exact_match", "value": 1.0, "low": 1, "high": 1},
    ]
    write_table(gen / "metrics" / "accuracy.csv", pd.DataFrame(rows))
    lexical = [
        {"generation": 2, "model": "e0", "dataset": "p0", "metric": "distinct_4", "value": np.nan},  # no 4-grams
        {"generation": 2, "model": "reference", "dataset": "p0", "metric": "self_bleu", "value": 0.0625},
    ]
    write_table(gen / "metrics" / "lexical.csv", pd.DataFrame(lexical))
    write_table(gen / "metrics" / "parts" / "accuracy.e0.csv", pd.DataFrame(rows[:1]))  # not a family file
    assert generation_scalars(store, 2) == {
        "loss/e0/p1": 0.25,
        "similarity/e0:e1/p0": 0.5,
        "spread/all/p0": 0.125,
        "diversity/e1/p0": 0.75,
        "semantic_distance/e1/pub": 0.3,
        "acc/e0/p0": 0.5,
        "exact_match/NA/p1": 1.0,
        "self_bleu/reference/p0": 0.0625,
    }
    assert generation_scalars(store, 3) == {}


class FakeWandb(types.ModuleType):
    """Records what the tracker sends; no network, no files."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.run = None
        self.calls: list[tuple] = []

    def init(self, **kwargs):
        fake = self

        class Run:
            def define_metric(self, *args, **kw):
                fake.calls.append(("define_metric", args, kw))

            def log(self, data):
                fake.calls.append(("log", data))

            def finish(self):
                fake.calls.append(("finish",))
                fake.run = None

        self.calls.append(("init", kwargs))
        self.run = Run()
        return self.run

    def finish(self):
        self.calls.append(("finish-global",))
        self.run = None


def test_a_linear_run_tracked_with_wandb_logs_each_generation_with_its_step(tmp_path, monkeypatch):
    from crossgen.experiment import run_experiment

    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "wandb" else find_spec(name, *a)
    )
    cfg = parse_config(tiny_linear(tracking={"backend": "wandb", "project": "p"}))
    out = tmp_path / "run"
    run_experiment(cfg, out)
    inits = [c[1] for c in fake.calls if c[0] == "init"]
    logs = [c[1] for c in fake.calls if c[0] == "log"]
    assert len(inits) == len(logs) == 4  # generations 0..3, one resumable run
    assert {i["id"] for i in inits} == {inits[0]["id"]} and inits[0]["resume"] == "allow"
    assert inits[0]["project"] == "p" and inits[0]["name"] == "tiny"
    losses = pd.read_csv(out / "losses.csv")
    for t, data in enumerate(logs):
        want = {f"loss/{r.model}/{r.task}": r.loss for r in losses[losses.generation == t].itertuples()}
        assert data == {**want, "generation": t}
    assert "WANDB_PROJECT" not in os.environ  # restored after the run


def test_a_tiny_run_tracked_with_mlflow_nests_each_update_in_the_run(tmp_path):
    """Only where mlflow is installed (the `mlflow` extra): a local SQLite store, no server."""
    mlflow = pytest.importorskip("mlflow")
    pytest.importorskip("sqlalchemy")
    from crossgen.experiment import run_experiment

    cfg = parse_config(tiny_hf(backend="mlflow", dir=str(tmp_path / "mlruns"), logging_steps=1))
    run_experiment(cfg, tmp_path / "run")
    assert mlflow.active_run() is None
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    runs = {r.info.run_name: r for r in mlflow.search_runs(experiment_names=["tracked"], output_format="list")}
    parent = runs.pop("tracked")
    assert sorted(runs) == [f"tracked/gen_{t:03d}/{n}" for t in (0, 1) for n in sorted(NAMES)]
    assert {r.data.tags["mlflow.parentRunId"] for r in runs.values()} == {parent.info.run_id}
    client = mlflow.MlflowClient()
    losses = pd.read_csv(tmp_path / "run" / "losses.csv")
    for r in losses.itertuples():
        history = client.get_metric_history(parent.info.run_id, f"loss/{r.model}/{r.task}")
        assert {m.step: m.value for m in history}[r.generation] == pytest.approx(r.loss)
    curve = client.get_metric_history(runs["tracked/gen_001/science"].info.run_id, "loss")
    assert sorted(m.step for m in curve) == [1, 2, 3]
