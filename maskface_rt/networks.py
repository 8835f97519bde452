"""The four networks of "Mask guided diverse face image synthesis" (Sun et al.), StarGAN v2 lineage.

- StyleEncoder  F: z -> s            (StarGAN v2's mapping network)
- Generator     G: (mask, s) -> x    (mask encoder, AdaIN decoder)
- StyleDecoder  E: x -> s            (StarGAN v2's style encoder; also gives reference-guided styles)
- Discriminator D: (x, mask) -> logit

Masks enter as integer label maps [B, H, W]; the one-hot is built inside the network.
Images are in [-1, 1], NCHW.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from maskface_rt.config import ModelConfig
from maskface_rt.kernels.torch_op import adain_act_reference  # also registers torch.ops.maskface.fused_adain


def one_hot_labels(labels: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """[B, H, W] integer labels -> [B, num_classes, H, W] one-hot (exports to ONNX as Equal + Cast)."""
    classes = torch.arange(num_classes, device=labels.device, dtype=labels.dtype).view(1, -1, 1, 1)
    return (labels.unsqueeze(1) == classes).to(dtype)


class InstanceNorm2d(nn.InstanceNorm2d):
    """Instance norm whose statistics are computed in fp32 whatever the activations' precision
    (fp16 statistics overflow; exported fp16 graphs keep this as explicit casts)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.instance_norm(x.float(), weight=weight, bias=bias, eps=self.eps).to(x.dtype)


class ResBlk(nn.Module):
    """Pre-activation residual block with optional instance norm and 2x average-pool downsampling."""

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        *,
        normalize: bool = False,
        downsample: bool = False,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.normalize = normalize
        self.downsample = downsample
        self.negative_slope = negative_slope
        self.conv1 = nn.Conv2d(dim_in, dim_in, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        if normalize:
            self.norm1 = InstanceNorm2d(dim_in, affine=True)
            self.norm2 = InstanceNorm2d(dim_in, affine=True)
        self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False) if dim_in != dim_out else None

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv1x1 is not None:
            x = self.conv1x1(x)
        return F.avg_pool2d(x, 2) if self.downsample else x

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            x = self.norm1(x)
        x = self.conv1(F.leaky_relu(x, self.negative_slope))
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        if self.normalize:
            x = self.norm2(x)
        return self.conv2(F.leaky_relu(x, self.negative_slope))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self._shortcut(x) + self._residual(x)) / math.sqrt(2)


#: AdaINAct's implementations: "fused" the Triton kernel on CUDA (torch ops elsewhere), "torch" torch ops only,
#: "op" torch.ops.maskface.fused_adain on any device (its reference on the CPU), so that a trace (torch.export,
#: the plugin-flavoured ONNX export) records one op per AdaIN + LeakyReLU.
ADAIN_IMPLS = ("fused", "torch", "op")
#: What new AdaINAct modules use (env MASKFACE_FUSED_ADAIN=0: "torch").
DEFAULT_ADAIN_IMPL = "fused" if os.environ.get("MASKFACE_FUSED_ADAIN", "1") != "0" else "torch"
#: Located, not imported: triton is imported at the first CUDA call of the op.
_triton_installed = importlib.util.find_spec("triton") is not None


def set_adain_impl(net: nn.Module, impl: str) -> dict[AdaINAct, str]:
    """Set the implementation of every AdaINAct in ``net`` (one of ADAIN_IMPLS); returns what each had."""
    if impl not in ADAIN_IMPLS:
        raise ValueError(f"unknown AdaIN implementation {impl!r}; valid: {', '.join(ADAIN_IMPLS)}")
    before = {m: m.impl for m in net.modules() if isinstance(m, AdaINAct)}
    for module in before:
        module.impl = impl
    return before


@contextlib.contextmanager
def adain_impl(net: nn.Module, impl: str) -> Iterator[None]:
    """``set_adain_impl`` for the ``with`` block, each module's own setting restored afterwards."""
    before = set_adain_impl(net, impl)
    try:
        yield
    finally:
        for module, previous in before.items():
            module.impl = previous


