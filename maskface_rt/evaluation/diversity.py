"""Diversity: mean pairwise distance between the faces of one mask under different styles
(StarGAN v2's LPIPS protocol: all pairs among the K styles of a mask, averaged, then over masks)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np

#: d(a, b) for uint8 image batches [N, H, W, 3] -> float [N].
Distance = Callable[[np.ndarray, np.ndarray], np.ndarray]


def pixel_l1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference per image pair, on the [0, 1] scale."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return diff.reshape(len(a), -1).mean(axis=1) / 255.0


def mean_pairwise(faces: np.ndarray, distance: Distance) -> np.ndarray:
    """faces uint8 [M, K, H, W, 3] (M masks x K styles) -> the mean over the K(K-1)/2 pairs, per mask [M]."""
    pairs = list(combinations(range(faces.shape[1]), 2))
    if not pairs:
        return np.zeros(len(faces))
    i, j = (np.array(p) for p in zip(*pairs))
    a = faces[:, i].reshape(-1, *faces.shape[2:])
    b = faces[:, j].reshape(-1, *faces.shape[2:])
    return np.asarray(distance(a, b), dtype=np.float64).reshape(len(faces), len(pairs)).mean(axis=1)


def synthetic_real_diversity(data: Path, names: Sequence[str], size: int, styles: int) -> np.ndarray | None:
    """The same figure for real images of a `maskface synth` set: each mask painted with ``styles``
    appearances by the procedural renderer, mean pairwise pixel L1 per mask; None for other data sets."""
    from maskface_rt.synth import render_looks

    try:
        info = json.loads((Path(data) / "synth.json").read_text())
        seed, indices = int(info["seed"]), [int(name) for name in names]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return np.concatenate([mean_pairwise(render_looks(seed, i, size, styles)[0][None], pixel_l1) for i in indices])
