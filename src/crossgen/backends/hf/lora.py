"""LoRA adapters for the hf backend, through peft's public API (`model.lora` in a run config).

One adapter per entity, continued across generations: the initial model gets one freshly
initialised (seeded) adapter, every update trains that adapter further with the base
weights frozen, so generation t's adapter is generation t-1's trained on generation t's
data. Adapters never stack: a checkpoint holds exactly one adapter, whose base is the run's
initial model.

Two folder layouts (`HFModel.save` picks one, `HFBackend.load` reads both):

- **base folder** (the run's ``initial/``, or any model saved before it had a base): the
  base model's full weights, config and tokenizer, as a plain `save_pretrained` writes them,
  plus the adapter in ``adapter/`` (``adapter_config.json``, ``adapter_model.safetensors``).
  The adapter sits in a subfolder because transformers' `from_pretrained` follows an
  ``adapter_config.json`` at the top of a folder to the base it names.
- **adapter folder** (every checkpoint of a model that has a base folder):
  ``adapter_config.json`` and ``adapter_model.safetensors`` only, plus ``crossgen_base.json``
  naming the base folder by a path relative to the checkpoint (so a run directory can be
  moved or copied, and a copied generation 0 finds the copying run's ``initial/``) and by its
  absolute path (the fallback, also written to ``base_model_name_or_path`` in
  ``adapter_config.json``, where peft's own loaders look).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from crossgen.config import LORA_TARGETS
from crossgen.errors import InputError

if TYPE_CHECKING:
    from crossgen.config import LoraConfig

ADAPTER_SUBDIR = "adapter"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
BASE_FILE = "crossgen_base.json"
FIELD = "model.lora.target_modules"


def is_peft_model(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def _require_peft() -> None:
    try:
        import peft  # noqa: F401
    except ImportError:
        raise InputError(
            "model.lora", "set, but peft is not installed", "pip install 'crossgen[lm]' (or peft), or lora: null"
        ) from None


@contextlib.contextmanager
def _quiet_peft() -> Iterator[None]:
    """peft warns that it sets fan_in_fan_out for GPT-2's Conv1D layers (what they need);
    under transformers 5, about a deprecated attribute it reads; and, in some releases, about
    the `peft_config` attribute `unload()` leaves on the base when `HFModel.save` puts the
    adapter back (the one adapter replaces itself): none is actionable."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*fan_in_fan_out is set to")
        warnings.filterwarnings("ignore", message=r"Already found a `peft_config` attribute")
        warnings.filterwarnings("ignore", message=r"Could not find a config file in")
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing", category=FutureWarning)
        yield


def _linear_names(model: Any, limit: int = 8) -> list[str]:
    """Short names of the model's linear layers, for an error message."""
    import torch

    names: list[str] = []
    for path, module in model.named_modules():
        if (isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D") and path:
            name = path.rsplit(".", 1)[-1]
            if name not in names:
                names.append(name)
    return names[:limit]


def add_adapter(model: Any, cfg: LoraConfig, seed: int) -> Any:
    """`model` (a transformers causal LM) wrapped in a `PeftModelForCausalLM` with one fresh
    LoRA adapter, initialised from `seed` (torch's global RNG is left as it was). Only the
    adapter's parameters require gradients.

    Raises InputError (field model.lora.target_modules) when peft has no default target for
    the architecture or the named modules do not exist."""
    import torch

    _require_peft()
    import peft

    config = peft.LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    model_type = getattr(model.config, "model_type", "?")
    device = next(model.parameters()).device
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), _quiet_peft():
            torch.manual_seed(seed)
            return peft.get_peft_model(model, config)
    except ValueError as exc:  # peft's NoMatchingPeftModuleError is a ValueError too
        names = _linear_names(model)
        if cfg.target_modules is None:
            raise InputError(
                FIELD,
                None,
                f"{LORA_TARGETS} (peft has no default for model type {model_type!r}); its linear layers "
                f"include {names}",
            ) from exc
        raise InputError(
            FIELD, cfg.target_modules, f"names of modules of this {model_type} model, e.g. {names}"
        ) from exc


def load_adapter(base_model: Any, folder: Path) -> Any:
    """The base model with the saved adapter of `folder` (trainable, so training continues it)."""
    from peft import PeftModel

    with _quiet_peft():
        return PeftModel.from_pretrained(base_model, str(folder), is_trainable=True)


def save_adapter(model: Any, folder: Path, base: Path) -> None:
    """Write the adapter of the peft `model` to `folder` (which need not exist), naming `base`
    (an absolute path) in adapter_config.json. Only the adapter files are written (peft's
    model card is dropped; embedding layers are never saved)."""
    for config in model.peft_config.values():
        config.base_model_name_or_path = str(base)
    with _quiet_peft():
        model.save_pretrained(str(folder), safe_serialization=True, save_embedding_layers=False)
    card = Path(folder) / "README.md"
    if card.exists():
        card.unlink()


def write_base_reference(folder: Path, final: Path, base: Path) -> None:
    """crossgen_base.json in `folder` (the temporary of checkpoint `final`): where the base is,
    relative to `final` and absolute."""
    final, base = Path(os.path.abspath(final)), Path(os.path.abspath(base))
    data = {"base": os.path.relpath(base, final), "base_absolute": str(base)}
    (Path(folder) / BASE_FILE).write_text(json.dumps(data, indent=2) + "\n")


def is_adapter_folder(folder: Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).is_file() and (Path(folder) / BASE_FILE).is_file()


def has_adapter(folder: Path) -> bool:
    """A base folder with its adapter in ``adapter/``."""
    return (Path(folder) / ADAPTER_SUBDIR / ADAPTER_CONFIG).is_file()


def base_folder(folder: Path) -> Optional[Path]:
    """The base folder an adapter folder names: the relative path if it leads to a model
    folder, else the absolute one if it does; None if neither does."""
    folder = Path(os.path.abspath(folder))
    data = json.loads((folder / BASE_FILE).read_text())
    for candidate in (folder / data.get("base", ""), Path(data.get("base_absolute", ""))):
        candidate = Path(os.path.normpath(candidate))
        if (candidate / "config.json").is_file() and has_adapter(candidate):
            return candidate
    return None


def adapter_bytes(model: Any) -> int:
    """Bytes of the adapter's tensors in their current dtype (what an adapter folder holds)."""
    from peft import get_peft_model_state_dict

    return sum(t.numel() * t.element_size() for t in get_peft_model_state_dict(model).values())
