"""The transformers backend on tiny models (1-2 layers, width 32): score, train, weighted
loss, generate, save/load, pretrained loading. Keep the whole file well under a minute."""

from __future__ import annotations

import copy
import math
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from crossgen.backends.base import Backend, GenerativeModel, TrainStats  # noqa: E402
from crossgen.backends.device import resolve_device  # noqa: E402
from crossgen.backends.hf import HFBackend  # noqa: E402
from crossgen.backends.hf.model import HFModel  # noqa: E402
from crossgen.backends.hf.tokenizer import train_tokenizer  # noqa: E402
from crossgen.backends.hf.train import Collator, build_trainer, per_example_loss, weighted_loss  # noqa: E402
from crossgen.config import ArchitectureConfig, GenerationConfig, ModelConfig, TrainingConfig  # noqa: E402
from crossgen.data import Example  # noqa: E402
from crossgen.errors import InputError  # noqa: E402

torch.set_num_threads(1)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ARCH = ArchitectureConfig(n_layer=1, n_head=2, n_embd=32, n_positions=64, vocab_size=320)
NAMES = ["red", "blue", "green", "black", "white", "pink", "gray", "gold"]


def corpus() -> list[Example]:
    """A tiny repetitive task: the answer is a deterministic function of the prompt."""
    return [Example(f"Q: {a} and {b}?", f" A: {a} {b} {a}.") for a in NAMES for b in NAMES[:4]]


def texts() -> list[str]:
    return [e.text for e in corpus()] + ["The quick brown fox jumps over the lazy dog. Ünïcødé ✓ 42!"]


def train_cfg(**kw) -> TrainingConfig:
    base = dict(
        max_steps=40,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        warmup_ratio=0.0,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        max_seq_length=64,
    )
    base.update(kw)
    return TrainingConfig(**base)


def state(model: HFModel) -> dict:
    return {k: v.detach().clone() for k, v in model.model.state_dict().items()}


def same_weights(a: dict, b: dict, atol: float = 0.0) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)


def no_dropout(model: HFModel) -> HFModel:
    for m in model.model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


@pytest.fixture(scope="module")
def backend() -> HFBackend:
    return HFBackend(ModelConfig(backend="hf", scratch=ARCH), device="cpu", threads=1)


@pytest.fixture(scope="module")
def fresh(backend) -> HFModel:
    return backend.initial_model(texts(), seed=0)


@pytest.fixture(scope="module")
def trained(backend) -> tuple[HFModel, float, float, TrainStats, list]:
    model = backend.initial_model(texts(), seed=0)
    before = model.score(corpus(), 8)
    calls = []
    stats = model.train(
        corpus(), train_cfg(max_steps=300, learning_rate=1e-2), seed=0, progress=lambda s, n: calls.append((s, n))
    )
    return model, before, model.score(corpus(), 8), stats, calls


# -- protocol and construction -----------------------------------------------------------
def test_protocol_and_device(backend, fresh):
    assert isinstance(backend, Backend) and isinstance(fresh, GenerativeModel)
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda", "mps")
    assert fresh.model.config.vocab_size == len(fresh.tokenizer) <= ARCH.vocab_size
    assert fresh.model.config.n_layer == ARCH.n_layer and fresh.model.config.n_positions == ARCH.n_positions


def test_scratch_init_is_seeded(backend):
    a, b, c = (backend.initial_model(texts(), seed=s) for s in (5, 5, 6))
    assert same_weights(state(a), state(b))
    assert not same_weights(state(a), state(c))


def test_scratch_tokenizer_round_trips_text(fresh, tmp_path):
    tok = fresh.tokenizer
    samples = ["  leading spaces, tabs\tand\nnewlines  ", "Ünïcødé ✓ 😀 ä", "Q: red and blue? A: 7.", ""]
    for s in samples:
        assert tok.decode(tok(s, add_special_tokens=False)["input_ids"]) == s
    assert tok.eos_token_id is not None and tok.pad_token_id is not None
    assert tok.eos_token_id != tok.pad_token_id
    # deterministic: the same texts give the same vocabulary and merges (retrained, not memoised)
    from crossgen.backends.hf import tokenizer as hf_tokenizer

    hf_tokenizer._CACHE.clear()
    assert train_tokenizer(texts(), ARCH.vocab_size).backend_tokenizer.to_str() == tok.backend_tokenizer.to_str()
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again.decode(again(samples[1], add_special_tokens=False)["input_ids"]) == samples[1]


