"""Metrics: cosine similarity, spread, diversity, semantic distance, PCA, and the evaluate hook."""

import numpy as np
import pandas as pd
import pytest

from crossgen.config import parse_config
from crossgen.errors import InputError
from crossgen.io import write_jsonl
from crossgen.metrics import (
    completion_key,
    diversity,
    evaluate_generation,
    fit_pca,
    load_embeddings,
    mean_paired_cosine,
    pairwise_similarity,
    reference_key,
    semantic_distance,
    spread,
)
from crossgen.workflow.store import RunStore


# -- the measures on hand-made embeddings ----------------------------------------------------------
def test_identical_models_have_cosine_1_and_spread_0():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(5, 8))
    assert mean_paired_cosine(e, e.copy()) == pytest.approx(1.0)
    assert spread([e, e.copy(), e.copy()]) == pytest.approx(0.0, abs=1e-12)
    assert pairwise_similarity({"a": e, "b": e, "c": -e}) == [
        ("a", "b", pytest.approx(1.0)),
        ("a", "c", pytest.approx(-1.0)),
        ("b", "c", pytest.approx(-1.0)),
    ]


def test_orthogonal_embeddings_have_cosine_0_and_spread_is_centroid_distance():
    a = np.array([[1.0, 0, 0], [0, 2.0, 0]])
    b = np.array([[0, 3.0, 0], [0, 0, 1.0]])
    assert mean_paired_cosine(a, b) == pytest.approx(0.0)
    # two unit-free points per prompt: each is |a-b|/2 from the centroid
    expected = np.mean([((1**2 + 3**2) / 4), ((2**2 + 1**2) / 4)])
    assert spread([a, b]) == pytest.approx(expected)
    # cosine is per prompt, not across prompts: b's rows against a's rows in another order
    assert mean_paired_cosine(a, a[::-1]) == pytest.approx(0.0)


def test_diversity():
    same = np.tile([[0.3, -1.0, 2.0]], (4, 1))
    assert diversity(same) == pytest.approx(0.0, abs=1e-12)
    assert diversity(np.eye(4)) == pytest.approx(1.0)  # orthogonal answers
    assert diversity(np.array([[1.0, 0], [-1.0, 0]])) == pytest.approx(2.0)
    assert np.isnan(diversity(np.ones((1, 3))))


def test_semantic_distance():
    e = np.random.default_rng(1).normal(size=(6, 4))
    assert semantic_distance(e, e) == pytest.approx(0.0, abs=1e-12)
    assert semantic_distance(e, -e) == pytest.approx(2.0)


def test_pca_is_deterministic_and_maps_points_consistently():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(20, 5)), rng.normal(size=(10, 5)) + 3
    p1, p2 = fit_pca([a, b]), fit_pca([a, b])
    np.testing.assert_array_equal(p1.components, p2.components)
    assert p1.transform(a).shape == (20, 2)
    np.testing.assert_allclose(p1.transform(b[:1]), p1.transform(b)[:1])
    assert p1.explained[0] >= p1.explained[1] > 0


def test_pca_components_are_the_leading_right_singular_vectors_of_the_centred_data():
    rng = np.random.default_rng(3)
    data = rng.normal(size=(300, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1]) + 7.0
    pca = fit_pca([data[:100], data[100:]], n_components=3)
    centred = data - data.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    for i in range(3):  # the same direction, with the sign rule: largest loading positive
        expected = vt[i] if vt[i, np.argmax(np.abs(vt[i]))] > 0 else -vt[i]
        np.testing.assert_allclose(pca.components[i], expected, atol=1e-10)
    np.testing.assert_allclose(pca.explained, s[:3] ** 2 / np.sum(s**2), rtol=1e-10)
    np.testing.assert_allclose(pca.transform(data), centred @ pca.components.T, atol=1e-10)
    one = fit_pca([data[:1]])  # one row: no variance, both directions padded with zeros
    assert one.components.shape == (2, 6) and not one.components[1].any() and not one.explained.any()


