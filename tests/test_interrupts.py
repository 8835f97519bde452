"""Ctrl-C (SIGINT) on a local generate, train and export, as a user at a shell sends it: exit 130 and one line,
no traceback, nothing partial left behind, and a rerun (or --resume) completes the job. SIGTERM (timeout, systemd,
docker) stops them the same way, with exit 143 and 'terminated'.

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
from cli_support import maskface, maskface_here

from maskface_rt.generation.plan import complete_png

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "masks"


#: signal -> (exit code, last line)
STOPS = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}


def _interrupted(args: list[str], mid_work: Callable[[], bool], sig: signal.Signals = signal.SIGINT) -> tuple[int, str]:
    """``maskface ARGS`` sent ``sig`` once ``mid_work()`` holds: (exit code, stderr)."""
    command = [sys.executable, "-m", "maskface_rt", *args]
    env = {**os.environ, "NO_COLOR": "1"}
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        deadline = time.monotonic() + 300
        while proc.poll() is None and not mid_work():
            assert time.monotonic() < deadline, "the command never got to work"
            time.sleep(0.02)
        assert proc.poll() is None, f"it finished before it could be interrupted: {proc.stderr.read()[-2000:]}"
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    return proc.returncode, stderr


def _temp_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name)


@pytest.mark.parametrize("sig", list(STOPS), ids=lambda sig: signal.Signals(sig).name)
def test_generate_interrupted_exits_130_keeps_only_complete_faces_and_a_rerun_finishes(tmp_path, sig):
    masks, out = tmp_path / "masks", tmp_path / "out"
    masks.mkdir()
    for path in sorted(EXAMPLES.glob("[sh][ya]*")):  # the single-file example masks, 8 copies each: 384 faces
        for i in range(8):
            shutil.copy(path, masks / f"{path.stem}-{i:02d}{path.suffix}")
    code, stderr = _interrupted(["generate", str(masks), "--out", str(out)], lambda: any(out.glob("*.png")), sig)
    assert (code, stderr.strip().splitlines()[-1]) == STOPS[sig], stderr
    assert "Traceback" not in stderr
    made = sorted(out.iterdir())
    total = 4 * len(list(masks.iterdir()))
    assert 0 < len(made) < total and all(complete_png(p) for p in made), _temp_files(out)
    rerun = maskface_here("generate", str(masks), "--out", str(out), "--json")  # a plain run: in this process
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
    resumed = maskface_here(*args, "--resume", "--steps", str(logged[-1] + 1), "--json")  # a plain run: here
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["steps"] == logged[-1] + 1


def test_export_terminated_exits_143_and_leaves_no_folder(tiny_model, tmp_path):
    """SIGTERM here (Ctrl-C goes through the same clean-up, tested with generate and train)."""
    sig = signal.SIGTERM
    out = tmp_path / "onnx"
    code, stderr = _interrupted(
        ["export", str(tiny_model), "--out", str(out)], lambda: any(tmp_path.glob(".onnx.*.tmp")), sig
    )  # the temp folder is there: the first graph is being traced (torch.onnx's code runs when the signal lands)
    assert (code, stderr.strip().splitlines()[-1]) == STOPS[sig], stderr
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither the folder nor its temp folder


#: A command whose work is interrupted while Python runs a finalizer: the finalizer's KeyboardInterrupt is one
#: Python ignores ("Exception ignored in ..."), which would let the command run on to its end.
_INTERRUPT_IN_A_FINALIZER = """
import time
from maskface_rt import model_info


class Finalized:
    def __del__(self):
        raise KeyboardInterrupt  # as if Ctrl-C (or SIGTERM's handler) fired while this finalizer ran


def describe(path):
    Finalized()  # collected at once: its KeyboardInterrupt is ignored by Python
    for _ in range(3000):
        time.sleep(0.01)  # the main flow, where the interrupt must surface (30 s at most, if it never does)
    print("ran on to the end")
    return {}


model_info.describe = describe
"""


def test_an_interrupt_that_lands_in_a_finalizer_still_stops_the_command(tmp_path):
    done = maskface("info", str(tmp_path), prelude=_INTERRUPT_IN_A_FINALIZER, timeout=120)
    assert done.returncode == 130, done.stdout + done.stderr
    assert "ran on to the end" not in done.stdout and done.stderr.strip().splitlines()[-1] == "interrupted"


#: ``python -m`` on a command stopped inside code run from a string (``exec(source)``), as torch.onnx's and
#: dataclasses' code is: CPython takes the KeyboardInterrupt that left it for one that went unhandled.
_TERMINATED_INSIDE_EXEC = """
import os
import signal
import time

from maskface_rt import model_info
from maskface_rt.cli import main


def describe(path):
    exec("os.kill(os.getpid(), signal.SIGTERM)\\nfor _ in range(3000): time.sleep(0.01)")  # 30 s at most
    print("ran on to the end")
    return {}


model_info.describe = describe
main()
"""


def test_a_sigterm_that_lands_in_code_run_from_a_string_still_exits_143_not_by_sigint(tmp_path):
    """CPython would end such a process by killing it with SIGINT (exit -2) after the command's own exit."""
    (tmp_path / "stopped_in_exec.py").write_text(_TERMINATED_INSIDE_EXEC)
    command = [sys.executable, "-m", "stopped_in_exec", "info", str(tmp_path)]
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr.strip().splitlines()[-1]) == STOPS[signal.SIGTERM], done.stderr
    assert "ran on to the end" not in done.stdout and "Traceback" not in done.stderr