# -- score ---------------------------------------------------------------------------------
def hand_score(model: HFModel, examples: list[Example]) -> float:
    """One example at a time, no padding: -log p(answer token | everything before)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for e in examples:
            p = model.tokenizer(e.prompt)["input_ids"]
            a = model.tokenizer(e.answer, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([p + a])
            logp = torch.log_softmax(model.model(ids).logits[0].double(), dim=-1)
            for t in range(len(p), len(p) + len(a)):
                total -= logp[t - 1, ids[0, t]].item()
                count += 1
    return total / count


def test_score_equals_hand_computation(fresh):
    examples = [
        Example("Q: red and blue?", " A: red blue red."),
        Example("Q: a much longer prompt here?", " A: x"),
        Example("Hi", " there, a long answer with many tokens in it."),
        Example("", " empty prompt"),
    ]
    examples[3] = Example("x", " y")  # single-token prompt
    got = fresh.score(examples, batch_size=3)
    assert got == pytest.approx(hand_score(fresh, examples), rel=1e-5)
    # batch size does not matter
    assert fresh.score(examples, batch_size=1) == pytest.approx(got, rel=1e-5)
    # the count is exactly the answer tokens
    _total, count = fresh.score_sums(examples, 2)
    assert count == sum(len(fresh.tokenizer(e.answer, add_special_tokens=False)["input_ids"]) for e in examples)


def test_score_counts_answer_tokens_only(fresh):
    e = Example("Q: red and blue?", " A: red blue red.")
    # Moving text from the answer into the prompt removes those tokens from the targets.
    moved = Example("Q: red and blue? A:", " red blue red.")
    assert fresh.score_sums([moved], 1)[1] < fresh.score_sums([e], 1)[1]
    # The full-sequence loss (prompt tokens as targets too) differs from the score.
    ids = torch.tensor([fresh.tokenizer(e.text)["input_ids"]])
    with torch.no_grad():
        full = fresh.model(ids, labels=ids).loss.item()
    assert abs(full - fresh.score([e], 1)) > 1e-3
    # Changing the answer changes the score.
    assert fresh.score([Example(e.prompt, " A: gold gold gold.")], 1) != pytest.approx(fresh.score([e], 1))


def test_empty_prompt_is_scored_with_a_start_token(fresh):
    total, count = fresh.score_sums([Example("", " red")], 1)
    assert count == len(fresh.tokenizer(" red", add_special_tokens=False)["input_ids"])
    assert math.isfinite(total)


# -- train ---------------------------------------------------------------------------------
def test_training_lowers_the_loss(trained):
    model, before, after, stats, calls = trained
    assert after < 0.7 * before
    assert stats.steps == 300
    assert stats.tokens > 0 and stats.seconds > 0 and math.isfinite(stats.final_loss)
    assert calls == [(s, 300) for s in range(1, 301)]
    assert not model.model.training and model.model.config.use_cache


def test_training_is_deterministic_and_counts_tokens(backend):
    data = corpus()[:16]
    cfg = train_cfg(max_steps=8, per_device_train_batch_size=4)
    a, b = backend.initial_model(texts(), seed=1), backend.initial_model(texts(), seed=1)
    sa = a.train(data, cfg, seed=3)
    sb = b.train(data, cfg, seed=3)
    assert same_weights(state(a), state(b))
    assert sa.final_loss == sb.final_loss
    # 8 steps of 4 = exactly two passes over the 16 examples (prompt + answer + eos each)
    assert sa.steps == 8
    assert sa.tokens == 2 * sum(len(x) for x in a.training_ids(data, 64))
    c = backend.initial_model(texts(), seed=1)
    c.train(data, cfg, seed=4)
    assert not same_weights(state(a), state(c))


def test_training_continues_from_current_weights(backend):
    m = backend.initial_model(texts(), seed=2)
    m.train(corpus(), train_cfg(max_steps=5), seed=0)
    once = state(m)
    m.train(corpus(), train_cfg(max_steps=5), seed=0)
    fresh = backend.initial_model(texts(), seed=2)
    fresh.train(corpus(), train_cfg(max_steps=5), seed=0)
    assert same_weights(state(fresh), once)  # restart == same result
    assert not same_weights(state(m), once)  # continuing moved on from there


def test_gradient_accumulation_and_schedules_run(backend):
    m = backend.initial_model(texts(), seed=0)
    stats = m.train(
        corpus(),
        train_cfg(
            max_steps=3, gradient_accumulation_steps=2, lr_scheduler_type="constant_with_warmup", warmup_ratio=1.0
        ),
        seed=0,
    )
    assert stats.steps == 3


# -- weighted loss ---------------------------------------------------------------------------
def test_weighted_loss_function_is_the_weighted_mean_of_example_losses():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11)
    labels = torch.randint(0, 11, (3, 5))
    labels[1, 3:] = -100
    labels[2, 2:] = -100
    w = torch.tensor([1.0, 0.0, 3.0])
    per = []
    for i in range(3):
        n = int((labels[i] != -100).sum())
        per.append(torch.nn.functional.cross_entropy(logits[i, : n - 1], labels[i, 1:n]))
    per = torch.stack(per)
    assert torch.allclose(per_example_loss(logits, labels), per)
    assert torch.allclose(weighted_loss(logits, labels, w), (w * per).sum() / w.sum())
    # normalised by the whole optimizer step's weight when given
    assert torch.allclose(weighted_loss(logits, labels, w, torch.tensor(8.0)), (w * per).sum() / 8.0)
    assert weighted_loss(logits, labels, torch.zeros(3)).item() == 0.0


def test_trainer_compute_loss_applies_weights(fresh, tmp_path):
    m = copy.deepcopy(fresh)
    data = corpus()[:4]
    ids = m.training_ids(data, 64)
    w = [1.0, 0.0, 2.0, 0.5]
    rows = [{"input_ids": x, "weight": v} for x, v in zip(ids, w)]
    trainer = build_trainer(m.model, rows, m.tokenizer.pad_token_id, train_cfg(max_steps=1), 0, "cpu", str(tmp_path))
    batch = Collator(m.tokenizer.pad_token_id)(rows)
    m.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(m.model, dict(batch)).item()
        per = []
        for x in ids:
            t = torch.tensor([x])
            per.append(m.model(t, labels=t).loss.item())  # mean token loss of one example alone
    hand = sum(a * b for a, b in zip(w, per)) / sum(w)
    assert loss == pytest.approx(hand, rel=1e-5)
    # without the weight column the Trainer's token-mean loss is used (a different number)
    plain = {k: v for k, v in batch.items() if k != "weight"}
    with torch.no_grad():
        assert trainer.compute_loss(m.model, plain).item() != pytest.approx(hand, rel=1e-3)
    # gradient accumulation: two micro-batches of one optimizer step are normalised by the
    # step's total weight, so their losses add up to the weighted mean over all four
    no_dropout(m).model.train()
    micro = [Collator(m.tokenizer.pad_token_id)(rows[:2]), Collator(m.tokenizer.pad_token_id)(rows[2:])]
    samples, _ = trainer.get_batch_samples(iter(micro), 2, torch.device("cpu"))
    with torch.no_grad():
        parts = [trainer.compute_loss(m.model, dict(b)).item() for b in samples]
    m.model.eval()
    assert sum(parts) == pytest.approx(hand, rel=1e-5)


def test_weighted_step_is_the_same_with_gradient_accumulation(backend):
    """One optimizer step over 8 examples: one batch of 8, or two accumulated micro-batches of
    4, is the same objective L(B) (normalised by the whole step's weight) and the same update."""
    data = corpus()[:8]
    weights = [0.5, 2.0, 0.0, 1.0, 3.0, 1.0, 0.25, 1.0]
    results = []
    for batch, accumulation in ((8, 1), (4, 2)):
        m = no_dropout(backend.initial_model(texts(), seed=0))
        stats = m.train(
            data,
            train_cfg(max_steps=1, per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation),
            seed=0,
            weights=weights,
        )
        results.append((stats.final_loss, state(m)))
    # Same sums in another grouping and padding width: float32 rounding only (~1e-7 relative);
    # a loss divided by the accumulation steps once too often would be off by a factor of 2.
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-5)
    assert same_weights(results[0][1], results[1][1], atol=1e-5)  # lr 3e-3: rounding, not a 2x step


