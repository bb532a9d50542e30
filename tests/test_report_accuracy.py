"""The report's task-accuracy section: the initial -> final table with 95% intervals, its
change marks by the intervals, and the α = 0.5 observation (accuracy on the other models' tasks
rises while lexical diversity falls), on run directories written by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from crossgen.config import parse_config
from crossgen.io import write_table
from crossgen.metrics.table import family_path
from crossgen.report import tables, write_run_report
from crossgen.report.findings import HELD, NOT_HELD, NOT_TESTABLE, accuracy_observations
from crossgen.report.runs import load_runs
from crossgen.workflow.store import RunStore

ENTITIES = [("science", "offline_science"), ("arithmetic", "offline_arithmetic")]
PUBLIC = "offline_stories"

# (model, dataset, metric) -> ((value, low, high) at generation 0, the same at generation 2)
ALPHA_HALF = {
    ("science", "offline_science", "acc"): ((0.50, 0.40, 0.60), (0.52, 0.42, 0.62)),
    ("science", "offline_science", "acc_norm"): ((0.45, 0.35, 0.55), (0.20, 0.10, 0.30)),
    ("arithmetic", "offline_science", "acc"): ((0.25, 0.15, 0.35), (0.60, 0.50, 0.70)),
    ("arithmetic", "offline_science", "acc_norm"): ((0.25, 0.15, 0.35), (0.30, 0.20, 0.40)),
    ("science", "offline_arithmetic", "exact_match"): ((0.10, 0.02, 0.20), (0.40, 0.30, 0.50)),
    ("arithmetic", "offline_arithmetic", "exact_match"): ((0.80, 0.70, 0.90), (0.85, 0.75, 0.95)),
}
ALPHA_ZERO = {
    **ALPHA_HALF,
    ("arithmetic", "offline_science", "acc"): ((0.25, 0.15, 0.35), (0.20, 0.10, 0.30)),
    ("science", "offline_arithmetic", "exact_match"): ((0.10, 0.02, 0.20), (0.10, 0.02, 0.20)),
}


def make_run(root: Path, alpha: float, accuracy: dict, distinct=(0.6, 0.4), self_bleu=(0.1, 0.3), T: int = 2) -> Path:
    """A finished run: flat losses, accuracy rows going from initial to final through generation
    1 (a value halfway), lexical rows of every model and of the reference answers."""
    cfg = parse_config(
        {
            "name": f"alpha={alpha:g}",
            "generations": T,
            "alpha": alpha,
            "beta": 0.5,
            "entities": [{"name": n, "task": {"name": t, "source": "offline"}} for n, t in ENTITIES],
            "public": {"name": PUBLIC, "source": "offline"},
            "model": {"scratch": {}},
        }
    )
    store = RunStore.create(root, cfg)
    for t in range(T + 1):
        w = t / T
        mix = lambda pair, w=w: tuple(a + w * (b - a) for a, b in zip(*pair))
        losses = [
            {"generation": t, "model": m, "task": task, "loss": 2.0}
            for m, _ in ENTITIES
            for task in [*(d for _, d in ENTITIES), PUBLIC]
        ]
        write_table(store.losses_path(t), pd.DataFrame(losses))
        rows = [
            {"generation": t, "model": m, "dataset": d, "metric": metric, **dict(zip(("value", "low", "high"), mix(v)))}
            for (m, d, metric), v in accuracy.items()
        ]
        rows += [
            {"generation": t, "model": m, "dataset": "offline_science", "metric": "chance", "value": 0.25}
            for m, _ in ENTITIES
        ]
        write_table(family_path(store.gen_dir(t), "accuracy"), pd.DataFrame(rows))
        lexical = []
        for model in [m for m, _ in ENTITIES] + ["reference"]:
            for dataset in [d for _, d in ENTITIES] + [PUBLIC]:
                d2 = 0.9 - 0.8 * w if model == "reference" else distinct[0] + w * (distinct[1] - distinct[0])
                sb = self_bleu[0] + w * (self_bleu[1] - self_bleu[0])
                lexical.append(
                    {"generation": t, "model": model, "dataset": dataset, "metric": "distinct_2", "value": d2}
                )
                lexical.append(
                    {"generation": t, "model": model, "dataset": dataset, "metric": "self_bleu", "value": sb}
                )
        write_table(family_path(store.gen_dir(t), "lexical"), pd.DataFrame(lexical))
        store.mark_complete(t, 0.1)
    store.refresh_tables()
    return root


def test_the_accuracy_table_has_every_pair_with_its_intervals_and_marks(tmp_path):
    runs = load_runs([make_run(tmp_path / "a0", 0.0, ALPHA_ZERO), make_run(tmp_path / "a05", 0.5, ALPHA_HALF)])
    table = tables.accuracy_table(runs)
    assert table is not None
    assert table.title == "Task accuracy, initial → final (95% interval), K = 2, β = 0.5, T = 2"
    assert table.columns == ["α = 0", "α = 0.5"]
    assert table.rows == [
        "Model 1 on Task 1 (acc)",
        "Model 1 on Task 1 (acc_norm)",
        "Model 2 on Task 2 (exact_match)",
        "Model 1 on Task 2 (exact_match)",
        "Model 2 on Task 1 (acc)",
        "Model 2 on Task 1 (acc_norm)",
    ]
    texts = [[c.text(table.digits) for c in row] for row in table.cells]
    assert texts == [
        ["0.50 [0.40, 0.60] → 0.52 [0.42, 0.62] ="] * 2,
        ["0.45 [0.35, 0.55] → 0.20 [0.10, 0.30] ↓"] * 2,  # the intervals are apart
        ["0.80 [0.70, 0.90] → 0.85 [0.75, 0.95] ="] * 2,
        ["0.10 [0.02, 0.20] → 0.10 [0.02, 0.20] =", "0.10 [0.02, 0.20] → 0.40 [0.30, 0.50] ↑"],
        ["0.25 [0.15, 0.35] → 0.20 [0.10, 0.30] =", "0.25 [0.15, 0.35] → 0.60 [0.50, 0.70] ↑"],
        ["0.25 [0.15, 0.35] → 0.30 [0.20, 0.40] ="] * 2,
    ]
    assert table.notes[:2] == [
        "Model 1 = science (Task 1 = offline_science), Model 2 = arithmetic (Task 2 = offline_arithmetic)",
        "chance: offline_science 0.25",
    ]
    md = tables.to_markdown(table)
    assert "| Model 2 on Task 1 (acc) | 0.25 [0.15, 0.35] → 0.20 [0.10, 0.30] = | 0.25 [0.15, 0.35] → 0.60" in md
    assert "↑ increase, ↓ decrease (the 95% intervals do not overlap), = no clear change" in md


def test_interval_marks():
    assert tables.classify_intervals((0.5, 0.4, 0.6), (0.7, 0.61, 0.8)) == "increase"
    assert tables.classify_intervals((0.5, 0.4, 0.6), (0.7, 0.6, 0.8)) == "constant"  # touching intervals overlap
    assert tables.classify_intervals((0.5, 0.4, 0.6), (0.3, 0.2, 0.39)) == "decrease"
    nan = float("nan")
    assert tables.classify_intervals((0.5, nan, nan), (0.6, nan, nan)) == "increase"  # no interval: exact change
    assert tables.classify_intervals((nan, nan, nan), (0.6, 0.5, 0.7)) == "missing"


def test_the_observation_holds_when_cross_task_accuracy_rises_and_diversity_falls(tmp_path):
    runs = load_runs([make_run(tmp_path / "a0", 0.0, ALPHA_ZERO), make_run(tmp_path / "a05", 0.5, ALPHA_HALF)])
    [found] = accuracy_observations(runs)
    assert found.status == HELD
    assert found.context == "β = 0.5"
    assert found.text == (
        "At α = 0.5 (β = 0.5), accuracy on the other models' tasks rose for 2 of 2 pairs (95% intervals apart "
        "for 2): Model 1 on Task 2 (exact_match) 0.10 → 0.40, Model 2 on Task 1 (acc) 0.25 → 0.60; lexical "
        "diversity fell (mean over models and datasets: distinct-2 0.600 → 0.400, self-BLEU 0.100 → 0.300)."
    )


def test_the_observation_fails_or_is_untestable_from_the_data(tmp_path):
    same = make_run(tmp_path / "same", 0.5, ALPHA_HALF, distinct=(0.6, 0.65), self_bleu=(0.1, 0.05))
    [found] = accuracy_observations(load_runs([same]))
    assert found.status == NOT_HELD
    assert found.text.endswith(
        "; lexical diversity did not fall (mean over models and datasets: distinct-2 0.600 → 0.650, "
        "self-BLEU 0.100 → 0.050)."
    )
    flat = make_run(tmp_path / "flat", 0.5, ALPHA_ZERO)
    [found] = accuracy_observations(load_runs([flat]))
    assert found.status == NOT_HELD and "rose for 0 of 2 pairs (95% intervals apart for 0)" in found.text
    [found] = accuracy_observations(load_runs([make_run(tmp_path / "zero", 0.0, ALPHA_ZERO)]))
    assert (found.status, found.text) == (NOT_TESTABLE, "No α = 0.5 run (β = 0.5).")


def test_the_report_has_the_accuracy_section(tmp_path):
    runs = [make_run(tmp_path / "a0", 0.0, ALPHA_ZERO), make_run(tmp_path / "a05", 0.5, ALPHA_HALF)]
    page = write_run_report(runs, tmp_path / "report.html").read_text()
    body = page.split('<section id="accuracy">')[1].split("</section>")[0]
    assert '<table class="change better-higher">' in body
    assert '<td class="increase" title="increase: 0.1 → 0.4 (Δ = +0.3)">' in body
    assert '<span class="badge held">held</span>' in body and "Model 2 on Task 1 (acc) 0.25 → 0.60" in body
    assert len(re.findall(r'<img[^>]*\ssrc="data:image/png;base64,', body)) == 1  # the accuracy figure
