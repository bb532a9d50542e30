"""Run-config validation: exact one-line messages that name field, value and what is allowed."""

import copy

import pytest

from crossgen.config import load_config, parse_config
from crossgen.errors import InputError
from crossgen.presets import preset_names, resolve_config

BASE = {
    "generations": 3,
    "entities": [
        {"name": "a", "task": {"name": "offline_science", "source": "offline"}},
        {"name": "b", "task": {"name": "offline_arithmetic", "source": "offline"}},
    ],
    "public": {"name": "offline_stories", "source": "offline"},
    "model": {"scratch": {}},
}


def with_(path, value):
    data = copy.deepcopy(BASE)
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
    node[int(keys[-1]) if isinstance(node, list) else keys[-1]] = value
    return data


def message(data):
    with pytest.raises(InputError) as exc:
        parse_config(data)
    return str(exc.value)


def test_defaults_follow_table_9():
    cfg = parse_config(BASE)
    assert cfg.training.learning_rate == 8e-6
    assert cfg.training.lr_scheduler_type == "constant_with_warmup"
    assert cfg.training.warmup_ratio == 0.025
    assert cfg.training.gradient_accumulation_steps == 2
    assert cfg.training.per_device_train_batch_size == 2
    assert cfg.training.max_steps == 100
    assert cfg.training.max_seq_length == 512
    assert cfg.mixing.n == 12_500 and cfg.mixing.paradigm == "accumulate-subsample"
    assert cfg.model.trust_remote_code is False


def test_weights_broadcast_per_generation_and_entity():
    cfg = parse_config(with_("entities.1.beta", [0.1, 0.2, 0.3, 0.4]))
    assert cfg.weights("alpha", 0) == [0.0, 0.5, 0.5, 0.5]  # no synthetic data at t = 0
    assert cfg.weights("beta", 0) == [0.5] * 4
    assert cfg.weights("beta", 1) == [0.1, 0.2, 0.3, 0.4]


@pytest.mark.parametrize(
    "path,value,expected",
    [
        (
            "alpha",
            1.5,
            "invalid alpha: 1.5 (allowed: a number in [0, 1], or a list of 4 such numbers (one per generation 0..T))",
        ),
        (
            "alpha",
            [0.1, 0.2],
            "invalid alpha: [0.1, 0.2] (allowed: a number in [0, 1], "
            "or a list of 4 such numbers (one per generation 0..T))",
        ),
        ("beta", [0.1, 0.2, 2.0, 0.3], "invalid beta[2]: 2.0 (allowed: a number in [0, 1])"),
        (
            "entities.0.alpha",
            -1,
            "invalid entities.0.alpha: -1.0 (allowed: a number in [0, 1], "
            "or a list of 4 such numbers (one per generation 0..T))",
        ),
        (
            "training.lerning_rate",
            1,
            "invalid training.lerning_rate: unknown key (allowed: one of max_steps, learning_rate, "
            "lr_scheduler_type, warmup_ratio, per_device_train_batch_size, gradient_accumulation_steps, "
            "max_seq_length, weight_decay, bf16, group_by_length)",
        ),
        (
            "mixing.paradigm",
            "mix",
            "invalid mixing.paradigm: mix (allowed: one of accumulate, accumulate-subsample, replace, weighted-loss)",
        ),
        ("mixing.n", 0, "invalid mixing.n: 0 (allowed: Input should be greater than or equal to 1)"),
        (
            "entities.0.task.source",
            "local",
            "invalid entities.0.task.path: None (allowed: a file or folder path when source is 'local')",
        ),
        ("model.scratch.n_embd", 130, "invalid model.scratch.n_embd: 130 (allowed: a multiple of n_head (4))"),
        ("generations", -1, "invalid generations: -1 (allowed: Input should be greater than or equal to 0)"),
    ],
)
def test_exact_messages(path, value, expected):
    assert message(with_(path, value)) == expected


def test_replace_requires_alpha_one():
    assert message(with_("mixing.paradigm", "replace")) == (
        "invalid alpha: 0.5 (allowed: 1 with mixing.paradigm 'replace' (synthetic data only))"
    )
    data = with_("mixing.paradigm", "replace")
    data["alpha"] = 1
    assert parse_config(data).mixing.paradigm == "replace"


def test_model_source_must_be_exactly_one():
    assert message(with_("model.name_or_path", "facebook/opt-350m")).startswith(
        "invalid model.name_or_path: facebook/opt-350m (allowed: exactly one of name_or_path"
    )
    data = copy.deepcopy(BASE)
    data["entities"] = []
    assert message(data) == "invalid entities: [] (allowed: List should have at least 1 item after validation, not 0)"


def test_duplicate_entity_names_rejected():
    data = with_("entities.1.name", "a")
    assert message(data) == "invalid entities: ['a', 'a'] (allowed: unique entity names)"


def test_every_preset_validates():
    names = preset_names()
    assert {"cpu", "linear", "opt350m-k2", "llama3.2-1b-k2", "llama3.2-3b-k2", "opt350m-k3"} <= set(names)
    for name in names:
        cfg = load_config(resolve_config(name))
        assert cfg.K >= 2


def test_paper_presets_are_the_papers_setup():
    cfg = load_config(resolve_config("llama3.2-3b-k2"))
    assert cfg.model.name_or_path == "meta-llama/Llama-3.2-3B"
    assert cfg.generations == 8 and cfg.training.per_device_train_batch_size == 8
    k3 = load_config(resolve_config("opt350m-k3"))
    assert [e.task.name for e in k3.entities] == ["sciq", "gsm8k", "arc_challenge"]
    assert k3.public.name == "bookcorpus"


def test_load_config_errors(tmp_path):
    with pytest.raises(InputError, match=r"^invalid config: .*nope.yaml \(allowed: an existing YAML file\)$"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(InputError, match=r"allowed: a YAML mapping of settings"):
        load_config(bad)
    with pytest.raises(InputError, match=r"^invalid config: nope \(allowed: an existing YAML file or a preset: cpu, "):
        resolve_config("nope")


@pytest.mark.parametrize("dotted", ["entities.x.name", "entities.9.name", "alpha.b"])
def test_a_bad_override_path_is_an_input_error(dotted):
    from crossgen.config import set_dotted

    data = {"alpha": 0.5, "entities": [{"name": "a"}]}
    with pytest.raises(InputError) as exc:
        set_dotted(data, dotted, 1)
    assert str(exc.value) == (
        f"invalid {dotted}: 1 (allowed: a setting path of the config: mapping keys and "
        "list indices that exist, e.g. entities.0.task.train_size)"
    )
