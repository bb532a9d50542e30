"""Generation 0 has its own beta (`initial_beta`), so runs that differ in beta can share one
generation 0, and a generation 0 is copied only between runs whose generation-0 settings agree."""

import pandas as pd
import pytest

from crossgen.config import parse_config
from crossgen.errors import InputError
from crossgen.experiment import run_experiment
from helpers import tiny_linear


def test_initial_beta_sets_generation_0_only():
    cfg = parse_config(tiny_linear(beta=0.8, initial_beta=0.5))
    beta = cfg.schedule("beta")
    assert beta[0].tolist() == [0.5, 0.5] and (beta[1:] == 0.8).all()
    assert parse_config(tiny_linear(beta=0.8)).schedule("beta")[0].tolist() == [0.8, 0.8]


def test_generation0_key_ignores_later_weights_but_not_beta0():
    key = parse_config(tiny_linear(beta=0.8, initial_beta=0.5, alpha=0.3)).generation0_key()
    assert parse_config(tiny_linear(beta=0.2, initial_beta=0.5, alpha=1.0, generations=7)).generation0_key() == key
    assert (
        parse_config(tiny_linear(beta=0.2)).generation0_key() != parse_config(tiny_linear(beta=0.8)).generation0_key()
    )
    assert parse_config(tiny_linear(beta=0.8, initial_beta=0.5, seed=1)).generation0_key() != key


def _gen0_losses(run) -> list:
    table = pd.read_csv(run / "losses.csv")
    return table[table["generation"] == 0]["loss"].tolist()


def test_runs_sharing_initial_beta_train_the_same_generation_0(tmp_path):
    a = run_experiment(parse_config(tiny_linear(beta=0.8, initial_beta=0.5)), tmp_path / "a").root
    b = run_experiment(parse_config(tiny_linear(beta=0.2, initial_beta=0.5)), tmp_path / "b").root
    c = run_experiment(parse_config(tiny_linear(beta=0.2)), tmp_path / "c").root
    assert _gen0_losses(a) == _gen0_losses(b)  # same data, seeds and generation-0 weights
    assert _gen0_losses(c) != _gen0_losses(b)  # beta 0.2 at t = 0 fits another estimator
    copied = run_experiment(parse_config(tiny_linear(beta=0.2, initial_beta=0.5)), tmp_path / "d", generation0_from=a)
    assert pd.read_csv(copied.root / "losses.csv").equals(pd.read_csv(b / "losses.csv"))


def test_a_generation_0_with_other_settings_is_refused_before_writing(tmp_path):
    a = run_experiment(parse_config(tiny_linear(beta=0.8)), tmp_path / "a").root
    with pytest.raises(InputError, match=r"^invalid generation0_from: .* \(allowed: a run whose generation-0"):
        run_experiment(parse_config(tiny_linear(beta=0.2)), tmp_path / "d", generation0_from=a)
    assert not (tmp_path / "d").exists()
