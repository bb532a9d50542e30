"""Running a sweep locally: run directories, the aggregated table and its intervals, the
report, resuming without recomputing, and failures that do not stop the other cells."""

import copy
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from crossgen.cli import main
from crossgen.errors import InputError
from crossgen.sweep import build_sweep, run_sweep
from crossgen.sweep.aggregate import summarise
from helpers import tiny_linear

BASE = tiny_linear(generations=2)


def sweep(**changes):
    data = {"name": "s", "base": copy.deepcopy(BASE), "axes": {"alpha": [0, 1], "beta": [0.5]}, "seeds": 3}
    data.update(changes)
    return build_sweep(data)


def starts(out):
    return (out / "starts.log").read_text().splitlines()


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    s = sweep()
    result = run_sweep(s, out)
    return s, out, result


def test_every_cell_and_seed_is_an_ordinary_complete_run(done):
    s, out, result = done
    assert (result.total, result.done, result.ran, result.failed) == (6, 6, 6, [])
    for run in s.runs:
        manifest = json.loads((out / run.rel_dir / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["seed"] == run.seed
        saved = yaml.safe_load((out / run.rel_dir / "config.yaml").read_text())
        assert saved["alpha"] == run.config.alpha
    assert yaml.safe_load((out / "sweep.yaml").read_text())["axes"] == {"alpha": [0, 1], "beta": [0.5]}
    status = json.loads((out / "status.json").read_text())
    assert status["runs"] == {"total": 6, "done": 6, "running": 0, "failed": 0, "pending": 0}
    assert status["cells"]["done"] == 2 and status["finished"] is True
    assert len(starts(out)) == 6
    assert (out / "failures.jsonl").read_text() == ""


def test_aggregate_is_mean_and_student_t_interval_over_seeds(done):
    s, out, _ = done
    table = pd.read_csv(out / "aggregate.csv", keep_default_na=False)
    assert list(table.columns) == [
        "cell",
        "alpha",
        "beta",
        "generation",
        "metric",
        "model",
        "model_b",
        "task",
        "mean",
        "std",
        "ci_low",
        "ci_high",
        "n_seeds",
    ]
    assert set(table["metric"]) == {"loss", "own_loss", "cross_loss", "public_loss"}
    assert (table["n_seeds"] == 3).all() and not table.isna().any().any()
    cell = s.cells[1]
    values = [
        pd.read_csv(out / r.rel_dir / "losses.csv")
        .query("generation == 2 and model == 'e0' and task == 'p1'")["loss"]
        .item()
        for r in cell.runs
    ]
    row = table.query(
        f"cell == '{cell.id}' and generation == 2 and metric == 'loss' and model == 'e0' and task == 'p1'"
    )
    half = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / np.sqrt(3)
    assert row["mean"].item() == pytest.approx(np.mean(values), rel=1e-9)
    assert row["ci_low"].item() == pytest.approx(np.mean(values) - half, rel=1e-9)
    assert row["ci_high"].item() == pytest.approx(np.mean(values) + half, rel=1e-9)
    assert row["alpha"].item() == 1
    own = []  # own_loss: per run, mean of e0 on p0 and e1 on p1; then over seeds
    for r in cell.runs:
        f = pd.read_csv(out / r.rel_dir / "losses.csv").query("generation == 2")
        own.append(
            np.mean(
                [
                    f.query("model == 'e0' and task == 'p0'")["loss"].item(),
                    f.query("model == 'e1' and task == 'p1'")["loss"].item(),
                ]
            )
        )
    got = table.query(f"cell == '{cell.id}' and generation == 2 and metric == 'own_loss'")
    assert got["mean"].item() == pytest.approx(np.mean(own), rel=1e-9)
    assert (got["model"].item(), got["task"].item(), got["model_b"].item()) == ("all", "all", "-")


def test_one_seed_gives_an_interval_equal_to_the_mean():
    frame = pd.DataFrame({"k": ["a", "b", "b"], "value": [2.0, 1.0, 3.0]})
    table = summarise(frame, ["k"])
    a = table.set_index("k").loc["a"]
    assert (a["mean"], a["ci_low"], a["ci_high"], a["std"], a["n_seeds"]) == (2.0, 2.0, 2.0, 0.0, 1)
    b = table.set_index("k").loc["b"]
    assert b["ci_high"] - b["mean"] == pytest.approx(stats.t.ppf(0.975, 1) * np.sqrt(2) / np.sqrt(2))


def test_report_files(done):
    _, out, result = done
    html = (out / "report.html").read_text()
    assert result.report == out / "report.html"
    assert "data:image/png;base64," in html and "curves.png" in html
    assert (out / "curves.png").stat().st_size > 1000
    assert not (out / "heatmaps.png").exists()  # beta has one value: a line plot instead
    assert (out / "lines.png").is_file()


def test_rerun_recomputes_nothing_and_gives_the_same_table(done):
    s, out, _ = done
    before = (out / "aggregate.csv").read_text()
    n = len(starts(out))
    result = run_sweep(s, out)
    assert (result.ran, result.skipped, result.done) == (0, 6, 6)
    assert len(starts(out)) == n
    assert (out / "aggregate.csv").read_text() == before


def test_a_different_sweep_in_the_same_dir_is_refused_before_anything_runs(done):
    _, out, _ = done
    n = len(starts(out))
    with pytest.raises(InputError, match="different config"):
        run_sweep(sweep(base={**copy.deepcopy(BASE), "generations": 3}), out)
    assert len(starts(out)) == n


def test_more_seeds_extend_a_finished_sweep(tmp_path):
    run_sweep(sweep(seeds=1, axes={"alpha": [0.5]}), tmp_path)
    result = run_sweep(sweep(seeds=2, axes={"alpha": [0.5]}), tmp_path)
    assert (result.ran, result.skipped) == (1, 1)
    table = pd.read_csv(tmp_path / "aggregate.csv")
    assert (table["n_seeds"] == 2).all()


def test_a_failing_run_is_reported_and_the_others_finish(tmp_path, monkeypatch):
    import crossgen.experiment as run_module

    real = run_module.run_experiment

    def flaky(cfg, out, **kw):
        if cfg.alpha == 1 and cfg.seed == 1:
            raise RuntimeError("boom")
        return real(cfg, out, **kw)

    monkeypatch.setattr(run_module, "run_experiment", flaky)
    s = sweep()
    result = run_sweep(s, tmp_path)
    assert result.done == 5 and [(f["cell"], f["seed"]) for f in result.failed] == [("alpha=1,beta=0.5", 1)]
    failures = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert failures[0]["error"] == "RuntimeError: boom" and failures[0]["cell"] == "alpha=1,beta=0.5"
    table = pd.read_csv(tmp_path / "aggregate.csv")
    assert set(table.groupby("cell")["n_seeds"].max()) == {3, 2}
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["runs"]["failed"] == 1 and status["cells"]["failed"] == 1 and status["finished"] is False
    monkeypatch.setattr(run_module, "run_experiment", real)
    again = run_sweep(s, tmp_path)  # the failed run is retried; nothing else runs
    assert (again.ran, again.failed, again.done) == (1, [], 6)
    assert (tmp_path / "failures.jsonl").read_text() == ""


def test_cli_sweep_with_a_failing_cell_exits_1(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_text("not an npz")
    spec = {"name": "cli", "base": copy.deepcopy(BASE), "axes": {"model.linear.features": [None, str(bad)]}, "seeds": 1}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "1 runs failed" in captured.err and "report.html" in captured.out
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == 1 and "npz" in failures[0]["error"]
    assert (out / "aggregate.csv").is_file()


def test_aggregate_reads_per_generation_files_when_the_run_table_is_stale(done, tmp_path):
    """A run killed between marking its last generation complete and refreshing losses.csv."""
    import shutil

    s, out, _ = done
    copy_dir = tmp_path / "copy"
    shutil.copytree(out, copy_dir)
    run_dir = copy_dir / s.runs[0].rel_dir
    table = pd.read_csv(run_dir / "losses.csv")
    table[table["generation"] < 2].to_csv(run_dir / "losses.csv", index=False)
    from crossgen.sweep.aggregate import aggregate_sweep

    pd.testing.assert_frame_equal(aggregate_sweep(s, copy_dir), aggregate_sweep(s, out))


def test_metric_family_rows_are_aggregated_like_the_losses(tmp_path):
    from crossgen.config import parse_config
    from crossgen.sweep.aggregate import run_rows
    from helpers import tiny_linear

    cfg = parse_config(tiny_linear(generations=0))
    (tmp_path / "losses.csv").write_text("generation,model,task,loss\n0,e0,p0,1.5\n")
    (tmp_path / "metrics.csv").write_text(
        "generation,model,dataset,metric,value,low,high\n"
        "0,e0,p0,acc,0.25,0.1,0.4\n"
        "0,e1,pub,distinct_4,,,\n"  # undefined (NaN): not a seed's value
    )
    rows = list(run_rows(cfg, tmp_path))
    assert (0, "loss", "e0", "-", "p0", 1.5) in rows
    assert [r for r in rows if r[1] not in ("loss", "own_loss", "cross_loss", "public_loss")] == [
        (0, "acc", "e0", "-", "p0", 0.25)
    ]
