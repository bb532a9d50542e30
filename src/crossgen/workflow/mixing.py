"""Build one update's training set from D~k, D* and the synthetic pools (Figure 1).

The mixture weights are (1-a)b for the private data, (1-a)(1-b) for the public data and
a/K for each entity's synthetic pool. The sampling paradigms draw n examples i.i.d. from
that mixture; 'weighted-loss' uses every example once with its component's weight as a
per-example loss weight, which is exactly the estimator of the paper's section 5.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from crossgen.data import Example
from crossgen.errors import InputError


@dataclass(frozen=True)
class Component:
    name: str
    weight: float
    examples: Sequence[Example]


def mixture(alpha: float, beta: float, private: Sequence[Example], public: Sequence[Example],
            pools: Sequence[Sequence[Example]], pool_names: Sequence[str]) -> list[Component]:
    """The weighted components of one entity's update (pools empty at generation 0)."""
    components = [
        Component("private", (1 - alpha) * beta, private),
        Component("public", (1 - alpha) * (1 - beta), public),
    ]
    if pools:
        components += [Component(f"synthetic:{n}", alpha / len(pools), p) for n, p in zip(pool_names, pools)]
    return components


def training_set(components: Sequence[Component], n: int, paradigm: str,
                 rng: np.random.Generator) -> tuple[list[Example], Optional[list[float]]]:
    """Examples (and loss weights for 'weighted-loss') of one update."""
    live = [c for c in components if c.weight > 0]
    for c in live:
        if not c.examples:
            raise InputError(f"{c.name} data", 0, "at least one example for a component with positive weight")
    if paradigm == "weighted-loss":
        examples = [e for c in live for e in c.examples]
        weights = [c.weight for c in live for _ in c.examples]
        return examples, weights
    probs = np.array([c.weight for c in live], dtype=float)
    probs /= probs.sum()
    which = rng.choice(len(live), size=n, p=probs)
    examples = []
    for idx in which:  # i.i.d. from the mixture: a component, then one of its examples
        pool = live[idx].examples
        examples.append(pool[int(rng.integers(len(pool)))])
    return examples, None


def choose_prompts(examples: Sequence[Example], count: int, rng: np.random.Generator) -> list:
    """Prompts an entity completes for the pool: all of them once if `count` covers the
    data (the theory's setting, S_t = S~), else a random subset without replacement."""
    if count >= len(examples):
        return [e.prompt for e in examples]
    idx = rng.choice(len(examples), size=count, replace=False)
    return [examples[int(i)].prompt for i in idx]
