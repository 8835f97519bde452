"""The files of a training run folder (``maskface train --out RUN``).

A run folder holds::

    config.json             model and training config, data path
    model.safetensors       the latest inference model (EMA weights, config in its metadata)
    state.safetensors       everything --resume needs
    checkpoints/step_N.safetensors, samples/step_N.png, log.jsonl
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from maskface_rt.errors import MaskfaceError


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def model(self) -> Path:
        return self.root / "model.safetensors"

    @property
    def state(self) -> Path:
        return self.root / "state.safetensors"

    @property
    def log(self) -> Path:
        return self.root / "log.jsonl"

    def checkpoint(self, step: int) -> Path:
        return self.root / "checkpoints" / f"step_{step:06d}.safetensors"

    def samples(self, step: int) -> Path:
        return self.root / "samples" / f"step_{step:06d}.png"


def prepare_run(run: RunPaths, *, resume: bool) -> None:
    """Refuse to start a new run over an existing one, or to resume a run that is not there."""
    if resume and not run.state.exists():
        raise MaskfaceError(run.state, "no training state to resume from (start without --resume)")
    if not resume and (run.state.exists() or run.model.exists()):
        raise MaskfaceError(
            run.root, "already holds a training run (pass --resume to continue it, or choose another --out)"
        )
