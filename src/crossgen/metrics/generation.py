"""The workflow's evaluate hook: embed one generation's completions and write its metric tables.

`evaluate_generation(store, t)` reads gen_NNN/completions/<entity>.jsonl (rows dataset, index,
prompt, reference, completion, written by the loop) and writes into gen_NNN/:

  embeddings.npz      float32 unit-norm embeddings: `completion/<model>/<dataset>` (n, dim)
                      per model and dataset, `reference/<dataset>` (n, dim) of the correct
                      answers, `index/<dataset>` (n,) the prompt indices (shared by all models),
                      `model_name` the embedding model (evaluation.embedding_model)
  similarity.csv      generation, dataset, model_a, model_b, cosine: one row per unordered pair
                      (a before b in entity order) per dataset; cosine = mean over prompts i of
                      cos(emb_a[i], emb_b[i]) (the paper's Table 3)
  homogenization.csv  generation, dataset, metric, model, value: metric 'spread' (model 'all')
                      and 'diversity' (one row per model), see metrics.homogenization
  semantic.csv        generation, model, task, distance: mean over prompts of
                      1 - cos(emb(completion), emb(reference answer))
  metrics/<family>.csv  the tidy rows (metrics.table.COLUMNS) of every registered metric
                      family (metrics.families: lexical, vendi, manifold, mauve), from the
                      same completions and embeddings

A text that an earlier generation of the run embedded with the same model (a completion
repeated, a reference answer) takes its stored vector instead of being embedded again
(`earlier_vectors`). Each file is written atomically and skipped when it already exists, so
the hook is idempotent and a resumed run redoes only what is missing. Nothing is written (and
no embedding model is loaded) when the generation has no completions
(evaluation.embedding_prompts = 0) or when the completions are not text (the linear backend).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from crossgen.backends.device import resolve_device
from crossgen.io import atomic_path, read_jsonl, write_table
from crossgen.metrics.families import GenerationInputs, missing_families, write_families
from crossgen.metrics.homogenization import diversity, spread
from crossgen.metrics.semantic import semantic_distance
from crossgen.metrics.similarity import pairwise_similarity
from crossgen.workflow.store import RunStore

EMBEDDINGS = "embeddings.npz"
MODEL_KEY = "model_name"  # the embedding model's name, stored in embeddings.npz
TABLES = {
    "similarity": ["generation", "dataset", "model_a", "model_b", "cosine"],
    "homogenization": ["generation", "dataset", "metric", "model", "value"],
    "semantic": ["generation", "model", "task", "distance"],
}


def completion_key(model: str, dataset: str) -> str:
    return f"completion/{model}/{dataset}"


def reference_key(dataset: str) -> str:
    return f"reference/{dataset}"


def output_paths(store: RunStore, t: int) -> dict[str, Path]:
    gen = store.gen_dir(t)
    return {"embeddings": gen / EMBEDDINGS, **{name: gen / f"{name}.csv" for name in TABLES}}


def evaluate_generation(store: RunStore, t: int, model_name: Optional[str] = None) -> bool:
    """Write generation t's embeddings and metric tables (see module doc); True if any file was written."""
    store = store if isinstance(store, RunStore) else RunStore(Path(store))
    paths = output_paths(store, t)
    if all(p.exists() for p in paths.values()) and not missing_families(store, t):
        return False
    cfg = store.config()
    from crossgen.backends.registry import get_backend

    if not get_backend(cfg.model.backend).TEXT:  # no text completions to embed
        return False
    names = [e.name for e in cfg.entities]
    completions = _read_completions(store, t, names)
    if completions is None:
        return False
    datasets = _dataset_order(cfg, completions)
    if paths["embeddings"].exists():
        arrays = load_embeddings(paths["embeddings"])
    else:
        model_name = model_name or cfg.evaluation.embedding_model
        known = earlier_vectors(store, t, model_name)
        arrays = _embed(_plan(completions, names, datasets), known, model_name, resolve_device(cfg.device))
        arrays[MODEL_KEY] = np.array(model_name)
        save_embeddings(paths["embeddings"], arrays)
    frames = metric_tables(arrays, names, datasets, t)
    for name, frame in frames.items():
        if not paths[name].exists():
            write_table(paths[name], frame)
    write_families(store, t, GenerationInputs(t, names, datasets, completions, arrays, store))
    return True


def metric_tables(
    arrays: dict[str, np.ndarray], names: list[str], datasets: list[str], t: int
) -> dict[str, pd.DataFrame]:
    """The three tables of one generation from its embeddings."""
    sim, hom, sem = [], [], []
    for ds in datasets:
        per_model = {m: arrays[completion_key(m, ds)] for m in names if completion_key(m, ds) in arrays}
        models = [m for m in names if m in per_model]
        for a, b, cos in pairwise_similarity(per_model, models):
            sim.append({"generation": t, "dataset": ds, "model_a": a, "model_b": b, "cosine": cos})
        if models:
            hom.append(
                {
                    "generation": t,
                    "dataset": ds,
                    "metric": "spread",
                    "model": "all",
                    "value": spread([per_model[m] for m in models]),
                }
            )
        for m in models:
            hom.append(
                {"generation": t, "dataset": ds, "metric": "diversity", "model": m, "value": diversity(per_model[m])}
            )
        ref = arrays.get(reference_key(ds))
        if ref is not None:
            for m in models:
                sem.append({"generation": t, "model": m, "task": ds, "distance": semantic_distance(per_model[m], ref)})
    rows = {"similarity": sim, "homogenization": hom, "semantic": sem}
    return {name: pd.DataFrame(rows[name], columns=cols) for name, cols in TABLES.items()}


