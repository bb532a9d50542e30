"""Lexical diversity of one model's completions: distinct-n, compression ratio, self-BLEU.

Tokens are sacrebleu's `13a` tokenisation (the standard BLEU tokeniser; case kept), so
distinct-n and self-BLEU count the same tokens. For a set of completions c_1..c_n of one
dataset (one per prompt):

distinct_n   (n = 1..4) number of distinct n-grams over the set / number of n-gram
             occurrences; n-grams are taken within each completion (Li et al. 2016).
compression_ratio  UTF-8 bytes of the completions joined by single spaces / bytes of its gzip
             compression (level 9), the definition of the `diversity` package (Shaib et al.);
             higher = more repetitive.
self_bleu    mean over i of sentence BLEU(c_i; references = every other completion of the
             set), sacrebleu's sentence BLEU (13a, exp smoothing, effective order), on 0..1;
             higher = more alike (Zhu et al. 2018).

Intervals (low/high), over prompts:
- distinct_n: each n-gram occurrence in c_i gets the share 1 / (occurrences of that n-gram in
  the set), so distinct_n = sum_i u_i / sum_i T_i exactly (u_i the shares of c_i, T_i its
  n-gram count); percentile bootstrap of that ratio, resampling prompts.
- self_bleu: percentile bootstrap of the mean over prompts of the per-prompt BLEU, the
  references held at the full set.
- compression_ratio: delete-a-group jackknife (prompts dealt into 20 groups), Student-t.
Resampling whole completions with replacement and recomputing would put exact copies into a
resample, which no model wrote: they lower distinct-n and raise self-BLEU and compression
by a third or more, so those intervals would not contain the value they are meant to bound.
"""

from __future__ import annotations

import gzip
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np

from crossgen.metrics.families import REFERENCE, GenerationInputs, register_family
from crossgen.metrics.table import interval, ratio_interval, row, stable_seed

MAX_ORDER = 4
JACKKNIFE_GROUPS = 20
FAMILY = "lexical"


@lru_cache(maxsize=1)
def _tokenizer():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def tokenize(text: str) -> list[str]:
    """sacrebleu's 13a tokens of `text` (what BLEU scores)."""
    return _tokenizer()(str(text).rstrip()).split()


@dataclass
class NgramTable:
    """Every (text, n-gram) pair of a set of texts, as integer arrays (one row per pair)."""

    text: np.ndarray  # which text
    gram: np.ndarray  # n-gram id (the same n-gram in two texts has one id)
    order: np.ndarray  # n - 1
    count: np.ndarray  # occurrences of the n-gram in the text
    lengths: np.ndarray  # (texts,) token counts

    @property
    def n_texts(self) -> int:
        return len(self.lengths)

    def per_text(self, values: np.ndarray) -> np.ndarray:
        """(texts, MAX_ORDER) sums of `values` (one per row) by text and order."""
        flat = np.bincount(self.text * MAX_ORDER + self.order, weights=values, minlength=self.n_texts * MAX_ORDER)
        return flat.reshape(self.n_texts, MAX_ORDER)


