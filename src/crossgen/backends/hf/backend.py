"""`HFBackend`: the transformers backend ("hf") that makes and loads `HFModel`s.

Importing this module is cheap (torch and transformers are imported when a backend is
built), so the registry and the report can read the backend's capabilities without them.

Models: pretrained ones come from `AutoModelForCausalLM.from_pretrained` (hub id passed
through unchanged, e.g. facebook/opt-350m, meta-llama/Llama-3.2-1B; a local folder; or the
offline cache), with weights in float32 unless ModelConfig.dtype says otherwise (see
`_torch_dtype`), safetensors preferred, and EOS as the pad token when the tokenizer has
none. From-scratch ones are GPT-2 (`ArchitectureConfig`) with a byte-level BPE tokenizer
trained on the run's real text (tokenizer.py), initialised from `seed`. With ``model.lora``
the initial model gets a LoRA adapter (lora.py), and checkpoints of trained models hold the
adapter only, loaded back on the base folder they name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from crossgen.backends.device import resolve_device
from crossgen.backends.hf.logging import quiet_transformers
from crossgen.backends.registry import register_backend
from crossgen.errors import InputError
from crossgen.tasks import load_experiment_data

if TYPE_CHECKING:
    from crossgen.backends.hf.model import HFModel
    from crossgen.config import ModelConfig, RunConfig
    from crossgen.data import ExperimentData

NAME_FIELD = "model.name_or_path"
NAME_ALLOWED = "a local model folder or a hub id available in the local cache (offline)"
# owner/name or a bare name, as the hub spells repository ids
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def _torch_dtype(name: str) -> Any:
    """ModelConfig.dtype -> weights dtype. 'auto' keeps float32 master weights (on a GPU the
    Trainer's bf16 mixed precision does the rest), unlike transformers' 'auto' (checkpoint
    dtype), because pure-bf16 AdamW at lr 8e-6 loses most updates to rounding."""
    import torch

    return {"auto": torch.float32, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


@register_backend("hf")
class HFBackend:
    """Builds and loads `HFModel`s for one `ModelConfig` (backend 'hf').

    Parameters
    ----------
    model_cfg
        ``cfg.model``: a pretrained ``name_or_path`` or a ``scratch`` architecture.
    device
        "auto", "cpu", "cuda[:N]" or "mps" (see `crossgen.backends.device`).
    threads
        torch's CPU threads (None: leave as is).
    """

    TEXT = True
    LOSS_LABEL = "cross-entropy, nats"
    WORKER_IMPORTS = ("crossgen.backends.hf.model", "crossgen.backends.hf.train")  # torch, transformers: ~5 s
    STEPPED = True  # train() sees max_steps x batch x accumulation examples

    def __init__(self, model_cfg: ModelConfig, device: str = "auto", threads: Optional[int] = None):
        import torch

        self.cfg = model_cfg
        self.device = resolve_device(device)
        if threads:
            torch.set_num_threads(int(threads))

    @property
    def _model_options(self) -> dict:
        """What every HFModel of this backend is built with."""
        return {"checkpoint_dtype": self.cfg.checkpoint_dtype}

    @classmethod
    def from_config(cls, cfg: RunConfig) -> tuple[ExperimentData, HFBackend]:
        """The configured tasks (`crossgen.tasks.load_experiment_data`) and a backend on
        ``cfg.device`` with ``resources.threads`` threads (None: as the process has them —
        torch's default, the machine's cores, or what a parallel worker was given)."""
        data = load_experiment_data(cfg)
        return data, cls.for_model(cfg, cfg.model)

    @classmethod
    def for_model(cls, cfg: RunConfig, model_cfg: ModelConfig) -> HFBackend:
        """A backend for one entity's model (`RunConfig.model_for`) on the run's device."""
        return cls(model_cfg, device=cfg.device, threads=cfg.resources.threads)

    # -- Backend --------------------------------------------------------------------
    def initial_model(self, real_texts: Sequence[str], seed: int) -> HFModel:
        """The shared starting model: built from scratch or loaded pretrained, with a fresh
        LoRA adapter (initialised from `seed`) when ``model.lora`` is set."""
        if self.cfg.scratch is not None:
            model = self._scratch(real_texts, seed)
        else:
            assert self.cfg.name_or_path is not None  # ModelConfig requires one of the two
            model = self._pretrained(self.cfg.name_or_path, seed)
        if self.cfg.lora is not None:
            from crossgen.backends.hf.lora import add_adapter
            from crossgen.backends.hf.model import HFModel

            model = HFModel(
                add_adapter(model.model, self.cfg.lora, seed), model.tokenizer, self.device, **self._model_options
            )
        return model

    def load(self, directory: Path) -> HFModel:
        """A model saved by `HFModel.save`: a full model; a base folder with its LoRA adapter;
        or a LoRA adapter folder, rebuilt on the base folder it names (lora.py). What was
        saved decides, not ``model.lora``."""
        from crossgen.backends.hf import lora
        from crossgen.backends.hf.reference import read_reference

        directory = Path(directory)
        allowed = "a folder written by HFModel.save"
        if (ref := read_reference(directory)) is not None:
            return self._referenced(directory, ref)
        if lora.is_adapter_folder(directory):
            base = lora.base_folder(directory)
            if base is None:
                raise InputError(
                    "model directory",
                    str(directory),
                    f"{allowed} whose LoRA base folder exists (see its {lora.BASE_FILE})",
                )
            return self._with_adapter(base, directory, allowed)
        if not (directory / "config.json").is_file():
            raise InputError("model directory", str(directory), allowed)
        if lora.has_adapter(directory):
            return self._with_adapter(directory, directory / lora.ADAPTER_SUBDIR, allowed)
        return self._from_pretrained(str(directory), field="model directory", allowed=allowed)

    def _with_adapter(self, base: Path, adapter: Path, allowed: str) -> HFModel:
        from crossgen.backends.hf.lora import _require_peft, load_adapter
        from crossgen.backends.hf.model import HFModel

        _require_peft()
        model, tokenizer = self._load_parts(str(base), field="model directory", allowed=allowed)
        return HFModel(load_adapter(model, adapter), tokenizer, self.device, base_dir=base, **self._model_options)

    # -- construction ---------------------------------------------------------------
    def _scratch(self, real_texts: Sequence[str], seed: int) -> HFModel:
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel

        from crossgen.backends.hf.model import HFModel
        from crossgen.backends.hf.tokenizer import train_tokenizer

        arch = self.cfg.scratch
        assert arch is not None
        texts = [t for t in real_texts if t]
        if not texts:
            raise InputError("real_texts", 0, "some real text to train the tokenizer on")
        # model_max_length stays huge: truncation is done in HFModel, by the rules of model.py
        tokenizer = train_tokenizer(texts, arch.vocab_size)
        config = GPT2Config(
            n_layer=arch.n_layer,
            n_head=arch.n_head,
            n_embd=arch.n_embd,
            n_positions=arch.n_positions,
            vocab_size=len(tokenizer),
            resid_pdrop=arch.dropout,
            embd_pdrop=arch.dropout,
            attn_pdrop=arch.dropout,
            # GPT-2's tanh-approximate GELU ("gelu_new") computed by one native kernel instead
            # of five elementwise ops: the same function, ~6% faster training steps on a CPU
            activation_function="gelu_pytorch_tanh",
            bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = GPT2LMHeadModel(config)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.bos_token_id = tokenizer.eos_token_id
        return HFModel(model, tokenizer, self.device, **self._model_options)

    def _pretrained(self, name: str, seed: int) -> HFModel:
        import torch

        path = Path(name).expanduser()
        if not path.exists() and not _HUB_ID.match(name):
            raise InputError(NAME_FIELD, name, NAME_ALLOWED)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # any newly initialised head is seeded
            model = self._from_pretrained(str(path) if path.exists() else name, NAME_FIELD, NAME_ALLOWED)
        model.pretrained = (name, seed)
        return model

    def _referenced(self, directory: Path, ref: dict) -> HFModel:
        """The pretrained model a run's initial folder refers to (reference.py), refused when its
        files changed since the run started."""
        from crossgen.backends.hf.reference import fingerprint

        model = self._pretrained(ref["name_or_path"], ref["seed"])
        now = fingerprint(ref["name_or_path"], model.model)
        if now != ref["fingerprint"]:
            raise InputError(
                "model directory",
                str(directory),
                f"a reference to {ref['name_or_path']} as it was when the run started (its files changed: "
                f"{ref['fingerprint']} then, {now} now)",
            )
        return model

    def _from_pretrained(self, name: str, field: str, allowed: str) -> HFModel:
        from crossgen.backends.hf.model import HFModel

        model, tokenizer = self._load_parts(name, field, allowed)
        return HFModel(model, tokenizer, self.device, **self._model_options)

    def _load_parts(self, name: str, field: str, allowed: str) -> tuple[Any, Any]:
        """(model, tokenizer) of a folder or hub id, the tokenizer left-padding with a pad token."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            with quiet_transformers():
                tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=self.cfg.trust_remote_code)
                model = AutoModelForCausalLM.from_pretrained(
                    name,
                    trust_remote_code=self.cfg.trust_remote_code,
                    dtype=_torch_dtype(self.cfg.dtype),
                )
        except (OSError, ValueError) as exc:
            raise InputError(field, name, allowed) from exc
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        if model.generation_config.pad_token_id is None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
        return model, tokenizer