# -- the evaluate hook with the real all-MiniLM-L6-v2 ----------------------------------------------
CFG = {
    "generations": 1,
    "entities": [
        {"name": "sci", "task": {"name": "offline_science", "source": "offline"}},
        {"name": "math", "task": {"name": "offline_arithmetic", "source": "offline"}},
    ],
    "public": {"name": "offline_stories", "source": "offline"},
    "model": {"scratch": {}},
    "device": "cpu",
    "evaluation": {"embedding_prompts": 3},
}

PROMPTS = {
    "offline_science": [
        ("What gas do plants absorb?", " carbon dioxide"),
        ("What is H2O?", " water"),
        ("What force pulls objects down?", " gravity"),
    ],
    "offline_arithmetic": [("2 + 3 =", " 5"), ("7 - 4 =", " 3"), ("6 * 2 =", " 12")],
    "offline_stories": [
        ("Once upon a time", " a fox lived in the woods."),
        ("The ship sailed", " into the storm."),
        ("She opened the door", " and saw the garden."),
    ],
}


@pytest.fixture(scope="module")
def torch_one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _write_completions(store, t, answer):
    """Both models answer every prompt; `answer(model, dataset, i, reference)` gives the completion."""
    for model in ("sci", "math"):
        rows = [
            {"dataset": ds, "index": i, "prompt": p, "reference": ref, "completion": answer(model, ds, i, ref)}
            for ds, items in PROMPTS.items()
            for i, (p, ref) in enumerate(items)
        ]
        write_jsonl(store.completions_path(t, model), rows)


def test_evaluate_generation_writes_tables_and_is_idempotent(tmp_path, torch_one_thread):
    store = RunStore.create(tmp_path / "run", parse_config(CFG))
    # generation 0: both models give the reference answer; generation 1: the models differ
    _write_completions(store, 0, lambda m, ds, i, ref: ref)
    _write_completions(store, 1, lambda m, ds, i, ref: ref if m == "sci" else " I do not know, sorry.")
    assert evaluate_generation(store, 0) is True
    gen = store.gen_dir(0)
    sim = pd.read_csv(gen / "similarity.csv")
    hom = pd.read_csv(gen / "homogenization.csv")
    sem = pd.read_csv(gen / "semantic.csv")
    assert list(sim.columns) == ["generation", "dataset", "model_a", "model_b", "cosine"]
    assert list(hom.columns) == ["generation", "dataset", "metric", "model", "value"]
    assert list(sem.columns) == ["generation", "model", "task", "distance"]
    assert sim[["dataset", "model_a", "model_b"]].values.tolist() == [
        ["offline_science", "sci", "math"],
        ["offline_arithmetic", "sci", "math"],
        ["offline_stories", "sci", "math"],
    ]
    np.testing.assert_allclose(sim["cosine"], 1.0, atol=1e-5)
    spread_rows = hom[hom["metric"] == "spread"]
    assert list(spread_rows["model"]) == ["all"] * 3
    np.testing.assert_allclose(spread_rows["value"], 0.0, atol=1e-6)
    assert sorted(hom[hom["metric"] == "diversity"]["model"]) == ["math"] * 3 + ["sci"] * 3
    np.testing.assert_allclose(sem["distance"], 0.0, atol=1e-5)
    assert len(sem) == 6 and (sem["generation"] == 0).all()

    emb = load_embeddings(gen / "embeddings.npz")
    assert emb[completion_key("sci", "offline_science")].dtype == np.float32
    assert emb[completion_key("sci", "offline_science")].shape == (3, 384)
    assert emb[reference_key("offline_stories")].shape == (3, 384)

    # idempotent: nothing is rewritten; a deleted table is rebuilt from the saved embeddings
    stamps = {p.name: p.stat().st_mtime_ns for p in gen.iterdir() if p.is_file()}
    assert evaluate_generation(store, 0) is False
    assert {p.name: p.stat().st_mtime_ns for p in gen.iterdir() if p.is_file()} == stamps
    before = (gen / "semantic.csv").read_text()
    (gen / "semantic.csv").unlink()
    assert evaluate_generation(store, 0) is True
    assert (gen / "semantic.csv").read_text() == before
    assert (gen / "embeddings.npz").stat().st_mtime_ns == stamps["embeddings.npz"]

    evaluate_generation(store, 1)
    sim1 = pd.read_csv(store.gen_dir(1) / "similarity.csv")
    sem1 = pd.read_csv(store.gen_dir(1) / "semantic.csv").set_index(["model", "task"])["distance"]
    assert (sim1["cosine"] < 0.9).all() and (sim1["generation"] == 1).all()
    assert sem1[("sci", "offline_science")] == pytest.approx(0.0, abs=1e-5)
    assert sem1[("math", "offline_science")] > 0.3
    # one model answers everything the same way: no diversity
    div = pd.read_csv(store.gen_dir(1) / "homogenization.csv").query("metric == 'diversity' and model == 'math'")
    np.testing.assert_allclose(div["value"], 0.0, atol=1e-5)


