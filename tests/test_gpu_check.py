"""benchmarks/gpu_check.py (make gpu-check) rehearsed on the CPU, so that it runs right the first time on a GPU."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from script_support import benchmark_script

from maskface_rt.benchmarking.steps import Step, bench_figures, run_step

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _run(*args, env_extra=None, timeout=900):
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "GPU_CHECK_DRY")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO
    )


def test_without_a_gpu_it_says_so_in_one_line_and_writes_nothing(tmp_path):
    pytest.importorskip("torch")
    done = _run("--out", str(tmp_path / "out"), env_extra={"CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 4, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("gpu-check: no CUDA GPU here (torch ") and "GPU_CHECK_DRY=1" in done.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_step_is_refused(tmp_path):
    done = _run("--dry", "--only", "bench-tiny-64,warp-drive", "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "unknown step(s) warp-drive; valid: pytest-gpu, fused-adain" in done.stderr


@pytest.mark.slow
def test_dry_run_executes_its_steps_on_the_cpu_and_reports_them(tmp_path):
    """The rehearsal runs the real steps at tiny sizes: synth, training, maskface bench, and the fused AdaIN
    benchmark (which needs CUDA: it fails with its own message, and the run goes on)."""
    pytest.importorskip("torch")
    out = tmp_path / "out"
    steps = "fused-adain,bench-tiny-64,synth-tiny-64,train-tiny-64"
    done = _run("--only", steps, env_extra={"GPU_CHECK_DRY": "1", "OUT": str(out)})
    assert done.returncode == 1, done.stderr  # fused-adain cannot run on the CPU
    assert sorted(p.name for p in out.iterdir()) == ["logs.tar.gz", "summary.json", "summary.md"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "dry (CPU rehearsal)" and summary["environment"]["cuda_available"] is False
    assert summary["host"]["cpu"] and isinstance(summary["host"]["cpu_isa"], list)
    by_name = {s["name"]: s for s in summary["steps"]}
    assert [s["name"] for s in summary["steps"]][:4] == [
        "pytest-gpu",
        "fused-adain",
        "bench-paper-256",
        "bench-tiny-64",
    ]
    assert by_name["pytest-gpu"]["tail"] == "left out (--only)" and by_name["pytest-gpu"]["status"] == "not run"
    adain = by_name["fused-adain"]
    assert adain["status"] == "failed" and "needs a CUDA GPU" in adain["tail"]
    bench = by_name["bench-tiny-64"]
    assert bench["status"] == "ok" and bench["command"].startswith("python -m maskface_rt bench --preset tiny-64")
    assert bench["figures"]["torch-fp32 b1"]["images_per_s"] > 0
    train = by_name["train-tiny-64"]
    assert train["status"] == "ok" and train["figures"]["steps"] == 2 and train["figures"]["it_per_s"] > 0
    md = (out / "summary.md").read_text()
    assert "| train-tiny-64 | ok |" in md and "## Not ok" in md and "### fused-adain: failed" in md
    assert "### pytest-gpu" not in md  # left out by --only: not a failure
    with tarfile.open(out / "logs.tar.gz") as tar:
        names = set(tar.getnames())
    assert {
        "environment.txt",
        "logs/bench-tiny-64.log",
        "logs/train-tiny-64.log",
        "bench_tiny-64.json",
        "train-tiny-64/log.jsonl",
    } <= names
    assert len(list(out.iterdir())) <= 8


def test_figures_from_result_files(tmp_path):
    gpu_check = benchmark_script("gpu_check")
    run = tmp_path / "train"
    run.mkdir()
    (run / "log.jsonl").write_text(
        "".join(
            json.dumps({"step": 5 * i, "elapsed_s": i, "it_s": rate}) + "\n"
            for i, rate in enumerate([0.5, 4.0, 5.0, 6.0], 1)
        )
    )
    figures = gpu_check.train_figures(run)
    assert figures["it_per_s"] == 5.0 and figures["steps"] == 20  # the warm-up window left out
    bench = tmp_path / "bench.json"
    bench.write_text(
        json.dumps(
            {
                "rows": [
                    {
                        "backend": "torch-fp16",
                        "batch": 8,
                        "status": "ok",
                        "images_per_s": 900.0,
                        "latency_median_ms": 8.9,
                    },
                    {"backend": "torch-bf16", "batch": None, "status": "unavailable", "reason": "no bf16"},
                ]
            }
        )
    )
    rows = bench_figures(bench)
    assert rows == {
        "torch-fp16 b8": {"images_per_s": 900.0, "latency_median_ms": 8.9},
        "torch-bf16": {"status": "unavailable", "reason": "no bf16"},
    }
    step = Step("bench-x", ["-c", "pass"], 10)
    run_step(step, dict(os.environ), tmp_path, deadline=0)  # the budget is spent: not run
    assert step.status == "not run" and step.tail == "no time left in the budget"
    slow = Step("sleeper", ["-c", "import time; print('started', flush=True); time.sleep(60)"], 2)
    import time

    run_step(slow, dict(os.environ), tmp_path, deadline=time.monotonic() + 100)
    # Ended by its 2 s limit: it returned long before the 60 s the step would have slept (whatever the load).
    assert slow.status == "timed out" and slow.seconds < 60 and "started" in slow.tail
