"""Setting findings of the sweep report (crossgen.sweep.findings) on fabricated aggregate
tables: each finding follows the numbers (flip them and it flips), appears only when the sweep
varies its setting, and reaches report.html; the run report shows the theory graphs figure
with its finding when the theory directory holds it."""

from __future__ import annotations

import pandas as pd
import pytest

from crossgen.sweep.findings import setting_findings
from crossgen.sweep.grid import build_sweep
from crossgen.sweep.report import write_sweep_report
from helpers import tiny_linear

T = 3


def table(values: dict[str, dict[str, tuple[float, float, float]]]) -> pd.DataFrame:
    """cell -> metric -> (initial, final, half width of the final 95% interval)."""
    rows = []
    for cell, metrics in values.items():
        for metric, (initial, final, half) in metrics.items():
            for g, mean, h in ((0, initial, 0.0), (T, final, half)):
                rows.append(
                    {"cell": cell, "generation": g, "metric": metric, "model": "all", "mean": mean}
                    | {"ci_low": mean - h, "ci_high": mean + h}
                )
    return pd.DataFrame(rows)


def as_aggregate(s, numbers: pd.DataFrame) -> pd.DataFrame:
    """The fabricated rows with the aggregate table's other columns (for the report's figures)."""
    labels = pd.DataFrame([{"cell": c.id, **c.labels} for c in s.cells])
    return labels.merge(numbers, on="cell").assign(model_b="-", task="all", std=0.0, n_seeds=2)


def sweep(axes: dict, **base):
    return build_sweep({"name": "s", "base": tiny_linear(K=3, **base), "axes": axes, "seeds": 2})


GRAPHS = sweep({"graph": ["complete", "directed-ring", "isolated"]})


def graph_numbers(ring_final: float) -> pd.DataFrame:
    return table(
        {
            "graph=complete": {"similarity_mean": (0.1, 0.45, 0.02), "cross_loss": (16.0, 2.0, 0.3)},
            "graph=directed-ring": {"similarity_mean": (0.1, ring_final, 0.02), "cross_loss": (16.0, 2.1, 0.3)},
            "graph=isolated": {"similarity_mean": (0.1, 0.45, 0.5), "cross_loss": (16.0, 15.0, 0.3)},
        }
    )


def test_graph_finding_follows_the_similarity():
    slow = setting_findings(GRAPHS, graph_numbers(0.3))
    assert slow[0] == (
        "The directed-ring graph slows homogenization: similarity rose from 0.1 to 0.45 under complete vs 0.1 "
        "to 0.3 under directed-ring (0.15 lower at the end, beyond the threshold and the 95% intervals); "
        "cross-task loss fell from 16 to 2 under complete vs 16 to 2.1 under directed-ring (final values 0.1 "
        "apart: not beyond the threshold 0.1 and the 95% intervals)."
    )
    assert setting_findings(GRAPHS, graph_numbers(0.6))[0].startswith(
        "The directed-ring graph speeds up homogenization: similarity rose from 0.1 to 0.45 under complete vs 0.1 "
        "to 0.6 under directed-ring (0.15 higher"
    )
    # overlapping intervals: no difference claimed (isolated's interval is +-0.5)
    assert setting_findings(GRAPHS, graph_numbers(0.3))[1].startswith(
        "The isolated graph does not change homogenization measurably"
    )
    assert (
        "cross-task loss fell from 16 to 2 under complete vs 16 to 15 under isolated (13 higher"
        in (setting_findings(GRAPHS, graph_numbers(0.3))[1])
    )


@pytest.mark.parametrize(
    ("final", "expected"),
    [
        (0.22, "Filtering (dedupe) holds the own-task loss: own-task loss rose from 0.2 to 0.5 under no filter"),
        (0.35, "Filtering (dedupe) lowers the own-task loss"),  # lower, but itself still degrading
        (0.80, "Filtering (dedupe) raises the own-task loss"),
        (0.55, "Filtering (dedupe) does not change the own-task loss measurably"),  # within 0.1
    ],
)
def test_filter_finding_follows_the_own_task_loss(final, expected):
    s = sweep({"generation.filters": [[], ["dedupe"]]}, alpha=1.0)
    ids = [c.id for c in s.cells]
    numbers = table({ids[0]: {"own_loss": (0.2, 0.5, 0.01)}, ids[1]: {"own_loss": (0.2, final, 0.01)}})
    (found,) = setting_findings(s, numbers)
    assert found.startswith(expected), found


def test_fresh_finding_per_combination_of_the_other_axes():
    s = sweep({"alpha": [0.5, 1.0], "fresh_real": [False, True]})
    numbers = table(
        {
            "alpha=0.5,fresh_real=false": {"own_loss": (0.2, 0.25, 0.01)},
            "alpha=0.5,fresh_real=true": {"own_loss": (0.2, 0.21, 0.01)},
            "alpha=1,fresh_real=false": {"own_loss": (0.2, 0.6, 0.01)},
            "alpha=1,fresh_real=true": {"own_loss": (0.2, 0.22, 0.01)},
        }
    )
    assert setting_findings(s, numbers) == [
        "With alpha = 0.5: Fresh real data does not change the own-task loss measurably: own-task loss rose from "
        "0.2 to 0.25 under fixed real data vs 0.2 to 0.21 under fresh real data (final values 0.04 apart: not "
        "beyond the threshold 0.1 and the 95% intervals).",
        "With alpha = 1.0: Fresh real data holds the own-task loss: own-task loss rose from 0.2 to 0.6 under "
        "fixed real data vs 0.2 to 0.22 under fresh real data (0.38 lower at the end, beyond the threshold and "
        "the 95% intervals).",
    ]


def test_no_finding_when_the_setting_is_not_varied(tmp_path):
    s = sweep({"alpha": [0.0, 0.5]}, graph="isolated")
    numbers = table({c.id: {"own_loss": (0.2, 0.9, 0.01), "similarity_mean": (0.1, 0.5, 0.0)} for c in s.cells})
    assert setting_findings(s, numbers) == []
    page = write_sweep_report(s, tmp_path, as_aggregate(s, numbers)).read_text()
    assert "<h2>Findings</h2>" not in page


def test_sweep_report_states_the_finding(tmp_path):
    page = write_sweep_report(GRAPHS, tmp_path, as_aggregate(GRAPHS, graph_numbers(0.3))).read_text()
    assert "<h2>Findings</h2>" in page
    assert "The directed-ring graph slows homogenization: similarity rose from 0.1 to 0.45" in page


def test_run_report_shows_the_theory_graphs_figure_when_present(tmp_path):
    from crossgen.report.html import section_theory
    from crossgen.theory.figures import graphs_figure, graphs_finding

    assert "graphs" not in section_theory([], tmp_path)
    paths = graphs_figure(tmp_path, replicates=8, generations=2)
    part = section_theory([], tmp_path)
    assert 'alt="Interaction graphs' in part
    finding = graphs_finding(pd.read_csv(paths["csv"]))
    import html

    assert html.escape(finding) in part
