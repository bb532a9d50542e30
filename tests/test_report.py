"""Report: change tables, findings, PCA panels, the HTML file, the CLI, a headless browser check."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crossgen.config import parse_config
from crossgen.errors import InputError
from crossgen.io import write_table
from crossgen.metrics.generation import completion_key, reference_key, save_embeddings
from crossgen.report import figures, tables, write_run_report
from crossgen.report.embed import png_bytes
from crossgen.report.findings import HELD, NOT_HELD, NOT_TESTABLE, findings, notes
from crossgen.report.html import SECTIONS
from crossgen.report.runs import load_runs
from crossgen.workflow.store import RunStore

ENTITIES = [("science", "offline_science"), ("arithmetic", "offline_arithmetic")]
PUBLIC = "offline_stories"
DATASETS = [t for _, t in ENTITIES] + [PUBLIC]


def _cfg(alpha, beta, T, name):
    return parse_config(
        {
            "name": name,
            "generations": T,
            "alpha": alpha,
            "beta": beta,
            "entities": [{"name": n, "task": {"name": t, "source": "offline"}} for n, t in ENTITIES],
            "public": {"name": PUBLIC, "source": "offline"},
            "model": {"scratch": {}},
            "evaluation": {"embedding_prompts": 6},
        }
    )


def make_run(
    root: Path,
    alpha: float,
    *,
    beta=0.5,
    T=2,
    own=(1.0, 1.05),
    cross=(5.0, 3.0),
    public=(4.0, 3.9),
    sim=(0.70, 0.85),
    embeddings=True,
    seed=0,
) -> Path:
    """A finished run directory written by hand: losses go linearly from initial to final."""
    store = RunStore.create(root, _cfg(alpha, beta, T, f"alpha={alpha:g}"))
    rng = np.random.default_rng(seed)
    centers = {ds: 3.0 * np.eye(16)[i] for i, ds in enumerate(DATASETS)}
    for t in range(T + 1):
        w = t / T
        lerp = lambda pair, w=w: pair[0] + w * (pair[1] - pair[0])
        rows = []
        for i, (m, _) in enumerate(ENTITIES):
            for j, (_, task) in enumerate(ENTITIES):
                rows.append({"generation": t, "model": m, "task": task, "loss": lerp(own if i == j else cross)})
            rows.append({"generation": t, "model": m, "task": PUBLIC, "loss": lerp(public)})
        write_table(store.losses_path(t), pd.DataFrame(rows))
        write_table(
            store.similarity_path(t),
            pd.DataFrame(
                [
                    {"generation": t, "dataset": ds, "model_a": "science", "model_b": "arithmetic", "cosine": lerp(sim)}
                    for ds in DATASETS
                ]
            ),
        )
        if embeddings:
            arrays, hom, sem = {}, [], []
            for ds in DATASETS:
                arrays[reference_key(ds)] = (centers[ds] + rng.normal(0, 0.3, (6, 16))).astype(np.float32)
                for k, (m, _) in enumerate(ENTITIES):
                    offset = (1 - alpha * w) * np.eye(16)[8 + k]
                    arrays[completion_key(m, ds)] = (centers[ds] + offset + rng.normal(0, 0.3, (6, 16))).astype(
                        np.float32
                    )
                    hom.append(
                        {"generation": t, "dataset": ds, "metric": "diversity", "model": m, "value": 0.5 - 0.1 * w}
                    )
                    sem.append({"generation": t, "model": m, "task": ds, "distance": 0.4 + 0.1 * w * k})
                hom.append(
                    {"generation": t, "dataset": ds, "metric": "spread", "model": "all", "value": 0.3 * (1 - alpha * w)}
                )
            save_embeddings(store.gen_dir(t) / "embeddings.npz", arrays)
            write_table(store.gen_dir(t) / "homogenization.csv", pd.DataFrame(hom))
            write_table(store.gen_dir(t) / "semantic.csv", pd.DataFrame(sem))
        store.mark_complete(t, 0.1)
    store.refresh_tables()
    return root


def paper_runs(tmp_path, claim1_holds=True, embeddings=True):
    cross_half = (5.0, 3.0) if claim1_holds else (5.0, 4.95)
    return [
        make_run(tmp_path / "a0", 0.0, own=(1.0, 1.02), cross=(5.0, 5.3), sim=(0.70, 0.65), embeddings=embeddings),
        make_run(tmp_path / "a05", 0.5, own=(1.0, 1.05), cross=cross_half, sim=(0.70, 0.85), embeddings=embeddings),
        make_run(tmp_path / "a1", 1.0, own=(1.0, 1.6), cross=(5.0, 3.5), sim=(0.70, 0.90), embeddings=embeddings),
    ]


# -- tables ------------------------------------------------------------------------------------
def test_classify_threshold_is_exact_at_0_1():
    assert tables.classify(1.0, 1.1) == "constant"  # 1.1 - 1.0 = 0.10000000000000009 in binary
    assert tables.classify(1.0, 1.1000001) == "increase"
    assert tables.classify(1.0, 0.89) == "decrease"
    assert tables.classify(1.0, 0.9) == "constant"
    assert tables.classify(2.0, 2.0, threshold=0.0) == "constant"
    assert tables.classify(0.73, 0.70, threshold=0.0) == "decrease"
    assert tables.classify(1.0, float("nan")) == "missing"


def test_paper_row_order():
    assert tables.paper_row_order(2) == [(0, 0), (1, 1), (0, 1), (1, 0)]
    # Table 4 of the paper: M1T2, M2T3, M3T1, M1T3, M2T1, M3T2 after the own tasks
    assert tables.paper_row_order(3)[3:] == [(0, 1), (1, 2), (2, 0), (0, 2), (1, 0), (2, 1)]


def _losses(values):
    """{(model, task): (initial, final)} -> tidy frame over generations 0 and 3."""
    return pd.DataFrame(
        [
            {"generation": g, "model": m, "task": t, "loss": v}
            for (m, t), pair in values.items()
            for g, v in zip((0, 3), pair)
        ]
    )


def test_markdown_of_a_two_model_table():
    a0 = _losses(
        {("m1", "t1"): (1.0, 1.1), ("m2", "t2"): (2.0, 2.0), ("m1", "t2"): (3.0, 3.2), ("m2", "t1"): (4.0, 3.0)}
    )
    a1 = _losses(
        {("m1", "t1"): (1.0, 1.1000001), ("m2", "t2"): (2.0, 1.89), ("m1", "t2"): (3.0, 2.95), ("m2", "t1"): (4.0, 4.5)}
    )
    table = tables.loss_table_from_frames([("α = 0", a0), ("α = 1", a1)], ["m1", "m2"], ["t1", "t2"], title="Loss")
    assert tables.to_markdown(table) == (
        "**Loss**\n"
        "\n"
        "| | α = 0 | α = 1 |\n"
        "|---|---|---|\n"
        "| Model 1 on Task 1 | 1.00 → 1.10 = | 1.00 → 1.10 ↑ |\n"
        "| Model 2 on Task 2 | 2.00 → 2.00 = | 2.00 → 1.89 ↓ |\n"
        "| Model 1 on Task 2 | 3.00 → 3.20 ↑ | 3.00 → 2.95 = |\n"
        "| Model 2 on Task 1 | 4.00 → 3.00 ↓ | 4.00 → 4.50 ↑ |\n"
        "\n"
        "↑ increase, ↓ decrease, = constant (|final − initial| ≤ 0.1)\n"
        "Model 1 = m1 (Task 1 = t1), Model 2 = m2 (Task 2 = t2)\n"
    )
    page = tables.to_html(table)
    assert (
        page.count('class="constant"') == 3
        and page.count('class="increase"') == 3
        and page.count('class="decrease"') == 2
    )


def test_loss_table_from_runs_groups_betas_as_tables_7_and_8(tmp_path):
    runs = load_runs(
        [
            make_run(tmp_path / "b0", 0.5, beta=0.0, embeddings=False),
            make_run(tmp_path / "b5a1", 1.0, beta=0.5, embeddings=False),
            make_run(tmp_path / "b5a0", 0.0, beta=0.5, embeddings=False),
        ]
    )
    table = tables.loss_table(runs)
    assert table.groups == [("β = 0", 1), ("β = 0.5", 2)]
    assert table.columns == ["α = 0.5", "α = 0", "α = 1"]
    assert table.rows == [
        "Model 1 on Task 1",
        "Model 2 on Task 2",
        "Model 1 on Task 2",
        "Model 2 on Task 1",
        "Model 1 on D*",
        "Model 2 on D*",
    ]
    assert "| | β = 0, α = 0.5 | β = 0.5, α = 0 | β = 0.5, α = 1 |" in tables.to_markdown(table)


# -- findings ----------------------------------------------------------------------------------
def test_findings_claim1_holds(tmp_path):
    result = {f.claim: f for f in findings(load_runs(paper_runs(tmp_path, claim1_holds=True, embeddings=False)))}
    assert result[1].status == HELD, result[1].text
    assert "2 of 2 pairs" in result[1].text and "Model 2 on Task 1 5.00 → 3.00 (-2.00)" in result[1].text
    assert result[2].status == HELD and "1.00 → 1.60" in result[2].text
    assert result[3].status == HELD and "at α = 0 it fell (0.700 → 0.650, -0.050)" in result[3].text


def test_findings_claim1_does_not_hold(tmp_path):
    result = {f.claim: f for f in findings(load_runs(paper_runs(tmp_path, claim1_holds=False, embeddings=False)))}
    assert result[1].status == NOT_HELD
    assert "0 of 2 pairs" in result[1].text and "5.00 → 4.95 (-0.05)" in result[1].text


def test_findings_not_testable_and_from_scratch_note(tmp_path):
    runs = load_runs([make_run(tmp_path / "a0", 0.0, cross=(12.0, 12.0))])
    result = {f.claim: f for f in findings(runs)}
    assert [result[c].status for c in (1, 2, 3)] == [NOT_TESTABLE] * 3
    assert "No α = 0.5 run" in result[1].text and "No α = 1 run" in result[2].text
    assert any("12.0 nats" in n and "near 3 nats" in n for n in notes(runs))
    assert not notes(load_runs([make_run(tmp_path / "b", 0.0)]))


# -- PCA ---------------------------------------------------------------------------------------
def test_pca_is_fitted_once_over_all_runs_and_generations(tmp_path):
    paths = [make_run(tmp_path / "r0", 0.0, seed=1), make_run(tmp_path / "r1", 1.0, seed=2)]
    # the same embedding appears in run 0 generation 0 and run 1 generation 2
    shared = np.linspace(-1, 1, 16, dtype=np.float32)
    for path, t in ((paths[0], 0), (paths[1], 2)):
        f = path / f"gen_{t:03d}" / "embeddings.npz"
        arrays = dict(np.load(f))
        arrays[completion_key("science", PUBLIC)][0] = shared
        save_embeddings(f, arrays)
    data = figures.pca_panels(load_runs(paths))
    assert [p.title for p in data.panels] == [
        "t = 0, α = 0, β = 0.5",
        "t = 0, α = 1, β = 0.5",
        "t = 2, α = 0, β = 0.5",
        "t = 2, α = 1, β = 0.5",
    ]
    assert data.n_fitted == 2 * 3 * 2 * 3 * 6  # runs x generations x models x datasets x prompts
    first = data.panels[0].points[("science", PUBLIC)][0]
    last = data.panels[3].points[("science", PUBLIC)][0]
    np.testing.assert_array_equal(first, last)
    np.testing.assert_allclose(first, data.pca.transform(shared[None])[0])
    png_bytes(figures.pca_figure(data))


def test_pca_single_panel_at_t0_when_generation0_is_shared(tmp_path):
    a = make_run(tmp_path / "a", 0.0, seed=1)
    b = make_run(tmp_path / "b", 0.5, seed=2)
    shutil.rmtree(b / "gen_000")
    shutil.copytree(a / "gen_000", b / "gen_000")
    titles = [p.title for p in figures.pca_panels(load_runs([a, b])).panels]
    assert titles == ["t = 0", "t = 2, α = 0, β = 0.5", "t = 2, α = 0.5, β = 0.5"]


# -- the HTML file -----------------------------------------------------------------------------
def _sections(page: str) -> list[str]:
    return re.findall(r'<section id="([a-z]+)"', page)


def test_report_has_every_section_and_only_data_uri_images(tmp_path):
    theory = tmp_path / "theory"
    theory.mkdir()
    for name in ("figure2.png", "figure4.png"):
        (theory / name).write_bytes(png_bytes(figures.Figure(figsize=(2, 1.5))))
    out = write_run_report(paper_runs(tmp_path), tmp_path / "out" / "report.html", theory_dir=theory)
    assert out == tmp_path / "out" / "report.html"
    page = out.read_text()
    assert _sections(page) == [sid for sid, _ in SECTIONS]
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]*)"', page)
    assert len(srcs) == 7  # losses, similarity, pca, homogenization, semantic, theory figures 2 and 4
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(href|src)="(https?:)?//', page)
    assert "Claim 1" in page and "held" in page
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # atomic: no temporary left


def test_report_without_embeddings_says_so_in_one_line(tmp_path):
    page = write_run_report(paper_runs(tmp_path, embeddings=False)[:1], tmp_path / "r.html").read_text()
    assert _sections(page) == [sid for sid, _ in SECTIONS]
    for sid in ("pca", "homogenization", "semantic", "theory"):
        body = page.split(f'<section id="{sid}">')[1].split("</section>")[0]
        assert body.count('<p class="empty">') == 1 and "<img" not in body


def test_cli_report_and_bad_run_dir(tmp_path, capsys):
    from crossgen.cli import main

    runs = paper_runs(tmp_path, embeddings=False)
    assert main(["report", *map(str, runs), "--no-metrics"]) == 0
    assert (runs[0] / "report.html").is_file()
    assert main(["report", str(runs[0]), "--out", str(tmp_path / "x.html")]) == 0
    assert (tmp_path / "x.html").is_file()
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert f"invalid RUN_DIR: {tmp_path / 'nope'} (allowed: a crossgen run directory (with manifest.json))" in " ".join(
        capsys.readouterr().err.split()
    )
    with pytest.raises(InputError):
        write_run_report([tmp_path], tmp_path / "y.html")


# -- a real browser ----------------------------------------------------------------------------
def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def test_report_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed: apt-get install chromium")
    out = write_run_report(paper_runs(tmp_path), tmp_path / "report.html")
    flags = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
    ]
    url = out.as_uri()
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body, dom.stderr[-2000:]
    attrs = dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', body.group(1)))
    assert int(attrs["data-images-total"]) == 5
    assert attrs["data-images-decoded"] == attrs["data-images-total"]
    assert attrs["data-sections"].split() == [sid for sid, _ in SECTIONS]
    shot = tmp_path / "shot.png"
    subprocess.run(
        flags + ["--window-size=1280,2400", f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120
    )
    assert shot.is_file() and shot.stat().st_size > 20_000
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1200
    assert pixels[..., :3].std() > 0.05  # not a blank page


# -- linear runs: the theory overlay -------------------------------------------------------------
def test_linear_runs_get_the_theory_overlay(tmp_path):
    pytest.importorskip("crossgen.theory.dynamics")
    from crossgen.config import load_config
    from crossgen.experiment import run_experiment
    from crossgen.presets import resolve_config

    cfg = load_config(
        resolve_config("linear"),
        {
            "generations": 2,
            "alpha": 0.5,
            "entities": [
                {"name": f"entity{k}", "task": {"name": f"private{k}", "source": "offline"}} for k in range(2)
            ],
        },
    )
    run = run_experiment(cfg, tmp_path / "lin").root
    pred = figures.theory_predictions(load_runs([run])[0])
    assert pred.shape == (3, 2, 2) and (pred >= cfg.model.linear.sigma2).all()
    page = write_run_report([run], tmp_path / "lin.html").read_text()
    theory = page.split('<section id="theory">')[1].split("</section>")[0]
    assert theory.count("<img") == 1
    assert "MSE" in page and '<p class="empty">' in page.split('<section id="pca">')[1].split("</section>")[0]
