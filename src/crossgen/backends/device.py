"""Which torch device a run uses: the one home of device selection (models and embeddings)."""

from __future__ import annotations

from crossgen.errors import InputError

ALLOWED = "auto, cpu, or an accelerator this machine has (cuda, cuda:N, mps)"


def resolve_device(device: str = "auto") -> str:
    """auto: cuda if available, else mps if available, else cpu. An explicit accelerator
    that this machine does not have is an InputError naming `device`."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    kind = device.split(":")[0]
    if (
        (kind == "cuda" and not torch.cuda.is_available())
        or (kind == "mps" and not has_mps)
        or kind not in ("cpu", "cuda", "mps")
    ):
        raise InputError("device", device, ALLOWED)
    return device