SORRY = " I do not know, sorry."


def recording_embed(monkeypatch) -> list:
    """The texts of each call of the embedding function, which still embeds them."""
    from crossgen.metrics import embeddings

    calls: list = []
    real = embeddings.embed

    def embed(texts, *args, **kwargs):
        calls.append(list(texts))
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(embeddings, "embed", embed)
    return calls


def test_a_text_embedded_in_an_earlier_generation_is_not_embedded_again(tmp_path, torch_one_thread, monkeypatch):
    from crossgen.metrics.embeddings import embed

    store = RunStore.create(tmp_path / "run", parse_config({**CFG, "generations": 2}))
    _write_completions(store, 0, lambda m, ds, i, ref: ref)
    _write_completions(store, 1, lambda m, ds, i, ref: ref if m == "sci" else SORRY)
    _write_completions(store, 2, lambda m, ds, i, ref: SORRY if m == "sci" else f" new {ds} {i}")
    calls = recording_embed(monkeypatch)
    for t in range(3):
        assert evaluate_generation(store, t) is True
    references = sorted({ref for items in PROMPTS.values() for _, ref in items})
    assert [sorted(texts) for texts in calls] == [
        references,
        [SORRY],
        sorted(f" new {ds} {i}" for ds in PROMPTS for i in range(3)),
    ]
    # a stored vector is the text's embedding (up to the float rounding of another batch)
    emb = load_embeddings(store.gen_dir(2) / "embeddings.npz")
    for ds, items in PROMPTS.items():
        np.testing.assert_allclose(emb[completion_key("sci", ds)], embed([SORRY] * 3), atol=1e-5)
        np.testing.assert_allclose(emb[reference_key(ds)], embed([ref for _, ref in items]), atol=1e-5)
        np.testing.assert_allclose(
            emb[completion_key("math", ds)], embed([f" new {ds} {i}" for i in range(3)]), atol=1e-5
        )


def test_vectors_of_another_embedding_model_are_not_reused(tmp_path, torch_one_thread, monkeypatch):
    from crossgen.metrics.generation import MODEL_KEY, save_embeddings

    store = RunStore.create(tmp_path / "run", parse_config(CFG))
    _write_completions(store, 0, lambda m, ds, i, ref: ref)
    _write_completions(store, 1, lambda m, ds, i, ref: ref)
    evaluate_generation(store, 0)
    arrays = load_embeddings(store.gen_dir(0) / "embeddings.npz")
    save_embeddings(store.gen_dir(0) / "embeddings.npz", {**arrays, MODEL_KEY: np.array("some/other-model")})
    calls = recording_embed(monkeypatch)
    evaluate_generation(store, 1)
    assert [sorted(texts) for texts in calls] == [sorted({ref for items in PROMPTS.values() for _, ref in items})]


def test_evaluate_generation_without_completions_does_nothing(tmp_path):
    store = RunStore.create(tmp_path / "run", parse_config({**CFG, "evaluation": {"embedding_prompts": 0}}))
    assert evaluate_generation(store, 0) is False
    assert not store.gen_dir(0).exists()


def test_bad_embedding_model_is_an_input_error(tmp_path):
    from crossgen.metrics.embeddings import load_embedding_model

    for name in (str(tmp_path / "no-model-here"), "no-such-org/no-such-sentence-model"):
        with pytest.raises(InputError) as exc:
            load_embedding_model(name)
        assert exc.value.field == "evaluation.embedding_model" and exc.value.value == name
