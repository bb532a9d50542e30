"""Model-based metrics: task accuracy (option log-likelihoods, greedy exact match) and the
perplexity of completions under a reference model, on fake models and tiny GPT-2s; the
backend's option log-likelihoods against a hand-made forward pass; a tiny run end to end."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest

from crossgen.config import parse_config
from crossgen.data import Example, ExperimentData, TaskSplit
from crossgen.metrics.accuracy import (
    ACCURACY,
    REFERENCE,
    ModelMetricWriter,
    accuracy_rows,
    choice_outcomes,
    exact_match,
    multiple_choice_rows,
    part_path,
)
from crossgen.metrics.reference import reference_rows
from crossgen.metrics.table import COLUMNS, family_path, interval
from crossgen.tasks.gsm8k import GSM8K
from crossgen.tasks.offline import arithmetic, reasoning, science, stories
from helpers import tiny_linear

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TEST_SIZE = 40


def run_config(**evaluation) -> dict:
    """A tiny two-entity hf config (only its evaluation settings matter without a run)."""
    return {
        "name": "acc",
        "seed": 0,
        "device": "cpu",
        "generations": 2,
        "entities": [
            {"name": "science", "task": {"name": "offline_science", "source": "offline", "train_size": 150}},
            {"name": "arithmetic", "task": {"name": "offline_arithmetic", "source": "offline", "train_size": 150}},
        ],
        "public": {"name": "offline_stories", "source": "offline", "train_size": 150},
        "mixing": {"paradigm": "accumulate-subsample", "n": 32},
        "model": {
            "backend": "hf",
            "scratch": {"n_layer": 1, "n_head": 2, "n_embd": 32, "n_positions": 128, "vocab_size": 300},
        },
        "initial_training": {"max_steps": 10, "learning_rate": 3e-3, "per_device_train_batch_size": 8},
        "training": {"max_steps": 2, "learning_rate": 1e-3, "per_device_train_batch_size": 8},
        "generation": {"num_prompts": 8, "max_new_tokens": 12, "batch_size": 16},
        "evaluation": {"test_size": TEST_SIZE, "batch_size": 16, "embedding_prompts": 0, **evaluation},
        "resources": {"cpus": 1, "threads": 1},
    }


def split(name: str, module) -> TaskSplit:
    train, test = module.generate(0, 20, 60)
    return TaskSplit(name, train, test)


@pytest.fixture(scope="module")
def data() -> ExperimentData:
    """Science and arithmetic privately, reasoning as a third task, stories public."""
    private = [
        split("offline_science", science),
        split("offline_arithmetic", arithmetic),
        split("offline_reasoning", reasoning),
    ]
    return ExperimentData(private, split("offline_stories", stories))


class Oracle:
    """Knows every answer: gives the gold option the highest log-likelihood and completes
    every arithmetic prompt with its worked answer. `wrong` makes it prefer the option after
    gold (by far) and answer a number that is never right."""

    def __init__(self, data: ExperimentData, wrong: bool = False):
        self.by_prompt = {e.prompt: e for task in data.tasks for e in task.test}
        self.wrong = wrong
        self.calls: list[str] = []

    def option_logprobs(self, prompts, options_per_prompt, batch_size):
        self.calls.append("option_logprobs")
        out = []
        for p, options in zip(prompts, options_per_prompt):
            gold = self.by_prompt[p].meta["gold"]
            best = (gold + 1) % len(options) if self.wrong else gold
            # the preferred option is also the best per character (others are far below)
            out.append([0.0 if i == best else -100.0 for i in range(len(options))])
        return out

    def generate(self, prompts, cfg, seed, max_new_tokens=None):
        self.calls.append(f"generate:{cfg.temperature}")
        if self.wrong:
            return [" 1 + 1 = 2 #### -12345" for _ in prompts]
        return [self.by_prompt[p].answer + "\nQuestion: next #### -1" for p in prompts]


def by_metric(rows: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["dataset"], r["metric"]): r for r in rows}


def test_a_model_that_always_answers_correctly_scores_one(data):
    cfg = parse_config(run_config())
    oracle = Oracle(data)
    rows = by_metric(accuracy_rows(oracle, data, 3, "m", cfg))
    assert set(rows) == {
        ("offline_science", "acc"),
        ("offline_science", "acc_norm"),
        ("offline_science", "chance"),
        ("offline_reasoning", "acc"),
        ("offline_reasoning", "acc_norm"),
        ("offline_reasoning", "chance"),
        ("offline_arithmetic", "exact_match"),
    }  # no rows for the stories: nothing to answer
    for key, r in rows.items():
        assert r["generation"] == 3 and r["model"] == "m"
        if key[1] != "chance":
            assert (r["value"], r["low"], r["high"]) == (1.0, 1.0, 1.0), key
    assert rows[("offline_science", "chance")]["value"] == pytest.approx(0.25)  # 3 distractors
    n = [len(e.meta["choices"]) for e in data.private[2].test[:TEST_SIZE]]
    assert rows[("offline_reasoning", "chance")]["value"] == pytest.approx(np.mean([1 / k for k in n]))
    assert "generate:0.0" in oracle.calls  # greedy decoding


def test_a_model_preferring_a_fixed_wrong_option_scores_zero(data):
    rows = by_metric(accuracy_rows(Oracle(data, wrong=True), data, 0, "m", parse_config(run_config())))
    for key, r in rows.items():
        if key[1] != "chance":
            assert (r["value"], r["low"], r["high"]) == (0.0, 0.0, 0.0), key


def test_a_half_right_model_gets_an_interval_around_its_accuracy():
    acc, norm = choice_outcomes([[0.0, -1.0]] * 20 + [[-1.0, 0.0]] * 20, [("a", "b")] * 40, [0] * 40)
    assert acc.tolist() == norm.tolist() == [1.0] * 20 + [0.0] * 20
    value, low, high = interval(acc)
    assert value == 0.5 and 0.0 < low < 0.5 < high < 1.0


def test_length_normalisation_changes_the_choice():
    # raw: option 0 (-6 > -10); per character: option 1 (-10/10 = -1 > -6/2 = -3)
    acc, norm = choice_outcomes([[-6.0, -10.0]], [("ab", "abcdefghij")], [1])
    assert acc.tolist() == [0.0] and norm.tolist() == [1.0]
    acc, norm = choice_outcomes([[-6.0, -10.0]], [("ab", "abcdefghij")], [0])
    assert acc.tolist() == [1.0] and norm.tolist() == [0.0]

    class Fixed:
        def option_logprobs(self, prompts, options_per_prompt, batch_size):
            assert options_per_prompt == [[" ab", " abcdefghij"]]  # each option after a space
            return [[-6.0, -10.0]]

    e = Example("Question: q?\nAnswer:", " abcdefghij", "real:x", {"choices": ("ab", "abcdefghij"), "gold": 1})
    rows = {r["metric"]: r["value"] for r in multiple_choice_rows(Fixed(), [e], 0, "m", "x", 4)}
    assert rows == {"acc": 0.0, "acc_norm": 1.0, "chance": 0.5}


def test_gsm8k_exact_match_reads_the_final_number_before_the_next_question():
    task = GSM8K()
    example = task.to_example(
        {"question": "Tom has 600 and 400 more. How many?", "answer": "600 + 400 = <<600+400=1000>>1000\n#### 1,000"},
        "test",
        "real:gsm8k",
    )
    completions = [
        " 600 + 400 = 1000\n#### 1000",  # right
        " #### 1,000.0",  # right: commas and a trailing .0 are canonicalised
        " #### $1000 dollars",  # right
        " 1000",  # wrong: no ####
        " #### 999",  # wrong number
        " #### 1000\n\nQuestion: Another one? #### 7",  # right: cut at the next question
        " #### 7\nQuestion: Another one? #### 1000",  # wrong: its own answer is 7
        "",  # wrong
    ]
    got = exact_match("gsm8k", completions, [example] * len(completions))
    assert got.tolist() == [1, 1, 1, 0, 0, 1, 0, 0]
    arith = arithmetic.generate(0, 5, 5)[1][0]
    gold = arith.meta["gold"]
    assert exact_match("offline_arithmetic", [f" x #### {gold}", f" #### {int(gold) + 1}"], [arith] * 2).tolist() == [
        1,
        0,
    ]


def test_offline_science_options_leave_the_questions_unchanged():
    train, test = science.generate(0, 300, 200)
    for e in train + test:
        relation = next(r for r, s, a in science.FACTS if e.answer == f" {a}")
        assert len(e.meta["choices"]) == science.DISTRACTORS + 1 == len(set(e.meta["choices"]))
        assert f" {e.meta['choices'][e.meta['gold']]}" == e.answer
        # distractors are answers of the same kind (same relation) when the answer is unique to it
        kinds = {r for r, _, a in science.FACTS if f" {a}" == e.answer}
        if kinds == {relation}:
            same = {a for r, _, a in science.FACTS if r == relation}
            assert set(e.meta["choices"]) <= same
    golds = [e.meta["gold"] for e in test]
    assert len(set(golds)) == 4  # the answer's position varies
    task = science.OfflineScience()
    e = test[0]
    assert task.verify(e.answer, e) and not task.verify(" (A)", e) and not task.verify(" nothing", e)


# -- the transformers backend ----------------------------------------------------------------
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

PROMPTS = [
    "Question: What does a leaf make?\nAnswer:",
    "Q:",
    "Question: Which of these is the heaviest?\nChoices: (A) feather (B) piano (C) hammer\nAnswer:",
    "",
]
OPTIONS = [[" sugar", " honey and more honey", " x"], [" a"], [" feather", " piano", " hammer"], [" start", " go on"]]


@pytest.fixture(scope="module")
def tiny():
    from crossgen.backends.hf import HFBackend
    from crossgen.config import ArchitectureConfig, ModelConfig

    torch.set_num_threads(1)
    arch = ArchitectureConfig(n_layer=1, n_head=2, n_embd=32, n_positions=64, vocab_size=320)
    backend = HFBackend(ModelConfig(backend="hf", scratch=arch), device="cpu", threads=1)
    texts = [p + o for p, options in zip(PROMPTS, OPTIONS) for o in options] * 3 + ["The quick brown fox."]
    return backend.initial_model(texts, seed=1)


def hand_logprob(model, prompt: str, option: str) -> float:
    """One unpadded sequence: sum of log p(option token | everything before)."""
    p = model.encode_prompts([prompt])[0]
    a = model.tokenizer(option, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + a])
    with torch.no_grad():
        logp = torch.log_softmax(model.model(ids).logits[0].double(), dim=-1)
    return sum(logp[t - 1, ids[0, t]].item() for t in range(len(p), len(p) + len(a)))


def test_option_logprobs_equal_a_hand_forward_pass_whatever_the_batching(tiny):
    want = [[hand_logprob(tiny, p, o) for o in options] for p, options in zip(PROMPTS, OPTIONS)]
    assert len({round(x, 3) for row in want for x in row}) > 6  # distinct numbers, not a constant
    for batch in (1, 3, 64):
        got = tiny.option_logprobs(PROMPTS, OPTIONS, batch)
        assert [len(r) for r in got] == [len(r) for r in OPTIONS]
        np.testing.assert_allclose(np.concatenate(got), np.concatenate(want), rtol=0, atol=1e-4)
    flat_p = [p for p, options in zip(PROMPTS, OPTIONS) for _ in options]
    flat_o = [o for options in OPTIONS for o in options]
    one = tiny.continuation_logprobs(flat_p, flat_o, 1)
    for padding in ("left", "right"):
        for batch in (2, 5, 64):
            got = tiny.continuation_logprobs(flat_p, flat_o, batch, padding=padding)
            assert [n for _, n in got] == [n for _, n in one]
            np.testing.assert_allclose([s for s, _ in got], [s for s, _ in one], rtol=0, atol=1e-4)
    assert tiny.continuation_logprobs(["Q:"], [""], 4) == [(0.0, 0)]


def test_continuation_logprobs_agree_with_score(tiny):
    examples = [Example(p, o) for p, options in zip(PROMPTS, OPTIONS) for o in options]
    pairs = tiny.continuation_logprobs([e.prompt for e in examples], [e.answer for e in examples], 3)
    nll = -sum(s for s, _ in pairs) / sum(n for _, n in pairs)
    assert nll == pytest.approx(tiny.score(examples, 4), rel=1e-6)


def test_reference_perplexity_under_itself_is_exp_of_its_own_loss(tiny):
    from crossgen.config import GenerationConfig

    cfg = parse_config(run_config())
    prompts = PROMPTS[:3] * 4
    completions = tiny.generate(prompts, GenerationConfig(max_new_tokens=8, temperature=1.0, batch_size=4), seed=3)
    rows = [
        {"dataset": d, "index": i, "prompt": p, "reference": "", "completion": c}
        for i, (p, c) in enumerate(zip(prompts, completions))
        for d in ("a",)
    ] + [{"dataset": "b", "index": 0, "prompt": "Q:", "reference": "", "completion": " a a a"}]
    out = reference_rows(tiny, rows, 2, "m", cfg)
    assert [(r["dataset"], r["metric"], r["generation"], r["model"]) for r in out] == [
        ("a", "reference_perplexity", 2, "m"),
        ("b", "reference_perplexity", 2, "m"),
    ]
    own = tiny.score([Example(p, c) for p, c in zip(prompts, completions) if c], 4)
    assert out[0]["value"] == pytest.approx(math.exp(own), rel=1e-6)
    assert out[0]["low"] < out[0]["value"] < out[0]["high"]  # 12 prompts of different losses
    assert out[1]["value"] == pytest.approx(math.exp(tiny.score([Example("Q:", " a a a")], 1)), rel=1e-6)
    assert out[1]["low"] == out[1]["value"] == out[1]["high"]  # a single prompt


# -- end to end ----------------------------------------------------------------------------------
def test_a_tiny_run_writes_both_families_and_resume_redoes_only_what_is_missing(tmp_path):
    from crossgen.experiment import run_experiment

    config = run_config(test_size=12, embedding_prompts=4)
    config["entities"][1]["task"]["name"] = "offline_reasoning"
    config["entities"].append(
        {"name": "math", "task": {"name": "offline_arithmetic", "source": "offline", "train_size": 150}}
    )
    config["generations"] = 1
    cfg = parse_config(config)
    out = tmp_path / "run"
    run_experiment(cfg, out, evaluate_hook=lambda store, t: None)  # no embedding model here
    names = ["science", "arithmetic", "math"]
    for t in (0, 1):
        acc = pd.read_csv(family_path(out / f"gen_00{t}", ACCURACY))
        assert list(acc.columns) == COLUMNS
        assert (acc.generation == t).all() and acc.model.unique().tolist() == names
        assert set(zip(acc.dataset, acc.metric)) == {
            ("offline_science", "acc"),
            ("offline_science", "acc_norm"),
            ("offline_science", "chance"),
            ("offline_reasoning", "acc"),
            ("offline_reasoning", "acc_norm"),
            ("offline_reasoning", "chance"),
            ("offline_arithmetic", "exact_match"),
        }
        assert acc.value.between(0, 1).all() and len(acc) == 3 * 7
        scored = acc[acc.metric != "chance"]
        assert (scored.low <= scored.value).all() and (scored.value <= scored.high).all()
        ppl = pd.read_csv(family_path(out / f"gen_00{t}", REFERENCE))
        assert list(ppl.columns) == COLUMNS and len(ppl) == 3 * 4  # every model on 4 datasets
        assert (ppl.value > 1).all() and np.isfinite(ppl.value).all() and (ppl.metric == "reference_perplexity").all()

    # resume: generation 1 unfinished, its reference perplexities lost (one entity's part
    # kept: it is merged, not recomputed), accuracy kept
    before = {f: family_path(out / "gen_001", f).read_text() for f in (ACCURACY, REFERENCE)}
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["generations"]["1"]
    manifest["status"] = "running"
    (out / "manifest.json").write_text(json.dumps(manifest))
    family_path(out / "gen_001", REFERENCE).unlink()
    for name in names[:2]:
        part_path(family_path(out / "gen_001", REFERENCE), name).unlink()

    computed: list[tuple[str, int, str]] = []
    loaded: list[str] = []

    class Spy(ModelMetricWriter):
        def _rows(self, family, ev):
            computed.append((family, ev.t, ev.name))
            load = ev.load
            ev.load = lambda: loaded.append(ev.name) or load()
            return super()._rows(family, ev)

    run_experiment(cfg, out, resume=True, evaluate_hook=lambda store, t: None, model_metrics=Spy(cfg))
    assert computed == [(REFERENCE, 1, n) for n in names[:2]]  # accuracy was not recomputed
    assert loaded == []  # generation 1's reference is generation 0's model, loaded apart
    for family in (ACCURACY, REFERENCE):
        assert family_path(out / "gen_001", family).read_text() == before[family]


def test_switched_off_families_write_nothing(tmp_path):
    from crossgen.metrics.accuracy import model_metrics

    assert model_metrics(parse_config(run_config(accuracy=False, reference_perplexity=False))) is None
    linear = tiny_linear()
    assert model_metrics(parse_config(linear)) is None  # no text: no accuracy
    writer = model_metrics(parse_config(run_config(reference_perplexity=False)))
    assert writer is not None and writer.families == {ACCURACY: True, REFERENCE: False}


def test_a_bad_reference_model_is_refused_before_anything_is_written(tmp_path):
    from crossgen.errors import InputError
    from crossgen.experiment import run_experiment

    cfg = parse_config(run_config(embedding_prompts=2, reference_model=str(tmp_path / "no-such-model")))
    with pytest.raises(InputError) as err:
        run_experiment(cfg, tmp_path / "run", evaluate_hook=lambda store, t: None)
    assert str(err.value).startswith(f"invalid evaluation.reference_model: {tmp_path / 'no-such-model'}")
    assert not (tmp_path / "run").exists()
