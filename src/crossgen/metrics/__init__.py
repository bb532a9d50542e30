"""Metrics of a run: embedding similarity between models, homogenization, semantic distance, PCA,
and the completion-metric families (lexical, vendi, manifold, mauve: docs/metrics.md).

`evaluate_generation(store, t)` is the workflow loop's evaluate hook (pass it as
`evaluate_hook=crossgen.metrics.evaluate_generation`). Nothing here imports torch or
sentence-transformers until an embedding is actually computed.
"""

from crossgen.metrics.families import GenerationInputs, family_names, register_family
from crossgen.metrics.generation import (
    EMBEDDINGS,
    TABLES,
    completion_key,
    evaluate_generation,
    load_embeddings,
    metric_tables,
    reference_key,
    save_embeddings,
)
from crossgen.metrics.homogenization import diversity, spread
from crossgen.metrics.pca import PCA2, fit_pca
from crossgen.metrics.semantic import semantic_distance
from crossgen.metrics.similarity import mean_paired_cosine, paired_cosine, pairwise_similarity

__all__ = [
    "EMBEDDINGS",
    "PCA2",
    "TABLES",
    "GenerationInputs",
    "completion_key",
    "diversity",
    "evaluate_generation",
    "family_names",
    "fit_pca",
    "load_embeddings",
    "mean_paired_cosine",
    "metric_tables",
    "paired_cosine",
    "pairwise_similarity",
    "reference_key",
    "register_family",
    "save_embeddings",
    "semantic_distance",
    "spread",
]
