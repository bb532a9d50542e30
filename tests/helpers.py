"""Shared test data: the smallest linear-backend run config (runs in well under a second)."""

import copy


def tiny_linear(K: int = 2, **changes) -> dict:
    """A K-entity linear-backend run config as a plain mapping, with top-level `changes`."""
    data = {
        "name": "tiny",
        "seed": 0,
        "generations": 3,
        "alpha": 0.5,
        "beta": 0.5,
        "entities": [{"name": f"e{k}", "task": {"name": f"p{k}", "source": "offline"}} for k in range(K)],
        "public": {"name": "pub", "source": "offline"},
        "mixing": {"paradigm": "weighted-loss", "n": 1},
        "model": {"backend": "linear", "linear": {"d": 4, "rank": 2, "n_private": 12, "n_public": 6}},
        "generation": {"num_prompts": 1000},
        "evaluation": {"embedding_prompts": 0},
    }
    data.update(copy.deepcopy(changes))
    return data
