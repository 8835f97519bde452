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


@pytest.fixture(scope="session")
def tiny_export_fp16(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """The fp16 (portable) ONNX export of ``tiny_model``."""
    from maskface_rt.export.onnx_export import export_onnx

    out = tmp_path_factory.mktemp("export-fp16") / "tiny64-onnx-fp16"
    export_onnx(tiny_model, out, max_batch=16, fp16=True)
    return out


@pytest.fixture(scope="session")
def tiny_plugin_export_fp16(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path):
    """The fp16 plugin export (FusedAdaIN nodes) of ``tiny_model``: its ExportResult, made once per session."""
    from maskface_rt.export.onnx_export import export_onnx

    return export_onnx(tiny_model, tmp_path_factory.mktemp("plugin16") / "export", fp16=True, plugin=True, max_batch=4)


@pytest.fixture(scope="session")
def eval_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Randomly initialised metric networks saved like the published files (same names, keys and
    shapes, torch.save pickles), and a weights manifest with their sha256: (weights dir, manifest)."""
    torch = pytest.importorskip("torch")
    import json

    from maskface_rt.evaluation.bisenet import BiSeNet
    from maskface_rt.evaluation.inception import FIDInceptionV3
    from maskface_rt.evaluation.lpips import CHANNELS, AlexNetTrunk
    from maskface_rt.evaluation.weights import REGISTRY
    from maskface_rt.export_format import sha256_file

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("weights")
    inception = FIDInceptionV3()
    for module in inception.modules():
        if isinstance(module, torch.nn.Conv2d):  # keep activations O(1) through the 94 layers
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    files = {
        "inception": {
            **inception.state_dict(),
            "fc.weight": torch.randn(1008, 2048) * 0.01,
            "fc.bias": torch.zeros(1008),
        },
        # torchvision's classifier is not used; zeros keep writing its 234 MB cheap.
        "alexnet": {
            **AlexNetTrunk().state_dict(),
            "classifier.1.weight": torch.zeros(4096, 9216),
            "classifier.1.bias": torch.zeros(4096),
            "classifier.4.weight": torch.zeros(4096, 4096),
            "classifier.4.bias": torch.zeros(4096),
            "classifier.6.weight": torch.zeros(1000, 4096),
            "classifier.6.bias": torch.zeros(1000),
        },
        "lpips-alex": {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) * 0.1 for k, c in enumerate(CHANNELS)},
        "bisenet": BiSeNet().state_dict(),
    }
    manifest = {}
    for key, tensors in files.items():
        path = folder / REGISTRY[key].file
        torch.save(tensors, path)
        manifest[key] = {"sha256": sha256_file(path)}
    manifest_path = folder / "manifest.json"
    manifest_path.write_text(json.dumps(manifest))
    return folder, manifest_path
