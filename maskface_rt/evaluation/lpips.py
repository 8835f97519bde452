"""LPIPS v0.1 (Zhang et al. 2018) with the AlexNet trunk, in plain torch.

The trunk is torchvision's AlexNet ``features`` (state-dict compatible with
``alexnet-owt-7be5be79.pth``; its classifier is not used), the five linear heads those of the lpips
package's ``weights/v0.1/alex.pth`` (keys ``lin<k>.model.1.weight``). The distance is lpips':
scaling layer, channel-normalised features of the five ReLUs, squared differences weighted by
the heads, spatial means summed over layers. Images enter as uint8 RGB.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from maskface_rt.evaluation.weights import WeightStore
from maskface_rt.networks import from_uint8_nhwc

CHANNELS = (64, 192, 384, 256, 256)
#: Index in ``features`` of the ReLU after each of the five convolutions.
TAPS = (1, 4, 7, 9, 11)


class AlexNetTrunk(nn.Module):
    """torchvision's AlexNet ``features`` up to the last ReLU, returning the five ReLU outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAPS:
                taps.append(x)
        return taps


class LPIPSNet(nn.Module):
    """d(x0, x1) for images in [-1, 1], NCHW -> [B]."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.trunk = AlexNetTrunk()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in CHANNELS)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        f0 = self.trunk((x0 - self.shift) / self.scale)
        f1 = self.trunk((x1 - self.shift) / self.scale)
        total = torch.zeros(len(x0), device=x0.device)
        for a, b, lin in zip(f0, f1, self.lins):
            diff = (_unit(a) - _unit(b)) ** 2
            total = total + lin(diff).mean(dim=(1, 2, 3))
        return total


def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Each position's feature vector divided by its L2 norm (lpips' normalize_tensor)."""
    return x / (torch.sqrt((x * x).sum(dim=1, keepdim=True)) + eps)


class LPIPS:
    """The verified LPIPS network on a device, comparing uint8 image batches."""

    def __init__(self, store: WeightStore, device: torch.device, batch_size: int = 32) -> None:
        self.net = LPIPSNet()
        store.load_into(self.net.trunk, "alexnet", ignore_prefixes=("classifier.",))
        store.load_into(
            self.net.lins, "lpips-alex", rename={f"lin{k}.model.1.weight": f"{k}.weight" for k in range(len(CHANNELS))}
        )
        self.net.to(device).eval()
        self.device = device
        self.batch_size = batch_size

    def _tensor(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        return from_uint8_nhwc(x)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Distances between uint8 RGB images a[i] and b[i] ([N, H, W, 3] each) -> float64 [N]."""
        out = []
        with torch.inference_mode():
            for i in range(0, len(a), self.batch_size):
                out.append(
                    self.net(self._tensor(a[i : i + self.batch_size]), self._tensor(b[i : i + self.batch_size]))
                    .double()
                    .cpu()
                    .numpy()
                )
        return np.concatenate(out) if out else np.zeros(0)
