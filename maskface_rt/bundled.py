"""The model used when ``--model`` is not given: an export folder shipped inside the package."""

from __future__ import annotations

from pathlib import Path

from maskface_rt.errors import MaskfaceError
from maskface_rt.export_format import MANIFEST

BUNDLED_MODEL = Path(__file__).parent / "data" / "demo-model"


def default_model() -> Path:
    if not (BUNDLED_MODEL / MANIFEST).is_file():
        raise MaskfaceError(None, "no --model given and this install has no bundled demo model; pass --model "
                                  "(a checkpoint, or a folder made by 'maskface export')")
    return BUNDLED_MODEL
