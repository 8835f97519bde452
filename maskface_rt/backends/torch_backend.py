"""PyTorch backend: runs a training checkpoint directly, on the CPU or a CUDA GPU (needs the [train] extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskface_rt.backends.base import GeneratorBackend
from maskface_rt.errors import MaskfaceError

PRECISIONS = ("fp32", "fp16", "bf16")


def available() -> tuple[bool, str]:
    try:
        import torch
    except ImportError:
        return False, "torch is not installed; pip install 'maskface-rt[train]'"
    cuda = f", CUDA {torch.version.cuda}: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no CUDA"
    return True, f"torch {torch.__version__}{cuda}"


class TorchBackend(GeneratorBackend):
    """The EMA networks of a ``.safetensors`` model file in eager PyTorch."""

    name = "torch"

    def __init__(self, model_path: str | Path, *, device: str = "auto", precision: str = "fp32") -> None:
        import torch

        from maskface_rt.checkpoint import load_model
        from maskface_rt.devices import resolve_device

        if precision not in PRECISIONS:
            raise MaskfaceError(None, f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
        self.torch = torch
        self.device = resolve_device(device)
        if precision != "fp32" and self.device.type == "cpu":
            raise MaskfaceError(None, f"{precision} needs a CUDA device for the torch backend; use fp32 on the CPU")
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        self.precision = precision
        self.nets = load_model(model_path).to(self.device, self.dtype)
        super().__init__(self.nets.cfg, str(model_path))

    @property
    def description(self) -> str:
        return f"torch {self.device} {self.precision}"

    def _tensor(self, array: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def generate(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        from maskface_rt.networks import to_uint8_nhwc

        with self.torch.inference_mode():
            x = self.nets.generator(self._tensor(labels).long(), self._tensor(styles).to(self.dtype))
            return to_uint8_nhwc(x).cpu().numpy()

    def map_latent(self, latents: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.nets.style_encoder(self._tensor(latents).to(self.dtype)).float().cpu().numpy()

    def encode_style(self, images: np.ndarray) -> np.ndarray:
        from maskface_rt.networks import from_uint8_nhwc

        with self.torch.inference_mode():
            x = from_uint8_nhwc(self._tensor(images))
            return self.nets.style_decoder(x.to(self.dtype)).float().cpu().numpy()
