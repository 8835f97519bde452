"""Ctrl-C (SIGINT) on a local generate, train and export, as a user at a shell sends it: exit 130 and one line,
no traceback, nothing partial left behind, and a rerun (or --resume) completes the job.

Each run is interrupted when a file shows it is mid-work (an event, never a fixed wait)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from maskface_rt.generate import complete_png

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "masks"


def _interrupted(args: list[str], mid_work: Callable[[], bool]) -> tuple[int, str]:
    """``maskface ARGS`` sent SIGINT once ``mid_work()`` holds: (exit code, stderr)."""
    command = [sys.executable, "-m", "maskface_rt", *args]
    env = {**os.environ, "NO_COLOR": "1"}
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        deadline = time.monotonic() + 300
        while proc.poll() is None and not mid_work():
            assert time.monotonic() < deadline, "the command never got to work"
            time.sleep(0.02)
        assert proc.poll() is None, f"it finished before it could be interrupted: {proc.stderr.read()[-2000:]}"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    return proc.returncode, stderr


def _temp_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name)


def test_generate_interrupted_exits_130_keeps_only_complete_faces_and_a_rerun_finishes(tmp_path):
    masks, out = tmp_path / "masks", tmp_path / "out"
    masks.mkdir()
    for path in sorted(EXAMPLES.glob("[sh][ya]*")):  # the single-file example masks, 20 copies each
        for i in range(20):
            shutil.copy(path, masks / f"{path.stem}-{i:02d}{path.suffix}")
    code, stderr = _interrupted(["generate", str(masks), "--out", str(out)], lambda: any(out.glob("*.png")))
    assert code == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "interrupted"
    made = sorted(out.iterdir())
    total = 4 * len(list(masks.iterdir()))
    assert 0 < len(made) < total and all(complete_png(p) for p in made), _temp_files(out)
    rerun = subprocess.run(
        [sys.executable, "-m", "maskface_rt", "generate", str(masks), "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert (report["images_existing"], report["images_written"]) == (len(made), total - len(made))


def test_train_interrupted_exits_130_and_resumes_from_its_last_checkpoint(synth64, tmp_path):
    run = tmp_path / "run"
    args = ["train", str(synth64), "--out", str(run), "--preset", "tiny-64", "--batch-size", "2"]
    args += ["--num-workers", "0", "--checkpoint-every", "1", "--sample-every", "1000", "--log-every", "1"]
    code, stderr = _interrupted([*args, "--steps", "1000"], lambda: (run / "state.safetensors").exists())
    assert code == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "interrupted"
    assert not _temp_files(run)
    logged = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert logged and logged == sorted(logged)  # whole lines only
    resumed = subprocess.run(
        [sys.executable, "-m", "maskface_rt", *args, "--resume", "--steps", str(logged[-1] + 1), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == logged[-1] + 1


def test_export_interrupted_exits_130_and_leaves_no_folder(tiny_model, tmp_path):
    out = tmp_path / "onnx"
    code, stderr = _interrupted(
        ["export", str(tiny_model), "--out", str(out)], lambda: any(tmp_path.glob(".onnx.*.tmp/*.onnx"))
    )
    assert code == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither the folder nor its temp folder
