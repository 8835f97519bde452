"""`maskface generate` end to end on the real onnxruntime backend: exit codes, JSON, bytes, resume."""

import json
import subprocess
from pathlib import Path

import numpy as np
from cli_support import maskface_here
from PIL import Image

from maskface_rt.synth import write_dataset


def _generate(*args: str) -> subprocess.CompletedProcess:
    """``maskface generate ARGS`` through the CLI's entry point, in this process (exit codes, stdout, stderr as a
    shell sees them; the fresh-process cases live in test_cli, test_interrupts and test_fresh_install)."""
    return maskface_here("generate", *args)


def _masks(tmp_path: Path, count: int = 3) -> Path:
    write_dataset(tmp_path / "data", count, 64, seed=4)
    return tmp_path / "data" / "masks"


def test_exit_codes_and_json_summary(tiny_export, tmp_path):
    masks = _masks(tmp_path)
    (masks / "broken.png").write_bytes(b"not a png")
    done = _generate(str(masks), "--out", str(tmp_path / "out"), "--model", str(tiny_export), "--styles", "2", "--json")
    assert done.returncode == 3, done.stderr
    summary = json.loads(done.stdout)
    assert summary["images_written"] == 6 and summary["exit_code"] == 3
    assert [s["path"] for s in summary["skipped"]] == [str(masks / "broken.png")]
    assert "not an image file" in summary["skipped"][0]["reason"]
    assert f"skipped {masks / 'broken.png'}: not an image file" in done.stderr

    again = _generate(
        str(masks), "--out", str(tmp_path / "out"), "--model", str(tiny_export), "--styles", "2", "--json"
    )
    assert json.loads(again.stdout)["images_existing"] == 6 and json.loads(again.stdout)["images_written"] == 0

    bad_only = tmp_path / "bad"
    bad_only.mkdir()
    (bad_only / "a.png").write_text("text")
    nothing = _generate(str(bad_only), "--out", str(tmp_path / "out2"), "--model", str(tiny_export))
    assert nothing.returncode == 4

    usage = _generate(
        str(masks), "--out", str(tmp_path / "out3"), "--model", str(tiny_export), "--label-order", "bisenet"
    )
    assert usage.returncode == 2 and "unknown label order" in usage.stderr
    missing = _generate(str(masks), "--out", str(tmp_path / "out4"), "--model", str(tmp_path / "nope"))
    assert missing.returncode == 1 and missing.stderr.strip().endswith("nope: no such model file or folder")
    assert not (tmp_path / "out3").exists() and not (tmp_path / "out4").exists()


def test_same_bytes_whatever_the_batch_size(tiny_export, tmp_path):
    masks = _masks(tmp_path, count=5)
    outputs = {}
    for batch in ("1", "4", "7"):
        out = tmp_path / f"b{batch}"
        assert (
            _generate(
                str(masks), "--out", str(out), "--model", str(tiny_export), "--styles", "3", "--batch-size", batch
            ).returncode
            == 0
        )
        outputs[batch] = {p.name: p.read_bytes() for p in out.glob("*.png")}
    assert len(outputs["1"]) == 15
    assert outputs["1"] == outputs["4"] == outputs["7"]


def test_onnxruntime_matches_torch_through_generate(tiny_model, tiny_export, tmp_path):
    masks = _masks(tmp_path, count=2)
    for name, model in (("onnxruntime", tiny_export), ("torch", tiny_model)):
        args = ["--model", str(model), "--backend", name, "--styles", "2", "--grid"]
        done = _generate(str(masks), "--out", str(tmp_path / name), *args)
        assert done.returncode == 0, done.stderr
    faces = sorted((tmp_path / "onnxruntime").glob("*_s*.png"))
    assert len(faces) == 4  # 2 masks x 2 styles
    for path in faces:
        a = np.asarray(Image.open(path), dtype=np.int16)
        b = np.asarray(Image.open(tmp_path / "torch" / path.name), dtype=np.int16)
        assert np.abs(a - b).max() <= 1
    assert (tmp_path / "onnxruntime" / "grid.png").is_file()
