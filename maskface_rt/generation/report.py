"""What a generate run did: its report (counts, outputs, skipped inputs, exit code), made from its plans, and
``RunStopped``, the error of a run stopped part-way that carries the report of what it had done by then.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from maskface_rt.errors import ExitCode, MaskfaceError
from maskface_rt.generation.plan import Planned, Skipped


@dataclass
class GenerateReport:
    """What a run did; ``exit_code`` is the command's exit status."""

    masks: int  # masks found
    images_written: int
    images_existing: int  # outputs already there (kept, not regenerated)
    skipped: list[Skipped]
    seconds: float
    images_per_s: float  # images_written / seconds
    backend: str
    model: str
    outputs: list[str]  # files written by this run: faces, then contact sheets
    masks_skipped: int = 0  # masks of which some output could not be made
    grids_written: int = 0
    grids_existing: int = 0
    error: str | None = None  # why the run stopped before its end (a full disk), as its one line

    @property
    def exit_code(self) -> ExitCode:
        """FAILED: the run stopped (``error``); OK: nothing skipped; PARTIAL: some inputs skipped; NOTHING_RAN: no
        mask found or none usable."""
        if self.error is not None:
            return ExitCode.FAILED
        if self.masks == 0 or self.masks_skipped >= self.masks:
            return ExitCode.NOTHING_RAN
        return ExitCode.PARTIAL if self.skipped else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of every field plus the exit code."""
        return {**dataclasses.asdict(self), "exit_code": int(self.exit_code)}


class RunStopped(MaskfaceError):
    """A run stopped part-way (a full disk): the one-line error, and ``report``, what the run had done by then."""

    def __init__(self, error: MaskfaceError, report: GenerateReport) -> None:
        super().__init__(error.where, error.problem)
        self.report = report


_R = TypeVar("_R", bound="GenerateReport")


def build_report(
    cls: type[_R],
    planned: Planned,
    seconds: float,
    backend: str,
    model: str,
    grid_problems: Sequence[Skipped] = (),
    grid_outputs: Sequence[str] = (),
    **extra: Any,
) -> _R:
    """The run's report from its plans, once each plan holds what was written, raced or skipped."""
    plans = planned.plans
    written = sum(len(p.written) for p in plans)
    skipped = [p.problem for p in plans if p.problem] + list(grid_problems)
    return cls(
        masks=len(planned.sources),
        images_written=written,
        images_existing=sum(len(p.outputs) - len(p.missing) + p.raced for p in plans),
        skipped=sorted(skipped, key=lambda s: s.path),
        seconds=seconds,
        images_per_s=written / seconds if seconds > 0 else 0.0,
        backend=backend,
        model=model,
        outputs=[str(p.outputs[k]) for p in plans for k in p.written] + list(grid_outputs),
        masks_skipped=sum(p.problem is not None for p in plans),
        **extra,
    )