def test_zero_weight_examples_have_no_influence(backend):
    good = corpus()[:8]
    poison_a = [Example(f"Q: {n} and {n}?", " A: poison poison.") for n in NAMES[:8]]
    poison_b = [Example("Q: something else entirely?", " A: other text, longer than before!")] * 8
    weights = [1.0, 0.0] * 8
    cfg = train_cfg(max_steps=6, per_device_train_batch_size=4, gradient_accumulation_steps=2)

    def run(poison):
        m = no_dropout(backend.initial_model(texts(), seed=0))
        mixed = [x for pair in zip(good, poison) for x in pair]
        m.train(mixed, cfg, seed=0, weights=weights)
        return state(m), m

    sa, _ = run(poison_a)
    sb, _ = run(poison_b)
    assert same_weights(sa, sb, atol=1e-5)
    # ...while with weight 1 the poison does change the model
    m = no_dropout(backend.initial_model(texts(), seed=0))
    m.train([x for pair in zip(good, poison_a) for x in pair], cfg, seed=0, weights=[1.0] * 16)
    assert not same_weights(state(m), sa, atol=1e-3)


def test_bad_weights_are_input_errors(fresh):
    with pytest.raises(InputError):
        copy.deepcopy(fresh).train(corpus()[:2], train_cfg(max_steps=1), 0, weights=[1.0])
    with pytest.raises(InputError):
        copy.deepcopy(fresh).train(corpus()[:2], train_cfg(max_steps=1), 0, weights=[1.0, -1.0])


