"""The mixture an update trains on: the one home of alpha, beta, their schedules and the
mixing paradigms.

Entity k's update at generation t trains on its private data D~k, the public data D* and
the synthetic pools of the previous generation's models, with loss (or sampling) weights

    private (1 - a) b,   public (1 - a)(1 - b),   pool j  a W[k, j]

where a = alpha[t, k], b = beta[t, k] and W is the interaction matrix (rows sum to 1; the
paper's complete graph is W = 1/K everywhere, so each pool gets a / K). Generation 0 has no
synthetic data: alpha[0] is 0 by definition, whatever a schedule says. W's topologies and
checks live in `crossgen.theory.graphs`; here an entity's row of W is just its pool weights.

A weight is given as a scalar (every generation and entity), one value per generation
t = 0..T (shared by the entities), or a (T+1, K) array; `weight_schedule` turns any of them
into the (T+1, K) array that the theory, the Monte Carlo twin and the workflow loop all read.

A mixing paradigm (`Paradigm`, registered by name with `register_paradigm`) says how the
weighted components become one update's training set: drawn i.i.d. (the paper's
accumulate-and-subsample), drawn from every earlier pool too (accumulate), synthetic data
only (replace), or every example once with its component's weight as a loss weight
(weighted-loss, the estimator of the paper's section 5). `docs/DESIGN.md` shows how to add one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Optional

import numpy as np

from crossgen.data import Example
from crossgen.errors import FRACTION, InputError, check_fraction, check_int


class MixtureWeights(NamedTuple):
    """Weights of one entity's update: private, public, and one per synthetic pool."""

    private: float
    public: float
    pools: tuple[float, ...]


def mixture_weights(
    alpha: float, beta: float, K: int, generation: int = 1, row: Optional[Sequence[float]] = None
) -> MixtureWeights:
    """(1-a)b, (1-a)(1-b) and a W[k, j] for each of the K pools (no pools' weight at generation 0).

    `row` is the entity's row of the interaction matrix W; None is the complete graph, each
    pool a / K (computed as a / K, so the paper's setting gives exactly the same numbers)."""
    a = 0.0 if generation == 0 else float(alpha)
    b = float(beta)
    if not generation or not K:
        pools: tuple[float, ...] = ()
    elif row is None:
        pools = (a / K,) * K
    else:
        pools = tuple(a * float(w) for w in row)
    return MixtureWeights((1.0 - a) * b, (1.0 - a) * (1.0 - b), pools)


