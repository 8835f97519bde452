"""The README's first command in a fresh virtual environment without torch.

Builds the release artifacts (sdist and wheel, ``python -m build``), checks their metadata (twine) and contents,
installs the wheel into a new venv that has only the runtime dependencies (at the suite's pinned versions), then
runs ``maskface generate examples/masks --out out/`` on the bundled model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskface_rt.mask_io import discover_masks

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the source tree without build leftovers, so that installs see what git would hold."""
    src = tmp_path_factory.mktemp("source") / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".venv*", ".git", "out", "build", "*.egg-info", "__pycache__", ".pytest_cache", ".mypy_cache", "runs"
        ),
    )
    return src


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory, source: Path) -> tuple[Path, Path, str]:
    """The sdist and the wheel, built as a release is (python -m build), and what the build printed."""
    dist = tmp_path_factory.mktemp("dist")
    done = _run([sys.executable, "-m", "build", "--outdir", str(dist), str(source)], dist, timeout=900)
    assert done.returncode == 0, f"python -m build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    (sdist,), (wheel,) = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    return sdist, wheel, done.stdout + done.stderr


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory, artifacts: tuple[Path, Path, str]) -> Path:
    """A new venv with the wheel and its runtime dependencies at the versions the suite pins."""
    root = tmp_path_factory.mktemp("fresh")
    venv.create(root / "venv", with_pip=True)
    python = root / "venv" / "bin" / "python"
    pins = [line.split("#")[0].strip() for line in (ROOT / "requirements-test.txt").read_text().splitlines()]
    constraints = root / "constraints.txt"  # pip's constraints take no extras: ray[data]==X -> ray==X
    constraints.write_text("\n".join(re.sub(r"\[.*?\]", "", pin) for pin in pins if pin) + "\n")
    install = [str(python), "-m", "pip", "install", "-q", "-c", str(constraints), str(artifacts[1])]
    done = _run(install, root, timeout=900)
    assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
    return python


def test_building_the_release_prints_no_packaging_warnings(artifacts: tuple[Path, Path, str]) -> None:
    """A release build's warnings are a packaging bug, and the same warnings are make demo's first output (package
    data outside the declared packages printed a hundred lines). python -m build prints setuptools' warnings as
    'WARNING <text>'; pip's own lines about this machine's package indexes read 'WARNING: ...' and do not count."""
    warnings = [line for line in artifacts[2].splitlines() if re.match(r"WARNING (?!:)", line) or "Warning" in line]
    assert not warnings, "\n".join(warnings[:5])


def test_twine_accepts_both_artifacts_metadata(artifacts: tuple[Path, Path, str]) -> None:
    sdist, wheel, _ = artifacts
    done = _run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)], ROOT, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_the_wheel_ships_the_model_the_editor_and_the_license_and_nothing_else(
    artifacts: tuple[Path, Path, str],
) -> None:
    _, wheel, _ = artifacts
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"maskface_rt", next(t for t in tops if t.endswith(".dist-info"))}, tops  # no tests/, tools/
    for needed in ("maskface.json", "generator.onnx", "style_encoder.onnx", "style_decoder.onnx"):
        assert f"maskface_rt/data/demo-model/{needed}" in names, needed
    for needed in ("index.html", "editor.js", "editor.css"):
        assert f"maskface_rt/serve/static/{needed}" in names, needed
    assert any(n.startswith("maskface_rt/serve/static/examples/") and n.endswith(".png") for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), [n for n in names if "dist-info" in n]
    assert "maskface_rt/export/onnx_export.py" in names and "maskface_rt/kernels/ptx.py" in names
    leftovers = [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".tmp", ".egg-info")) or "/build/" in n]
    assert not leftovers, leftovers
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata
    assert "Classifier: Programming Language :: Python :: 3" in metadata


def test_the_sdist_holds_the_license_the_changelog_the_docs_and_the_tests(artifacts: tuple[Path, Path, str]) -> None:
    sdist, _, _ = artifacts
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "docs/cli.md", "tests/conftest.py"} <= names
    assert "maskface_rt/data/demo-model/generator.onnx" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_runtime_install_has_no_torch(fresh_venv: Path) -> None:
    probe = _run(
        [
            str(fresh_venv),
            "-c",
            "import importlib.util, json; print(json.dumps("
            "{m: importlib.util.find_spec(m) is not None for m in ('torch', 'ray', 'onnxruntime', 'maskface_rt')}))",
        ],
        ROOT,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout) == {"torch": False, "ray": False, "onnxruntime": True, "maskface_rt": True}


def test_readme_generate_command_uses_the_bundled_model(fresh_venv: Path, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "masks", tmp_path / "examples" / "masks")
    maskface = fresh_venv.parent / "maskface"
    done = _run([str(maskface), "generate", "examples/masks", "--out", "out/", "--json"], tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    masks = discover_masks(tmp_path / "examples" / "masks")
    assert len(masks) >= 12
    faces = sorted((tmp_path / "out").glob("*.png"))
    assert report["images_written"] == len(faces) == 4 * len(masks)
    for mask in masks:
        images = [np.asarray(Image.open(tmp_path / "out" / f"{mask.name}_s{k}.png")) for k in range(4)]
        assert images[0].ndim == 3 and images[0].shape[2] == 3 and images[0].std() > 10
        assert np.abs(images[0].astype(int) - images[1].astype(int)).mean() > 1, f"{mask.name}: styles identical"
    assert report["backend"].startswith("onnxruntime CPUExecutionProvider") and report["exit_code"] == 0


def test_serve_without_its_extra_says_how_to_install_it(fresh_venv: Path) -> None:
    done = _run([str(fresh_venv.parent / "maskface"), "serve"], ROOT, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "pip install 'maskface-rt[serve]'" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    # The editor ships in the wheel: static files and example masks as package data.
    code = (
        "import importlib.resources as r; s = r.files('maskface_rt.serve') / 'static'; "
        "print(sorted(p.name for p in s.iterdir()), len(list((s / 'examples').iterdir())))"
    )
    probe = _run([str(fresh_venv), "-c", code], ROOT, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split("]")[0] + "]" == str(["editor.css", "editor.js", "examples", "index.html"])
    assert int(probe.stdout.split()[-1]) >= 3


def test_generate_ray_without_its_extra_says_how_to_install_it(fresh_venv: Path, tmp_path: Path) -> None:
    maskface = str(fresh_venv.parent / "maskface")
    done = _run([maskface, "generate", str(ROOT / "examples" / "masks"), "--out", "out", "--ray"], tmp_path, 120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "pip install 'maskface-rt[ray]'" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
