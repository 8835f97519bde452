"""Device strings ('auto', 'cpu', 'cuda', 'cuda:N'): the one place they are parsed and checked.

``parse_device`` turns a --device value into a ``Device`` (or a one-line error naming what is valid);
``backend_device`` checks it against the spellings one backend runs on (the registry's ``devices``), whose
kinds ``device_kinds`` names and ``spelling_for`` gives a parsed device in;
``cuda_index`` is the GPU ordinal of the CUDA-only backends; ``resolve_device`` makes a torch device.
Torch-free at import, so the deployed runtime can import it; torch is imported only by ``resolve_device``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from maskface_rt.errors import MaskfaceError

if TYPE_CHECKING:
    import torch

#: Every spelling --device takes, in the order error messages list them.
DEVICE_SPELLINGS = ("auto", "cpu", "cuda", "cuda:N")
#: The --device help text of the CLI.
DEVICE_HELP = "auto, cpu, cuda or cuda:N."


class DeviceError(MaskfaceError, ValueError):
    """A --device value that is not valid (where it is checked), as the user's one line."""

    def __init__(self, problem: str) -> None:
        super().__init__(None, problem)


@dataclass(frozen=True)
class Device:
    """A parsed --device: ``kind`` auto, cpu or cuda; ``index`` the GPU of 'cuda:N' (None: not given)."""

    kind: str
    index: int | None = None

    def __str__(self) -> str:
        return self.kind if self.index is None else f"{self.kind}:{self.index}"

    @property
    def spelling(self) -> str:
        """Which of DEVICE_SPELLINGS this is ('cuda:N' for any indexed GPU)."""
        return self.kind if self.index is None else "cuda:N"

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"


def parse_device(text: str) -> Device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a Device; anything else raises DeviceError (a ValueError)."""
    if text in ("auto", "cpu", "cuda"):
        return Device(text)
    if text.startswith("cuda:") and text[5:].isdigit():
        return Device("cuda", int(text[5:]))
    raise DeviceError(f"unknown device {text!r}; valid: {', '.join(DEVICE_SPELLINGS)}")


def backend_device(text: str, backend: str, valid: tuple[str, ...]) -> Device:
    """``text`` parsed and checked against ``valid``, the spellings ``backend`` runs on (DEVICE_SPELLINGS' subset)."""
    try:
        device = parse_device(text)
    except DeviceError:
        device = None
    if device is not None and device.spelling in valid:
        return device
    if device is not None and device.kind == "cpu":
        raise DeviceError(
            f"the {backend} backend runs on a CUDA GPU; for the CPU use an export folder with --backend onnxruntime"
        )
    if device is not None and "cuda" not in valid:
        raise DeviceError(
            f"the {backend} backend runs on the CPU only; --device {text} is not valid with it "
            f"(valid: {', '.join(valid)})"
        )
    if device is not None and device.index is not None and "cuda" in valid:
        raise DeviceError(
            f"the {backend} backend takes --device cuda, not a numbered GPU ({text}); choose the GPU with "
            f"CUDA_VISIBLE_DEVICES={device.index} (valid: {', '.join(valid)})"
        )
    raise DeviceError(f"unknown device {text!r} for {backend}; valid: {', '.join(valid)}")


def device_kinds(valid: tuple[str, ...]) -> frozenset[str]:
    """The kinds of device ('cpu', 'cuda') that the spellings ``valid`` (DEVICE_SPELLINGS' subset) name; auto none."""
    return frozenset(spelling.partition(":")[0] for spelling in valid if spelling != "auto")


def spelling_for(device: Device, valid: tuple[str, ...]) -> str | None:
    """``device`` (cpu or a GPU, not auto) as a backend that takes the spellings ``valid`` is given it: as is, or
    'cuda' for GPU 0 where it takes no numbered GPU; None where it cannot run there."""
    if device.spelling in valid:
        return str(device)
    if device.kind == "cuda" and not device.index and "cuda" in valid:
        return "cuda"
    return None


def cuda_index(text: str, backend: str = "tensorrt") -> int:
    """The GPU ordinal of a CUDA-only backend's --device: 'auto' or 'cuda' -> 0, 'cuda:N' -> N."""
    return backend_device(text, backend, ("auto", "cuda", "cuda:N")).index or 0


def resolve_device(name: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a torch device, with torchrun's LOCAL_RANK choosing the GPU."""
    import torch

    device = parse_device(name)
    if device.kind == "auto":
        device = Device("cuda" if torch.cuda.is_available() else "cpu")
    if device.kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise MaskfaceError(None, f"device {name!r} asked for, but no CUDA GPU is available")
    index = device.index if device.index is not None else int(os.environ.get("LOCAL_RANK", "0"))
    return torch.device("cuda", index)
