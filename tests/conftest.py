"""Shared fixtures: small synthetic data sets made by the project itself (nothing is downloaded).

The session's data (data sets, the tiny model, its exports) is made once per test run even under
pytest-xdist (``make test`` runs the suite on every core): the workers share one folder per fixture.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock
from weights_support import save_weight_files

from maskface_rt.backends.probes import NATIVE_BF16_ENV

# skip_guard: in CI, skips other than the GPU/TensorRT ones fail the run; pytester: to test such plugins.
pytest_plugins = ["skip_guard", "pytester"]

# --backend auto and --precision auto take OpenVINO bf16 where the CPU runs it natively, and the development and CI
# machines change CPU: the suite takes this one as a CPU without native bf16 (for itself and every process it
# starts), and each test of the other branch says so (the ``auto_bf16`` fixture), so that no outcome depends on it.
os.environ[NATIVE_BF16_ENV] = "0"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The workers share the cores: one math thread each (torch and OpenMP here and in the processes tests
    # start), or two workers' torch thread pools fight over the same cores and both slow down.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def private_caches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The caches the package writes (OpenVINO's compiled models, FID statistics) go to this run's temporary
    folder, not the user's ~/.cache shared with other runs and workers; pip keeps the user's own cache."""
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    os.environ.setdefault("PIP_CACHE_DIR", str(user_cache / "pip"))
    cache = tmp_path_factory.getbasetemp() / "xdg-cache"
    cache.mkdir(exist_ok=True)
    os.environ["XDG_CACHE_HOME"] = str(cache)
    return cache


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the files with the most slow tests first: workers take whole files in this order,
    so the longest start early instead of running alone at the end."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    slow: dict[Path, int] = {}
    for item in items:
        slow[item.path] = slow.get(item.path, 0) + (item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: -slow[item.path])  # stable: a file's tests keep their order


@pytest.fixture(params=[False, True], ids=["no-native-bf16", "native-bf16"])
def auto_bf16(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Each of auto's branches in turn, on any CPU: whether auto takes bf16 as native (OpenVINO emulates bf16
    where the CPU lacks it: slower, same math)."""
    monkeypatch.setenv(NATIVE_BF16_ENV, "1" if request.param else "0")
    return request.param


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """The folder ``name`` filled by ``make(folder)`` once per test run: the first pytest-xdist worker to
    ask makes it under a lock, the others wait for it and use it (a failed ``make`` leaves nothing)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder, made = root / "made-once" / name, root / "made-once" / f"{name}.made"
    folder.parent.mkdir(exist_ok=True)
    with FileLock(f"{folder}.lock"):
        if not made.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            try:
                make(folder)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            made.touch()
    return folder


@pytest.fixture(scope="session")
def synth64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 procedural (image, mask) pairs at 64x64 in the paired layout."""
    from maskface_rt.synth import write_dataset

    return made_once(tmp_path_factory, "synth64", lambda root: write_dataset(root, 24, 64, seed=7))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny-64 model file (export and backends do not need trained weights), the same
    weights in every run: the thresholds of the tests that use it see one model."""
    pytest.importorskip("torch")
    folder = made_once(tmp_path_factory, "model", lambda f: _save_seeded_model(f / "tiny64.safetensors"))
    return folder / "tiny64.safetensors"


def _save_seeded_model(path: Path) -> None:
    import torch

    from maskface_rt.checkpoint import save_model
    from maskface_rt.config import preset
    from maskface_rt.networks import Nets

    with torch.random.fork_rng():  # seeded here, leaving the worker's generator as it was
        torch.manual_seed(0)
        nets = Nets(preset("tiny-64"))
    save_model(path, nets, weights="raw")


def _export_once(tmp_path_factory: pytest.TempPathFactory, model: Path, name: str, **options: object) -> Path:
    """The export folder ``name`` of ``model`` (``export_onnx`` with ``options``), made once per test run."""
    from maskface_rt.export.onnx_export import export_onnx

    return made_once(tmp_path_factory, name, lambda folder: export_onnx(model, folder / name, **options)) / name


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """The fp32 ONNX export of ``tiny_model``."""
    return _export_once(tmp_path_factory, tiny_model, "tiny64-onnx", max_batch=16)


@pytest.fixture(scope="session")
def tiny_export_fp16(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """The fp16 (portable) ONNX export of ``tiny_model``."""
    return _export_once(tmp_path_factory, tiny_model, "tiny64-onnx-fp16", max_batch=16, fp16=True)


@pytest.fixture(scope="session")
def tiny_plugin_export_fp16(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """The fp16 plugin export (FusedAdaIN nodes) of ``tiny_model``."""
    return _export_once(tmp_path_factory, tiny_model, "tiny64-plugin-fp16", max_batch=4, fp16=True, plugin=True)


@pytest.fixture(scope="session")
def eval_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Randomly initialised metric networks saved like the published files (same names, keys and
    shapes, torch.save pickles), and a weights manifest with their sha256: (weights dir, manifest)."""
    pytest.importorskip("torch")
    folder = made_once(tmp_path_factory, "weights", _write_eval_weights)
    return folder, folder / "manifest.json"


def _write_eval_weights(folder: Path) -> None:
    import torch

    from maskface_rt.evaluation.bisenet import BiSeNet
    from maskface_rt.evaluation.inception import FIDInceptionV3
    from maskface_rt.evaluation.lpips import CHANNELS, AlexNetTrunk

    torch.manual_seed(0)
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
    save_weight_files(folder, files)
