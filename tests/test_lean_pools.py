"""Lean pools: only the pool entries that some update draws are completed. The draw is the
one training makes with whole pools (same seeds, same entries), and each completed entry is
a fresh sample of its generator, so a lean run equals a whole-pool run in distribution."""

import json

import numpy as np
import pytest
from scipy import stats

from crossgen.config import parse_config
from crossgen.experiment import run_experiment
from crossgen.io import read_jsonl
from crossgen.workflow.loop import Workflow
from crossgen.workflow.run import build
from crossgen.workflow.store import RunStore
from helpers import tiny_linear

SETTINGS = dict(
    generations=2,
    mixing={"paradigm": "accumulate-subsample", "n": 40},
    generation={"num_prompts": 1000},
    model={"backend": "linear", "linear": {"d": 4, "rank": 2, "n_private": 200, "n_public": 50}},
)


def _run(tmp_path, lean: bool):
    cfg = parse_config(tiny_linear(**{**SETTINGS, "generation": {"num_prompts": 1000, "lean": lean}}))
    root = run_experiment(cfg, tmp_path / ("lean" if lean else "full")).root
    data, backend = build(cfg)
    return cfg, Workflow(cfg, data, backend, RunStore(root))


def _prompts(examples):
    return [np.asarray(e.prompt).tobytes() for e in examples]


def test_lean_draws_the_same_entries_and_completes_only_those(tmp_path):
    cfg, lean = _run(tmp_path, True)
    _, full = _run(tmp_path, False)
    manifest = json.loads((lean.store.root / "manifest.json").read_text())
    for t in (1, 2):
        for k in range(cfg.K):
            drawn_lean = lean._training_set(t, k, lean._pools(t))[0]
            drawn_full = full._training_set(t, k, full._pools(t))[0]
            assert _prompts(drawn_lean) == _prompts(drawn_full)  # the very same draw
            assert all(e.answer is not None for e in drawn_lean)
        for name in ("e0", "e1"):
            counts = manifest["generations"][str(t)]["pools"][name]
            assert counts["pool"] == 200 and counts["generated"] == len(read_jsonl(lean.store.pool_path(t, name)))
            # 40 draws per entity, half synthetic, split over 2 pools: at most 2 x 10 entries of 200
            assert 0 < counts["generated"] <= 40 < len(read_jsonl(full.store.pool_path(t, name)))


def test_lean_completions_are_fresh_samples_of_their_generator(tmp_path):
    """Each completed entry is x.theta_j + N(0, sigma2) under model j of the previous
    generation: residuals pass a Kolmogorov-Smirnov test against N(0, sigma2)."""
    cfg, lean = _run(tmp_path, True)
    residuals = []
    for t in (1, 2):
        for name in ("e0", "e1"):
            theta = lean.backend.load(lean.store.model_dir(t - 1, name)).theta
            for row in read_jsonl(lean.store.pool_path(t, name)):
                residuals.append(row["answer"] - float(np.dot(row["prompt"], theta)))
    sigma = np.sqrt(cfg.model.linear.sigma2)
    # p > 1e-3: a false alarm once in a thousand runs; a wrong generator (e.g. entries
    # completed by the wrong model, or noise reused across entries) gives p ~ 0.
    assert stats.kstest(np.array(residuals) / sigma, "norm").pvalue > 1e-3


@pytest.mark.parametrize("paradigm", ["weighted-loss", "accumulate"])
def test_paradigms_that_need_whole_pools_complete_them(tmp_path, paradigm):
    changes = {**SETTINGS, "mixing": {"paradigm": paradigm, "n": 40}}
    root = run_experiment(parse_config(tiny_linear(**changes)), tmp_path / paradigm).root
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["generations"]["1"]["pools"]["e0"] == {"generated": 200, "pool": 200}


class _Stepped:
    STEPPED = True  # an optimizer-loop backend: train() sees steps x batch x accumulation


def test_lean_runs_of_optimizer_backends_draw_only_what_the_optimizer_sees():
    changes = {
        "mixing": {"paradigm": "accumulate-subsample", "n": 12500},
        "training": {"max_steps": 100, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 2},
    }
    cfg = parse_config(tiny_linear(**changes))
    data, linear = build(cfg)
    assert Workflow(cfg, data, _Stepped(), None)._draw_size(1, 0) == 400  # the paper's 100 x 2 x 2
    assert Workflow(cfg, data, linear, None)._draw_size(1, 0) == 12500  # the linear fit uses every draw
    whole = parse_config(tiny_linear(**changes, generation={"lean": False}))
    assert Workflow(whole, data, _Stepped(), None)._draw_size(1, 0) == 12500
