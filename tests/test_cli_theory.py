"""`crossgen theory ...` and `crossgen simulate`: the JSON contract of docs/DESIGN.md, the
exit-code contract (2 + one line naming field, value and what is allowed), and a light import."""

import inspect
import json
import subprocess
import sys

import numpy as np
import pytest

from crossgen.cli import theory as cli_theory
from crossgen.theory import asymptotic, pooled_ols_mse, trajectory
from crossgen.theory import figures as theory_figures
from crossgen.theory.scenarios import low_rank_system
from helpers import run_cli

MSE_KEYS = {
    "K",
    "d",
    "alpha",
    "beta",
    "generations",
    "mse",
    "asymptotic_mse",
    "spectral_radius",
    "converges",
    "growth",
    "pooled_ols_mse",
    "relative_efficiency",
}


@pytest.fixture
def features(tmp_path):
    system = low_rank_system(K=3, d=5, rank=2, seed=1)
    path = tmp_path / "f.npz"
    system.to_npz(path)
    return path, system


def test_mse_json_contract(features, capsys):
    path, system = features
    code, out, _ = run_cli(
        capsys, "theory", "mse", str(path), "--alpha", "0.5", "--beta", "0.3", "--generations", "4", "--json"
    )
    assert code == 0
    result = json.loads(out)
    assert set(result) == MSE_KEYS
    assert (result["K"], result["d"], result["alpha"], result["beta"], result["generations"]) == (3, 5, 0.5, 0.3, 4)
    # the same numbers as the API (JSON floats round-trip exactly): bit for bit
    traj = trajectory(system, 0.5, 0.3, 4)  # beta applies at t = 0 too
    np.testing.assert_array_equal(result["mse"], traj.mse)
    assert np.shape(result["mse"]) == (5, 3)
    limit = asymptotic(system, 0.5, 0.3)
    np.testing.assert_array_equal(result["asymptotic_mse"], limit.mse)
    assert result["spectral_radius"] == limit.spectral_radius and result["converges"] is True
    assert result["growth"] is None and result["pooled_ols_mse"] == pooled_ols_mse(system)
    np.testing.assert_array_equal(result["relative_efficiency"], pooled_ols_mse(system) / np.asarray(limit.mse))
    assert cli_theory.mse_result(system, 0.5, 0.3, 4) == result


def test_mse_json_diverging_is_null_with_growth(features, capsys):
    path, system = features
    code, out, _ = run_cli(
        capsys, "theory", "mse", str(path), "--alpha", "1", "--beta", "0.5", "--generations", "3", "--json"
    )
    result = json.loads(out)
    assert code == 0 and result["asymptotic_mse"] is None and result["converges"] is False
    assert result["growth"]["kind"] == "linear"
    sbar = sum(system.synthetic_grams) / system.K
    expected = system.sigma2 * np.trace(np.linalg.pinv(sbar)) / system.K  # the alpha = 1 closed form
    # spectral projectors vs the closed form: rounding only (observed 1e-15)
    np.testing.assert_allclose(result["growth"]["per_generation"], expected, rtol=1e-10)
    assert result["relative_efficiency"] == [0.0, 0.0, 0.0]


def test_mse_table_output(features, capsys):
    code, out, _ = run_cli(
        capsys, "theory", "mse", str(features[0]), "--alpha", "0.5", "--beta", "0.5", "--generations", "2"
    )
    assert code == 0 and "MSE per generation" in out and "spectral radius of Q" in out and "limit" in out


def test_optimum_json_matches_api(features, capsys):
    from crossgen.theory import optimal_weights

    path, system = features
    code, out, _ = run_cli(capsys, "theory", "optimum", str(path), "--points", "11", "--json")
    best = optimal_weights(system, np.linspace(0, 1, 11), np.linspace(0, 1, 11))
    assert code == 0 and json.loads(out)["group_alpha"] == best.group_alpha


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--alpha", "1.5", "--beta", "0.5", "--generations", "2"],
            "error: invalid --alpha: 1.5 (allowed: a number in [0, 1])",
        ),
        (
            ["--alpha", "0.5", "--beta", "-0.1", "--generations", "2"],
            "error: invalid --beta: -0.1 (allowed: a number in [0, 1])",
        ),
        (
            ["--alpha", "0.5", "--beta", "0.5", "--generations", "-1"],
            "error: invalid --generations: -1 (allowed: an integer >= 0)",
        ),
    ],
)
def test_bad_arguments_exit_2_with_one_line(features, capsys, args, message):
    code, out, err = run_cli(capsys, "theory", "mse", str(features[0]), *args, "--json")
    assert code == 2 and out == "" and err.strip() == message