def save_embeddings(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # a file object: np.savez would append .npz to a name
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
        # numpy's stubs match **arrays against the keyword-only allow_pickle: bool
        np.savez(fh, **arrays)  # type: ignore[arg-type]


def load_embeddings(path: Path) -> dict[str, np.ndarray]:
    with np.load(Path(path), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def generation_inputs(
    store: RunStore, t: int, embeddings: Optional[dict[str, np.ndarray]] = None
) -> Optional[GenerationInputs]:
    """What the metric families read: generation t's text completions and its embeddings.npz
    (when it exists), or None when some model has no completions or they are not text."""
    names = [e.name for e in store.config().entities]
    completions = _read_completions(store, t, names)
    if completions is None:
        return None
    path = store.gen_dir(t) / EMBEDDINGS
    if embeddings is None and path.is_file():
        embeddings = load_embeddings(path)
    return GenerationInputs(t, names, _dataset_order(store.config(), completions), completions, embeddings, store)


# -- helpers ---------------------------------------------------------------------------
def _read_completions(store: RunStore, t: int, names: list[str]) -> Optional[dict[str, list[dict]]]:
    """{model: rows}, or None when some model has no completions or they are not text."""
    out = {}
    for name in names:
        path = store.completions_path(t, name)
        if not path.is_file():
            return None
        rows = read_jsonl(path)
        if not rows or not all(isinstance(r.get("completion"), str) for r in rows):
            return None
        out[name] = rows
    return out


def _dataset_order(cfg, completions: dict[str, list[dict]]) -> list[str]:
    configured = [e.task.name for e in cfg.entities] + [cfg.public.name]
    seen = list(dict.fromkeys(r["dataset"] for rows in completions.values() for r in rows))
    return [d for d in configured if d in seen] + [d for d in seen if d not in configured]


def _plan(completions: dict[str, list[dict]], names: list[str], datasets: list[str]) -> list[tuple[str, list[Any]]]:
    """The keys of a generation's embeddings.npz, each with its items: the prompt indices for
    "index/<dataset>" (those every model completed, sorted), else the texts in that order
    (each model's completions, then the datasets' reference answers)."""
    plan: list[tuple[str, list[Any]]] = []
    for ds in datasets:
        by_model = {m: {int(r["index"]): r for r in completions[m] if r["dataset"] == ds} for m in names}
        common = sorted(set.intersection(*(set(rows) for rows in by_model.values())))
        if not common:
            continue
        plan.append((f"index/{ds}", common))
        for m in names:
            plan.append((completion_key(m, ds), [by_model[m][i]["completion"] for i in common]))
        plan.append((reference_key(ds), [str(by_model[names[0]][i].get("reference", "")) for i in common]))
    return plan


def earlier_vectors(store: RunStore, t: int, model_name: str) -> dict[str, np.ndarray]:
    """text -> vector of every completion and reference answer that generations 0 .. t - 1
    embedded with `model_name`: what generation t reuses instead of embedding it again.

    Converging models repeat themselves (the CPU demo: 20-60% of a later generation's
    completion text was already embedded in its run), and the references are the same every
    generation. A run reads only its own earlier files, so a resumed run, or a run beside
    others, reuses the very vectors of an uninterrupted one."""
    cfg = store.config()
    names = [e.name for e in cfg.entities]
    known: dict[str, np.ndarray] = {}
    for g in range(t):
        path = store.gen_dir(g) / EMBEDDINGS
        if not path.is_file():
            continue
        arrays = load_embeddings(path)
        if str(arrays.get(MODEL_KEY, "")) != model_name:
            continue  # embedded by another model: nothing to reuse
        completions = _read_completions(store, g, names)
        if completions is None:
            continue
        for key, items in _plan(completions, names, _dataset_order(cfg, completions)):
            if key in arrays and not key.startswith("index/") and len(arrays[key]) == len(items):
                known.update(zip(items, arrays[key]))
    return known


def _embed(
    plan: list[tuple[str, list[Any]]], known: dict[str, np.ndarray], model_name: str, device: Optional[str]
) -> dict[str, np.ndarray]:
    """The arrays of `plan` (see `_plan`): texts in `known` take its vectors, the others are
    embedded in one batch."""
    from crossgen.metrics.embeddings import embed

    texts = [text for key, items in plan if not key.startswith("index/") for text in items]
    new = list(dict.fromkeys(text for text in texts if text not in known))
    vectors = {**known, **dict(zip(new, embed(new, model_name, device)))} if new else known
    arrays: dict[str, np.ndarray] = {}
    for key, items in plan:
        if key.startswith("index/"):
            arrays[key] = np.asarray(items, dtype=np.int64)
        else:
            arrays[key] = np.stack([vectors[text] for text in items]).astype(np.float32)
    return arrays
