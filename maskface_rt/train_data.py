"""Feeding paired data to the trainer: a torch view of a data set and a resumable batch order.

The batch of step t depends only on (seed, t), so a resumed run sees exactly the batches an
uninterrupted run would have seen, and with DistributedDataParallel each rank takes its own slice
of the global batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from maskface_rt.datasets import PairedDataset
from maskface_rt.labels import HFLIP_SWAP
from maskface_rt.networks import from_uint8_nhwc


def derive_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (independent streams for independent purposes)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class TorchPairs(Dataset):
    """(image float [3, S, S] in [-1, 1], labels int64 [S, S]) from a PairedDataset."""

    def __init__(self, pairs: PairedDataset) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, labels = self.pairs[i]
        image = from_uint8_nhwc(torch.from_numpy(np.array(rgb))[None])[0]
        return image, torch.from_numpy(labels.astype(np.int64))


class StepBatchSampler(Sampler[list[int]]):
    """Yields the indices of steps start, start+1, ... forever: epoch e is a permutation seeded by
    (seed, e); a global batch is ``batch_size * world_size`` indices, of which a rank takes its part."""

    def __init__(
        self, num_items: int, batch_size: int, seed: int, start_step: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        self.global_batch = batch_size * world_size
        if num_items < self.global_batch:
            raise ValueError(f"the data set has {num_items} pairs, fewer than one batch ({self.global_batch})")
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.rank = rank
        self.steps_per_epoch = num_items // self.global_batch

    def batch_indices(self, step: int) -> list[int]:
        epoch, k = divmod(step, self.steps_per_epoch)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, 1, epoch))
        perm = torch.randperm(self.num_items, generator=gen)
        start = k * self.global_batch + self.rank * self.batch_size
        return perm[start : start + self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            yield self.batch_indices(step)
            step += 1


def random_hflip(images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror a random half of the batch; mirrored masks swap left and right parts."""
    flip = torch.rand(images.shape[0], generator=gen, device=gen.device) < 0.5
    if not bool(flip.any()):
        return images, labels
    swap = torch.as_tensor(HFLIP_SWAP, device=labels.device).long()
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    labels = torch.where(flip[:, None, None], swap[labels.flip(-1)], labels)
    return images, labels
