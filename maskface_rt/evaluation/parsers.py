"""Face parsers for mask consistency: label maps predicted on generated faces.

* ``ParserNet``: a small U-Net the package trains itself on any paired data set
  (``maskface eval train-parser``); one ``.safetensors`` file with its config in the metadata.
* ``BiSeNet``: face-parsing.PyTorch's network (ResNet-18 context path, attention refinement,
  feature fusion), state-dict compatible with its ``79999_iter.pth``; it predicts in the
  face-parsing label order, remapped here to the canonical one (REFERENCE §3).

Both predict canonical uint8 label maps at the size of the images they are given.
"""

from __future__ import annotations

import abc
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
from maskface_rt.evaluation.weights import WeightStore
from maskface_rt.fileio import atomic_path
from maskface_rt.labels import FACEPARSING_TO_CELEBAMASK, HFLIP_SWAP, NUM_CLASSES

PARSER_FORMAT = "maskface-parser/1"
BISENET_SIZE = 512
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class FaceParser(abc.ABC):
    """uint8 RGB faces -> canonical label maps, on one device."""

    #: Side the network sees; images are resized to it and logits back to the image size.
    input_size: int
    #: Network label -> canonical label.
    lut: np.ndarray

    def __init__(self, net: nn.Module, device: torch.device, description: str, batch_size: int = 16) -> None:
        self.net = net.to(device).eval()
        self.device = device
        self.description = description
        self.batch_size = batch_size

    @abc.abstractmethod
    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1], NCHW at input_size -> class logits NCHW."""

    def predict(self, images: np.ndarray) -> np.ndarray:
        """uint8 RGB [N, H, W, 3] -> uint8 canonical labels [N, H, W]."""
        size = images.shape[1:3]
        out = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(images[i:i + self.batch_size])).to(self.device)
                x = _resize(x.permute(0, 3, 1, 2).float() / 255.0, (self.input_size, self.input_size))
                logits = _resize(self._logits(x).float(), size)
                out.append(logits.argmax(dim=1).to(torch.uint8).cpu().numpy())
        return self.lut[np.concatenate(out)]


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


# ----------------------------------------------------------------------------- the package's own parser


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


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
            raise MaskfaceError(path, f"not a {PARSER_FORMAT} file (format is {meta.get('format')!r}); "
                                      "make one with 'maskface eval train-parser DATA --out FILE'")
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


def train_parser(pairs: PairedDataset, out: str | Path, *, steps: int = 600, batch_size: int = 16,
                 lr: float = 2e-3, width: int = 16, max_pairs: int = 4000, seed: int = 0,
                 device: torch.device | None = None, overwrite: bool = False, data_description: str = "",
                 on_step: Callable[[int, float, float], None] | None = None) -> ParserTrainResult:
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
        x = torch.from_numpy(rgb).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
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
    tail = np.array(history[-max(1, steps // 10):])
    result = ParserTrainResult(out, steps, len(images), seconds, float(tail[:, 0].mean()), float(tail[:, 1].mean()))
    training = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "pairs": len(images),
                "data": data_description, "loss": result.loss, "pixel_accuracy": result.pixel_accuracy}
    metadata = {"format": PARSER_FORMAT, "config": json.dumps(dataclasses.asdict(config)), "label_order": "celebamask",
                "training": json.dumps(training), "maskface_version": __version__}
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    with atomic_path(out, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return result


# ----------------------------------------------------------------------------- BiSeNet (face-parsing.PyTorch)


class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, ks: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=ks, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


def _layer(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))


class Resnet18(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1, self.layer2 = _layer(64, 64, 1), _layer(64, 128, 2)
        self.layer3, self.layer4 = _layer(128, 256, 2), _layer(256, 512, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), kernel_size=3, stride=2, padding=1)
        feat8 = self.layer2(self.layer1(x))
        feat16 = self.layer3(feat8)
        return feat8, feat16, self.layer4(feat16)


class AttentionRefinementModule(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, cout)
        self.conv_atten = nn.Conv2d(cout, cout, kernel_size=1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        return feat * torch.sigmoid(self.bn_atten(self.conv_atten(F.adaptive_avg_pool2d(feat, 1))))


class ContextPath(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.resnet = Resnet18()
        self.arm16 = AttentionRefinementModule(256, 128)
        self.arm32 = AttentionRefinementModule(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128)
        self.conv_head16 = ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, ks=1, padding=0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat8, feat16, feat32 = self.resnet(x)
        avg = self.conv_avg(F.adaptive_avg_pool2d(feat32, 1))
        feat32_sum = self.arm32(feat32) + F.interpolate(avg, feat32.shape[2:], mode="nearest")
        feat32_up = self.conv_head32(F.interpolate(feat32_sum, feat16.shape[2:], mode="nearest"))
        feat16_sum = self.arm16(feat16) + feat32_up
        feat16_up = self.conv_head16(F.interpolate(feat16_sum, feat8.shape[2:], mode="nearest"))
        return feat8, feat16_up, feat32_up


class FeatureFusionModule(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, ks=1, padding=0)
        self.conv1 = nn.Conv2d(cout, cout // 4, kernel_size=1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, kernel_size=1, bias=False)

    def forward(self, fsp: torch.Tensor, fcp: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([fsp, fcp], dim=1))
        atten = torch.sigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(feat, 1)))))
        return feat * atten + feat


class BiSeNetOutput(nn.Module):
    def __init__(self, cin: int, mid: int, n_classes: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(cin, mid)
        self.conv_out = nn.Conv2d(mid, n_classes, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """face-parsing.PyTorch's BiSeNet; ``forward`` returns the main head's logits at the input size
    (the two auxiliary heads exist for state-dict compatibility; they only served training)."""

    def __init__(self, n_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusionModule(256, 256)
        self.conv_out = BiSeNetOutput(256, 256, n_classes)
        self.conv_out16 = BiSeNetOutput(128, 64, n_classes)
        self.conv_out32 = BiSeNetOutput(128, 64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat_res8, feat_cp8, _ = self.cp(x)
        out = self.conv_out(self.ffm(feat_res8, feat_cp8))
        return F.interpolate(out, x.shape[2:], mode="bilinear", align_corners=True)


class BiSeNetParser(FaceParser):
    """BiSeNet from ``79999_iter.pth`` in --weights-dir: 512 px, ImageNet normalisation, remapped labels."""

    input_size = BISENET_SIZE
    lut = FACEPARSING_TO_CELEBAMASK

    def __init__(self, store: WeightStore, device: torch.device) -> None:
        net = BiSeNet()
        store.load_into(net, "bisenet")
        super().__init__(net, device, f"BiSeNet ({store.spec('bisenet').file})", batch_size=4)
        self.mean = torch.tensor(_IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(_IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)