# -- generate --------------------------------------------------------------------------------
def test_generate_shape_and_seeds(trained):
    model = trained[0]
    prompts = [e.prompt for e in corpus()[:6]]
    # a hot temperature: the trained model is nearly sure of each answer at 1.0
    cfg = GenerationConfig(max_new_tokens=12, temperature=2.0, batch_size=4)
    a = model.generate(prompts, cfg, seed=0)
    assert len(a) == len(prompts) and all(isinstance(x, str) for x in a)
    assert all(not x.startswith(p) for x, p in zip(a, prompts))
    assert model.generate(prompts, cfg, seed=0) == a
    assert model.generate(prompts, cfg, seed=1) != a
    # the caller's RNG is left alone
    torch.manual_seed(123)
    x = torch.rand(1)
    torch.manual_seed(123)
    model.generate(prompts[:1], cfg, seed=9)
    assert torch.equal(torch.rand(1), x)


def chi_square_p(counts: dict, probs: dict, n: int) -> float:
    """Goodness-of-fit p-value of `counts` (n draws) against `probs`; cells expected below 5
    draws are pooled into one."""
    from scipy.stats import chisquare

    big = [k for k in probs if probs[k] * n >= 5]
    observed = [counts.get(k, 0) for k in big] + [n - sum(counts.get(k, 0) for k in big)]
    expected = [probs[k] * n for k in big] + [n * (1 - sum(probs[k] for k in big))]
    if expected[-1] < 1e-9:
        observed, expected = observed[:-1], expected[:-1]
    return float(chisquare(observed, expected).pvalue)


@pytest.mark.parametrize(
    ("temperature", "top_p", "probs"),
    [
        # softmax([2, 1, 0, -1]); the fifth token has probability 0 (-inf)
        (1.0, 1.0, [0.6439142598879722, 0.23688281808991013, 0.08714431874203257, 0.03205860328008499, 0.0]),
        # softmax(2 * logits) = [0.8668, 0.1173, 0.0159, 0.0021]: top-p 0.9 keeps the first two
        (0.5, 0.9, [0.8807970779778823, 0.11920292202211755, 0.0, 0.0, 0.0]),
    ],
)
def test_inverse_cdf_sampling_draws_from_the_warped_softmax(temperature, top_p, probs):
    from crossgen.backends.hf.sampling import sampling_processors

    n = 40_000
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, float("-inf")]]).repeat(n, 1)
    torch.manual_seed(0)
    out = sampling_processors(temperature, top_p)(torch.zeros((n, 1), dtype=torch.long), logits)
    assert torch.isfinite(out).sum(dim=1).eq(1).all() and out.max() == 0  # one finite score a row
    tokens = out.argmax(dim=1)
    counts = dict(zip(*torch.unique(tokens, return_counts=True)))
    counts = {int(k): int(v) for k, v in counts.items()}
    assert all(counts.get(k, 0) == 0 for k, p in enumerate(probs) if p == 0)  # never a token of probability 0
    assert chi_square_p(counts, dict(enumerate(probs)), n) > 1e-3


