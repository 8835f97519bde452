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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny-64 model file (export and backends do not need trained weights)."""
    pytest.importorskip("torch")
    from maskface_rt.checkpoint import save_model
    from maskface_rt.config import preset
    from maskface_rt.networks import Nets

    path = tmp_path_factory.mktemp("model") / "tiny64.safetensors"
    save_model(path, Nets(preset("tiny-64")), weights="raw")
    return path


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """The fp32 ONNX export of ``tiny_model``."""
    from maskface_rt.export.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("export") / "tiny64-onnx"
    export_onnx(tiny_model, out, max_batch=16)
    return out
