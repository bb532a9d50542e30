"""Completion metrics: lexical diversity, Vendi, MAUVE, k-NN manifolds, intervals, the tidy
table, `crossgen metrics` and the report sections (docs/metrics.md)."""

import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from crossgen.config import parse_config
from crossgen.io import write_jsonl
from crossgen.metrics.generation import completion_key, reference_key, save_embeddings
from crossgen.metrics.lexical import (
    compression_ratio,
    distinct_n,
    distinct_shares,
    lexical_rows,
    ngram_table,
    self_bleu_scores,
)
from crossgen.metrics.real import manifold_scores, mauve_scores
from crossgen.metrics.table import COLUMNS, interval, ratio_interval
from crossgen.metrics.vendi import vendi_score, vendi_terms
from crossgen.workflow.store import RunStore

WORDS = [
    "the",
    "a",
    "fox",
    "dog",
    "ran",
    "sat",
    "on",
    "under",
    "red",
    "blue",
    "big",
    "small",
    "cat",
    "hill",
    "tree",
    "river",
    "stone",
]


def _sentences(rng, n, length=(3, 12)):
    return [" ".join(rng.choice(WORDS, size=rng.integers(*length))) for _ in range(n)]


# -- lexical ----------------------------------------------------------------------------------------
def test_identical_outputs_have_the_distinct_n_of_one_text():
    text = "The fox ran under the big tree, and the fox sat."
    for n in (1, 2, 3, 4):
        one = distinct_n([text], n)
        rows = {r["metric"]: r for r in lexical_rows(0, "m", "d", [text] * 7)}
        # 7 copies: the same distinct n-grams, 7 times the occurrences
        assert rows[f"distinct_{n}"]["value"] == pytest.approx(one / 7)
        assert rows[f"distinct_{n}"]["low"] == rows[f"distinct_{n}"]["high"] == pytest.approx(one / 7)
    # 13 tokens (13a splits off "," and "."), 11 distinct ("The" and "the" differ: case is kept)
    assert distinct_n([text], 1) == pytest.approx(11 / 13)
    rows = {r["metric"]: r["value"] for r in lexical_rows(0, "m", "d", [text] * 7)}
    assert rows["self_bleu"] == pytest.approx(1.0)


def test_distinct_shares_sum_to_distinct_n_and_self_bleu_equals_sacrebleu():
    from sacrebleu.metrics import BLEU

    rng = np.random.default_rng(0)
    texts = _sentences(rng, 40) + ["", "fox", "the fox ran"] * 2  # empty, short and repeated texts
    u, T = distinct_shares(ngram_table(texts))
    for n in (1, 2, 3, 4):
        assert u[:, n - 1].sum() / T[:, n - 1].sum() == pytest.approx(distinct_n(texts, n), rel=1e-12)
    bleu = BLEU(effective_order=True)
    expected = [bleu.sentence_score(h, texts[:i] + texts[i + 1 :]).score / 100 for i, h in enumerate(texts)]
    np.testing.assert_allclose(self_bleu_scores(texts), expected, rtol=0, atol=1e-12)


def test_compression_ratio_rises_with_repetition():
    rng = np.random.default_rng(1)
    varied = _sentences(rng, 50)
    assert compression_ratio(["abc"] * 200) > 3 * compression_ratio(varied) > 3


# -- Vendi ------------------------------------------------------------------------------------------
def test_vendi_of_identical_is_1_and_of_orthogonal_is_n():
    v = np.random.default_rng(2).normal(size=16)
    assert vendi_score(np.tile(v, (9, 1))) == pytest.approx(1.0)
    assert vendi_score(np.eye(6)) == pytest.approx(6.0)
    assert vendi_score(3.0 * np.eye(10)[:7]) == pytest.approx(7.0)  # the kernel is the cosine
    # two groups of orthogonal directions, sizes 3 and 1: eigenvalues 3/4, 1/4
    x = np.array([[1.0, 0], [1.0, 0], [1.0, 0], [0, 1.0]])
    assert vendi_score(x) == pytest.approx(np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25))))


def test_vendi_terms_average_to_the_log_score():
    x = np.random.default_rng(3).normal(size=(30, 8))
    terms = vendi_terms(x)
    assert terms.shape == (30,)
    assert np.exp(terms.mean()) == pytest.approx(vendi_score(x), rel=1e-10)


# -- MAUVE and the k-NN manifolds --------------------------------------------------------------------
def test_mauve_near_1_for_the_same_distribution_and_near_0_for_separated_sets():
    pytest.importorskip("mauve")
    rng = np.random.default_rng(4)
    p = rng.normal(size=(200, 16))
    q = rng.normal(size=(200, 16))
    far = rng.normal(size=(200, 16)) + 6.0 * np.eye(16)[0]
    assert min(mauve_scores(p, p)) > 0.95
    assert min(mauve_scores(p, q)) > 0.8
    assert max(mauve_scores(p, far)) < 0.05