@pytest.mark.parametrize("source", ["trained", "llama-with-sampling-defaults"])
def test_sampled_first_tokens_follow_the_models_next_token_distribution(source, trained, tmp_path):
    if source == "trained":
        model = trained[0]
    else:  # Llama 3.2's generation_config.json samples at 0.6 with top-p 0.9: the run's settings win
        from transformers import GenerationConfig as HubGenerationConfig

        tiny_pretrained("llama", tmp_path)
        HubGenerationConfig(do_sample=True, temperature=0.6, top_p=0.9).save_pretrained(tmp_path)
        model = HFBackend(ModelConfig(backend="hf", name_or_path=str(tmp_path)), device="cpu").initial_model([], 0)
    prompt, temperature, n = "Q: red and", 1.5, 4000
    ids = torch.tensor([model.encode_prompts([prompt])[0]])
    with torch.no_grad():
        p = torch.softmax(model.model(input_ids=ids).logits[0, -1].double() / temperature, dim=-1)
    probs: dict = {}
    eos, decode = model.tokenizer.eos_token_id, model.tokenizer.decode
    for token, q in enumerate(p.tolist()):  # generate returns text: pool the tokens by their text
        text = "" if token == eos else decode([token], skip_special_tokens=True)
        probs[text] = probs.get(text, 0.0) + q
    cfg = GenerationConfig(max_new_tokens=1, temperature=temperature, batch_size=n)
    out = model.generate([prompt] * n, cfg, seed=0)
    counts: dict = {}
    for text in out:
        counts[text] = counts.get(text, 0) + 1
    assert set(counts) <= set(probs)
    assert len(counts) >= 5  # a spread distribution, not one token
    assert chi_square_p(counts, probs, n) > 1e-3


def test_greedy_is_deterministic_and_learnt(trained):
    model = trained[0]
    cfg = GenerationConfig(max_new_tokens=12, temperature=0.0, batch_size=4)
    prompts = [e.prompt for e in corpus()[:4]]
    out = model.generate(prompts, cfg, seed=0)
    assert model.generate(prompts, cfg, seed=1) == out
    # trained on a deterministic task, greedy decoding reproduces most answers (EOS learnt)
    hits = sum(o == e.answer for o, e in zip(out, corpus()[:4]))
    assert hits >= 3, out


def test_left_padding_matches_single_prompt(trained):
    model = trained[0]
    cfg = GenerationConfig(max_new_tokens=10, temperature=0.0, batch_size=8)
    prompts = ["Q: red and blue?", "Q: a considerably longer prompt, red and gold and pink?", "Q:", "Q: gold and red?"]
    batched = model.generate(prompts, cfg, seed=0)
    single = [model.generate([p], cfg, seed=0)[0] for p in prompts]
    assert batched == single
    # max_new_tokens override and a too-long prompt (left-truncated to fit the context)
    long = "Q: " + " and ".join(NAMES * 10) + "?"
    short = model.generate([long, "Q: red and red?"], cfg, seed=0, max_new_tokens=3)
    assert len(short) == 2
    assert all(len(model.encode_answers([s])[0]) <= 3 for s in short)
    assert model.generate([], cfg, seed=0) == []


