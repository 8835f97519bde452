"""The optimization profile of the batch dimension that the three engines share, the shapes it gives each
graph's inputs, and how a call's rows are split into executions the profile accepts.

No TensorRT or CUDA here: tested on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maskface_rt.config import ModelConfig
from maskface_rt.errors import OptionError
from maskface_rt.graph_contract import GRAPH_IO, tensor_shape
from maskface_rt.values import is_integer

DEFAULT_OPT_BATCH = 8
DEFAULT_MAX_BATCH = 32


@dataclass(frozen=True)
class BuildProfile:
    """The optimization profile of the batch dimension, shared by the three engines."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        for name in ("min", "opt", "max"):
            value = getattr(self, name)
            if not is_integer(value):
                raise OptionError(f"{name}_batch", f"must be an integer, got {value!r}")
        if self.min < 1:
            raise OptionError("min_batch", f"{self.min} is invalid; valid: 1 or more")
        if self.max < self.min:
            raise OptionError("max_batch", f"{self.max} is below the min batch {self.min}; valid: {self.min} or more")
        if not self.min <= self.opt <= self.max:
            raise OptionError("opt_batch", f"{self.opt} is outside the min..max batch; valid: {self.min}..{self.max}")

    @classmethod
    def resolve(
        cls, min_batch: int = 1, opt_batch: int | None = None, max_batch: int | None = None, *, limit: int | None = None
    ) -> BuildProfile:
        """The profile from the CLI's options, defaults filled in; ``limit``: the export's largest batch.

        Defaults: max = min(DEFAULT_MAX_BATCH, limit), at least min; opt = DEFAULT_OPT_BATCH within min..max.
        """
        if limit is not None:
            for option, value in (("min_batch", min_batch), ("opt_batch", opt_batch), ("max_batch", max_batch)):
                if isinstance(value, int) and value > limit:
                    raise OptionError(
                        option,
                        f"{value} is above the export's largest batch {limit} (max_batch in "
                        f"maskface.json); valid: 1..{limit}, or re-export with "
                        f"'maskface export MODEL --out DIR --max-batch {value}'",
                    )
        if max_batch is None:
            max_batch = max(DEFAULT_MAX_BATCH, min_batch)
            if limit is not None:
                max_batch = min(max_batch, limit)
        if opt_batch is None:
            opt_batch = min(max(DEFAULT_OPT_BATCH, min_batch), max_batch)
        return cls(min_batch, opt_batch, max_batch)

    def to_dict(self) -> dict[str, int]:
        return {"min": self.min, "opt": self.opt, "max": self.max}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildProfile:
        return cls(data["min"], data["opt"], data["max"])

    def __str__(self) -> str:
        return f"batch {self.min}..{self.max} (optimised for {self.opt})"


def profile_shapes(
    graph: str, config: ModelConfig, profile: BuildProfile
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """(min, opt, max) shape of each input of ``graph``: what the builder's optimization profile sets."""
    inputs, _ = GRAPH_IO[graph]
    return {
        name: (
            tensor_shape(name, config, profile.min),
            tensor_shape(name, config, profile.opt),
            tensor_shape(name, config, profile.max),
        )
        for name in inputs
    }


@dataclass(frozen=True)
class Chunk:
    """Rows start..stop of a call, run as one engine execution of ``run_batch`` rows (padded up to the
    profile's min when fewer)."""

    start: int
    stop: int
    run_batch: int

    @property
    def rows(self) -> int:
        return self.stop - self.start

    @property
    def padding(self) -> int:
        return self.run_batch - self.rows


def plan_batches(count: int, profile: BuildProfile) -> list[Chunk]:
    """Split ``count`` rows into executions the profile accepts: at most max rows each, padded up to min."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    chunks = []
    for start in range(0, count, profile.max):
        stop = min(start + profile.max, count)
        chunks.append(Chunk(start, stop, max(stop - start, profile.min)))
    return chunks
