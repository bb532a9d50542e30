"""Heterogeneous entities (docs/DESIGN.md, decisions 45-47): each entity's own model, training and
sampling merged over the run's, bits per byte next to every loss, and a participation
schedule. A two-entity run of tiny GPT-2s with different widths and tokenizers trains, writes
pools, is scored, is killed and resumes (on the process executor) to the files of an
uninterrupted sequential run."""

import copy
import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("transformers")

from crossgen.config import parse_config
from crossgen.errors import InputError
from helpers import crossgen, tiny_linear
from test_workflow_hf import TINY

# science: the run's model (width 32, 300 tokens), sits out generation 1; arithmetic: its own
# model (width 48, 400 tokens), 3 optimizer steps per update, greedy sampling.
HET = copy.deepcopy(TINY)
HET["name"] = "tiny-het"
HET["entities"][0]["generations"] = [2]
HET["entities"][1].update(
    model={"scratch": {"n_embd": 48, "vocab_size": 400}},
    training={"max_steps": 3},
    generation={"temperature": 0},
)
HET["evaluation"].update(accuracy=False, reference_perplexity=False, mauve=False)
# what must be bit-identical between the runs: tables, pools, every checkpoint of the last generation
FILES = [
    "losses.csv",
    "gen_002/pool/science.jsonl",
    "gen_002/pool/arithmetic.jsonl",
    "gen_002/models/science/model.safetensors",
    "gen_002/models/arithmetic/model.safetensors",
    "initial_arithmetic/model.safetensors",
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted sequential run of HET, in this process: (config path, run directory)."""
    from crossgen.workflow.run import run_workflow

    root = tmp_path_factory.mktemp("het")
    config = root / "het.yaml"
    config.write_text(yaml.safe_dump(HET))
    run_workflow(parse_config(HET), root / "ref")
    return config, root / "ref"


def test_entities_train_their_own_architectures_and_tokenizers(reference):
    _, ref = reference
    for folder, width, vocab in [("initial", 32, 300), ("initial_arithmetic", 48, 400)]:
        cfg = json.loads((ref / folder / "config.json").read_text())
        assert cfg["n_embd"] == width
        vocab_size = len(json.loads((ref / folder / "tokenizer.json").read_text())["model"]["vocab"])
        assert vocab_size <= vocab and cfg["vocab_size"] == vocab_size
    assert json.loads((ref / "gen_002/models/arithmetic/config.json").read_text())["n_embd"] == 48
    assert json.loads((ref / "gen_002/models/science/config.json").read_text())["n_embd"] == 32
    assert not (ref / "initial_science").exists()  # the run's model: the shared initial/


def test_per_entity_training_and_sampling_take_effect(reference):
    from crossgen.backends.hf import HFBackend

    _, ref = reference
    cfg = parse_config(HET)
    updates = {t: g["updates"] for t, g in json.loads((ref / "manifest.json").read_text())["generations"].items()}
    assert [updates[t]["arithmetic"]["steps"] for t in ("0", "1", "2")] == [15, 3, 3]
    assert [updates[t]["science"]["steps"] for t in ("0", "1", "2")] == [15, 0, 4]
    # arithmetic samples greedily: its pool is the greedy completion, whatever the seed
    rows = [json.loads(line) for line in (ref / "gen_002/pool/arithmetic.jsonl").read_text().splitlines()]
    model = HFBackend.for_model(cfg, cfg.model_for(1)).load(ref / "gen_001/models/arithmetic")
    greedy = model.generate([r["prompt"] for r in rows], cfg.generation_for(1), seed=12345)
    assert [r["answer"] for r in rows] == greedy
    sampled = model.generate([r["prompt"] for r in rows], cfg.generation, seed=12345)
    assert sampled != greedy  # the run's temperature 1 would have written another pool


def test_losses_carry_bits_per_byte_of_each_entitys_own_tokenizer(reference):
    from crossgen.backends.hf import HFBackend
    from crossgen.tasks import load_experiment_data

    _, ref = reference
    cfg = parse_config(HET)
    losses = pd.read_csv(ref / "losses.csv")
    assert list(losses.columns) == ["generation", "model", "task", "loss", "bits_per_byte"]
    assert losses.bits_per_byte.notna().all() and (losses.bits_per_byte > 0).all()
    test = load_experiment_data(cfg).private[0].test[:20]
    model = HFBackend.for_model(cfg, cfg.model_for(1)).load(ref / "gen_002/models/arithmetic")
    row = losses[(losses.generation == 2) & (losses.model == "arithmetic") & (losses.task == "offline_science")]
    score = model.score_with_bytes(test, 20)
    assert row.loss.item() == pytest.approx(score.loss, rel=1e-8)
    assert row.bits_per_byte.item() == pytest.approx(score.bits_per_byte, rel=1e-8)


def test_an_entity_sitting_out_keeps_its_model_and_writes_no_pool(reference):
    _, ref = reference
    files = sorted(p.name for p in (ref / "gen_000/models/science").iterdir())
    for name in files:
        before, after = ref / "gen_000/models/science" / name, ref / "gen_001/models/science" / name
        assert after.read_bytes() == before.read_bytes()
        assert os.path.samefile(before, after)  # linked, not copied
    assert sorted(p.name for p in (ref / "gen_001/pool").iterdir()) == ["arithmetic.jsonl"]
    assert (ref / "gen_002/pool/science.jsonl").is_file()  # it takes part again at generation 2
    losses = pd.read_csv(ref / "losses.csv").set_index(["generation", "model", "task"])
    pd.testing.assert_series_equal(losses.loc[1].loc["science"].loss, losses.loc[0].loc["science"].loss)


def test_report_compares_entities_on_bits_per_byte_when_tokenizers_differ(reference):
    from crossgen.report import tables
    from crossgen.report.runs import load_runs

    _, ref = reference
    runs = load_runs([ref])
    bpb = tables.bits_per_byte_table(runs)
    assert bpb is not None and "tokenizers differ: entities compared on bits per byte" in bpb.title
    assert tables.TOKENIZERS_DIFFER in bpb.notes and tables.TOKENIZERS_DIFFER in tables.loss_table(runs).notes
    first = pd.read_csv(ref / "losses.csv").query("generation == 0 and model == 'science'")
    assert bpb.cells[0][0].initial == first[first.task == "offline_science"].bits_per_byte.item()


def test_killed_run_resumed_on_the_process_executor_equals_the_uninterrupted_run(tmp_path, reference):
    """Killed right after the carried-over checkpoint of the entity sitting out generation 1;
    resumed on the process executor, whose worker rebuilds the entities' backends."""
    from crossgen.workflow.executors import ProcessExecutor
    from crossgen.workflow.run import run_workflow

    config, ref = reference
    out = tmp_path / "run"
    killed = crossgen("run", str(config), "--out", str(out), env={"CROSSGEN_KILL_AT": "gen1.train.science"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (out / "gen_001/models/science").is_dir() and not (out / "gen_001/models/arithmetic").exists()
    executor = ProcessExecutor(workers=1, threads=1)  # one spawned worker runs both entities: faster
    try:
        run_workflow(parse_config(HET), out, resume=True, executor=executor)
    finally:
        executor.close()
    for name in FILES:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name


# -- bits per byte, by hand ------------------------------------------------------------------------
def test_bits_per_byte_is_answer_nats_over_ln2_times_utf8_bytes():
    from crossgen.backends.hf import HFBackend
    from crossgen.config import ModelConfig
    from crossgen.data import Example

    model_cfg = ModelConfig(scratch={"n_layer": 1, "n_head": 2, "n_embd": 16, "n_positions": 32, "vocab_size": 260})
    corpus = ["Question: café?\nAnswer: crème brûlée", "Question: two?\nAnswer: 2 + 2 = 4"]
    model = HFBackend(model_cfg, device="cpu").initial_model(corpus, seed=0)
    examples = [
        Example("Question: café?\nAnswer:", " crème brûlée"),  # multi-byte characters
        Example("Question: x\nAnswer:", ""),  # no answer token: neither tokens nor bytes
        Example("Q:", " " + "abcdefghij" * 5),  # longer than the context: cut to 31 tokens
    ]
    pairs = model.continuation_logprobs([e.prompt for e in examples], [e.answer for e in examples], 1)
    nats = -sum(s for s, _ in pairs)
    tokens = sum(n for _, n in pairs)
    assert len(model.encode_answers([examples[0].answer])[0]) < 31
    kept = model.encode_answers([examples[2].answer])[0][:31]
    assert len(model.encode_answers([examples[2].answer])[0]) > 31  # the cut applies
    nbytes = len(" crème brûlée".encode()) + len(model.tokenizer.decode(kept).encode())
    assert len(" crème brûlée".encode()) == len(" crème brûlée") + 3  # è, û, é: two bytes each
    score = model.score_with_bytes(examples, batch_size=2)
    assert score.loss == pytest.approx(nats / tokens, rel=1e-6) == model.score(examples, 2)
    assert score.bits_per_byte == pytest.approx(nats / (math.log(2) * nbytes), rel=1e-6)


# -- participation, on the linear backend ------------------------------------------------------------
def test_pools_of_entities_sitting_out_are_renormalised_away(tmp_path):
    from crossgen.workflow.loop import Workflow
    from crossgen.workflow.run import build
    from crossgen.workflow.store import RunStore

    cfg = parse_config(
        tiny_linear(
            K=3,
            generations=3,
            graph=[[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.25, 0.25, 0.5]],
            entities=[
                {"name": "e0", "task": {"name": "p0", "source": "offline"}},
                {"name": "e1", "task": {"name": "p1", "source": "offline"}, "generations": [1, "3-3"]},
                {"name": "e2", "task": {"name": "p2", "source": "offline"}, "generations": []},
            ],
        )
    )
    data, backend = build(cfg)
    wf = Workflow(cfg, data, backend, RunStore(tmp_path))
    alpha, row = wf._pool_row(1, 0)  # every pool e0 reads exists: alpha and W as given
    assert alpha == 0.5 and list(row) == [0.5, 0.5, 0.0]
    alpha, row = wf._pool_row(2, 0)  # e1 sits out: e0's share goes to its own pool
    assert alpha == 0.5 and list(row) == [1.0, 0.0, 0.0]
    alpha, row = wf._pool_row(2, 2)
    assert alpha == 0.5 and list(row) == pytest.approx([1.0, 0.0, 0.0])
    assert wf._pool_row(2, 1) == (0.0, None)  # reads e1 and e2 only, neither writes: real data only
    assert [wf._pool_needed(2, j) for j in range(3)] == [True, False, False]
    assert [wf._pool_needed(1, j) for j in range(3)] == [True, True, False]  # e2 never writes one


def test_an_entity_that_never_takes_part_keeps_its_generation0_model(tmp_path):
    from safetensors.numpy import load_file

    from crossgen.workflow.run import run_workflow

    cfg = parse_config(
        tiny_linear(
            entities=[{"name": "e0", "task": {"name": "p0", "source": "offline"}, "generations": []}]
            + [{"name": "e1", "task": {"name": "p1", "source": "offline"}}]
        )
    )
    store = run_workflow(cfg, tmp_path / "run")
    theta = [load_file(str(store.model_dir(t, "e0") / "model.safetensors"))["theta"] for t in range(4)]
    assert all(np.array_equal(theta[0], th) for th in theta)
    assert not list((tmp_path / "run").glob("gen_*/pool/e0.jsonl"))
    manifest = store.manifest()["generations"]
    assert [manifest[str(t)]["updates"]["e0"]["steps"] for t in (1, 2, 3)] == [0, 0, 0]
    other = [load_file(str(store.model_dir(t, "e1") / "model.safetensors"))["theta"] for t in range(4)]
    assert not np.array_equal(other[0], other[3])  # the other entity trains on as before


# -- configs ---------------------------------------------------------------------------------------------
def test_overrides_merge_field_by_field_over_the_runs_settings():
    data = copy.deepcopy(TINY)
    data["entities"][1].update(training={"learning_rate": "2e-3"}, model={"name_or_path": "gpt2"})
    cfg = parse_config(data)
    own, run = cfg.training_for(1, 1), cfg.training
    assert own.learning_rate == 2e-3 and own.model_dump(exclude={"learning_rate"}) == run.model_dump(
        exclude={"learning_rate"}
    )
    assert cfg.training_for(0, 1) == cfg.initial_training  # the run's generation 0 stands
    assert cfg.entities[1].training == {"learning_rate": 0.002}  # stored validated, only what was set
    assert cfg.model_for(1).name_or_path == "gpt2" and cfg.model_for(1).scratch is None
    assert cfg.model_for(0) is cfg.model and cfg.tokenizers_differ()
    no_initial = {k: v for k, v in data.items() if k != "initial_training"}
    assert parse_config(no_initial).training_for(0, 1).learning_rate == 2e-3  # generation 0 follows training
    # an entity's training shares generation 0 with the plain run exactly when it does not change it
    lr_only = copy.deepcopy(TINY)
    lr_only["entities"][1]["training"] = {"learning_rate": 2e-3}
    plain_key = parse_config(TINY).generation0_key()
    assert parse_config(lr_only).generation0_key() == plain_key
    del lr_only["initial_training"]
    without = {k: v for k, v in TINY.items() if k != "initial_training"}
    assert parse_config(lr_only).generation0_key() != parse_config(without).generation0_key()


def test_a_run_without_overrides_writes_todays_config():
    from crossgen.workflow.store import config_yaml

    text = config_yaml(parse_config(TINY))
    for key in ("model", "training", "initial_training", "generation", "generations"):
        assert all(key not in e for e in yaml.safe_load(text)["entities"])
    assert not parse_config(TINY).tokenizers_differ()


@pytest.mark.parametrize(
    "where, value, message",
    [
        (
            "training",
            {"learning_rate": -1},
            "error: invalid entities.1.training.learning_rate: -1 (allowed: Input should be greater than 0)",
        ),
        (
            "model",
            {"scratch": {"n_embd": 49}},
            "error: invalid entities.1.model.scratch.n_embd: 49 (allowed: a multiple of n_head (2))",
        ),
        (
            "model",
            {"backend": "linear"},
            "error: invalid entities.1.model.backend: linear (allowed: a text backend like the run's model.backend "
            "'hf' (the linear backend cannot mix with text backends))",
        ),
        (
            "generation",
            {"num_prompts": 3},
            "error: invalid entities.1.generation.num_prompts: unknown key (allowed: one of temperature, top_p, "
            "max_new_tokens)",
        ),
        (
            "generations",
            [1, "2-3"],
            "error: invalid entities.1.generations.1: 2-3 (allowed: a list of generations t in 1..2 and ranges "
            "'a-b' (inclusive), e.g. [1, '3-5'], or [] for none)",
        ),
        (
            "initial_training",
            {"max_steps": 0},
            "error: invalid entities.1.initial_training.max_steps: 0 (allowed: Input should be greater than or "
            "equal to 1)",
        ),
    ],
)
def test_bad_entity_settings_exit_2_with_one_line_before_anything_is_written(tmp_path, capsys, where, value, message):
    from crossgen.cli import main

    data = copy.deepcopy(HET)
    data["entities"][1][where] = value
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(data))
    code = main(["run", str(config), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [message]
    assert not (tmp_path / "run").exists()


def test_the_heterogeneous_cpu_preset_loads_and_validates():
    from crossgen.config import load_config
    from crossgen.presets import resolve_config

    cfg = load_config(resolve_config("cpu-heterogeneous"))
    cpu = load_config(resolve_config("cpu"))
    assert cfg.K == 2 and cfg.tokenizers_differ()
    widths = [cfg.model_for(k).scratch.n_embd for k in range(2)]
    vocabs = [cfg.model_for(k).scratch.vocab_size for k in range(2)]
    assert widths[0] != widths[1] and vocabs[0] != vocabs[1]
    assert cfg.generation_for(0).temperature != cfg.generation_for(1).temperature
    assert cfg.model == cpu.model and cfg.training == cpu.training  # the cpu preset underneath
    with pytest.raises(InputError, match=r"^invalid entities\.1\.model\.scratch\.n_embd: 90 "):
        load_config(resolve_config("cpu-heterogeneous"), {"entities.1.model.scratch.n_embd": 90})
