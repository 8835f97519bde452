"""Device strings ('auto', 'cpu', 'cuda', 'cuda:N'): the one place they are parsed.

Torch-free at import, so the deployed runtime can import it; torch is imported only by the
functions that return a torch device.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from maskface_rt.errors import MaskfaceError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a torch device, with torchrun's LOCAL_RANK choosing the GPU."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MaskfaceError(None, f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MaskfaceError(None, f"device {name!r} asked for, but no CUDA GPU is available")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    elif device.type != "cpu":
        raise MaskfaceError(None, f"unsupported device {name!r}; valid: auto, cpu, cuda, cuda:N")
    return device