# -- save / load -----------------------------------------------------------------------------
def test_save_load_round_trip(trained, backend, tmp_path):
    model = trained[0]
    target = tmp_path / "ckpt"
    model.save(target)
    assert (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary leftovers
    again = backend.load(target)
    assert again.score(corpus(), 8) == model.score(corpus(), 8)
    cfg = GenerationConfig(max_new_tokens=10, temperature=0.0, batch_size=4)
    prompts = [e.prompt for e in corpus()[:5]]
    assert again.generate(prompts, cfg, 0) == model.generate(prompts, cfg, 0)
    sampled = GenerationConfig(max_new_tokens=10, temperature=1.0, batch_size=4)
    assert again.generate(prompts, sampled, 3) == model.generate(prompts, sampled, 3)
    # saving over an existing checkpoint replaces it whole
    fresh = backend.initial_model(texts(), seed=7)
    fresh.save(target)
    assert backend.load(target).score(corpus(), 8) == fresh.score(corpus(), 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_missing_paths_are_input_errors(backend, tmp_path):
    missing = str(tmp_path / "does" / "not" / "exist")
    with pytest.raises(InputError) as err:
        HFBackend(ModelConfig(backend="hf", name_or_path=missing), device="cpu").initial_model([], 0)
    assert str(err.value) == (
        f"invalid model.name_or_path: {missing} (allowed: a local model folder "
        "or a hub id available in the local cache (offline))"
    )
    with pytest.raises(InputError):
        backend.load(tmp_path / "nothing-here")


@pytest.mark.skipif(os.environ.get("HF_HUB_OFFLINE") != "1", reason="needs offline mode to fail fast")
def test_uncached_hub_id_is_an_input_error_offline():
    with pytest.raises(InputError, match=r"model\.name_or_path: facebook/opt-350m"):
        HFBackend(ModelConfig(backend="hf", name_or_path="facebook/opt-350m"), device="cpu").initial_model([], 0)


# -- pretrained folder -------------------------------------------------------------------------
FAMILIES = ["gpt2", "opt", "llama"]


def tiny_pretrained(family: str, folder, n_positions: int = 64):
    """Write a tiny random-weight model of `family` (gpt2, opt or llama; ~25-40k parameters,
    seeded) and its own tokenizer to `folder`, as `save_pretrained` would for a hub model.

    The tokenizers have no pad token (the backend must fall back to EOS); Llama's adds a BOS
    token to every text, as Llama's own tokenizers do. Returns the tokenizer."""
    from tokenizers import Tokenizer, processors
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        OPTConfig,
        OPTForCausalLM,
        PreTrainedTokenizerFast,
    )

    base = train_tokenizer(texts(), 300)
    if family == "llama":
        backend = Tokenizer.from_str(base.backend_tokenizer.to_str())  # a copy: train_tokenizer memoises
        backend.add_special_tokens(["<s>"])
        bos = backend.token_to_id("<s>")
        backend.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
        )
        tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="<|endoftext|>")
    else:
        tok = PreTrainedTokenizerFast(tokenizer_object=base.backend_tokenizer, eos_token="<|endoftext|>")
    eos = tok.eos_token_id
    bos = tok.bos_token_id if tok.bos_token_id is not None else eos
    torch.manual_seed(0)
    if family == "gpt2":
        config = GPT2Config(
            n_layer=1,
            n_head=2,
            n_embd=32,
            n_positions=n_positions,
            vocab_size=len(tok),
            eos_token_id=eos,
            bos_token_id=bos,
        )
        model = GPT2LMHeadModel(config)
    elif family == "opt":
        config = OPTConfig(
            num_hidden_layers=1,
            num_attention_heads=2,
            hidden_size=32,
            ffn_dim=64,
            word_embed_proj_dim=32,
            max_position_embeddings=n_positions,
            vocab_size=len(tok),
            eos_token_id=eos,
            bos_token_id=bos,
            pad_token_id=eos,
        )
        model = OPTForCausalLM(config)
    else:
        config = LlamaConfig(
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            hidden_size=32,
            intermediate_size=64,
            max_position_embeddings=n_positions,
            vocab_size=len(tok),
            eos_token_id=eos,
            bos_token_id=bos,
        )
        model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return tok


