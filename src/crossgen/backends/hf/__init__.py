"""The transformers backend ("hf"): causal language models, pretrained or built from scratch.

`backend` (HFBackend, registered as "hf"; importing it does not import torch), `model`
(HFModel), `train` (one generation's update through transformers' Trainer), `tokenizer`
(the from-scratch byte-level BPE), `lora` (LoRA adapters through peft, `model.lora`),
`logging` (quiet transformers). `HFModel` is imported on first access.
"""

from __future__ import annotations

from typing import Any

from crossgen.backends.hf.backend import HFBackend

__all__ = ["HFBackend", "HFModel"]


def __getattr__(name: str) -> Any:
    if name == "HFModel":
        from crossgen.backends.hf.model import HFModel

        return HFModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