def adain_as_op(net: nn.Module) -> contextlib.AbstractContextManager[None]:
    """Every AdaINAct of ``net`` through torch.ops.maskface.fused_adain on any device, for a trace."""
    return adain_impl(net, "op")


class AdaINAct(nn.Module):
    """AdaIN (style -> per-channel gamma, beta) followed by LeakyReLU: one module, so that a fused
    kernel can replace its body (``impl``, one of ADAIN_IMPLS; see ``set_adain_impl``)."""

    def __init__(self, style_dim: int, num_features: int, *, eps: float = 1e-5, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.negative_slope = negative_slope
        self.impl = DEFAULT_ADAIN_IMPL
        self.fc = nn.Linear(style_dim, num_features * 2)

    def fused_active(self, x: torch.Tensor) -> bool:
        """Whether this module runs torch.ops.maskface.fused_adain for input ``x``."""
        if self.impl == "op":
            return True
        return self.impl == "fused" and _triton_installed and x.is_cuda

    def affine(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample (gamma, beta), each [B, C]."""
        gamma, beta = self.fc(s).chunk(2, dim=1)
        return gamma, beta

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(s)
        if self.fused_active(x):
            return torch.ops.maskface.fused_adain(x, gamma, beta, self.eps, self.negative_slope)
        return adain_act_reference(x, gamma, beta, self.eps, self.negative_slope)


class AdainResBlk(nn.Module):
    """Residual block of the generator's decoder: AdaIN+LReLU -> [upsample] -> conv -> AdaIN+LReLU -> conv."""

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        style_dim: int,
        *,
        upsample: bool = False,
        eps: float = 1e-5,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.upsample = upsample
        self.act1 = AdaINAct(style_dim, dim_in, eps=eps, negative_slope=negative_slope)
        self.conv1 = nn.Conv2d(dim_in, dim_out, 3, 1, 1)
        self.act2 = AdaINAct(style_dim, dim_out, eps=eps, negative_slope=negative_slope)
        self.conv2 = nn.Conv2d(dim_out, dim_out, 3, 1, 1)
        self.conv1x1 = nn.Conv2d(dim_in, dim_out, 1, 1, 0, bias=False) if dim_in != dim_out else None

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv1x1(x) if self.conv1x1 is not None else x

    def _residual(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        x = self.act1(x, s)
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv1(x)
        x = self.act2(x, s)
        return self.conv2(x)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return (self._shortcut(x) + self._residual(x, s)) / math.sqrt(2)


class Generator(nn.Module):
    """G(labels, s): label map [B, H, W] (int64) and style [B, style_dim] -> image [B, 3, H, W] in [-1, 1]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.num_classes = cfg.num_classes
        slope = cfg.negative_slope
        dim_in = cfg.first_dim
        self.from_mask = nn.Conv2d(cfg.num_classes, dim_in, 3, 1, 1)
        self.encode = nn.ModuleList()
        self.decode = nn.ModuleList()
        for _ in range(cfg.num_downsamples):
            dim_out = min(dim_in * 2, cfg.max_conv_dim)
            self.encode.append(ResBlk(dim_in, dim_out, normalize=True, downsample=True, negative_slope=slope))
            self.decode.insert(
                0, AdainResBlk(dim_out, dim_in, cfg.style_dim, upsample=True, eps=cfg.eps, negative_slope=slope)
            )
            dim_in = dim_out
        for _ in range(cfg.bottleneck_blocks):
            self.encode.append(ResBlk(dim_in, dim_in, normalize=True, negative_slope=slope))
            self.decode.insert(0, AdainResBlk(dim_in, dim_in, cfg.style_dim, eps=cfg.eps, negative_slope=slope))
        self.to_rgb = nn.Sequential(
            InstanceNorm2d(cfg.first_dim, affine=True), nn.LeakyReLU(slope), nn.Conv2d(cfg.first_dim, 3, 1, 1, 0)
        )

    def set_adain_impl(self, impl: str) -> None:
        """The AdaIN implementation of every decoder block (one of ADAIN_IMPLS)."""
        set_adain_impl(self, impl)

    def forward(self, labels: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        x = self.from_mask(one_hot_labels(labels, self.num_classes, s.dtype))
        for block in self.encode:
            x = block(x)
        for block in self.decode:
            x = block(x, s)
        return torch.tanh(self.to_rgb(x))


class StyleEncoder(nn.Module):
    """F(z): latent [B, latent_dim] -> style [B, style_dim]: the paper's style encoder, StarGAN v2's mapping
    network (one domain), not StarGAN v2's style encoder (that is ``StyleDecoder``)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        hidden = cfg.mapping_hidden
        shared: list[nn.Module] = [nn.Linear(cfg.latent_dim, hidden), nn.ReLU()]
        for _ in range(3):
            shared += [nn.Linear(hidden, hidden), nn.ReLU()]
        head: list[nn.Module] = []
        for _ in range(3):
            head += [nn.Linear(hidden, hidden), nn.ReLU()]
        head.append(nn.Linear(hidden, cfg.style_dim))
        self.shared = nn.Sequential(*shared)
        self.head = nn.Sequential(*head)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.shared(z))


def _downsampling_trunk(cfg: ModelConfig, in_channels: int) -> tuple[list[nn.Module], int]:
    """conv3x3 then ResBlks halving the size down to 4x4 (shared by E and D); returns (layers, width)."""
    dim_in = cfg.first_dim
    layers: list[nn.Module] = [nn.Conv2d(in_channels, dim_in, 3, 1, 1)]
    for _ in range(int(math.log2(cfg.img_size)) - 2):
        dim_out = min(dim_in * 2, cfg.max_conv_dim)
        layers.append(ResBlk(dim_in, dim_out, downsample=True, negative_slope=cfg.negative_slope))
        dim_in = dim_out
    layers += [nn.LeakyReLU(cfg.negative_slope), nn.Conv2d(dim_in, dim_in, 4, 1, 0), nn.LeakyReLU(cfg.negative_slope)]
    return layers, dim_in


class StyleDecoder(nn.Module):
    """E(x): image [B, 3, H, W] -> style [B, style_dim]: the paper's style decoder, StarGAN v2's style encoder
    (one domain); it gives the style of a reference image."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers, width = _downsampling_trunk(cfg, 3)
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(width, cfg.style_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x).flatten(1))


class Discriminator(nn.Module):
    """D(x, labels): image concatenated with the one-hot mask -> real/fake logit [B]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.num_classes = cfg.num_classes
        layers, width = _downsampling_trunk(cfg, 3 + cfg.num_classes)
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Conv2d(width, 1, 1, 1, 0)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        mask = one_hot_labels(labels, self.num_classes, x.dtype)
        return self.head(self.trunk(torch.cat([x, mask], dim=1))).flatten()


def to_uint8_nhwc(x: torch.Tensor) -> torch.Tensor:
    """Images [B, 3, H, W] in [-1, 1] -> uint8 [B, H, W, 3], rounding half up (as the exported graphs do).

    The layout change happens in float and the uint8 Cast comes last: TensorRT's ONNX parser accepts uint8
    only on a graph's inputs and outputs, never on an intermediate tensor."""
    return ((x.float() + 1.0) * 127.5 + 0.5).floor().clamp(0, 255).permute(0, 2, 3, 1).to(torch.uint8)


def from_uint8_nhwc(x: torch.Tensor) -> torch.Tensor:
    """uint8 images [B, H, W, 3] -> float32 [B, 3, H, W] in [-1, 1] (as the exported graphs do).

    The uint8 Cast comes first, the layout change after it in float (TensorRT: uint8 only at a graph's edges)."""
    return x.float().permute(0, 3, 1, 2) / 127.5 - 1.0


def he_init(module: nn.Module) -> None:
    """Kaiming-normal weights (fan_in, ReLU gain) and zero biases for every conv and linear layer."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Nets(nn.Module):
    """The four networks together, so that one state dict (keys ``generator.*`` ...) holds a model."""

    def __init__(self, cfg: ModelConfig, *, with_discriminator: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.generator = Generator(cfg)
        self.style_encoder = StyleEncoder(cfg)
        self.style_decoder = StyleDecoder(cfg)
        self.discriminator = Discriminator(cfg) if with_discriminator else None
        he_init(self)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
