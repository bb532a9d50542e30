"""The real-data CPU preset (configs/cpu-real.yaml): the CPU preset's tiny GPT-2 on SciQ, GSM8K,
ARC-Challenge and BookCorpus, run end to end (shrunk) on small files written in each dataset's
original release format, pointed at by the overrides the preset documents."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from crossgen.config import load_config
from crossgen.errors import InputError
from crossgen.presets import resolve_config
from crossgen.tasks import load_experiment_data
from test_tasks import ARC_HUB, GSM8K, SCIQ, arc_original, sentence, write_jsonl

pytest.importorskip("transformers")

# the preset shrunk to seconds: one update, a 1-layer model, a few prompts, no embedding
# metrics (importing sentence-transformers alone takes longer than the run; tested elsewhere)
SHRINK = {
    "generations": 1,
    "model.scratch": {"n_layer": 1, "n_head": 2, "n_embd": 32, "n_positions": 128, "vocab_size": 300},
    "initial_training.max_steps": 3,
    "initial_training.per_device_train_batch_size": 4,
    "initial_training.max_seq_length": 96,
    "training.max_steps": 2,
    "training.per_device_train_batch_size": 4,
    "training.max_seq_length": 96,
    "mixing.n": 16,
    "generation.num_prompts": 6,
    "generation.max_new_tokens": 6,
    "evaluation.test_size": 4,
    "evaluation.batch_size": 8,
    "evaluation.embedding_prompts": 0,
    "resources.threads": 1,
}


def vary(records: list[dict], n: int, field: str) -> list[dict]:
    """n records made from `records` by numbering their `field` (a question)."""
    out = []
    for i in range(n):
        r = json.loads(json.dumps(records[i % len(records)]))
        if isinstance(r[field], dict):
            r[field]["stem"] = f"{r[field]['stem']} ({i})"
        else:
            r[field] = f"{r[field]} ({i})"
        out.append(r)
    return out


def release_files(root) -> dict:
    """Each dataset in its original release layout under `root`; returns the paths to point at.

    SciQ: a folder of JSON arrays train.json / valid.json / test.json; GSM8K:
    grade_school_math/data/{train,test}.jsonl (with the release's other files beside them);
    ARC: ARC-Challenge/ARC-Challenge-{Train,Dev,Test}.jsonl with question.stem / choices;
    BookCorpus: books_large_p1.txt, one sentence a line (the files of the hub copy)."""
    sciq = root / "SciQ dataset-2 3"
    sciq.mkdir(parents=True)
    (sciq / "train.json").write_text(json.dumps(vary(SCIQ, 24, "question"), indent=2))
    (sciq / "valid.json").write_text(json.dumps(vary(SCIQ, 4, "question"), indent=2))
    (sciq / "test.json").write_text(json.dumps(vary(SCIQ, 6, "question"), indent=2))
    gsm8k = root / "grade_school_math" / "data"
    write_jsonl(gsm8k / "train.jsonl", vary(GSM8K, 24, "question"))
    write_jsonl(gsm8k / "test.jsonl", vary(GSM8K, 6, "question"))
    write_jsonl(gsm8k / "train_socratic.jsonl", [{"question": "not read", "answer": "x #### 1"}])
    arc = root / "ARC-V1-Feb2018-2" / "ARC-Challenge"
    originals = [arc_original(r) for r in ARC_HUB]
    write_jsonl(arc / "ARC-Challenge-Train.jsonl", vary(originals, 24, "question"))
    write_jsonl(arc / "ARC-Challenge-Dev.jsonl", vary(originals, 4, "question"))
    write_jsonl(arc / "ARC-Challenge-Test.jsonl", vary(originals, 6, "question"))
    books = root / "bookcorpus"
    books.mkdir()
    (books / "books_large_p1.txt").write_text("\n".join(sentence(i) for i in range(240)) + "\n")
    return {"sciq": sciq, "gsm8k": root / "grade_school_math" / "data", "arc": arc, "books": books}


def local_overrides(paths: dict) -> dict:
    """What `--set` says to read every task from local files (as the preset's comment shows)."""
    return {
        "entities.0.task.source": "local",
        "entities.0.task.path": str(paths["sciq"]),
        "entities.1.task.source": "local",
        "entities.1.task.path": str(paths["gsm8k"]),
        "entities.2.task.source": "local",
        "entities.2.task.path": str(paths["arc"]),
        "public.source": "local",
        "public.path": str(paths["books"] / "books_large_p1.txt"),
    }


def test_preset_is_the_cpu_model_on_the_papers_data_by_hub_id():
    real, cpu = load_config(resolve_config("cpu-real")), load_config(resolve_config("cpu"))
    assert [(e.task.name, e.task.source, e.task.hub_id) for e in real.entities] == [
        ("sciq", "hub", None),
        ("gsm8k", "hub", None),
        ("arc_challenge", "hub", None),
    ]
    assert (real.public.name, real.public.source) == ("bookcorpus", "hub")
    assert real.model.scratch is not None and cpu.model.scratch is not None
    assert (real.model.scratch.n_layer, real.model.scratch.n_embd) == (cpu.model.scratch.n_layer, 128)
    assert real.device == "cpu" and real.model.name_or_path is None
    assert real.initial_training is not None and real.initial_training.max_steps == 2000
    assert real.training.learning_rate == cpu.training.learning_rate


def test_local_release_files_load_through_the_presets_overrides(tmp_path):
    paths = release_files(tmp_path)
    data = load_experiment_data(load_config(resolve_config("cpu-real"), local_overrides(paths)))
    assert [t.name for t in data.tasks] == ["sciq", "gsm8k", "arc_challenge", "bookcorpus"]
    sciq, gsm8k, arc = data.private
    assert (len(sciq.train), len(sciq.test)) == (24, 6)  # test.json wins over valid.json
    assert sciq.test[0].meta["choices"][-1] == "mesophilic organisms"
    assert (len(gsm8k.train), len(gsm8k.test)) == (24, 6) and gsm8k.train[0].meta == {"gold": "72"}
    assert arc.train[0].prompt.startswith("Question: An astronomer") and arc.train[0].meta["gold"] == 2
    assert len(data.public.test) >= 1 and data.public.train[0].prompt.startswith("s0w0 s0w1")
    # SciQ's hub export (parquet shards) loads through the same override
    shards = tmp_path / "sciq-parquet"
    shards.mkdir()
    pd.DataFrame(vary(SCIQ, 10, "question")).to_parquet(shards / "train-00000-of-00001.parquet")
    pd.DataFrame(SCIQ).to_parquet(shards / "test-00000-of-00001.parquet")
    over = {**local_overrides(paths), "entities.0.task.path": str(shards)}
    assert len(load_experiment_data(load_config(resolve_config("cpu-real"), over)).private[0].train) == 10


def test_a_bad_local_path_is_one_line_naming_the_field(tmp_path):
    paths = release_files(tmp_path)
    over = {**local_overrides(paths), "entities.1.task.path": str(tmp_path / "gsm8k.jsonl")}
    with pytest.raises(InputError) as err:
        load_experiment_data(load_config(resolve_config("cpu-real"), over))
    assert str(err.value) == (
        f"invalid entities.1.task.path: {tmp_path / 'gsm8k.jsonl'} (allowed: an existing file or folder)"
    )
    with pytest.raises(InputError, match=r"^invalid entities.0.task.path: None \(allowed: a file or folder path"):
        load_config(resolve_config("cpu-real"), {"entities.0.task.source": "local"})


def test_shrunk_preset_runs_end_to_end_on_release_files(tmp_path):
    """Private tasks from local files; BookCorpus by "hub id" (a local folder: the streamed path)."""
    from crossgen.experiment import run_experiment

    paths = release_files(tmp_path / "data")
    over = {**local_overrides(paths), **SHRINK, "public.source": "hub", "public.hub_id": str(paths["books"])}
    del over["public.path"]
    cfg = load_config(resolve_config("cpu-real"), over)
    store = run_experiment(cfg, tmp_path / "run")
    losses = pd.read_csv(tmp_path / "run" / "losses.csv")
    assert sorted(set(losses.generation)) == [0, 1]
    assert set(losses.model) == {"sciq", "gsm8k", "arc"}
    assert set(losses.task) == {"sciq", "gsm8k", "arc_challenge", "bookcorpus"}
    assert len(losses) == 2 * 3 * 4 and losses.loss.notna().all()
    for name in ("sciq", "gsm8k", "arc"):
        rows = [json.loads(line) for line in store.pool_path(1, name).read_text().splitlines()]
        assert rows and {r["source"] for r in rows} == {f"synthetic:{name}:0"}
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    acc = metrics[metrics.metric == "acc"]  # multiple choice: SciQ's distractors, ARC's choices
    assert set(acc.dataset) == {"sciq", "arc_challenge"} and acc.value.between(0, 1).all()
    assert set(metrics[metrics.metric == "exact_match"].dataset) == {"gsm8k"}
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
