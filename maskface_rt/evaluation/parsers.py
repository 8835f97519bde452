"""Face parsers for mask consistency: label maps predicted on generated faces.

``FaceParser`` is what they share; the two implementations live in their own modules:

* ``unet_parser.TrainedParser``: a small U-Net (``ParserNet``) the package trains itself on any paired
  data set (``maskface eval train-parser``); one ``.safetensors`` file with its config in the metadata.
* ``bisenet.BiSeNetParser``: face-parsing.PyTorch's BiSeNet (ResNet-18 context path, attention
  refinement, feature fusion), state-dict compatible with its ``79999_iter.pth``; it predicts in the
  face-parsing label order, remapped to the canonical one (REFERENCE §3).

Both predict canonical uint8 label maps at the size of the images they are given.
"""

from __future__ import annotations

import abc

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


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
                x = torch.from_numpy(np.ascontiguousarray(images[i : i + self.batch_size])).to(self.device)
                x = _resize(x.permute(0, 3, 1, 2).float() / 255.0, (self.input_size, self.input_size))
                logits = _resize(self._logits(x).float(), size)
                out.append(logits.argmax(dim=1).to(torch.uint8).cpu().numpy())
        return self.lut[np.concatenate(out)]


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
