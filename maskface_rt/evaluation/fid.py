"""FID and KID on feature sets, and a cache of a real image set's Inception features.

FID uses a numerically careful trace of sqrtm(S1 S2): with R = S1^(1/2) from a symmetric
eigendecomposition, R S2 R is symmetric PSD and has the eigenvalues of S1 S2, so the trace is
the sum of the square roots of its (clipped) eigenvalues; no complex sqrtm, no eps retries, and
exact 0 for a set against itself. KID is the unbiased MMD^2 with the cubic polynomial kernel
k(x, y) = (x.y / d + 1)^3, averaged over random subsets (as in the KID paper and torch-fidelity).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskface_rt.errors import MaskfaceError
from maskface_rt.fileio import write_bytes_atomic

#: Bumped whenever the cached features would change for the same files (resizing, extractor input).
CACHE_FORMAT = "maskface-fid-features/1"


@dataclass(frozen=True)
class GaussianStats:
    """Mean and covariance of a feature set (float64)."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int

    @classmethod
    def of(cls, features: np.ndarray) -> GaussianStats:
        if len(features) < 2:
            raise MaskfaceError(None, f"FID needs at least 2 images per set, got {len(features)}")
        features = np.asarray(features, dtype=np.float64)
        return cls(features.mean(axis=0), np.cov(features, rowvar=False), len(features))


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))."""
    root = _psd_sqrt(a.sigma)
    product = root @ b.sigma @ root
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0.0, None)).sum()
    diff = a.mu - b.mu
    fid = diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * tr_covmean
    return max(float(fid), 0.0)  # FID is a squared distance; only rounding makes it negative


@dataclass(frozen=True)
class KID:
    mean: float
    std: float
    subsets: int
    subset_size: int


def kernel_inception_distance(
    x: np.ndarray, y: np.ndarray, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> KID:
    """Unbiased MMD^2 with the cubic polynomial kernel, mean and std over random subsets."""
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise MaskfaceError(None, f"KID needs at least 2 images per set, got {len(x)} and {len(y)}")
    if m == len(x) == len(y):
        subsets = 1  # every subset would be the whole of both sets
    rng = np.random.default_rng(seed)
    d = x.shape[1]
    values = []
    for _ in range(subsets):
        xs = np.asarray(x[rng.choice(len(x), m, replace=False)], dtype=np.float64)
        ys = np.asarray(y[rng.choice(len(y), m, replace=False)], dtype=np.float64)
        k_xx, k_yy, k_xy = ((a @ b.T / d + 1.0) ** 3 for a, b in ((xs, xs), (ys, ys), (xs, ys)))
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values.append(within - 2.0 * k_xy.mean())
    return KID(float(np.mean(values)), float(np.std(values)), subsets, m)


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/maskface-rt/fid (~/.cache/maskface-rt/fid)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "maskface-rt" / "fid"


def real_set_key(images: Sequence[Path], size: int, extractor_sha256: str) -> str:
    """A hash of what the features depend on: the files (path, size, mtime), the resize and the extractor."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}\n{size}\n{extractor_sha256}\n".encode())
    for path in images:
        stat = path.stat()
        digest.update(f"{path.resolve()}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class FeatureCache:
    """Real-set features as ``<folder>/<key>.npz`` (written atomically, checked on read)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key[:32]}.npz"

    def load(self, key: str) -> np.ndarray | None:
        """The cached features of ``key``, or None (absent, unreadable or another key's)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["key"]) != key:
                    return None
                return data["features"]
        except (OSError, ValueError, KeyError):
            return None

    def save(self, key: str, features: np.ndarray) -> Path:
        buf = io.BytesIO()
        np.savez(buf, key=np.array(key), features=features, format=np.array(CACHE_FORMAT))
        path = self.path(key)
        write_bytes_atomic(path, buf.getvalue(), overwrite=True)
        return path
