"""The mixture of D~k, D*, D_t1..D_tK: weights, sampling and the weighted-loss estimator."""

import numpy as np
import pytest
from scipy import stats

from crossgen.data import Example
from crossgen.errors import InputError
from crossgen.mixture import choose_prompts, get_paradigm, mixture


def training_set(components, n, paradigm, rng):
    return get_paradigm(paradigm).training_set(components, n, rng)


def data(tag, n):
    return [Example(f"{tag}{i}", "", tag) for i in range(n)]


def components(alpha=0.5, beta=0.25):
    return mixture(alpha, beta, data("priv", 30), data("pub", 50), [data("s0", 10), data("s1", 20)], ["e0", "e1"])


def test_weights_are_the_papers():
    comps = components(0.5, 0.25)
    assert [c.name for c in comps] == ["private", "public", "synthetic:e0", "synthetic:e1"]
    assert [c.weight for c in comps] == pytest.approx([0.5 * 0.25, 0.5 * 0.75, 0.25, 0.25])
    assert sum(c.weight for c in comps) == pytest.approx(1.0)


def test_sampling_matches_mixture_weights_chi_square():
    rng = np.random.default_rng(0)
    examples, weights = training_set(components(), 20_000, "accumulate-subsample", rng)
    assert weights is None and len(examples) == 20_000
    counts = np.array([sum(e.source == tag for e in examples) for tag in ("priv", "pub", "s0", "s1")])
    expected = 20_000 * np.array([0.125, 0.375, 0.25, 0.25])
    assert stats.chisquare(counts, expected).pvalue > 1e-4


def test_weighted_loss_uses_every_example_with_its_component_weight():
    examples, weights = training_set(components(), 999, "weighted-loss", np.random.default_rng(0))
    assert len(examples) == 30 + 50 + 10 + 20
    by_source = {e.source: w for e, w in zip(examples, weights)}
    assert by_source == pytest.approx({"priv": 0.125, "pub": 0.375, "s0": 0.25, "s1": 0.25})


def test_zero_weight_components_are_left_out():
    examples, _ = training_set(
        mixture(0.0, 1.0, data("priv", 5), data("pub", 5), [], []),
        100,
        "accumulate-subsample",
        np.random.default_rng(1),
    )
    assert {e.source for e in examples} == {"priv"}


def test_empty_component_with_weight_is_an_error():
    comps = mixture(0.5, 0.5, data("priv", 5), [], [data("s", 3)], ["e0"])
    with pytest.raises(InputError, match=r"^invalid public data: 0 \(allowed: at least one example"):
        training_set(comps, 10, "accumulate-subsample", np.random.default_rng(0))


def test_same_seed_same_draw():
    a, _ = training_set(components(), 200, "accumulate-subsample", np.random.default_rng(7))
    b, _ = training_set(components(), 200, "accumulate-subsample", np.random.default_rng(7))
    c, _ = training_set(components(), 200, "accumulate-subsample", np.random.default_rng(8))
    assert a == b and a != c


def test_replace_requires_alpha_one_after_generation_0():
    paradigm = get_paradigm("replace")
    paradigm.check(np.array([[0.0, 0.0], [1.0, 1.0]]))
    with pytest.raises(InputError, match=r"^invalid alpha: 0.5 \(allowed: 1 with mixing.paradigm 'replace'"):
        paradigm.check(np.array([[0.0, 0.0], [1.0, 0.5]]))


def test_unknown_paradigm_names_the_known_ones():
    with pytest.raises(InputError) as exc:
        get_paradigm("mix")
    assert str(exc.value) == (
        "invalid mixing.paradigm: mix (allowed: one of accumulate, accumulate-subsample, replace, weighted-loss)"
    )


def test_choose_prompts_all_or_subset_without_replacement():
    examples = data("p", 10)
    assert choose_prompts(examples, 10, np.random.default_rng(0)) == [e.prompt for e in examples]
    subset = choose_prompts(examples, 4, np.random.default_rng(0))
    assert len(subset) == len(set(subset)) == 4


def test_the_docs_paradigm_example_registers_and_draws_by_weight():
    """docs/DESIGN.md, "A mixing paradigm": the worked example works as written."""
    from crossgen.mixture import PARADIGMS, Paradigm, register_paradigm

    @register_paradigm
    class Stratified(Paradigm):
        name = "stratified"

        def training_set(self, components, n, rng):
            examples = []
            for c in components:
                if c.weight > 0 and c.examples:
                    k = round(n * c.weight)
                    idx = rng.choice(len(c.examples), size=k, replace=k > len(c.examples))
                    examples += [c.examples[int(i)] for i in idx]
            order = rng.permutation(len(examples))
            return [examples[int(i)] for i in order], None

    try:
        examples, weights = get_paradigm("stratified").training_set(components(), 80, np.random.default_rng(0))
        counts = {tag: sum(e.source == tag for e in examples) for tag in ("priv", "pub", "s0", "s1")}
        assert weights is None and counts == {"priv": 10, "pub": 30, "s0": 20, "s1": 20}  # 80 x the weights
    finally:
        del PARADIGMS["stratified"]
