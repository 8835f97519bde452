"""Model and training configuration: plain dataclasses, JSON round trip, named presets.

No torch here: the runtime reads a model's config from checkpoint or ONNX metadata.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from maskface_rt.labels import NUM_CLASSES
from maskface_rt.values import is_integer, is_number

#: Sane ranges of the integer sizes: a config from a file must not make a network of any width it likes.
_LIMITS = {
    "num_classes": (1, 256),
    "style_dim": (1, 4096),
    "latent_dim": (1, 4096),
    "max_conv_dim": (1, 4096),
    "mapping_hidden": (1, 4096),
    "base_dim": (1, 4096),
    "bottleneck_blocks": (0, 32),
}


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the four networks (StarGAN v2 lineage, see REFERENCE §2)."""

    img_size: int = 256
    num_classes: int = NUM_CLASSES
    style_dim: int = 64
    latent_dim: int = 16
    #: Width of the first conv; None means StarGAN v2's 2**14 // img_size.
    base_dim: int | None = None
    max_conv_dim: int = 512
    #: Hidden width of the style encoder's MLP (F: z -> s, StarGAN v2's mapping network).
    mapping_hidden: int = 512
    #: Spatial size where the generator's encoder stops downsampling.
    bottleneck_size: int = 16
    #: ResBlks at the bottleneck (and as many non-upsampling AdaIN blocks in the decoder).
    bottleneck_blocks: int = 2
    negative_slope: float = 0.2
    eps: float = 1e-5

    def __post_init__(self) -> None:
        problems = []
        if self.img_size < 64 or self.img_size > 1024 or self.img_size & (self.img_size - 1):
            problems.append(f"img_size must be a power of two in 64..1024, got {self.img_size}")
        elif (
            self.bottleneck_size < 4
            or self.bottleneck_size > self.img_size
            or self.bottleneck_size & (self.bottleneck_size - 1)
        ):
            problems.append(f"bottleneck_size must be a power of two in 4..img_size, got {self.bottleneck_size}")
        for name, (low, high) in _LIMITS.items():
            value = getattr(self, name)
            if value is None and name == "base_dim":
                continue
            if not is_integer(value, low, high):
                problems.append(f"{name} must be an integer in {low}..{high}, got {value!r}")
        for name, least, most in (("negative_slope", 0.0, 1.0), ("eps", 1e-12, 1e-1)):
            value = getattr(self, name)
            if not is_number(value, least, most):
                problems.append(f"{name} must be a number in {least:g}..{most:g}, got {value!r}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def first_dim(self) -> int:
        return self.base_dim if self.base_dim is not None else min(2**14 // self.img_size, self.max_conv_dim)

    @property
    def num_downsamples(self) -> int:
        """Downsampling ResBlks in the generator's encoder (256 px -> 16 px: 4)."""
        return int(math.log2(self.img_size // self.bottleneck_size))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))


PRESETS: dict[str, ModelConfig] = {
    # The paper's / StarGAN v2's sizes at 256 px.
    "paper-256": ModelConfig(img_size=256),
    # Small models that train on a laptop CPU.
    "tiny-64": ModelConfig(
        img_size=64,
        base_dim=32,
        max_conv_dim=128,
        style_dim=32,
        mapping_hidden=128,
        bottleneck_size=16,
        bottleneck_blocks=1,
    ),
    "tiny-128": ModelConfig(
        img_size=128,
        base_dim=32,
        max_conv_dim=256,
        style_dim=64,
        mapping_hidden=256,
        bottleneck_size=16,
        bottleneck_blocks=2,
    ),
}


def preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}") from None


@dataclass
class TrainConfig:
    """The training recipe (StarGAN v2 defaults, REFERENCE §2); every field is a CLI flag."""

    batch_size: int = 8
    lr: float = 1e-4
    #: Linear decay of every learning rate to 0 over ``lr_decay_steps`` steps from step ``lr_decay_start``
    #: (SPADE/pix2pixHD's schedule for the end of a run); ``lr_decay_steps`` 0: constant rates.
    lr_decay_start: int = 0
    lr_decay_steps: int = 0
    #: Learning rate of the style encoder (F: z -> s, StarGAN v2's mapping network); StarGAN v2 uses 100x less.
    mapping_lr: float = 1e-6
    beta1: float = 0.0
    beta2: float = 0.99
    weight_decay: float = 1e-4
    ema_beta: float = 0.999
    lambda_adv: float = 1.0
    lambda_r1: float = 1.0
    lambda_sty: float = 1.0
    lambda_ds: float = 1.0
    #: Steps over which the diversity weight decays linearly to 0.
    ds_decay_steps: int = 100_000
    #: Paired reconstruction G(mask(x), E(x)) ~ x; weighted like SPADE/SEAN's paired terms.
    lambda_rec: float = 10.0
    #: Random horizontal flips of the training pairs (left/right labels swapped).
    hflip: bool = True
    seed: int = 0
    #: Write checkpoints / sample grids every N steps (0: only at the end).
    checkpoint_every: int = 1000
    sample_every: int = 500
    log_every: int = 10
    num_workers: int = 2
    #: Mixed precision on CUDA ("auto" picks bf16 where supported, else fp16); ignored on the CPU.
    amp: str = "auto"

    def __post_init__(self) -> None:
        problems = []
        if self.batch_size < 2:
            problems.append(f"batch_size must be >= 2 (reference styles come from other images), got {self.batch_size}")
        for name in (
            "lr",
            "mapping_lr",
            "weight_decay",
            "lambda_adv",
            "lambda_r1",
            "lambda_sty",
            "lambda_ds",
            "lambda_rec",
            "checkpoint_every",
            "sample_every",
            "num_workers",
            "ds_decay_steps",
            "lr_decay_start",
            "lr_decay_steps",
        ):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("beta1", "beta2", "ema_beta"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.log_every < 1:
            problems.append(f"log_every must be >= 1, got {self.log_every}")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            problems.append(f"amp must be one of auto, bf16, fp16, off; got {self.amp!r}")
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
