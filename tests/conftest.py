"""Shared fixtures: small synthetic data sets made by the project itself (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 procedural (image, mask) pairs at 64x64 in the paired layout."""
    from maskface_rt.synth import write_dataset

    root = tmp_path_factory.mktemp("synth64")
    write_dataset(root, 24, 64, seed=7)
    return root
