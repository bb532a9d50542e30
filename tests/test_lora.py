"""LoRA adapters (model.lora, backends/hf/lora.py) on tiny random-weight GPT-2, OPT and Llama
folders: only the adapter trains, checkpoints hold the adapter alone and reload to identical
scores and completions, and a LoRA run killed mid-generation resumes to the uninterrupted
run's numbers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from crossgen.backends.hf import HFBackend  # noqa: E402
from crossgen.backends.hf.lora import add_adapter  # noqa: E402
from crossgen.backends.hf.model import HFModel  # noqa: E402
from crossgen.config import GenerationConfig, LoraConfig, ModelConfig, parse_config  # noqa: E402
from crossgen.data import Example  # noqa: E402
from crossgen.errors import InputError  # noqa: E402
from test_backend_hf import (  # noqa: E402
    ARCH,
    FAMILIES,
    assert_same_run,
    corpus,
    run_killed_and_resumed,
    same_weights,
    texts,
    tiny_pretrained,
    tiny_run,
    train_cfg,
)

torch.set_num_threads(1)

LORA = {"r": 4, "alpha": 8, "dropout": 0.0}
ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors", "crossgen_base.json"]
GREEDY = GenerationConfig(max_new_tokens=6, temperature=0.0, batch_size=8)
SAMPLED = GenerationConfig(max_new_tokens=6, temperature=1.0, batch_size=8)
PROMPTS = ["Q: red and blue?", "Q:", "Q: a considerably longer prompt, red and gold and pink?", "Q: gold and red?"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """One tiny pretrained folder per family (context 128, as the workflow runs need)."""
    root = tmp_path_factory.mktemp("pretrained")
    for family in FAMILIES:
        tiny_pretrained(family, root / family, n_positions=128)
    return {family: root / family for family in FAMILIES}


def lora_backend(folder: Path, **lora) -> HFBackend:
    return HFBackend(
        ModelConfig(backend="hf", name_or_path=str(folder), lora=LoraConfig(**{**LORA, **lora})), device="cpu"
    )


def split(model: HFModel) -> tuple[dict, dict]:
    """(base weights, adapter weights) of a LoRA model, by parameter name."""
    base, adapter = {}, {}
    for name, p in model.model.named_parameters():
        (adapter if "lora_" in name else base)[name] = p.detach().clone()
    return base, adapter


def plain_weights(folder: Path) -> dict:
    m = HFBackend(ModelConfig(backend="hf", name_or_path=str(folder)), device="cpu").initial_model([], seed=0)
    return {name: p.detach().clone() for name, p in m.model.named_parameters()}


def base_weights(model: HFModel) -> dict:
    """The base model's weights under their plain names (LoRA-wrapped layers' `base_layer`)."""
    base = split(model)[0]
    return {name.removeprefix("base_model.model.").replace(".base_layer.", "."): value for name, value in base.items()}


# -- config ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lora", "message"),
    [
        ({"r": 0}, "invalid model.lora.r: 0 (allowed: "),
        ({"alpha": 0}, "invalid model.lora.alpha: 0 (allowed: "),
        ({"dropout": 1.0}, "invalid model.lora.dropout: 1.0 (allowed: "),
        ({"target_modules": "q_proj"}, "invalid model.lora.target_modules: q_proj (allowed: a list of module names"),
        ({"target_modules": []}, "invalid model.lora.target_modules: [] (allowed: a list of module names"),
        ({"rank": 4}, "invalid model.lora.rank: unknown key (allowed: one of r, alpha, dropout, target_modules)"),
    ],
)
def test_bad_lora_settings_are_one_line_input_errors(lora, message):
    with pytest.raises(InputError) as err:
        tiny_run({"backend": "hf", "name_or_path": "x", "lora": lora})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_lora_defaults_and_linear_backend():
    cfg = tiny_run({"backend": "hf", "name_or_path": "x", "lora": {}})
    assert cfg.model.lora == LoraConfig(r=8, alpha=16, dropout=0.05, target_modules=None)
    assert tiny_run({"backend": "hf", "name_or_path": "x"}).model.lora is None  # full fine-tuning
    assert tiny_run({"backend": "hf", "name_or_path": "x", "lora": {"target_modules": "all-linear"}})
    with pytest.raises(InputError, match=r"^invalid model\.lora: "):
        parse_config(
            {**tiny_run({"backend": "linear"}).model_dump(mode="json"), "model": {"backend": "linear", "lora": {}}}
        )


def test_unknown_target_modules_are_input_errors(folders):
    with pytest.raises(InputError) as err:
        lora_backend(folders["llama"], target_modules=["c_attn"]).initial_model([], seed=0)
    assert str(err.value).startswith("invalid model.lora.target_modules: ['c_attn'] (allowed: names of modules")
    assert "q_proj" in str(err.value)


def test_an_architecture_without_a_peft_default_needs_target_modules():
    from transformers import BioGptConfig, BioGptForCausalLM

    model = BioGptForCausalLM(
        BioGptConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    )
    with pytest.raises(InputError) as err:
        add_adapter(model, LoraConfig(), seed=0)
    assert str(err.value).startswith("invalid model.lora.target_modules: None (allowed: a list of module names")
    assert "'biogpt'" in str(err.value) and "q_proj" in str(err.value)
    wrapped = add_adapter(model, LoraConfig(target_modules=["q_proj", "v_proj"]), seed=0)
    assert any("lora_A" in name for name, _ in wrapped.named_parameters())


# -- the model -------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_only_the_adapter_trains(family, folders):
    m = lora_backend(folders[family]).initial_model([], seed=0)
    assert m.lora
    trainable = [name for name, p in m.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_A" in name or "lora_B" in name for name in trainable)
    # the base is the pretrained model, untouched; a fresh adapter (B = 0) changes nothing yet
    assert same_weights(base_weights(m), plain_weights(folders[family]))
    plain = HFBackend(ModelConfig(backend="hf", name_or_path=str(folders[family])), device="cpu").initial_model([], 0)
    assert m.score(corpus(), 8) == pytest.approx(plain.score(corpus(), 8), rel=1e-6)
    base, adapter = split(m)
    before = m.score(corpus(), 8)
    stats = m.train(corpus(), train_cfg(max_steps=5, learning_rate=1e-2), seed=0)
    assert stats.steps == 5
    base_after, adapter_after = split(m)
    assert same_weights(base, base_after)  # frozen
    assert not same_weights(adapter, adapter_after)
    assert m.score(corpus(), 8) < before
    assert not m.model.training and all(not p.requires_grad or "lora_" in n for n, p in m.model.named_parameters())


def test_adapter_initialisation_is_seeded(folders):
    backend = lora_backend(folders["opt"])
    a, b, c = (split(backend.initial_model([], seed=s))[1] for s in (1, 1, 2))
    assert same_weights(a, b) and not same_weights(a, c)


@pytest.mark.parametrize("family", FAMILIES)
def test_checkpoints_hold_the_adapter_only_and_round_trip(family, folders, tmp_path):
    backend = lora_backend(folders[family])
    backend.initial_model([], seed=0).save(tmp_path / "initial")
    # the base folder: the full base weights and tokenizer, the adapter in a subfolder
    initial = tmp_path / "initial"
    assert (initial / "model.safetensors").is_file() and (initial / "tokenizer.json").is_file()
    assert sorted(p.name for p in (initial / "adapter").iterdir()) == ADAPTER_FILES[:2]
    assert not (initial / "adapter_config.json").exists()
    gen0 = backend.load(initial)
    assert gen0.lora and gen0.base_dir == initial
    gen0.train(corpus(), train_cfg(max_steps=3, learning_rate=1e-2), seed=0)
    gen0.save(tmp_path / "gen_000")
    files = sorted(p.name for p in (tmp_path / "gen_000").iterdir())
    assert files == ADAPTER_FILES  # no full weights, no tokenizer
    adapter_size = (tmp_path / "gen_000" / "adapter_model.safetensors").stat().st_size
    assert adapter_size < (initial / "model.safetensors").stat().st_size / 10
    assert gen0.checkpoint_bytes() <= adapter_size
    assert json.loads((tmp_path / "gen_000" / "crossgen_base.json").read_text())["base"] == "../initial"
    assert json.loads((tmp_path / "gen_000" / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        initial
    )

    again = backend.load(tmp_path / "gen_000")
    assert again.score(corpus(), 8) == gen0.score(corpus(), 8)
    assert again.generate(PROMPTS, GREEDY, seed=0) == gen0.generate(PROMPTS, GREEDY, seed=0)
    assert again.generate(PROMPTS, SAMPLED, seed=3) == gen0.generate(PROMPTS, SAMPLED, seed=3)
    # left padding: a batch of prompts of different lengths completes each as if alone
    assert again.generate(PROMPTS, GREEDY, seed=0) == [again.generate([p], GREEDY, seed=0)[0] for p in PROMPTS]
    # the likelihood metrics' path (position ids passed through peft) agrees with itself
    answers = [" red.", " A: gold gold", " x", " blue and pink"]
    right = again.continuation_logprobs(PROMPTS, answers, 4)
    left = again.continuation_logprobs(PROMPTS, answers, 4, padding="left")
    assert [n for _, n in left] == [n for _, n in right]
    assert [s for s, _ in left] == pytest.approx([s for s, _ in right], rel=1e-5)

    # the next generation trains the same adapter further: still one adapter, on the same base
    again.train(corpus(), train_cfg(max_steps=3, learning_rate=1e-2), seed=1)
    again.save(tmp_path / "gen_001")
    gen1 = backend.load(tmp_path / "gen_001")
    assert list(gen1.model.peft_config) == ["default"]
    assert split(gen1)[1].keys() == split(gen0)[1].keys()
    assert not same_weights(split(gen1)[1], split(gen0)[1])
    assert same_weights(base_weights(gen1), plain_weights(folders[family]))
    assert json.loads((tmp_path / "gen_001" / "crossgen_base.json").read_text())["base"] == "../initial"
    assert gen1.score(corpus(), 8) == again.score(corpus(), 8)


def test_a_moved_checkpoint_finds_its_base_and_a_missing_base_is_an_input_error(folders, tmp_path):
    backend = lora_backend(folders["gpt2"])
    backend.initial_model([], seed=0).save(tmp_path / "run" / "initial")
    m = backend.load(tmp_path / "run" / "initial")
    m.save(tmp_path / "run" / "gen_000" / "models" / "a")
    score = m.score(corpus(), 8)
    shutil.move(tmp_path / "run", tmp_path / "moved")  # the absolute path is gone: the relative one leads
    assert backend.load(tmp_path / "moved" / "gen_000" / "models" / "a").score(corpus(), 8) == score
    # a copied checkpoint whose relative base is missing falls back to the absolute path
    shutil.copytree(tmp_path / "moved" / "gen_000", tmp_path / "elsewhere" / "x" / "gen_000")
    data = json.loads((tmp_path / "moved" / "gen_000" / "models" / "a" / "crossgen_base.json").read_text())
    data["base_absolute"] = str(tmp_path / "moved" / "initial")
    (tmp_path / "elsewhere" / "x" / "gen_000" / "models" / "a" / "crossgen_base.json").write_text(json.dumps(data))
    assert backend.load(tmp_path / "elsewhere" / "x" / "gen_000" / "models" / "a").score(corpus(), 8) == score
    shutil.rmtree(tmp_path / "moved" / "initial")
    with pytest.raises(InputError, match=r"^invalid model directory: .*whose LoRA base folder exists"):
        backend.load(tmp_path / "moved" / "gen_000" / "models" / "a")


def test_saving_over_its_own_base_folder_keeps_the_base(folders, tmp_path):
    backend = lora_backend(folders["opt"])
    backend.initial_model([], seed=0).save(tmp_path / "initial")
    m = backend.load(tmp_path / "initial")
    m.train(corpus(), train_cfg(max_steps=2, learning_rate=1e-2), seed=0)
    m.save(tmp_path / "initial")  # the base folder itself: rewritten whole, base weights included
    assert (tmp_path / "initial" / "model.safetensors").is_file()
    assert backend.load(tmp_path / "initial").score(corpus(), 8) == m.score(corpus(), 8)


def test_a_scratch_model_gets_an_adapter_too(tmp_path):
    backend = HFBackend(ModelConfig(backend="hf", scratch=ARCH, lora=LoraConfig(**LORA)), device="cpu")
    m = backend.initial_model(texts(), seed=0)
    assert m.lora and {n.split(".")[-4] for n, p in m.model.named_parameters() if p.requires_grad} == {"c_attn"}
    m.save(tmp_path / "initial")
    m.train(corpus(), train_cfg(max_steps=3, learning_rate=1e-2), seed=0)  # goes on after its first save
    m.save(tmp_path / "gen_000")
    assert sorted(p.name for p in (tmp_path / "gen_000").iterdir()) == ADAPTER_FILES
    loaded = backend.load(tmp_path / "gen_000")
    assert loaded.score(corpus(), 8) == m.score(corpus(), 8)
    assert loaded.score([Example("", " red")], 1) == m.score([Example("", " red")], 1)


# -- the workflow -------------------------------------------------------------------------------
def lora_model(folder: Path) -> dict:
    return {"backend": "hf", "name_or_path": str(folder), "lora": LORA}


@pytest.fixture(scope="module")
def references(folders, tmp_path_factory) -> dict[str, Path]:
    """Uninterrupted tiny LoRA runs, one per family, made on first use."""
    from crossgen.workflow.run import run_workflow

    root = tmp_path_factory.mktemp("lora-runs")

    class Runs(dict):
        def __missing__(self, family: str) -> Path:
            run_workflow(tiny_run(lora_model(folders[family])), root / family)
            self[family] = root / family
            return self[family]

    return Runs()


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_run_killed_and_resumed_equals_uninterrupted(family, folders, references, tmp_path, monkeypatch):
    ref = references[family]
    run_killed_and_resumed(tiny_run(lora_model(folders[family])), tmp_path / "run", "gen1.train.science", monkeypatch)
    assert_same_run(ref, tmp_path / "run")
    # initial/ holds the base once; every generation's checkpoints are adapters naming it
    assert (ref / "initial" / "model.safetensors").is_file() and (ref / "initial" / "adapter").is_dir()
    for t in (0, 1):
        for entity in ("science", "arithmetic"):
            folder = ref / f"gen_{t:03d}" / "models" / entity
            assert sorted(p.name for p in folder.iterdir()) == ADAPTER_FILES
            assert json.loads((folder / "crossgen_base.json").read_text())["base"] == "../../../initial"


def test_lora_run_killed_with_sigkill_resumes(folders, references, tmp_path):
    """The real thing once: `crossgen run` killed with SIGKILL inside generation 1, then resumed."""
    cfg = tiny_run(lora_model(folders["llama"]))
    config = tmp_path / "run.yaml"
    config.write_text(json.dumps(cfg.model_dump(mode="json")))
    killed = subprocess.run(
        [sys.executable, "-m", "crossgen", "run", str(config), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env={**os.environ, "CROSSGEN_KILL_AT": "gen1.pool.arithmetic", "OMP_NUM_THREADS": "1"},
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    from crossgen.workflow.run import run_workflow

    run_workflow(cfg, tmp_path / "run", resume=True)
    assert_same_run(references["llama"], tmp_path / "run")
