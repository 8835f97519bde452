"""Parity: one set of outputs against a reference on the same inputs, and the bound each check must meet.

Used by export (torch vs ONNX Runtime), build (engine vs ONNX Runtime fp32), eval and bench (backend vs
backend). ``ParityAccumulator`` keeps running sums over uint8 image batches (PSNR, max and mean abs error);
``ParityCheck`` is one graph's measured error against its bound, with the line printed to users. No torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from maskface_rt.fileio import json_safe

#: Export: largest max |torch - ONNX Runtime| on the generator's [-1, 1] output, before uint8 rounding.
GENERATOR_TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}
#: Export: same for style codes, relative to the largest |style| of the batch.
STYLE_TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}
#: Build: lowest PSNR (dB) of the engine's uint8 generator images against ONNX Runtime fp32 on the same inputs.
#: 48 dB is every pixel one level off; fp32 engines use TF32 convolutions (TensorRT's default on Ampere+).
PARITY_PSNR_DB = {"fp32": 40.0, "fp16": 30.0}
#: Build: largest max |engine - ONNX Runtime fp32| of style codes, relative to the largest |style| (at least 1).
STYLE_PARITY = {"fp32": 1e-2, "fp16": 5e-2}

#: metric -> (its words in a line, higher is better).
METRICS = {
    "psnr_db": ("PSNR", True),
    "max_abs_error": ("max abs error", False),
    "max_rel_error": ("max relative error", False),
}


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
        psnr = math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)
        return Parity(self.images, psnr, self.max_abs, self.absolute / max(self.values, 1), self.identical)


def max_abs_error(reference: np.ndarray, other: np.ndarray) -> float:
    """max |reference - other|, in float64."""
    return float(np.max(np.abs(reference.astype(np.float64) - other.astype(np.float64)), initial=0.0))


def max_rel_error(reference: np.ndarray, other: np.ndarray) -> float:
    """max |reference - other| relative to the largest |reference| (at least 1): for style codes."""
    return max_abs_error(reference, other) / max(1.0, float(np.abs(reference).max(initial=0.0)))


def max_uint8_diff(reference: np.ndarray, other: np.ndarray) -> int:
    """The largest difference of two uint8 images, in levels."""
    return int(np.abs(reference.astype(np.int16) - other.astype(np.int16)).max(initial=0))


@dataclass(frozen=True)
class ParityCheck:
    """One graph's outputs against a reference on the same inputs, and the bound they must meet."""

    graph: str
    metric: str  # a METRICS key: "psnr_db" (higher is better), "max_abs_error" or "max_rel_error"
    value: float
    bound: float
    batch_sizes: tuple[int, ...]
    compared: str  # "torch vs onnxruntime", "TensorRT vs ONNX Runtime fp32", ...
    max_uint8_diff: int | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"parity metric {self.metric!r} is not one of {', '.join(METRICS)}")

    @property
    def passed(self) -> bool:
        return self.value >= self.bound if METRICS[self.metric][1] else self.value <= self.bound

    @property
    def max_abs_error(self) -> float:
        """The measured value of a max-abs-error check (export's name for it, as in maskface.json)."""
        if self.metric != "max_abs_error":
            raise AttributeError(f"a {self.metric} check has no max_abs_error; see .value")
        return self.value

    def line(self) -> str:
        verdict = "ok" if self.passed else "FAILED"
        batch = "/".join(map(str, self.batch_sizes))
        if self.metric == "psnr_db":
            return (
                f"{self.graph}: PSNR {self.value:.1f} dB, max diff {self.max_uint8_diff} levels at batch "
                f"{batch} ({self.compared}); bound >= {self.bound:g} dB, highest bound that would pass "
                f"{self.value:.1f} dB [{verdict}]"
            )
        extra = f", uint8 max diff {self.max_uint8_diff}" if self.max_uint8_diff is not None else ""
        return (
            f"{self.graph}: {METRICS[self.metric][0]} {self.value:.3g} at batch {batch}{extra} ({self.compared}); "
            f"tolerance {self.bound:g}, minimum tolerance that would pass {self.value:.3g} [{verdict}]"
        )

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "graph": self.graph,
                "metric": self.metric,
                "value": self.value,
                "bound": self.bound,
                "batch_sizes": list(self.batch_sizes),
                "compared": self.compared,
                "max_uint8_diff": self.max_uint8_diff,
                "passed": self.passed,
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], compared: str = "") -> ParityCheck:
        """A check read back from ``to_dict()`` (``compared``: what a record without one compared; sidecars before
        this module recorded one ``batch``)."""
        value = data["value"]
        batches = data["batch_sizes"] if "batch_sizes" in data else [data["batch"]]
        return cls(
            str(data["graph"]),
            str(data["metric"]),
            math.nan if value is None else float(value),
            float(data["bound"]),
            tuple(int(b) for b in batches),
            str(data.get("compared", compared)),
            data.get("max_uint8_diff"),
        )
