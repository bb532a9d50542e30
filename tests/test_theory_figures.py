"""Figures 2 and 4: files, CSV layout, theory vs Monte Carlo agreement, valid PNGs."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from crossgen.theory.figures import COLUMNS, figure2, figure4

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
Z_BOUND = 4.5  # Bonferroni-aware: <= 150 comparisons per figure, P(|N(0,1)| > 4.5) = 6.8e-6


def check_files(paths: dict, tmp_path, name: str) -> pd.DataFrame:
    """Both files exist under their final names, nothing temporary is left, the PNG is a
    real image; return the CSV."""
    assert paths == {"png": tmp_path / f"{name}.png", "csv": tmp_path / f"{name}.csv"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.csv", f"{name}.png"]
    assert paths["png"].read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(paths["png"])
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600  # a figure, not a stub
    return pd.read_csv(paths["csv"])


def check_agreement(frame: pd.DataFrame, keys: list[str]) -> None:
    """Every Monte Carlo row has a theory row with the same keys, within Z_BOUND stderr."""
    theory = frame[frame.source == "theory"].set_index(keys).value
    mc = frame[frame.source == "monte_carlo"].set_index(keys)
    assert mc.stderr.notna().all() and (mc.stderr > 0).all()
    assert frame[frame.source == "theory"].stderr.isna().all()
    z = (mc.value - theory.reindex(mc.index)).abs() / mc.stderr
    assert z.notna().all() and z.max() < Z_BOUND, z.sort_values().tail()


@pytest.fixture(scope="module")
def fig2(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig2")
    return figure2(out, seed=1, replicates=200), out


def test_figure2_files_and_csv(fig2):
    paths, out = fig2
    frame = check_files(paths, out, "figure2")
    assert list(frame.columns) == COLUMNS
    assert set(frame.source) == {"theory", "monte_carlo"}
    assert len(frame[frame.source == "theory"]) == 41 * 3 * 4  # alphas x betas x entities
    assert len(frame[frame.source == "monte_carlo"]) == 5 * 3 * 4
    theory = frame[frame.source == "theory"]
    assert theory.value.between(0, 1).all()  # full-rank G: <= 1
    assert (theory[theory.alpha == 1].value == 0).all()  # alpha = 1 diverges
    check_agreement(frame, ["alpha", "beta", "entity"])


def test_figure4_files_and_csv(tmp_path):
    paths = figure4(tmp_path, seed=1, replicates=200, generations=4)
    frame = check_files(paths, tmp_path, "figure4")
    assert list(frame.columns) == ["generation"] + COLUMNS
    assert len(frame) == 2 * 9 * 5 * 2  # sources x (alpha, beta) x gens x K
    assert sorted(frame.alpha.unique()) == sorted(frame.beta.unique()) == [0, 0.5, 1]
    check_agreement(frame, ["generation", "alpha", "beta", "entity"])
    # alpha = 1: synthetic data only, the MSE grows every generation (model collapse)
    collapse = frame[(frame.source == "theory") & (frame.alpha == 1) & (frame.entity == 0)]
    assert np.all(np.diff(collapse.sort_values(["beta", "generation"]).value.to_numpy().reshape(3, 5)) > 0)


def test_figure2_monte_carlo_generation_stands_in_for_the_limit():
    """At MC_GENERATION the exact MSE of every Monte Carlo point's weights is within 5e-4
    relative of the limit: a tenth of the points' standard error (0.6-0.7% at 4000 replicates)."""
    import inspect

    from crossgen.theory.dynamics import trajectory_with_limit
    from crossgen.theory.figures import MC_GENERATION, figure2_data
    from crossgen.theory.scenarios import figure2_system

    params = inspect.signature(figure2_data).parameters
    assert params["mc_generation"].default == MC_GENERATION
    system = figure2_system()
    worst = 0.0
    for beta in params["betas"].default:
        for alpha in params["mc_alphas"].default:
            path, limit = trajectory_with_limit(system, alpha, beta, MC_GENERATION)
            worst = max(worst, float(np.max(np.abs(np.asarray(path.mse)[-1] / np.asarray(limit.mse) - 1))))
    assert 1e-5 < worst < 5e-4  # alpha = 0.9, beta = 0.1 converges slowest: 4.2e-4