def test_manifold_scores():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(60, 8))
    same = manifold_scores(real, real.copy())
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = manifold_scores(real, real + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    # a model that always writes the same answer: precise (inside the real data) but no recall
    collapsed = manifold_scores(real, np.tile(real[0], (60, 1)))
    assert collapsed["precision"] == 1.0 and collapsed["recall"] < 0.2 and collapsed["coverage"] < 0.2


# -- intervals ----------------------------------------------------------------------------------------
def test_bootstrap_intervals_cover_the_true_mean_at_the_nominal_rate():
    rng = np.random.default_rng(6)
    reps, n = 200, 60
    covered_mean = covered_ratio = 0
    for i in range(reps):
        x = rng.normal(loc=2.0, size=n)
        _, low, high = interval(x, seed=i)
        covered_mean += low <= 2.0 <= high
        # ratio of sums: numerators 3 * den + noise, so the true ratio is 3
        den = rng.uniform(1, 5, size=n)
        _, low, high = ratio_interval(3 * den + rng.normal(size=n), den, seed=i)
        covered_ratio += low <= 3.0 <= high
    lo, hi = binom.ppf(0.0005, reps, 0.95), binom.ppf(0.9995, reps, 0.95)  # 99.9% of binomial outcomes
    assert lo <= covered_mean <= hi and lo <= covered_ratio <= hi, (covered_mean, covered_ratio, lo, hi)


# -- a finished run: crossgen metrics, the tidy table, the report ---------------------------------------
ENTITIES = [("sci", "offline_science"), ("math", "offline_arithmetic")]
PUBLIC = "offline_stories"
DATASETS = [t for _, t in ENTITIES] + [PUBLIC]
N = 30


def _finished_run(root, alpha=1.0, T=2):
    """A hand-made finished text run: generation 0 varied, then the completions collapse onto
    one answer (text and embedding) by generation T."""
    cfg = parse_config(
        {
            "name": f"a{alpha:g}",
            "generations": T,
            "alpha": alpha,
            "entities": [{"name": n, "task": {"name": t, "source": "offline"}} for n, t in ENTITIES],
            "public": {"name": PUBLIC, "source": "offline"},
            "model": {"scratch": {}},
            "evaluation": {"embedding_prompts": N},
        }
    )
    store = RunStore.create(root, cfg)
    rng = np.random.default_rng(7)
    refs = {ds: _sentences(rng, N) for ds in DATASETS}
    ref_emb = {ds: rng.normal(size=(N, 16)).astype(np.float32) for ds in DATASETS}
    for t in range(T + 1):
        arrays = {}
        for ds in DATASETS:
            arrays[f"index/{ds}"] = np.arange(N)
            arrays[reference_key(ds)] = ref_emb[ds]
        for m, _ in ENTITIES:
            rows = []
            for ds in DATASETS:
                varied = _sentences(rng, N)
                keep = round(N * (1 - alpha * t / T))  # how many prompts still get a varied answer
                texts = varied[:keep] + ["the same answer"] * (N - keep)
                rows += [
                    {"dataset": ds, "index": i, "prompt": f"p{i}", "reference": refs[ds][i], "completion": c}
                    for i, c in enumerate(texts)
                ]
                emb = ref_emb[ds] + rng.normal(scale=0.3, size=(N, 16))
                emb[keep:] = 1.0
                arrays[completion_key(m, ds)] = emb.astype(np.float32)
            write_jsonl(store.completions_path(t, m), rows)
        save_embeddings(store.gen_dir(t) / "embeddings.npz", arrays)
        store.mark_complete(t, 1.0)
    return root


def test_crossgen_metrics_adds_the_files_and_is_idempotent(tmp_path, capsys):
    from crossgen.cli import main
    from crossgen.metrics.families import family_names

    run = _finished_run(tmp_path / "run")
    names = family_names()
    assert {"lexical", "vendi", "manifold", "mauve"} <= set(names)
    assert main(["metrics", str(run)]) == 0
    assert capsys.readouterr().out.strip().endswith("metrics.csv")
    files = sorted(run.glob("gen_*/metrics/*.csv"))
    assert [f"{p.parent.parent.name}/{p.name}" for p in files] == [
        f"gen_{t:03d}/{name}.csv" for t in range(3) for name in names
    ]
    for path in files:
        assert list(pd.read_csv(path).columns) == COLUMNS
    table = pd.read_csv(run / "metrics.csv")
    assert list(table.columns) == COLUMNS
    assert len(table) == sum(len(pd.read_csv(p)) for p in files)
    assert set(table["metric"]) >= {"distinct_1", "distinct_4", "compression_ratio", "self_bleu", "vendi"}
    assert set(table["metric"]) >= {"precision", "recall", "density", "coverage", "mauve"}
    defined = table[table["value"].notna()]  # NaN: e.g. distinct-4 of three-word answers (no 4-grams)
    assert set(table[table["value"].isna()]["metric"]) == {"distinct_4"}
    assert ((defined["low"] <= defined["value"] + 1e-9) & (defined["value"] <= defined["high"] + 1e-9)).all()

    # collapse shows: Vendi falls to 1 and distinct-1 to that of the one answer; self-BLEU to 1
    at = table.set_index(["generation", "model", "dataset", "metric"])["value"]
    assert at[(0, "sci", PUBLIC, "vendi")] > 10 and at[(2, "sci", PUBLIC, "vendi")] == pytest.approx(1.0, abs=1e-3)
    assert at[(2, "sci", PUBLIC, "distinct_1")] == pytest.approx(3 / (3 * N))
    assert at[(2, "sci", PUBLIC, "self_bleu")] == pytest.approx(1.0)
    assert at[(2, "all", PUBLIC, "vendi")] == pytest.approx(1.0, abs=1e-3)  # both models pooled
    assert at[(0, "sci", PUBLIC, "mauve")] > at[(2, "sci", PUBLIC, "mauve")]
    # the reference rows are the same each generation (reused from the previous one)
    ref = table[table["model"] == "reference"]
    g0, g2 = (ref[ref["generation"] == g].drop(columns="generation").reset_index(drop=True) for g in (0, 2))
    pd.testing.assert_frame_equal(g0, g2)

    # idempotent: nothing is rewritten
    stamps = {p: p.stat().st_mtime_ns for p in files}
    assert main(["metrics", str(run)]) == 0
    assert "0 family files written" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    # --only recomputes one family, to the same numbers (the reused reference rows included)
    before = {p: p.read_text() for p in files}
    (run / "gen_001" / "metrics" / "vendi.csv").unlink()
    assert main(["metrics", str(run), "--only", "lexical"]) == 0
    assert not (run / "gen_001" / "metrics" / "vendi.csv").exists()
    for p in files:
        if p.name == "lexical.csv":
            assert p.stat().st_mtime_ns != stamps[p] and p.read_text() == before[p]


def test_a_family_switched_off_is_computed_only_when_asked_for(tmp_path, capsys):
    from crossgen.cli import main

    run = _finished_run(tmp_path / "run", T=1)
    config = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(config.replace("mauve: true", "mauve: false"))
    assert main(["metrics", str(run)]) == 0
    assert not list(run.glob("gen_*/metrics/mauve.csv")) and len(list(run.glob("gen_*/metrics/vendi.csv"))) == 2
    assert main(["metrics", str(run), "--only", "mauve"]) == 0
    assert len(list(run.glob("gen_*/metrics/mauve.csv"))) == 2


def test_crossgen_metrics_bad_input_exits_2_with_one_line(tmp_path, capsys):
    from crossgen.cli import main

    assert main(["metrics", str(tmp_path / "nope")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"error: invalid RUN_DIR: {tmp_path / 'nope'} (allowed: a crossgen run directory" in err
    run = _finished_run(tmp_path / "run", T=1)
    assert main(["metrics", str(run), "--only", "bogus"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "invalid --only: bogus (allowed: one of " in lines[0] and "lexical" in lines[0]
    assert not (run / "gen_000" / "metrics").exists()


def test_report_has_a_section_per_family_with_curves_and_a_finding(tmp_path):
    from crossgen.cli import main
    from crossgen.report import write_run_report

    runs = [_finished_run(tmp_path / "a0", alpha=0.0), _finished_run(tmp_path / "a1", alpha=1.0)]
    for run in runs:
        assert main(["metrics", str(run)]) == 0
    page = write_run_report(runs, tmp_path / "report.html").read_text()
    for sid in ("diversity", "vendi", "realtext"):
        body = page.split(f'<section id="{sid}">')[1].split("</section>")[0]
        assert len(re.findall(r'<img[^>]*\ssrc="data:image/png;base64,', body)) == 1, sid
        assert "ends clearly" in body or "no clear difference" in body
    vendi = page.split('<section id="vendi">')[1].split("</section>")[0]
    finding = re.search(r"<li>(Vendi score per model.*?)</li>", vendi).group(1)
    assert "α = 1 ends clearly lower" in finding and "lower than α = 0 for 6 of 6" in finding
