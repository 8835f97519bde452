"""Backend parity: the same masks and styles through two backends, compared image by image."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Parity:
    """How far one backend's uint8 images are from the reference's (identical backends: PSNR inf, errors 0)."""

    images: int
    psnr_db: float  # over all pixels of all images; inf when identical
    max_abs_error: int  # in uint8 levels
    mean_abs_error: float  # in uint8 levels
    identical_images: int  # images equal to the reference bit for bit


class ParityAccumulator:
    """Running sums over image batches, so that nothing but the totals is kept."""

    def __init__(self) -> None:
        self.images = 0
        self.values = 0
        self.squared = 0
        self.absolute = 0
        self.max_abs = 0
        self.identical = 0

    def update(self, reference: np.ndarray, other: np.ndarray) -> None:
        """Add a batch of uint8 images [N, H, W, 3] from both backends."""
        if reference.shape != other.shape:
            raise ValueError(f"parity: shapes differ, {reference.shape} vs {other.shape}")
        diff = np.abs(reference.astype(np.int32) - other.astype(np.int32))
        self.images += len(diff)
        self.values += diff.size
        self.squared += int((diff * diff).sum())
        self.absolute += int(diff.sum())
        self.max_abs = max(self.max_abs, int(diff.max(initial=0)))
        self.identical += int((diff.reshape(len(diff), -1).max(axis=1, initial=0) == 0).sum())

    def result(self) -> Parity:
        mse = self.squared / max(self.values, 1)
        psnr = math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)
        return Parity(self.images, psnr, self.max_abs, self.absolute / max(self.values, 1), self.identical)
