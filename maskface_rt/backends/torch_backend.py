"""PyTorch backend: runs a training checkpoint directly, on the CPU or a CUDA GPU (needs the [train] extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskface_rt.backends.base import GeneratorBackend
from maskface_rt.errors import MaskfaceError

TORCH_PRECISIONS = ("fp32", "fp16", "bf16")


def available() -> tuple[bool, str]:
    try:
        import torch
    except ImportError:
        return False, "torch is not installed; pip install 'maskface-rt[train]'"
    cuda = f", CUDA {torch.version.cuda}: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no CUDA"
    return True, f"torch {torch.__version__}{cuda}"


class TorchBackend(GeneratorBackend):
    """The EMA networks of a ``.safetensors`` model file in eager PyTorch.

    ``adain`` sets the generator's AdaIN implementation (networks.ADAIN_IMPLS; None: its default, the fused
    kernel on CUDA); ``generator_only`` loads the generator alone (the bench, which runs nothing else)."""

    name = "torch"

    def __init__(
        self,
        model_path: str | Path,
        *,
        device: str = "auto",
        precision: str = "fp32",
        adain: str | None = None,
        generator_only: bool = False,
    ) -> None:
        import torch

        from maskface_rt.checkpoint import load_model
        from maskface_rt.devices import resolve_device

        if precision not in TORCH_PRECISIONS:
            raise MaskfaceError(None, f"unknown precision {precision!r}; valid: {', '.join(TORCH_PRECISIONS)}")
        self.torch = torch
        self.device = resolve_device(device)
        if precision != "fp32" and self.device.type == "cpu":
            raise MaskfaceError(None, f"{precision} needs a CUDA device for the torch backend; use fp32 on the CPU")
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        self.precision = precision
        nets = load_model(model_path)
        if adain is not None:
            nets.generator.set_adain_impl(adain)
        if generator_only:
            nets.style_encoder = nets.style_decoder = None
        self.nets = nets.to(self.device, self.dtype).requires_grad_(False)
        super().__init__(self.nets.cfg, str(model_path))

    @property
    def description(self) -> str:
        return f"torch {self.device} {self.precision}"

    def _tensor(self, array: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def _net(self, name: str):
        net = getattr(self.nets, name)
        if net is None:
            raise MaskfaceError(self.model_path, f"opened with the generator only: no {name}")
        return net

    def generate_on_device(self, labels, styles):
        """G on tensors already on the device: labels uint8/int [B, H, W], styles [B, style_dim] -> uint8 NHWC
        on the device (what ``generate`` runs; the bench compiles or captures it)."""
        from maskface_rt.networks import to_uint8_nhwc

        return to_uint8_nhwc(self.nets.generator(labels.long(), styles.to(self.dtype)))

    def generate(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.generate_on_device(self._tensor(labels), self._tensor(styles)).cpu().numpy()

    def map_latent(self, latents: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self._net("style_encoder")(self._tensor(latents).to(self.dtype)).float().cpu().numpy()

    def encode_style(self, images: np.ndarray) -> np.ndarray:
        from maskface_rt.networks import from_uint8_nhwc

        with self.torch.inference_mode():
            x = from_uint8_nhwc(self._tensor(images))
            return self._net("style_decoder")(x.to(self.dtype)).float().cpu().numpy()