@pytest.mark.parametrize("family", FAMILIES)
def test_pretrained_folder_loads_and_trains(family, tmp_path):
    tok = tiny_pretrained(family, tmp_path)
    m = HFBackend(ModelConfig(backend="hf", name_or_path=str(tmp_path)), device="cpu").initial_model([], seed=0)
    assert m.tokenizer.pad_token == m.tokenizer.eos_token
    if family == "llama":  # prompts start with BOS, answers do not
        assert m.encode_prompts(["Q: red"])[0][0] == tok.bos_token_id != tok.eos_token_id
        assert tok.bos_token_id not in m.encode_answers([" red"])[0]
        assert m.encode_prompts([""]) == [[tok.bos_token_id]]
    before = state(m)
    stats = m.train(corpus(), train_cfg(max_steps=1), seed=0)
    assert stats.steps == 1 and not same_weights(before, state(m))
    assert math.isfinite(m.score(corpus()[:4], 4))
    cfg = GenerationConfig(max_new_tokens=5, temperature=0.0, batch_size=8)
    prompts = ["Q: red and blue?", "Q:", "Q: a considerably longer prompt, red and gold and pink?"]
    out = m.generate(prompts, cfg, seed=0)
    assert len(out) == 3
    assert out == [m.generate([p], cfg, seed=0)[0] for p in prompts]  # left padding changes nothing
    m.save(tmp_path / "saved")
    again = HFBackend(ModelConfig(backend="hf", name_or_path=str(tmp_path / "saved")), device="cpu").load(
        tmp_path / "saved"
    )
    assert again.score(corpus()[:4], 4) == m.score(corpus()[:4], 4)
    assert again.generate(prompts, cfg, seed=0) == out


class Killed(Exception):
    """Stands for a kill at one of the workflow's named kill points (in-process: fast)."""


def tiny_run(model: dict, generations: int = 1, **changes):
    """tests/test_workflow_hf.py's tiny two-entity run on `model` (a `model` section), as a
    RunConfig: generation 0 trains, generation 1 writes pools (batched, left padded), trains
    on them, and every model is scored on every task."""
    from crossgen.config import parse_config
    from test_workflow_hf import TINY

    return parse_config({**copy.deepcopy(TINY), "model": model, "generations": generations, **changes})


def run_killed_and_resumed(cfg, out, point: str, monkeypatch):
    """Run `cfg` into `out`, stopped at kill point `point`, then resume it to the end."""
    from crossgen.workflow import loop
    from crossgen.workflow.run import run_workflow

    real = loop.kill_point

    def kill_at(name: str) -> None:
        if name == point:
            raise Killed(name)
        real(name)

    with monkeypatch.context() as patch:
        patch.setattr(loop, "kill_point", kill_at)
        with pytest.raises(Killed):
            run_workflow(cfg, out)
    assert not (out / "gen_001" / "losses.csv").exists()
    return run_workflow(cfg, out, resume=True)


def assert_same_run(a, b) -> None:
    """Two run directories with equal losses and equal pools."""
    import pandas as pd

    pd.testing.assert_frame_equal(pd.read_csv(a / "losses.csv"), pd.read_csv(b / "losses.csv"))
    for pool in sorted((a / "gen_001" / "pool").glob("*.jsonl")):
        assert pool.read_text() == (b / "gen_001" / "pool" / pool.name).read_text()


@pytest.mark.parametrize("family", FAMILIES)
def test_pretrained_folder_runs_through_the_workflow_and_resumes(family, tmp_path, monkeypatch):
    """A pretrained folder of each family through a generation of the workflow: train, write
    pools (generation with left padding), score, save; killed after one entity's update and
    resumed, it equals the uninterrupted run."""
    tiny_pretrained(family, tmp_path / "pretrained", n_positions=128)
    cfg = tiny_run({"backend": "hf", "name_or_path": str(tmp_path / "pretrained")})
    from crossgen.workflow.run import run_workflow

    run_workflow(cfg, tmp_path / "ref")
    run_killed_and_resumed(cfg, tmp_path / "run", "gen1.train.science", monkeypatch)
    assert_same_run(tmp_path / "ref", tmp_path / "run")
    import pandas as pd

    losses = pd.read_csv(tmp_path / "ref" / "losses.csv")
    assert len(losses) == 2 * 2 * 3 and losses.loss.notna().all()
    pool = (tmp_path / "ref" / "gen_001" / "pool" / "science.jsonl").read_text().splitlines()
    assert pool and all('"source": "synthetic:science:0"' in row for row in pool)
    assert (tmp_path / "ref" / "gen_001" / "models" / "science" / "model.safetensors").is_file()
    # the starting model is a reference to the pretrained folder, not a copy of its weights
    assert sorted(p.name for p in (tmp_path / "ref" / "initial").iterdir()) == ["pretrained.json"]