def _npz(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "arrays,expected",
    [
        (
            dict(private_0=np.ones((3, 2))),
            "error: invalid public: missing (allowed: an array named 'public' in the .npz file)",
        ),
        (
            dict(public=np.ones((3, 2))),  # K = 0
            "error: invalid private_0: missing (allowed: an array named 'private_0' in the .npz file "
            "(private_0 .. private_{K-1}))",
        ),
        (
            dict(private_0=np.ones((3, 2)), public=np.ones((3, 3))),
            "error: invalid public: 3 columns (allowed: 2 columns, the d of private_0)",
        ),
        (
            dict(private_0=np.array([[1.0, np.nan]]), public=np.ones((3, 2))),
            "error: invalid private_0: non-finite values (NaN or inf) (allowed: finite numbers)",
        ),
    ],
)
def test_bad_feature_files_exit_2(tmp_path, capsys, arrays, expected):
    path = _npz(tmp_path, **arrays)
    code, out, err = run_cli(
        capsys, "theory", "mse", str(path), "--alpha", "0.5", "--beta", "0.5", "--generations", "1", "--json"
    )
    assert code == 2 and out == ""
    assert err.strip() == expected


def test_missing_file_exit_2(tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "simulate", str(tmp_path / "nope.npz"), "--alpha", "0.5", "--beta", "0.5", "--generations", "1"
    )
    assert code == 2 and err.startswith("error: invalid ")


@pytest.mark.parametrize("command", [["theory", "figure2"], ["theory", "figure4"], ["simulate", "{path}"]])
def test_negative_seed_is_named_as_the_option(features, tmp_path, capsys, command):
    args = [a.format(path=features[0]) for a in command]
    extra = (
        ["--alpha", "0.5", "--beta", "0.5", "--generations", "1"]
        if args[0] == "simulate"
        else ["--out", str(tmp_path / "figs")]
    )
    code, out, err = run_cli(capsys, *args, *extra, "--seed", "-1")
    assert code == 2 and out == "" and err.strip() == "error: invalid --seed: -1 (allowed: an integer >= 0)"


def test_figure_with_bad_replicates_writes_nothing(tmp_path, capsys):
    code, _, err = run_cli(capsys, "theory", "figure4", "--out", str(tmp_path / "figs"), "--replicates", "0")
    assert code == 2 and err.strip() == "error: invalid --replicates: 0 (allowed: an integer >= 1)"
    assert not (tmp_path / "figs").exists()


def test_simulate_json_agrees_with_theory(features, capsys):
    path, _ = features
    code, out, _ = run_cli(
        capsys,
        "simulate",
        str(path),
        "--alpha",
        "0.5",
        "--beta",
        "0.5",
        "--generations",
        "2",
        "--replicates",
        "4000",
        "--json",
    )
    result = json.loads(out)
    z = (np.array(result["mse"]) - np.array(result["theory_mse"])) / np.array(result["mse_stderr"])
    # z-score bound: 9 comparisons, P(|N(0,1)| > 4.5) = 6.8e-6 each, false alarm < 1e-4
    assert code == 0 and np.abs(z).max() < 4.5


def test_figure_commands_default_to_the_figures_replicates():
    for command in (cli_theory.figure2, cli_theory.figure4):
        default = inspect.signature(command).parameters["replicates"].default.default
        assert default == theory_figures.MC_REPLICATES
    for make in (theory_figures.figure2, theory_figures.figure4):
        assert inspect.signature(make).parameters["replicates"].default == theory_figures.MC_REPLICATES


HEAVY = ("matplotlib", "pandas", "torch", "transformers", "scipy")


@pytest.mark.parametrize(
    "args", [["--help"], ["theory", "mse", "{path}", "--alpha", "0.5", "--beta", "0.5", "--generations", "3", "--json"]]
)
def test_theory_commands_import_nothing_heavy(features, args):
    """`crossgen --help` and `crossgen theory mse` load none of the heavy libraries."""
    args = [a.format(path=features[0]) for a in args]
    code = (
        f"import sys\nfrom crossgen.cli import main\ncode = main({args!r})\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


# ----------------------------------------------------------------------------- interaction graphs
MSE_ARGS = ["--alpha", "0.5", "--beta", "0.3", "--generations", "3", "--json"]


@pytest.mark.parametrize("fresh", [False, True])
def test_mse_json_on_a_named_graph(features, capsys, fresh):
    path, system = features
    extra = ["--fresh-real"] if fresh else []
    code, out, _ = run_cli(capsys, "theory", "mse", str(path), *MSE_ARGS, "--graph", "star", *extra)
    result = json.loads(out)
    assert code == 0 and set(result) == MSE_KEYS  # the same contract
    traj = trajectory(system, 0.5, 0.3, 3, graph="star", fresh_real=fresh)
    np.testing.assert_array_equal(result["mse"], traj.mse)
    limit = asymptotic(system, 0.5, 0.3, graph="star", fresh_real=fresh)
    np.testing.assert_allclose(result["asymptotic_mse"], limit.mse, rtol=1e-13)  # two calls, same algebra
    assert result["converges"] is True and abs(result["spectral_radius"] - limit.spectral_radius) < 1e-13
    assert result == cli_theory.mse_result(system, 0.5, 0.3, 3, graph="star", fresh_real=fresh)
    complete = json.loads(run_cli(capsys, "theory", "mse", str(path), *MSE_ARGS)[1])["mse"]
    np.testing.assert_allclose(result["mse"][0], complete[0], rtol=1e-12)  # t = 0 has no synthetic data
    assert (
        np.max(np.abs(np.subtract(result["mse"][1], complete[1]))) > 1e-3
    )  # the leaves differ (the hub reads like complete)


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".txt"])
def test_mse_json_with_a_graph_file(features, capsys, tmp_path, suffix):
    from crossgen.theory.graphs import graph

    path, system = features
    W = graph("directed-ring", system.K)
    file = tmp_path / f"w{suffix}"
    if suffix == ".npy":
        np.save(file, W)
    else:
        np.savetxt(file, W, delimiter="," if suffix == ".csv" else " ")
    code, out, _ = run_cli(capsys, "theory", "mse", str(path), *MSE_ARGS, "--graph-file", str(file))
    assert code == 0
    np.testing.assert_array_equal(json.loads(out)["mse"], trajectory(system, 0.5, 0.3, 3, graph=W).mse)
    named = json.loads(run_cli(capsys, "theory", "mse", str(path), *MSE_ARGS, "--graph", "directed-ring")[1])
    assert json.loads(out) == named