def ngram_table(texts: Sequence[str]) -> NgramTable:
    """The 1..4-grams within each text's 13a tokens, counted per text (vectorised: tokens become
    integers, an n-gram a row of n of them)."""
    vocab: dict[str, int] = {}
    token_lists = [tokenize(t) for t in texts]
    lengths = np.array([len(tokens) for tokens in token_lists], dtype=np.int64)
    ids = np.array([vocab.setdefault(w, len(vocab)) for tokens in token_lists for w in tokens], dtype=np.int64)
    owner = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    start = np.repeat(np.cumsum(lengths) - lengths, lengths)  # where each token's text begins
    pos = np.arange(len(ids), dtype=np.int64) - start
    base = max(len(vocab), 2)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    offset = 0
    for n in range(1, MAX_ORDER + 1):
        ok = np.flatnonzero(pos + n <= lengths[owner])  # n-grams that end inside their text
        if ok.size == 0:
            continue
        if base**n < 2**62:  # an n-gram as one integer in base len(vocab)
            key = np.zeros(ok.size, dtype=np.int64)
            for j in range(n):
                key = key * base + ids[ok + j]
            _, gram = np.unique(key, return_inverse=True)
        else:
            _, gram = np.unique(np.stack([ids[ok + j] for j in range(n)], axis=1), axis=0, return_inverse=True)
        gram = gram.reshape(-1)
        width = int(gram.max()) + 1
        pair, count = np.unique(owner[ok] * width + gram, return_counts=True)
        parts.append((pair // width, pair % width + offset, np.full(len(pair), n - 1, dtype=np.int64), count))
        offset += width
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return NgramTable(empty, empty, empty, empty, lengths)
    text, gram, order, count = (np.concatenate(x).astype(np.int64) for x in zip(*parts))
    return NgramTable(text, gram, order, count, lengths)


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams / n-gram occurrences over `texts` (n-grams within each text); NaN if none."""
    counts: Counter = Counter()
    for text in texts:
        tokens = tokenize(text)
        counts.update(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    total = sum(counts.values())
    return len(counts) / total if total else float("nan")


def distinct_shares(table: NgramTable) -> tuple[np.ndarray, np.ndarray]:
    """(u, T), each (texts, MAX_ORDER): per text and order n, the summed shares 1/N(g) of its
    n-gram occurrences (N(g) = occurrences of g in the set) and its n-gram count; column n-1 of
    sum(u) / sum(T) is distinct-n."""
    total = np.bincount(table.gram, weights=table.count)
    return table.per_text(table.count / total[table.gram]), table.per_text(table.count.astype(float))


def compression_ratio(texts: Sequence[str]) -> float:
    """len(" ".join(texts) in UTF-8) / len(gzip of it, level 9); NaN for no text."""
    data = " ".join(texts).encode("utf-8")
    return len(data) / len(gzip.compress(data, compresslevel=9, mtime=0)) if data else float("nan")


def self_bleu_scores(texts: Sequence[str], table: Optional[NgramTable] = None) -> np.ndarray:
    """Per text i, sacrebleu's sentence BLEU of text i against all the others, on 0..1.

    Equal to `BLEU(effective_order=True).sentence_score(texts[i], others).score / 100`; the
    references' clipped n-gram counts (max over the other texts) come from the top two counts
    of each n-gram over the set, so the whole set costs one pass instead of n.
    """
    from sacrebleu.metrics.bleu import BLEU

    table = ngram_table(texts) if table is None else table
    n = table.n_texts
    if n < 2 or table.gram.size == 0:
        return np.full(n, np.nan)
    # per n-gram: the largest count, the text that has it, and the largest count of any other text
    rank = np.lexsort((-table.count, table.gram))  # by n-gram, then count descending
    g_sorted, c_sorted = table.gram[rank], table.count[rank]
    first = np.r_[True, g_sorted[1:] != g_sorted[:-1]]
    best = np.zeros(table.gram.max() + 1, dtype=np.int64)
    owner = np.full_like(best, -1)
    second = np.zeros_like(best)
    best[g_sorted[first]] = c_sorted[first]
    owner[g_sorted[first]] = table.text[rank][first]
    after_first = np.r_[False, first[:-1]] & ~first  # the second row of an n-gram's run
    second[g_sorted[after_first]] = c_sorted[after_first]
    reference = np.where(owner[table.gram] == table.text, second[table.gram], best[table.gram])
    correct = table.per_text(np.minimum(table.count, reference).astype(float)).astype(np.int64)
    total = table.per_text(table.count.astype(float)).astype(np.int64)
    lengths = Counter(int(x) for x in table.lengths)
    distinct_lengths = sorted(lengths)
    scores = np.empty(n)
    for i in range(n):
        hyp_len = int(table.lengths[i])
        ref_len = _closest_other_length(hyp_len, lengths, distinct_lengths)
        score = BLEU.compute_bleu(
            correct[i].tolist(), total[i].tolist(), hyp_len, ref_len, smooth_method="exp", effective_order=True
        )
        scores[i] = score.score / 100.0
    return scores


def _closest_other_length(length: int, counts: Counter, ordered: list[int]) -> int:
    """sacrebleu's closest reference length (ties to the shorter) among the other texts' lengths."""
    best, best_diff = -1, math.inf
    for other in ordered:
        if other == length and counts[other] < 2:
            continue  # the text itself
        diff = abs(other - length)
        if diff < best_diff or (diff == best_diff and other < best):
            best, best_diff = other, diff
    return best


def jackknife_interval(texts: Sequence[str], statistic, groups: int = JACKKNIFE_GROUPS, level: float = 0.95):
    """(statistic(texts), low, high): delete-a-group jackknife with Student-t quantiles; prompt i
    is in group i mod G (G = min(groups, n))."""
    from scipy.stats import t as student_t

    value = float(statistic(list(texts)))
    n = len(texts)
    G = min(groups, n)
    if G < 2 or not math.isfinite(value):
        return value, value, value
    leave_out = np.array([statistic([x for i, x in enumerate(texts) if i % G != g]) for g in range(G)])
    se = math.sqrt((G - 1) / G * float(((leave_out - leave_out.mean()) ** 2).sum()))
    half = float(student_t.ppf(0.5 + level / 2, G - 1)) * se
    return value, value - half, value + half


def lexical_rows(t: int, model: str, dataset: str, texts: Sequence[str]) -> list[dict]:
    table = ngram_table(texts)
    rows = []
    shares, counts = distinct_shares(table)
    for n in range(1, MAX_ORDER + 1):
        u, T = shares[:, n - 1], counts[:, n - 1]
        if T.sum() == 0:
            rows.append(row(t, model, dataset, f"distinct_{n}", float("nan")))
            continue
        keep = T > 0  # texts shorter than n carry no n-gram
        value, low, high = ratio_interval(u[keep], T[keep], seed=stable_seed(FAMILY, model, dataset, n))
        rows.append(row(t, model, dataset, f"distinct_{n}", value, low, high))
    rows.append(row(t, model, dataset, "compression_ratio", *jackknife_interval(texts, compression_ratio)))
    scores = self_bleu_scores(texts, table)
    if len(scores) >= 2:
        rows.append(row(t, model, dataset, "self_bleu", *interval(scores, seed=stable_seed(FAMILY, model, dataset))))
    else:
        rows.append(row(t, model, dataset, "self_bleu", float("nan")))
    return rows


@register_family(FAMILY, requires="sacrebleu", install="pip install 'crossgen[metrics]'")
def lexical(inputs: GenerationInputs) -> list[dict]:
    """distinct_1..4, compression_ratio, self_bleu per model and dataset, and of the references."""
    rows: list[dict] = []
    for ds in inputs.datasets:
        if not inputs.indices(ds):
            continue
        for m in inputs.models:
            rows += lexical_rows(inputs.t, m, ds, inputs.texts(m, ds))
        reused = inputs.previous_reference_rows(FAMILY, ds)
        rows += reused if reused is not None else lexical_rows(inputs.t, REFERENCE, ds, inputs.references(ds))
    return rows
