"""The package's own face parser: a small U-Net, trained on any paired data set (``maskface eval train-parser``)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maskface_rt import __version__
from maskface_rt.checkpoint import load_into, read_metadata
from maskface_rt.datasets import PairedDataset
from maskface_rt.errors import MaskfaceError
from maskface_rt.evaluation.parsers import FaceParser
from maskface_rt.fileio import atomic_path
from maskface_rt.labels import HFLIP_SWAP, NUM_CLASSES
from maskface_rt.networks import from_uint8_nhwc

PARSER_FORMAT = "maskface-parser/1"


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class ParserNet(nn.Module):
    """A three-level U-Net: images in [-1, 1] -> logits of the 19 canonical classes."""

    def __init__(self, width: int = 16, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        w = width
        self.enc1, self.enc2, self.enc3 = _conv_block(3, w), _conv_block(w, 2 * w), _conv_block(2 * w, 4 * w)
        self.mid = _conv_block(4 * w, 4 * w)
        self.dec3, self.dec2, self.dec1 = _conv_block(8 * w, 2 * w), _conv_block(4 * w, w), _conv_block(2 * w, w)
        self.head = nn.Conv2d(w, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        m = self.mid(F.max_pool2d(e3, 2))
        d3 = self.dec3(torch.cat([F.interpolate(m, scale_factor=2.0), e3], 1))
        d2 = self.dec2(torch.cat([F.interpolate(d3, scale_factor=2.0), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0), e1], 1))
        return self.head(d1)


@dataclass(frozen=True)
class ParserConfig:
    img_size: int = 64
    width: int = 16

    def __post_init__(self) -> None:
        if self.img_size < 8 or self.img_size % 8:
            raise MaskfaceError(None, f"parser image size must be a multiple of 8, got {self.img_size}")
        if self.width < 1:
            raise MaskfaceError(None, f"parser width must be positive, got {self.width}")


class TrainedParser(FaceParser):
    """A ``ParserNet`` file made by ``maskface eval train-parser``."""

    lut = np.arange(NUM_CLASSES, dtype=np.uint8)

    def __init__(self, path: str | Path, device: torch.device) -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        meta = read_metadata(path)
        if meta.get("format") != PARSER_FORMAT:
            raise MaskfaceError(
                path,
                f"not a {PARSER_FORMAT} file (format is {meta.get('format')!r}); "
                "make one with 'maskface eval train-parser DATA --out FILE'",
            )
        try:
            self.config = ParserConfig(**json.loads(meta["config"]))
            self.training = json.loads(meta.get("training", "{}"))
        except (KeyError, ValueError, TypeError) as e:
            raise MaskfaceError(path, f"bad parser config in metadata ({e})") from None
        net = ParserNet(self.config.width)
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise MaskfaceError(path, f"not a readable safetensors file ({e})") from None
        load_into(net, tensors, path, "parser", against="its config")
        self.input_size = self.config.img_size
        super().__init__(net, device, f"package parser {path.name} ({self.config.img_size} px)")

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(2.0 * x - 1.0)


@dataclass
class ParserTrainResult:
    out: Path
    steps: int
    pairs: int
    seconds: float
    loss: float  # mean cross-entropy over the last 10% of steps
    pixel_accuracy: float  # training pixel accuracy over the last 10% of steps


def _load_pairs(pairs: PairedDataset, limit: int) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(pairs), limit)
    loaded = [pairs[i] for i in range(n)]
    return np.stack([rgb for rgb, _ in loaded]), np.stack([labels for _, labels in loaded])


def train_parser(
    pairs: PairedDataset,
    out: str | Path,
    *,
    steps: int = 600,
    batch_size: int = 16,
    lr: float = 2e-3,
    width: int = 16,
    max_pairs: int = 4000,
    seed: int = 0,
    device: torch.device | None = None,
    overwrite: bool = False,
    data_description: str = "",
    on_step: Callable[[int, float, float], None] | None = None,
) -> ParserTrainResult:
    """Train a ``ParserNet`` at the data set's size with cross-entropy and Adam; write ``out`` atomically.

    Up to ``max_pairs`` pairs are held in memory; half of each batch is mirrored (labels swapped
    left <-> right). ``on_step(step, loss, pixel_accuracy)`` is called after every step.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise MaskfaceError(out, "already exists (pass --overwrite to replace it)")
    device = device or torch.device("cpu")
    config = ParserConfig(img_size=pairs.size, width=width)
    images, labels = _load_pairs(pairs, max_pairs)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = ParserNet(width).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    history: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        idx = rng.integers(0, len(images), batch_size)
        rgb, lab = images[idx], labels[idx]
        flip = rng.random(batch_size) < 0.5
        rgb[flip], lab[flip] = rgb[flip][:, :, ::-1], HFLIP_SWAP[lab[flip][:, :, ::-1]]
        x = from_uint8_nhwc(torch.from_numpy(rgb).to(device))
        y = torch.from_numpy(lab).to(device).long()
        logits = net(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        accuracy = (logits.argmax(1) == y).float().mean().item()
        history.append((loss.item(), accuracy))
        if on_step is not None:
            on_step(step, history[-1][0], accuracy)
    seconds = time.perf_counter() - t0
    tail = np.array(history[-max(1, steps // 10) :])
    result = ParserTrainResult(out, steps, len(images), seconds, float(tail[:, 0].mean()), float(tail[:, 1].mean()))
    training = {
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "pairs": len(images),
        "data": data_description,
        "loss": result.loss,
        "pixel_accuracy": result.pixel_accuracy,
    }
    metadata = {
        "format": PARSER_FORMAT,
        "config": json.dumps(dataclasses.asdict(config)),
        "label_order": "celebamask",
        "training": json.dumps(training),
        "maskface_version": __version__,
    }
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    with atomic_path(out, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return result
