"""Sampling for `HFModel.generate`: temperature and top-p, then one draw per row by inverse CDF.

transformers' sampling draws with `torch.multinomial`, which on a CPU spends one exponential
variate per vocabulary entry and row: 12.5 ms a step for 200 rows of a 2,048-token vocabulary
here, more than the tiny model's forward pass. Drawing by the inverse of the cumulative
distribution needs one uniform variate per row (0.5 ms). The draw is exact (cumulative sums
in float64; float32 on Apple's mps), so completions follow the same distribution as with
`multinomial`, not the same sequence for a seed.

`sampling_processors(temperature, top_p)` is run by `generate` in greedy mode: the last
processor keeps only the drawn token finite, so greedy decoding emits it. Temperature and top-p
are transformers' own warpers, as its sampling mode applies them; no other warper of a model's
generation config applies (top-k is off, as `generate` documents).
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper


class InverseCdfDraw(LogitsProcessor):
    """Draws one token per row from softmax(scores) and returns scores that are 0 at the drawn
    token and -inf elsewhere (what greedy decoding then picks). Uses torch's default generator
    of the scores' device, so `torch.manual_seed` makes the draws repeatable."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        dtype = torch.float32 if scores.device.type == "mps" else torch.float64  # mps has no float64
        cdf = torch.softmax(scores.to(dtype), dim=-1).cumsum(dim=-1)
        u = torch.rand((scores.shape[0], 1), dtype=dtype, device=scores.device) * cdf[:, -1:]
        # right=True: the first token whose cumulative probability exceeds u, so a token of
        # probability 0 (an interval of width 0) is never drawn
        tokens = torch.searchsorted(cdf, u, right=True).clamp_(max=scores.shape[-1] - 1)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, tokens, 0.0)


def sampling_processors(temperature: float, top_p: float) -> LogitsProcessorList:
    """Temperature (when not 1), top-p (when below 1), then the draw."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 for sampling, not {temperature}")
    processors: list[LogitsProcessor] = []
    if temperature != 1.0:
        processors.append(TemperatureLogitsWarper(float(temperature)))
    if top_p < 1.0:
        processors.append(TopPLogitsWarper(float(top_p), min_tokens_to_keep=1))
    return LogitsProcessorList([*processors, InverseCdfDraw()])
