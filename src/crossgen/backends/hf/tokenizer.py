"""The from-scratch tokenizer: byte-level BPE trained on a run's real text.

Byte-level means every string round-trips exactly (no unknown tokens, whitespace and
unicode preserved); BPE merges are learnt with the `tokenizers` library up to
`vocab_size` entries (fewer if the text runs out of pairs). Two special tokens are
reserved: EOS (also used as BOS/UNK, as GPT-2 does) and a separate PAD token, so
padding can never be confused with a real end of sequence.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EOS = "<|endoftext|>"
PAD = "<|pad|>"

_CACHE: dict[tuple[str, int], object] = {}


def _fingerprint(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def train_tokenizer(texts: Sequence[str], vocab_size: int):
    """A `PreTrainedTokenizerFast` (byte-level BPE) trained on `texts`.

    Deterministic for the same texts and vocab size; results are memoised in-process
    because the loop asks for the same tokenizer once per entity.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    key = (_fingerprint(texts), int(vocab_size))
    if key not in _CACHE:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=int(vocab_size),
            special_tokens=[EOS, PAD],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(_iterate(texts), trainer=trainer, length=len(texts))
        _CACHE[key] = tok
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=_CACHE[key],
        eos_token=EOS,
        bos_token=EOS,
        unk_token=EOS,
        pad_token=PAD,
        model_max_length=10**9,
    )
    wrapped.padding_side = "left"
    return wrapped


def _iterate(texts: Iterable[str]):
    yield from texts
