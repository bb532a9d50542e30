"""The transformers backend: causal language models, pretrained or built from scratch.

`model` (HFModel, HFBackend), `train` (one generation's update through transformers'
Trainer), `tokenizer` (the from-scratch byte-level BPE), `logging` (quiet transformers).
"""
from crossgen.backends.hf.model import HFBackend, HFModel

__all__ = ["HFBackend", "HFModel"]