def test_a_changed_pretrained_model_is_refused_on_resume(tmp_path, monkeypatch):
    """The initial folder refers to the pretrained files; if they change, resuming (which may
    train from them again) is refused instead of silently mixing two starting models."""
    from crossgen.workflow.run import run_workflow

    tiny_pretrained("gpt2", tmp_path / "pretrained", n_positions=128)
    cfg = tiny_run({"backend": "hf", "name_or_path": str(tmp_path / "pretrained"), "restart_each_generation": True})
    with monkeypatch.context() as patch:
        from crossgen.workflow import loop

        def kill_at(name: str) -> None:
            if name == "gen0.train.science":
                raise Killed(name)

        patch.setattr(loop, "kill_point", kill_at)
        with pytest.raises(Killed):
            run_workflow(cfg, tmp_path / "run")
    tiny_pretrained("gpt2", tmp_path / "pretrained", n_positions=64)  # other weights, other sizes
    with pytest.raises(InputError, match=r"^invalid model directory: .*initial \(allowed: a reference to "):
        run_workflow(cfg, tmp_path / "run", resume=True)


def test_checkpoints_in_bfloat16_halve_the_disk_and_resume_exactly(tmp_path, monkeypatch):
    """model.checkpoint_dtype (auto: bf16 where training is bf16, on a GPU) on the CPU: the
    generation's checkpoints hold bf16 tensors at about half the bytes, the next generation
    trains on from exactly the saved weights, and a killed run resumes to the same numbers."""
    from safetensors import safe_open

    from crossgen.workflow.run import run_workflow

    scratch = {"n_layer": 1, "n_head": 2, "n_embd": 32, "n_positions": 128, "vocab_size": 300}
    full = tiny_run({"backend": "hf", "scratch": scratch})
    half = tiny_run({"backend": "hf", "scratch": scratch, "checkpoint_dtype": "bfloat16"})
    run_workflow(full, tmp_path / "fp32")
    run_workflow(half, tmp_path / "ref")
    run_killed_and_resumed(half, tmp_path / "run", "gen1.train.science", monkeypatch)
    assert_same_run(tmp_path / "ref", tmp_path / "run")

    def weights(run):
        return run / "gen_001" / "models" / "science" / "model.safetensors"

    with safe_open(str(weights(tmp_path / "ref")), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}  # noqa: SIM118 (not iterable)
    assert weights(tmp_path / "ref").stat().st_size < 0.6 * weights(tmp_path / "fp32").stat().st_size
    # the rounding is real: not the float32 run's numbers
    import pandas as pd

    a, b = pd.read_csv(tmp_path / "fp32" / "losses.csv"), pd.read_csv(tmp_path / "ref" / "losses.csv")
    assert not a.loss.equals(b.loss)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_unavailable_device_is_an_input_error():
    with pytest.raises(InputError, match="invalid device: cuda"):
        resolve_device("cuda")


@pytest.mark.parametrize("grouped", [False, True])
def test_group_by_length_cuts_padding_and_keeps_every_example(fresh, tmp_path, grouped):
    """Training batches: with group_by_length the examples of one epoch are the same, and the
    padding share of a batch falls far below that of uniform batches of mixed lengths."""
    rng = __import__("random").Random(0)
    rows = [{"input_ids": [5] * rng.choice([4, 8, 40, 60])} for _ in range(256)]
    trainer = build_trainer(fresh.model, rows, 0, train_cfg(group_by_length=grouped), 0, "cpu", str(tmp_path))
    lengths, padding, cells = [], 0, 0
    for batch in trainer.get_train_dataloader():
        mask = batch["attention_mask"]
        lengths += mask.sum(dim=1).tolist()
        padding += int((mask == 0).sum())
        cells += mask.numel()
    assert sorted(lengths) == sorted(len(r["input_ids"]) for r in rows)  # one epoch: every example once
    share = padding / cells
    # Four lengths (4..60) in batches of 8: uniform batches pad 54% of their cells (measured);
    # grouped ones only where sorted lengths change inside a batch (measured 11%).
    assert share < 0.2 if grouped else share > 0.4
