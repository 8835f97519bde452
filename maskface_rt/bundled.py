"""The model used when ``--model`` is not given: an export folder shipped inside the package."""

from __future__ import annotations

from pathlib import Path

from maskface_rt.errors import MaskfaceError
from maskface_rt.export_format import MANIFEST, read_manifest

BUNDLED_MODEL = Path(__file__).parent / "data" / "demo-model"


def default_model() -> Path:
    if not (BUNDLED_MODEL / MANIFEST).is_file():
        raise MaskfaceError(
            None,
            "no --model given and this install has no bundled demo model; pass --model "
            "(a checkpoint, or a folder made by 'maskface export')",
        )
    return BUNDLED_MODEL


def describe_bundled() -> str:
    """One line on the bundled model (size, precision, bytes), after checking every graph's sha256."""
    manifest = read_manifest(default_model())
    size = sum(f.stat().st_size for f in BUNDLED_MODEL.iterdir() if f.is_file())
    return (
        f"{manifest.config.img_size}x{manifest.config.img_size} {manifest.precision}, "
        f"{size / 2**20:.1f} MiB, from maskface-rt {manifest.package_version}"
    )