def mixture_coefficients(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrays (abar*beta, abar*bbar, alpha): the private, public and total synthetic weights."""
    abar = 1.0 - alpha
    return abar * beta, abar * (1.0 - beta), alpha


def fraction_array(name: str, arr: np.ndarray) -> None:
    """Raise InputError naming the first entry outside [0, 1] (NaN included), e.g. alpha[3,1]."""
    bad = ~((arr >= 0.0) & (arr <= 1.0))
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{name}[{','.join(map(str, idx))}]", float(arr[idx]), FRACTION)


def _as_float_array(name: str, value: Any, allowed: str) -> np.ndarray:
    try:
        return np.array(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(name, value, allowed) from None


def weight_schedule(name: str, value: Any, generations: int, K: int, *, zero_at_start: bool = False) -> np.ndarray:
    """A weight (alpha or beta) as a (T+1, K) array, row t = generation t, column k = entity.

    value: a scalar, a length-(T+1) sequence (one value per generation, t = 0 first, shared by
    all entities) or a (T+1, K) array. When K == T+1 a 1-D sequence is read per generation.
    Every entry must lie in [0, 1]; the error names the entry, e.g. ``alpha[3]`` or
    ``alpha[3,1]``. ``zero_at_start`` sets row 0 to 0 (alpha: generation 0 sees real data only).
    """
    T = check_int("generations", generations, 0)
    allowed = f"{FRACTION}, {T + 1} such numbers (one per generation t = 0..{T}), or a ({T + 1}, {K}) array"
    arr = _as_float_array(name, value, allowed)
    if arr.ndim == 0:
        out = np.full((T + 1, K), check_fraction(name, float(arr)))
    elif arr.ndim == 1 and arr.shape[0] == T + 1:
        fraction_array(name, arr)
        out = np.repeat(arr[:, None], K, axis=1)
    elif arr.ndim == 2 and arr.shape == (T + 1, K):
        fraction_array(name, arr)
        out = arr.copy()
    else:
        raise InputError(name, f"shape {arr.shape}", allowed)
    if zero_at_start:
        out[0] = 0.0
    return out


def entity_weights(name: str, value: Any, K: int) -> np.ndarray:
    """A stationary weight as a (K,) array: a scalar or one value per entity, each in [0, 1]."""
    allowed = f"{FRACTION} or {K} such numbers (one per entity)"
    arr = _as_float_array(name, value, allowed)
    if arr.ndim == 0:
        return np.full(K, check_fraction(name, float(arr)))
    if arr.shape == (K,):
        fraction_array(name, arr)
        return arr.copy()
    raise InputError(name, f"shape {arr.shape}", allowed)


# -- the components of one update ------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """One weighted source of training examples: kind is private, public or synthetic."""

    name: str
    kind: str
    weight: float
    examples: Sequence[Example]


def mixture(
    alpha: float,
    beta: float,
    private: Sequence[Example],
    public: Sequence[Example],
    pools: Sequence[Sequence[Example]],
    pool_names: Sequence[str],
    row: Optional[Sequence[float]] = None,
) -> list[Component]:
    """The weighted components of one entity's update (`pools` empty at generation 0).

    Parameters
    ----------
    alpha, beta : the entity's weights at this generation.
    private, public : the real examples D~k and D*.
    pools : one list of synthetic examples per entity (the pools D_t1..D_tK), in entity order.
    pool_names : the entities' names, for the components' names ("synthetic:<entity>").
    row : the entity's row of the interaction matrix W (None: the complete graph, a / K each).

    Returns
    -------
    list of Component: private, public, then one per pool, with the weights of `mixture_weights`
    (a pool of weight 0 is never drawn from nor trained on).
    """
    w = mixture_weights(alpha, beta, len(pools), row=row)
    components = [Component("private", "private", w.private, private), Component("public", "public", w.public, public)]
    components += [Component(f"synthetic:{n}", "synthetic", pw, p) for n, pw, p in zip(pool_names, w.pools, pools)]
    return components


def _live(components: Sequence[Component]) -> list[Component]:
    """The components with positive weight; one of them without examples is an error."""
    live = [c for c in components if c.weight > 0]
    for c in live:
        if not c.examples:
            raise InputError(f"{c.name} data", 0, "at least one example for a component with positive weight")
    return live


def draw_iid(components: Sequence[Component], n: int, rng: np.random.Generator) -> list[Example]:
    """n examples i.i.d. from the mixture: a component by its weight, then one of its examples."""
    live = _live(components)
    probs = np.array([c.weight for c in live], dtype=float)
    probs /= probs.sum()
    which = rng.choice(len(live), size=n, p=probs)
    examples = []
    for idx in which:
        pool = live[idx].examples
        examples.append(pool[int(rng.integers(len(pool)))])
    return examples


# -- mixing paradigms --------------------------------------------------------------------------

TrainingSet = tuple[list[Example], Optional[list[float]]]


class Paradigm:
    """How the weighted components become one update's training set.

    pool_history: an entity's pool at generation t holds the outputs of generations 1..t
    (not only the newest). samples: the training set is a draw from the components (so
    only the drawn pool entries need completing). `check` validates a run's (T+1, K) alpha
    schedule.
    """

    name: ClassVar[str]
    pool_history: ClassVar[bool] = False
    samples: ClassVar[bool] = True  # draws part of its components (False: uses every example)

    def check(self, alpha: np.ndarray) -> None:
        """Raise InputError when the weights contradict the paradigm."""

    def training_set(self, components: Sequence[Component], n: int, rng: np.random.Generator) -> TrainingSet:
        """(examples, per-example loss weights or None) of one update."""
        return draw_iid(components, n, rng), None


PARADIGMS: dict[str, Paradigm] = {}


def register_paradigm(cls: type[Paradigm]) -> type[Paradigm]:
    """Class decorator: make a paradigm available to configs as `mixing.paradigm: <cls.name>`."""
    PARADIGMS[cls.name] = cls()
    return cls


def get_paradigm(name: str, field: str = "mixing.paradigm") -> Paradigm:
    if name not in PARADIGMS:
        raise InputError(field, name, "one of " + ", ".join(sorted(PARADIGMS)))
    return PARADIGMS[name]


@register_paradigm
class AccumulateSubsample(Paradigm):
    """The paper's: n examples drawn i.i.d. from D~k, D* and the newest pools D_t1..D_tK."""

    name = "accumulate-subsample"


@register_paradigm
class Accumulate(Paradigm):
    """The same draw, but each pool keeps every earlier generation's outputs (D_1 u ... u D_t)."""

    name = "accumulate"
    pool_history = True


@register_paradigm
class Replace(Paradigm):
    """From generation 1 on, the newest pools only (Shumailov et al.): alpha must be 1."""

    name = "replace"

    def check(self, alpha: np.ndarray) -> None:
        if np.any(alpha[1:] != 1.0):
            bad = float(alpha[1:][alpha[1:] != 1.0][0])
            raise InputError("alpha", bad, "1 with mixing.paradigm 'replace' (synthetic data only)")


@register_paradigm
class WeightedLoss(Paradigm):
    """Every example once, its component's weight as its loss weight: exactly the estimator of
    the paper's section 5 (a larger component carries more total weight, as in the theory)."""

    name = "weighted-loss"
    samples = False

    def training_set(self, components: Sequence[Component], n: int, rng: np.random.Generator) -> TrainingSet:
        live = _live(components)
        return [e for c in live for e in c.examples], [c.weight for c in live for _ in c.examples]


def choose_examples(examples: Sequence[Example], count: int, rng: np.random.Generator) -> list[Example]:
    """The examples whose prompts an entity completes for its pool: all of them once if
    `count` covers the data (the theory's setting, S_t = S~), else a random subset without
    replacement."""
    if count >= len(examples):
        return list(examples)
    idx = rng.choice(len(examples), size=count, replace=False)
    return [examples[int(i)] for i in idx]


def choose_prompts(examples: Sequence[Example], count: int, rng: np.random.Generator) -> list[Any]:
    """The prompts of `choose_examples` (the same draw)."""
    return [e.prompt for e in choose_examples(examples, count, rng)]
