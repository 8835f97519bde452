"""Time-based warm-up and measurement (trtexec style) and latency statistics."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Latency statistics reported for every row, in this order.
STATS = ("min", "mean", "median", "p90", "p99")


@dataclass(frozen=True)
class Stats:
    """Statistics of per-call times in seconds; percentiles interpolate linearly between samples."""

    count: int
    min: float
    mean: float
    median: float
    p90: float
    p99: float

    def as_ms(self, prefix: str) -> dict[str, float]:
        """{'<prefix>_min_ms': ..., ...} for reports."""
        return {f"{prefix}_{name}_ms": getattr(self, name) * 1e3 for name in STATS}


def summarize(samples: Sequence[float]) -> Stats:
    """min / mean / median / p90 / p99 of a non-empty list of times."""
    if len(samples) == 0:
        raise ValueError("no samples to summarize")
    values = np.asarray(samples, dtype=np.float64)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return Stats(len(values), float(values.min()), float(values.mean()), float(p50), float(p90), float(p99))


@dataclass(frozen=True)
class Measurement:
    """What one timed loop gave: per-call samples (seconds) and how long it ran."""

    samples: tuple[float, ...]
    warmup_calls: int
    warmup_s: float
    measured_s: float  # wall time of the measured calls together

    @property
    def stats(self) -> Stats:
        return summarize(self.samples)

    @property
    def calls_per_s(self) -> float:
        return len(self.samples) / self.measured_s if self.measured_s > 0 else 0.0


def measure(
    run: Callable[[], Any],
    *,
    warmup_s: float,
    duration_s: float,
    min_iterations: int = 1,
    device_timed: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> Measurement:
    """Call ``run`` for ``warmup_s`` seconds (at least once), then for ``duration_s`` seconds and at least
    ``min_iterations`` times, timing each call.

    A call's sample is the host time around it; with ``device_timed``, a number ``run`` returns (seconds,
    measured with CUDA events on the device) is the sample instead, and None still means the host time.
    """
    if warmup_s < 0 or duration_s < 0 or min_iterations < 1:
        raise ValueError("warmup_s and duration_s must be >= 0 and min_iterations >= 1")
    start = clock()
    warmup_calls = 0
    while warmup_calls == 0 or clock() - start < warmup_s:
        run()
        warmup_calls += 1
    measured_from = clock()
    warmup = measured_from - start
    samples: list[float] = []
    while True:
        before = clock()
        device_time = run()
        after = clock()
        samples.append(float(device_time) if device_timed and device_time is not None else after - before)
        if len(samples) >= min_iterations and after - measured_from >= duration_s:
            break
    return Measurement(tuple(samples), warmup_calls, warmup, clock() - measured_from)
