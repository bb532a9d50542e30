"""Semantic distance between a model's answers and the correct ones (paper section 6).

distance = mean over prompts i of 1 - cos(emb(completion_i), emb(reference_i)); 0 when every
completion means (embeds) the same as its reference answer, up to 2 for opposite embeddings.
"""

from __future__ import annotations

import numpy as np

from crossgen.metrics.similarity import paired_cosine


def semantic_distance(completions: np.ndarray, references: np.ndarray) -> float:
    c = paired_cosine(completions, references)
    return float((1.0 - c).mean()) if c.size else float("nan")