def test_bad_graph_arguments_exit_2_with_one_line(features, capsys, tmp_path):
    path = str(features[0])
    np.savetxt(tmp_path / "rows.csv", np.full((3, 3), 0.5), delimiter=",")
    np.savetxt(tmp_path / "shape.csv", np.eye(2), delimiter=",")
    cases = [
        (
            ["--graph", "wheel"],
            "error: invalid --graph: wheel (allowed: one of complete, ring, directed-ring, star, isolated)",
        ),
        (
            ["--graph", "ring", "--graph-file", str(tmp_path / "rows.csv")],
            f"error: invalid --graph-file: {tmp_path / 'rows.csv'} (allowed: either --graph or --graph-file, not both)",
        ),
        (
            ["--graph-file", str(tmp_path / "rows.csv")],
            "error: invalid --graph-file[0]: row sum 1.5 (allowed: non-negative weights summing to 1 in every row)",
        ),
        (
            ["--graph-file", str(tmp_path / "shape.csv")],
            "error: invalid --graph-file: shape (2, 2) (allowed: a 3 x 3 matrix (K = 3 entities))",
        ),
        (
            ["--graph-file", str(tmp_path / "none.npy")],
            f"error: invalid --graph-file: {tmp_path / 'none.npy'} (allowed: an existing .npy, .csv or .txt file "
            "holding a 3 x 3 matrix)",
        ),
    ]
    for extra, message in cases:
        code, out, err = run_cli(capsys, "theory", "mse", path, *MSE_ARGS, *extra)
        assert code == 2 and out == "" and err.strip() == message
    code, out, err = run_cli(
        capsys, "simulate", path, "--alpha", "0.5", "--beta", "0.5", "--generations", "1", "--graph", "x"
    )
    assert code == 2 and out == "" and err.startswith("error: invalid --graph: x ")


def test_simulate_json_on_a_graph_with_fresh_real_data(features, capsys):
    path, _ = features
    code, out, _ = run_cli(
        capsys, "simulate", str(path), "--alpha", "0.5", "--beta", "0.5", "--generations", "2",
        "--replicates", "4000", "--graph", "directed-ring", "--fresh-real", "--json",
    )  # fmt: skip
    result = json.loads(out)
    z = (np.array(result["mse"]) - np.array(result["theory_mse"])) / np.array(result["mse_stderr"])
    assert code == 0 and np.abs(z).max() < 4.5  # 9 comparisons, as in test_simulate_json_agrees_with_theory


def test_mse_on_a_graph_imports_nothing_heavy(features):
    args = ["theory", "mse", str(features[0]), *MSE_ARGS, "--graph", "ring", "--fresh-real"]
    code = (
        f"import sys\nfrom crossgen.cli import main\ncode = main({args!r})\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_figure_graphs_command(tmp_path, capsys):
    code, out, _ = run_cli(
        capsys, "theory", "figure-graphs", "--out", str(tmp_path), "--replicates", "16", "--generations", "2"
    )
    assert code == 0 and (tmp_path / "graphs.png").is_file() and (tmp_path / "graphs.csv").is_file()
    assert "has the lowest asymptotic MSE" in out


@pytest.mark.parametrize(("given", "advice"), [(None, False), ("1", True)])
def test_the_cli_turns_numpy_huge_page_advice_off_before_numpy_loads_unless_told(given, advice):
    """The CLI process opts out of numpy's transparent-huge-page advice (a first touch of a
    large array can wait for memory compaction); NUMPY_MADVISE_HUGEPAGE set by the user wins."""
    import os

    code = (
        "import crossgen.cli, numpy; "
        "getter = getattr(numpy._core.multiarray, '_get_madvise_hugepage', None); "
        "print('unknown' if getter is None else getter())"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if given is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = given
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    if out.stdout.strip() == "unknown":
        pytest.skip("this numpy does not report its huge-page advice")
    assert out.stdout.strip() == str(advice)
