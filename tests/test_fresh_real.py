"""fresh_real: every generation trains on new real examples (disjoint seeded chunks of each
dataset's train split; generation 0 on today's), and a dataset too small for T + 1 chunks is
refused before the run starts, naming both numbers."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crossgen.backends import registry as backend_registry
from crossgen.backends.base import TrainStats
from crossgen.config import parse_config
from crossgen.data import Example, fresh_chunks
from crossgen.errors import InputError
from crossgen.io import atomic_path
from crossgen.tasks import load_experiment_data
from crossgen.workflow.loop import Workflow
from crossgen.workflow.run import build, run_workflow
from crossgen.workflow.store import RunStore
from helpers import tiny_linear


class WordModel:
    """Counts of answer words; scores by add-one unigram likelihood (so losses depend on data)."""

    def __init__(self, counts: dict):
        self.counts = Counter(counts)

    def train(self, examples, cfg, seed, weights=None, progress=None) -> TrainStats:
        for i, e in enumerate(examples):
            for word in str(e.answer).split():
                self.counts[word] += 1.0 if weights is None else weights[i]
        return TrainStats(steps=1, tokens=len(examples), seconds=0.0, final_loss=0.0)

    def generate(self, prompts, cfg, seed, max_new_tokens=None) -> list[str]:
        rng = random.Random(seed)
        words = sorted(self.counts) or ["x"]
        return [" " + rng.choice(words) for _ in prompts]

    def score(self, examples, batch_size=0) -> float:
        total, vocab = sum(self.counts.values()), len(self.counts) + 1
        losses = [-math.log((self.counts[w] + 1) / (total + vocab)) for e in examples for w in str(e.answer).split()]
        return sum(losses) / max(1, len(losses))

    def save(self, directory: Path) -> None:
        with atomic_path(Path(directory)) as tmp:
            tmp.mkdir(parents=True)
            (tmp / "counts.json").write_text(json.dumps(self.counts))


class WordBackend:
    TEXT = True
    LOSS_LABEL = "nats per word"

    @classmethod
    def from_config(cls, cfg):
        return load_experiment_data(cfg), cls()

    def initial_model(self, real_texts, seed) -> WordModel:
        return WordModel({})

    def load(self, directory: Path) -> WordModel:
        return WordModel(json.loads((Path(directory) / "counts.json").read_text()))


@pytest.fixture(autouse=True)
def words_backend(monkeypatch):
    """The word-count backend, registered for each test (the registry is restored after it)."""
    monkeypatch.setattr(backend_registry, "_BACKENDS", dict(backend_registry._BACKENDS))
    backend_registry.register_backend("words_for_fresh_real")(WordBackend)


def _sciq(folder: Path, tag: str, n_train: int, n_test: int) -> str:
    """A local SciQ-format dataset of unique questions (train.json, test.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        records = [{"question": f"{tag} {split} {i}?", "correct_answer": f"{tag}{split}{i}"} for i in range(n)]
        (folder / f"{split}.json").write_text(json.dumps(records))
    return str(folder)


def _config(root: Path, n_train=(40, 40, 30), fresh=True, **changes) -> dict:
    def task(i, tag, size):
        return {"name": "sciq", "source": "local", "path": _sciq(root / tag, tag, n_train[i], 5), "train_size": size}

    data = {
        "name": "fresh",
        "generations": 2,
        "alpha": 0.5,
        "fresh_real": fresh,
        "entities": [{"name": "e0", "task": task(0, "A", 10)}, {"name": "e1", "task": task(1, "B", 10)}],
        "public": task(2, "P", 8),
        "mixing": {"paradigm": "weighted-loss", "n": 1},
        "model": {"backend": "words_for_fresh_real"},
        "generation": {"num_prompts": 6},
        "evaluation": {"embedding_prompts": 0},
    }
    data.update(changes)
    return data


def _real(examples, tag):
    return [e.prompt for e in examples if e.source.startswith("real:") and e.prompt.startswith(f"Question: {tag} ")]


def test_each_generation_trains_on_new_real_examples(tmp_path):
    cfg = parse_config(_config(tmp_path / "data"))
    store = run_workflow(cfg, tmp_path / "run")
    data, backend = build(cfg)
    wf = Workflow(cfg, data, backend, RunStore(store.root))
    today = load_experiment_data(cfg)  # what a run without fresh_real trains on at every generation
    for k, tag in enumerate(("A", "B")):
        seen: set[str] = set()
        public_seen: set[str] = set()
        for t in range(3):
            examples = wf._training_set(t, k, wf._pools(t) if t else [])[0]  # weighted-loss: every example
            private, public = _real(examples, tag), _real(examples, "P")
            assert len(private) == len(set(private)) == 10 and len(public) == len(set(public)) == 8
            if t == 0:
                assert private == [e.prompt for e in today.private[k].train]
                assert public == [e.prompt for e in today.public.train]
            assert not seen & set(private) and not public_seen & set(public)  # disjoint from earlier generations
            assert all(" train " in p for p in private + public)  # never a test example
            if t:  # the pool's prompts come from the entity's real data of that generation
                assert set(wf._pool_prompts(t, k)) <= set(private)
                assert {r["prompt"] for r in _pool(store, t, f"e{k}")} <= set(private)
            seen |= set(private)
            public_seen |= set(public)
    # every entity reads the same public chunk at a generation
    assert _real(wf._training_set(1, 0, wf._pools(1))[0], "P") == _real(wf._training_set(1, 1, wf._pools(1))[0], "P")


def _pool(store, t, name):
    from crossgen.io import read_jsonl

    return read_jsonl(store.pool_path(t, name))


def test_generation0_is_shared_and_later_generations_differ(tmp_path):
    fresh = parse_config(_config(tmp_path / "data"))
    reuse = parse_config(_config(tmp_path / "data", fresh=False))
    assert fresh.generation0_key() == reuse.generation0_key()
    a = pd.read_csv(run_workflow(fresh, tmp_path / "fresh").root / "losses.csv")
    b = pd.read_csv(run_workflow(reuse, tmp_path / "reuse").root / "losses.csv")
    pd.testing.assert_frame_equal(a[a.generation == 0], b[b.generation == 0])
    assert not a[a.generation == 2].loss.equals(b[b.generation == 2].loss)
    data, _ = build(reuse)
    assert data.fresh is None and data.private_train(0, 2) is data.private[0].train  # the default: today's data


def test_too_small_dataset_is_refused_before_the_run_starts(tmp_path):
    cfg = parse_config(_config(tmp_path / "data", n_train=(40, 25, 30)))
    with pytest.raises(InputError) as info:
        run_workflow(cfg, tmp_path / "run")
    assert str(info.value) == (
        "invalid fresh_real: True (allowed: datasets with enough training examples: entity e1 (task sciq) needs "
        "3 generations x 10 = 30, and its train split has 25: generation 0's 10 and 15 more that repeat none of "
        "them and no test prompt)"
    )
    assert not (tmp_path / "run").exists()
    public = parse_config(_config(tmp_path / "data2", n_train=(40, 40, 23)))
    with pytest.raises(
        InputError, match=r"the public data \(task sciq\) needs 3 generations x 8 = 24, and its train split has 23:"
    ):
        build(public)


def test_a_worker_rebuilding_the_data_gets_the_same_chunks(tmp_path):
    cfg = parse_config(_config(tmp_path / "data"))
    a, _ = build(cfg)
    b, _ = build(parse_config(cfg.model_dump(mode="json")))
    assert a.fresh == b.fresh
    other_seed, _ = build(parse_config({**cfg.model_dump(mode="json"), "seed": 1}))
    assert other_seed.fresh is not None and other_seed.fresh.private[0][1] != a.fresh.private[0][1]


def test_fresh_chunks_skip_repeats_and_test_prompts():
    def ex(i, answer="a"):
        return Example(f"p{i}", answer)

    first = [ex(0), ex(1)]
    dataset = [ex(0), ex(1), ex(2), ex(2), ex(3), ex(1), ex(4), ex(5), ex(6), ex(2, "b")]
    chunks = fresh_chunks("x", dataset, first, {"p5"}, 3, seed=0)
    assert chunks[0] == first and [len(c) for c in chunks] == [2, 2, 2]
    later = [e for c in chunks[1:] for e in c]
    assert len(set(later)) == 4 and not set(later) & set(first)
    assert ex(5) not in later  # a test prompt
    assert set(later) <= {ex(2), ex(3), ex(4), ex(6), ex(2, "b")}  # the repeats of p2 "a", p1 and p0 dropped
    assert fresh_chunks("x", dataset, first, {"p5"}, 3, seed=0) == chunks  # seeded
    with pytest.raises(
        InputError, match=r"needs 4 generations x 2 = 8, and its train split has 7: generation 0's 2 and 5 more "
    ):
        fresh_chunks("x", dataset, first, {"p5"}, 4, seed=0)


LINEAR = {"backend": "linear", "linear": {"d": 4, "rank": 2, "n_private": 12, "n_public": 6, "sigma2": 1.0}}


def test_linear_fresh_real_is_new_noise_at_the_same_features():
    """The theory's fresh-real case: generation 0 is a run without fresh_real; generation t >= 1
    has the same features and new responses; rebuilding the data (a worker, a resume) gives the
    same draws."""
    from crossgen.backends.linear import linear_data

    cfg = parse_config(tiny_linear(fresh_real=True, model=LINEAR))
    data, _ = linear_data(cfg)
    fixed, _ = linear_data(parse_config(tiny_linear(model=LINEAR)))
    assert fixed.fresh is None
    again, _ = linear_data(cfg)
    rows = lambda examples: [(e.prompt.tolist(), e.answer) for e in examples]
    for k in range(cfg.K):
        assert rows(data.private_train(k, 0)) == rows(fixed.private[k].train)
        assert rows(data.private[k].test) == rows(fixed.private[k].test)
        chunks = [data.private_train(k, t) for t in range(cfg.generations + 1)]
        for t, chunk in enumerate(chunks):
            assert [e.prompt.tolist() for e in chunk] == [e.prompt.tolist() for e in chunks[0]]
            answers = [e.answer for e in chunk]
            assert answers == [e.answer for e in again.private_train(k, t)]
            assert t == 0 or len(set(answers) & {e.answer for c in chunks[:t] for e in c}) == 0
    assert rows(data.public_train(0)) == rows(fixed.public.train)
    assert [e.answer for e in data.public_train(2)] != [e.answer for e in data.public_train(1)]


def test_linear_loop_with_fresh_real_matches_the_fresh_real_theory(tmp_path):
    """Averaged over seeds, the loop's parameter error with fresh_real equals the theory's
    fresh-real MSE (z-scores over 200 runs; 4 x 2 values, |z| < 4). Power: the theory with the
    real data drawn once (what the loop would compute if it reused generation 0's noise) is
    rejected at generation 3 (|z| > 4 for both entities)."""
    from safetensors.numpy import load_file

    from crossgen.backends.linear import feature_system
    from crossgen.experiment import run_experiment
    from crossgen.theory import trajectory

    runs, T = 200, 3
    setting = {"alpha": 0.6, "beta": 0.4, "generations": T, "fresh_real": True, "model": LINEAR}
    system = feature_system(parse_config(tiny_linear(**setting)))
    errors = np.zeros((runs, T + 1, 2))
    for seed in range(runs):
        store = run_experiment(parse_config(tiny_linear(seed=seed, **setting)), tmp_path / f"s{seed}")
        for t in range(T + 1):
            for k, name in enumerate(("e0", "e1")):
                theta = load_file(str(store.model_dir(t, name) / "model.safetensors"))["theta"]
                errors[seed, t, k] = np.sum((theta - system.theta) ** 2)
    stderr = errors.std(0, ddof=1) / np.sqrt(runs)
    fresh = trajectory(system, 0.6, 0.4, T, fresh_real=True).mse
    z = (errors.mean(0) - fresh) / stderr
    assert np.abs(z).max() < 4, z
    fixed = trajectory(system, 0.6, 0.4, T).mse
    z_fixed = (errors.mean(0) - fixed) / stderr
    assert (np.abs(z_fixed[T]) > 4).all(), z_fixed
