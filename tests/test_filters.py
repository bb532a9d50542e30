"""Pool filters (crossgen.workflow.filters): each built-in keeps exactly what it should on
hand-made rows; user functions; config forms and errors; and runs whose pools hold only the
kept completions, with the counts in the manifest and pool_counts.csv."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crossgen.backends import registry as backend_registry
from crossgen.backends.base import TrainStats
from crossgen.config import FilterConfig, parse_config
from crossgen.data import Example, derive_seed
from crossgen.errors import InputError
from crossgen.experiment import run_experiment
from crossgen.io import atomic_path, read_jsonl
from crossgen.tasks import get_task, load_experiment_data
from crossgen.workflow.filters import PoolContext, apply_filters, counts_path, dedupe, length, likelihood, verify
from crossgen.workflow.loop import POOL, Workflow
from crossgen.workflow.run import build, run_workflow
from crossgen.workflow.store import RunStore
from helpers import tiny_linear

ARITHMETIC = get_task("offline_arithmetic")


def _example(gold: int) -> Example:
    return Example(
        f"Question: q{gold}?\nAnswer:", f" {gold} #### {gold}", "real:offline_arithmetic", {"gold": str(gold)}
    )


def _rows(answers, prompts=None):
    prompts = prompts or [f"Question: q{i}?\nAnswer:" for i in range(len(answers))]
    return [
        {"prompt": p, "answer": a, "source": "synthetic:e:0", "index": i}
        for i, (p, a) in enumerate(zip(prompts, answers))
    ]


# -- the built-ins on hand-made rows ---------------------------------------------------------


def test_verify_keeps_exactly_the_right_answers():
    examples = [_example(i) for i in range(5)]
    rows = _rows(
        [
            " 0 #### 0",  # right
            " 1 + 1 = 2 #### 2",  # wrong: gold is 1
            " 2 #### 2\nQuestion: next? #### 7",  # right: cut before the next question, as the accuracy metric does
            " three",  # no final number
            " x #### 4",  # right
        ]
    )
    kept = verify(rows, PoolContext("e", ARITHMETIC, examples))
    assert [r["index"] for r in kept] == [0, 2, 4]
    assert kept[0] is rows[0]  # the rows themselves, unchanged


def test_verify_uses_the_task_of_multiple_choice_stand_ins():
    science = get_task("offline_science")
    example = Example(
        "Question: what is a snail?\nAnswer:", " mollusk", "", {"choices": ("mollusk", "fish"), "gold": 0}
    )
    rows = _rows([" mollusk.", " fish", " Mollusk, a soft animal"], [example.prompt] * 3)
    kept = verify(rows, PoolContext("e", science, [example] * 3))
    assert [r["index"] for r in kept] == [0, 2]


def test_dedupe_drops_exact_repeats_of_prompt_and_completion_only():
    rows = _rows([" a", " a", " b", " a", " a"], ["p1", "p1", "p1", "p2", "p1"])
    assert [r["index"] for r in dedupe(rows)] == [0, 2, 3]  # first occurrences; " a" after p2 is new


def test_length_bounds_are_inclusive_characters_of_the_completion():
    rows = _rows(["", " ab", " abcd", " abcdefgh"])
    assert [r["index"] for r in length(rows, 3, 5)] == [1, 2]
    assert [r["index"] for r in length(rows, None, 3)] == [0, 1]
    assert [r["index"] for r in length(rows, 5, None)] == [2, 3]


class _Scorer:
    """A model whose continuation log-likelihoods are given: (sum, tokens) per completion."""

    def __init__(self, table):
        self.table = table
        self.calls = []

    def continuation_logprobs(self, prompts, continuations, batch_size):
        self.calls.append(batch_size)
        return [self.table[c] for c in continuations]


def test_likelihood_keeps_the_most_likely_fraction_by_mean_token_log_likelihood():
    table = {
        " a": (-4.0, 4),  # mean -1.0
        " b": (-1.0, 4),  # mean -0.25
        " c": (-6.0, 2),  # mean -3.0 (sum would rank it below " a" too, but mean decides)
        " d": (-2.0, 1),  # mean -2.0 (sum -2 would beat " a")
        " e": (0.0, 0),  # empty: least likely
        " f": (-0.5, 2),  # mean -0.25, ties with " b": the earlier entry wins
    }
    rows = _rows(list(table))
    model = _Scorer(table)
    ctx = PoolContext("e", None, [], model, batch_size=7)
    assert [r["answer"] for r in likelihood(rows, ctx, 0.5)] == [" a", " b", " f"]  # 3 of 6, in pool order
    assert [r["answer"] for r in likelihood(rows, ctx, 0.3)] == [" b", " f"]  # ceil(1.8) = 2
    assert [r["answer"] for r in likelihood(rows, ctx, 0.1)] == [" b"]  # ceil(0.6) = 1
    assert [r["answer"] for r in likelihood(rows, ctx, 1.0)] == list(table)
    assert [r["answer"] for r in likelihood(rows, ctx, 4 / 6)] == [" a", " b", " d", " f"]  # exactly 4
    assert model.calls[0] == 7
    assert likelihood([], ctx, 0.5) == []


def keep_even(rows):
    """A user filter (module:function): entries at even positions of the pool."""
    return [r for r in rows if r["index"] % 2 == 0]


def keep_nothing(rows):
    return []


def edit_and_reverse(rows):
    """Returns edited copies in reverse order: a filter selects, so edits and order are ignored."""
    return [{**r, "answer": "edited"} for r in reversed(rows) if r["index"] != 1]


def not_rows(rows):
    return [{"prompt": "made up", "answer": "x", "source": "s"}]


def test_filters_apply_in_order_and_count_each_step():
    examples = [_example(i) for i in range(6)]
    rows = _rows(
        [" 0 #### 0", " 0 #### 0", " 2 #### 2", " wrong", " 4 #### 4", " 5 #### 5"],
        [examples[0].prompt] * 2 + [e.prompt for e in examples[2:]],
    )
    specs = [
        FilterConfig(name="dedupe"),
        FilterConfig(name="verify"),
        FilterConfig(name="test_filters:keep_even"),
        FilterConfig(name="length", max_chars=9),
    ]
    kept, counts = apply_filters(specs, rows, PoolContext("e", ARITHMETIC, examples))
    assert [r["index"] for r in kept] == [0, 2, 4]
    assert counts == {
        "generated": 6,
        "kept": 3,
        "steps": [
            {"filter": "dedupe", "kept": 5},
            {"filter": "verify", "kept": 4},
            {"filter": "test_filters:keep_even", "kept": 3},
            {"filter": "length(max_chars=9)", "kept": 3},
        ],
    }


def test_user_filters_select_rows_and_are_checked():
    rows = _rows([" a", " b", " c"])
    ctx = PoolContext("e", None, [])
    kept, _ = apply_filters([FilterConfig(name="test_filters:edit_and_reverse")], rows, ctx)
    assert kept == [rows[0], rows[2]]  # the original rows, in pool order
    with pytest.raises(ValueError, match="not one of the rows it was given"):
        apply_filters([FilterConfig(name="test_filters:not_rows")], rows, ctx)


# -- config ------------------------------------------------------------------------------------


def test_config_forms_and_entity_overrides():
    data = tiny_linear(generation={"num_prompts": 1000, "filters": ["dedupe", {"name": "test_filters:keep_even"}]})
    data["entities"][1]["filters"] = []
    cfg = parse_config(data)
    assert [f.name for f in cfg.filters_for(0)] == ["dedupe", "test_filters:keep_even"]
    assert cfg.filters_for(1) == []
    text = tiny_linear(
        model={"backend": "hf", "scratch": {"n_layer": 1}},
        generation={"filters": ["verify", {"length": {"min_chars": 2, "max_chars": 9}}, {"likelihood": 0.25}]},
    )
    specs = parse_config(text).generation.filters
    assert [(f.name, f.min_chars, f.max_chars, f.keep) for f in specs] == [
        ("verify", None, None, None),
        ("length", 2, 9, None),
        ("likelihood", None, None, 0.25),
    ]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (
            ["nosuch_module_xyz:f"],
            "invalid generation.filters.0.name: nosuch_module_xyz:f (allowed: module:function of an importable module "
            "(ModuleNotFoundError: No module named 'nosuch_module_xyz'))",
        ),
        (
            ["test_filters:no_such_function"],
            "invalid generation.filters.0.name: test_filters:no_such_function (allowed: module:function of an "
            "importable module (AttributeError: module 'test_filters' has no attribute 'no_such_function'))",
        ),
        (
            ["test_filters:ARITHMETIC"],
            "invalid generation.filters.0.name: test_filters:ARITHMETIC (allowed: module:function naming a callable)",
        ),
        (
            ["dedup"],
            "invalid generation.filters.0.name: dedup (allowed: one of verify, dedupe, length, likelihood, or "
            "module:function (verify, dedupe, {name: length, min_chars: N, max_chars: M}, {name: likelihood, "
            "keep: q} or module:function (a function of the list of pool rows that returns the rows to keep)))",
        ),
        (
            ["length"],
            "invalid generation.filters.0.min_chars: None (allowed: min_chars and/or max_chars for filter 'length')",
        ),
        (
            [{"name": "length", "min_chars": 5, "max_chars": 2}],
            "invalid generation.filters.0.max_chars: 2 (allowed: a number >= min_chars (5))",
        ),
        (
            ["likelihood"],
            "invalid generation.filters.0.keep: None (allowed: the fraction of completions kept, a number in (0, 1], "
            "for filter 'likelihood')",
        ),
        (
            [{"name": "dedupe", "keep": 0.5}],
            "invalid generation.filters.0.keep: 0.5 (allowed: no parameter keep for filter 'dedupe' (verify, dedupe, "
            "{name: length, min_chars: N, max_chars: M}, {name: likelihood, keep: q} or module:function (a function "
            "of the list of pool rows that returns the rows to keep)))",
        ),
        (
            ["verify"],
            "invalid generation.filters.0.name: verify (allowed: dedupe or module:function with model.backend 'linear' "
            "(verify, length and likelihood read text))",
        ),
    ],
)
def test_bad_filters_are_one_line_input_errors(filters, message):
    with pytest.raises(InputError) as info:
        parse_config(tiny_linear(generation={"filters": filters}))
    assert str(info.value) == message


def test_filters_are_not_part_of_the_generation0_key():
    data = tiny_linear(generation={"num_prompts": 1000, "filters": ["dedupe"]})
    data["entities"][0]["filters"] = ["test_filters:keep_even"]
    assert parse_config(data).generation0_key() == parse_config(tiny_linear()).generation0_key()


# -- runs ------------------------------------------------------------------------------------


class OracleModel:
    """Answers a prompt right (the task's answer) or wrong, by a seeded coin; trains nothing."""

    def __init__(self, answers: dict):
        self.answers = answers

    def train(self, examples, cfg, seed, weights=None, progress=None) -> TrainStats:
        return TrainStats(steps=1, tokens=len(examples), seconds=0.0, final_loss=0.0)

    def generate(self, prompts, cfg, seed, max_new_tokens=None) -> list[str]:
        rng = random.Random(seed)
        return [self.answers[p] if rng.random() < 0.4 else " 0 #### -1" for p in prompts]

    def score(self, examples, batch_size=0) -> float:
        return 0.0

    def save(self, directory: Path) -> None:
        with atomic_path(Path(directory)) as tmp:
            tmp.mkdir(parents=True)
            (tmp / "oracle.json").write_text("{}")


class OracleBackend:
    TEXT = True
    LOSS_LABEL = "none"

    def __init__(self, answers: dict):
        self.answers = answers

    @classmethod
    def from_config(cls, cfg):
        data = load_experiment_data(cfg)
        return data, cls({e.prompt: e.answer for task in data.tasks for e in task.train})

    def initial_model(self, real_texts, seed) -> OracleModel:
        return OracleModel(self.answers)

    def load(self, directory: Path) -> OracleModel:
        assert (Path(directory) / "oracle.json").is_file()
        return OracleModel(self.answers)


@pytest.fixture
def oracle(monkeypatch):
    """The oracle backend, registered for one test (the registry is restored after it)."""
    monkeypatch.setattr(backend_registry, "_BACKENDS", dict(backend_registry._BACKENDS))
    backend_registry.register_backend("oracle_for_filters")(OracleBackend)


def _oracle_config(**changes):
    base = {
        "name": "oracle",
        "generations": 2,
        "alpha": 0.5,
        "entities": [
            {
                "name": "math",
                "task": {"name": "offline_arithmetic", "source": "offline", "train_size": 60, "test_size": 5},
            },
            {
                "name": "arc",
                "task": {"name": "offline_reasoning", "source": "offline", "train_size": 60, "test_size": 5},
            },
        ],
        "public": {"name": "offline_stories", "source": "offline", "train_size": 30, "test_size": 5},
        "mixing": {"paradigm": "accumulate-subsample", "n": 50},
        "model": {"backend": "oracle_for_filters"},
        "generation": {"num_prompts": 40, "filters": ["verify"]},
        "evaluation": {"embedding_prompts": 0, "accuracy": False, "reference_perplexity": False},
    }
    base.update(changes)
    return parse_config(base)


def test_a_run_with_verify_keeps_exactly_the_verified_completions(tmp_path, oracle):
    """The whole pool is completed (lean is on by default but filters turn it off), and the
    pool file holds exactly the completions the task verifies, in pool order."""
    cfg = _oracle_config()
    store = run_workflow(cfg, tmp_path / "run")
    data, backend = build(cfg)
    wf = Workflow(cfg, data, backend, RunStore(store.root))
    assert not wf._lean()
    manifest = store.manifest()
    for t in (1, 2):
        for j, (name, task) in enumerate([("math", "offline_arithmetic"), ("arc", "offline_reasoning")]):
            examples = wf._pool_examples(t, j)
            prompts = [e.prompt for e in examples]
            generated = backend.load(store.model_dir(t - 1, name)).generate(
                prompts, cfg.generation, seed=derive_seed(cfg.seed, t, j, POOL, 1)
            )
            right = [i for i, (c, e) in enumerate(zip(generated, examples)) if get_task(task).verify(c, e)]
            assert 5 < len(right) < 35  # the coin: some right, some wrong
            pool = read_jsonl(store.pool_path(t, name))
            assert [r["index"] for r in pool] == right
            assert [r["answer"] for r in pool] == [generated[i] for i in right]
            assert all(r["prompt"] == prompts[r["index"]] and r["source"] == f"synthetic:{name}:{t - 1}" for r in pool)
            entry = manifest["generations"][str(t)]["pools"][name]
            assert entry == {
                "generated": 40,
                "kept": len(right),
                "pool": 40,
                "steps": [{"filter": "verify", "kept": len(right)}],
            }
            assert json.loads(counts_path(store.pool_path(t, name)).read_text())["kept"] == len(right)
        # what training draws from the pools is only kept completions
        drawn = [
            e for k in range(2) for e in wf._training_set(t, k, wf._pools(t))[0] if e.source.startswith("synthetic")
        ]
        assert drawn and all(e.answer != " 0 #### -1" for e in drawn)
    table = pd.read_csv(store.root / "pool_counts.csv")
    assert list(table.columns) == ["generation", "entity", "pool", "generated", "kept"]
    assert len(table) == 4 and (table.generated == 40).all() and (table.kept < 40).all()
    per_gen = pd.read_csv(store.gen_dir(1) / "pool_counts.csv")
    pd.testing.assert_frame_equal(per_gen, table[table.generation == 1].reset_index(drop=True))


def test_verify_on_a_task_without_answers_is_refused_before_anything_is_written(tmp_path, oracle):
    data = _oracle_config().model_dump(mode="json")
    data["entities"][1]["task"] = {"name": "offline_stories", "source": "offline", "train_size": 30, "test_size": 5}
    data["entities"][1]["filters"] = ["verify"]
    with pytest.raises(InputError) as info:
        run_workflow(parse_config(data), tmp_path / "run")
    assert str(info.value) == (
        "invalid entities.1.filters.0.name: verify (allowed: filters without verify for task offline_stories "
        "(it has no answers to check))"
    )
    assert not (tmp_path / "run").exists()


def test_likelihood_needs_a_text_backend(tmp_path, oracle, monkeypatch):
    cfg = _oracle_config(generation={"num_prompts": 40, "filters": [{"likelihood": 0.5}]})
    monkeypatch.setattr(OracleBackend, "TEXT", False)
    with pytest.raises(
        InputError, match=r"^invalid generation.filters.0.name: likelihood \(allowed: a filter for a text"
    ):
        run_workflow(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_linear_run_with_a_user_filter_and_an_emptied_pool(tmp_path):
    """Entity e0's pool keeps its even entries; e1's filter keeps nothing, so e1's pool is not
    drawn from (its weight goes to the other components) and the run goes on."""
    data = tiny_linear(
        generations=2,
        mixing={"paradigm": "accumulate-subsample", "n": 400},
        model={"backend": "linear", "linear": {"d": 4, "rank": 2, "n_private": 12, "n_public": 6}},
        generation={"num_prompts": 1000, "filters": ["dedupe", "test_filters:keep_even"]},
    )
    data["entities"][1]["filters"] = ["test_filters:keep_nothing"]
    cfg = parse_config(data)
    store = run_experiment(cfg, tmp_path / "run")
    d, backend = build(cfg)
    wf = Workflow(cfg, d, backend, RunStore(store.root))
    for t in (1, 2):
        assert [r["index"] for r in read_jsonl(store.pool_path(t, "e0"))] == list(range(0, 12, 2))
        assert read_jsonl(store.pool_path(t, "e1")) == []
        pools = store.manifest()["generations"][str(t)]["pools"]
        assert pools["e0"]["kept"] == 6 and pools["e1"] == {
            "generated": 12,
            "kept": 0,
            "pool": 12,
            "steps": [{"filter": "test_filters:keep_nothing", "kept": 0}],
        }
        for k in range(2):
            sources = {e.source for e in wf._training_set(t, k, wf._pools(t))[0]}
            assert f"synthetic:e0:{t - 1}" in sources and f"synthetic:e1:{t - 1}" not in sources


def test_tiny_hf_run_filters_keep_exactly_what_they_should(tmp_path):
    """A tiny transformers run with dedupe, length and likelihood: the pools equal the filters
    applied by hand to the completions regenerated from the saved models (likelihoods scored
    by the same models)."""
    pytest.importorskip("transformers")
    from test_workflow_hf import TINY

    data = json.loads(json.dumps(TINY))
    data["generations"] = 1
    data["generation"]["filters"] = ["dedupe", {"length": {"min_chars": 8, "max_chars": 60}}, {"likelihood": 0.5}]
    cfg = parse_config(data)
    store = run_workflow(cfg, tmp_path / "run")
    d, backend = build(cfg)
    wf = Workflow(cfg, d, backend, RunStore(store.root))
    for j, name in enumerate(["science", "arithmetic"]):
        model = backend.load(store.model_dir(0, name))
        prompts = wf._pool_prompts(1, j)
        completions = model.generate(prompts, cfg.generation, seed=derive_seed(cfg.seed, 1, j, POOL, 1))
        seen, rows = set(), []
        for i, (p, c) in enumerate(zip(prompts, completions)):
            if (p, c) not in seen and 8 <= len(c) <= 60:
                rows.append(i)
            seen.add((p, c))
        scores = model.continuation_logprobs([prompts[i] for i in rows], [completions[i] for i in rows], 16)
        means = [s / n if n else -np.inf for s, n in scores]
        best = sorted(sorted(range(len(rows)), key=lambda i: (-means[i], i))[: int(np.ceil(len(rows) / 2))])
        expected = [rows[i] for i in best]
        pool = read_jsonl(store.pool_path(1, name))
        assert [r["index"] for r in pool] == expected
        assert [r["answer"] for r in pool] == [completions[i] for i in expected]
        steps = store.manifest()["generations"]["1"]["pools"][name]["steps"]
        assert [s["kept"] for s in steps][-1] == len(expected) and steps[1]["kept"] == len(rows)


def test_filter_timing_is_small():
    """Filters on a pool of 10,000 rows cost milliseconds (no per-row model calls but likelihood's one batch)."""
    rows = _rows([f" {i % 500}" for i in range(10_000)], [f"p{i % 700}" for i in range(10_000)])
    start = time.perf_counter()
    kept = length(dedupe(rows), 2, 3)
    assert time.perf_counter() - start < 1.0
    assert kept and all(2 <= len(r["answer"]) <= 3 for r in kept)


def test_the_report_shows_a_filtered_run_s_pool_counts(tmp_path):
    """Completions kept / generated per generation and pool, as pool_counts.csv holds them; a
    run without filters has no such table."""
    import pandas as pd

    from crossgen.report import write_run_report

    keep = {"name": "test_filters:keep_even"}
    filtered = run_workflow(parse_config(tiny_linear(generation={"num_prompts": 8, "filters": [keep]})), tmp_path / "f")
    plain = run_workflow(parse_config(tiny_linear()), tmp_path / "p")
    counts = pd.read_csv(filtered.root / "pool_counts.csv")
    assert (counts.kept < counts.generated).any()  # the filter did something to show
    html = write_run_report([filtered.root], tmp_path / "f.html").read_text()
    for r in counts.itertuples():
        assert f"<td>{r.kept} / {r.generated}</td>" in html
    assert "completions kept / generated" in html
    assert "completions kept / generated" not in write_run_report([plain.root], tmp_path / "p.html").read_text()
