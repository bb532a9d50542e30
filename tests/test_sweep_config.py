"""Sweep files: validation, expansion into cells and runs, stable cell ids, exit code 2."""

import copy

import pytest
import yaml

from crossgen.cli import main
from crossgen.errors import InputError
from crossgen.sweep import build_sweep, load_sweep
from crossgen.sweep.grid import cell_id
from helpers import tiny_linear

BASE = tiny_linear(K=3, generations=2)


def sweep(**changes):
    data = {"name": "s", "base": copy.deepcopy(BASE), "axes": {"alpha": [0, 0.5], "beta": [0.25, 1]}, "seeds": 2}
    data.update(changes)
    return data


def test_cells_are_the_product_of_the_axes_with_stable_readable_ids():
    s = build_sweep(sweep())
    assert [c.id for c in s.cells] == ["alpha=0,beta=0.25", "alpha=0,beta=1", "alpha=0.5,beta=0.25", "alpha=0.5,beta=1"]
    assert len(s.runs) == 8
    run = s.cells[2].runs[1]
    assert (run.config.alpha, run.config.beta, run.seed, run.config.seed) == (0.5, 0.25, 1, 1)
    assert run.rel_dir == "cells/alpha=0.5,beta=0.25/seed_1"
    assert [c.id for c in build_sweep(sweep()).cells] == [c.id for c in s.cells]  # stable


def test_seeds_count_is_added_to_the_base_seed_and_a_list_is_used_as_is():
    base = copy.deepcopy(BASE) | {"seed": 5}
    assert [r.seed for r in build_sweep(sweep(base=base, seeds=3)).cells[0].runs] == [5, 6, 7]
    assert [r.seed for r in build_sweep(sweep(base=base, seeds=[0, 42])).cells[0].runs] == [0, 42]
    with pytest.raises(InputError, match="seeds"):
        build_sweep(sweep(axes={"seed": [0, 10]}, seeds=[1, 2]))
    s = build_sweep(sweep(axes={"seed": [0, 10]}, seeds=2))
    assert [r.seed for r in s.runs] == [0, 1, 10, 11]


def test_entity_lists_k_shorthand_and_nested_paths():
    ents = BASE["entities"]
    s = build_sweep(sweep(axes={"entities": [ents[:2], ents], "mixing.n": [1, 2], "entities.0.beta": [0.1]}, seeds=1))
    assert [c.config.K for c in s.cells] == [2, 2, 3, 3]
    assert s.cells[0].id.startswith("entities=K2-e0+e1,mixing.n=1,entities.0.beta=0.1-")  # + a hash: a list
    assert s.cells[0].labels["entities"] == "e0+e1"
    assert s.cells[1].config.mixing.n == 2 and s.cells[1].config.entities[0].beta == 0.1
    k = build_sweep(sweep(axes={"K": [1, 3]}))
    assert [c.config.K for c in k.cells] == [1, 3] and [c.id for c in k.cells] == ["K=1", "K=3"]
    with pytest.raises(InputError, match=r"axes\.K"):
        build_sweep(sweep(axes={"K": [4]}))


def test_ids_of_odd_values_are_sanitised_and_hashed():
    assert cell_id([("model.name_or_path", "facebook/opt-350m")]).startswith("model.name_or_path=facebook_opt-350m-")
    assert cell_id([("alpha", 0.1)]) == "alpha=0.1"
    assert cell_id([]) == "base"
    a, b = cell_id([("x", "a/b")]), cell_id([("x", "a_b")])
    assert a != b and b == "x=a_b"
    s = build_sweep(sweep(axes={"alpha": [1, 1.0]}))  # same text, different YAML values
    assert len({c.id for c in s.cells}) == 2


def test_an_invalid_cell_names_the_field_the_value_and_the_cell():
    with pytest.raises(InputError) as exc:
        build_sweep(sweep(axes={"alpha": [0.5, 1.5], "beta": [0.5]}))
    assert exc.value.field == "alpha in cell alpha=1.5,beta=0.5" and exc.value.value == 1.5
    with pytest.raises(InputError) as exc:
        build_sweep(sweep(axes={"mixing.nn": [1]}))
    assert exc.value.field.startswith("mixing.nn in cell") and "paradigm" in exc.value.allowed
    with pytest.raises(InputError, match=r"generations in cell generations=-1"):
        build_sweep(sweep(axes={"generations": [3, -1]}))
    with pytest.raises(InputError, match=r"axes\.entities\.7\.beta"):
        build_sweep(sweep(axes={"entities.7.beta": [0.5]}))


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"axes": {"alpha": []}}, "axes.alpha"),
        ({"axes": {"alpha": [0.5, 0.5]}}, "axes.alpha"),
        ({"seeds": 0}, "seeds"),
        ({"seeds": [1, 1]}, "seeds"),
        ({"colour": "red"}, "colour"),
        ({"base": "no-such-preset"}, "base"),
        ({"base": {**BASE, "beta": 2}}, "base.beta"),
    ],
)
def test_bad_sweep_files_are_input_errors(changes, field):
    with pytest.raises(InputError) as exc:
        build_sweep(sweep(**changes))
    assert exc.value.field == field


def test_base_path_relative_to_the_sweep_file_and_presets(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"base": "base.yaml", "axes": {"beta": [0.2]}}))
    assert load_sweep(tmp_path / "s.yaml").base_config.name == "tiny"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"base": "linear", "axes": {"K": [2]}}))
    assert load_sweep(tmp_path / "p.yaml").cells[0].config.K == 2


def test_shipped_example_is_valid():
    from importlib import resources

    path = resources.files("crossgen") / "configs" / "sweeps" / "linear-grid.yaml"
    s = load_sweep(str(path))
    assert len(s.cells) == 12 and len(s.runs) == 36


def test_cli_exit_2_on_invalid_sweep_and_nothing_written(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(sweep(axes={"alpha": [0.5, 7]})))
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "alpha in cell alpha=7" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["sweep", str(tmp_path / "missing.yaml"), "--out", str(out)]) == 2
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(sweep()))
    assert main(["sweep", str(good), "--out", str(out), "--executor", "slurm"]) == 2
    assert main(["sweep", str(good), "--out", str(out), "--workers", "0"]) == 2
    assert main(["sweep", str(good), "--out", str(out), "--ray-address", "auto"]) == 2
    assert not out.exists()


def test_unknown_backend_or_task_in_a_cell_is_refused_before_anything_runs(tmp_path):
    from crossgen.sweep import build_sweep
    from crossgen.sweep.config import parse_sweep

    base = {
        "name": "b",
        "generations": 1,
        "entities": [{"name": "a", "task": {"name": "offline_science", "source": "offline"}}],
        "public": {"name": "offline_stories", "source": "offline"},
        "model": {"scratch": {}},
    }
    with pytest.raises(InputError) as exc:
        build_sweep(parse_sweep({"name": "s", "base": base, "axes": {"model.backend": ["hf", "gpt9"]}}))
    assert str(exc.value).startswith("invalid model.backend in cell model.backend=gpt9: gpt9 (allowed: one of ")
    with pytest.raises(InputError) as exc:
        build_sweep(parse_sweep({"name": "s", "base": base, "axes": {"public.name": ["offline_stories", "nope"]}}))
    assert str(exc.value).startswith("invalid public.name in cell public.name=nope: nope (allowed: one of ")
