"""benchmarks/gpu_session.py (make gpu-session) rehearsed on the CPU, so that the one GPU call works the first time."""

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest
from script_support import benchmark_script

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_session.py"
STEPS = ["pytest-gpu", "fused-adain", "bench-paper-256", "synth", "train-calibrate", "train-demo"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "GPU_SESSION_DRY")}
    env.update(extra)
    return env


def _run(*args, env_extra=None, timeout=600):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=_env(**(env_extra or {})),
        timeout=timeout, cwd=REPO,
    )  # fmt: skip


def test_without_a_gpu_the_session_says_so_in_one_line_and_writes_nothing(tmp_path):
    pytest.importorskip("torch")
    done = _run("--out", str(tmp_path / "out"), env_extra={"CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 4, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("gpu-session: no CUDA GPU here (torch ") and "GPU_SESSION_DRY=1" in done.stderr
    assert not (tmp_path / "out").exists()


def test_an_unknown_step_is_refused_with_the_valid_names(tmp_path):
    done = _run("--dry", "--only", "synth,warp-drive", "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert f"unknown step(s) warp-drive; valid: {', '.join(STEPS)}" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_dry_rehearsal_runs_the_whole_call_on_the_cpu_and_brings_back_a_loadable_candidate(tmp_path):
    """Every step of the GPU call at tiny sizes: gpu-check's essential steps (the fused AdaIN microbenchmark needs
    CUDA: it fails with its own message and the session goes on), synth, a first training run stopped by its time
    limit, and its resumption to the planned step; at most 8 files, two folders down, 16 MiB each."""
    pytest.importorskip("torch")
    from maskface_rt.checkpoint import load_model, read_metadata

    out = tmp_path / "out"
    started = time.monotonic()
    done = _run(env_extra={"GPU_SESSION_DRY": "1", "OUT": str(out)})
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr  # fused-adain cannot run on the CPU
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "demo-candidate/config.json",
        "demo-candidate/log.jsonl",
        "demo-candidate/model.safetensors",
        "demo-candidate/samples.png",
        "logs.tar.gz",
        "summary.json",
        "summary.md",
    ]
    assert all((out / f).stat().st_size <= 16 * 2**20 for f in files)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "dry (CPU rehearsal)" and summary["stopped"] == "" and summary["not_reached"] == []
    by_name = {s["name"]: s for s in summary["steps"]}
    assert list(by_name) == STEPS
    assert all(by_name[name]["status"] == "ok" for name in STEPS if name != "fused-adain")
    assert "needs a CUDA GPU" in by_name["fused-adain"]["tail"]
    assert "--time-limit" in by_name["train-calibrate"]["command"] and "--resume" in by_name["train-demo"]["command"]
    training = summary["training"]
    assert training["calibrate"]["steps"] == 1  # stopped by its time limit after the first step
    assert training["demo_plan"]["steps"] == 2 and training["steps"] == 2
    assert summary["candidate"]["step"] == 2 and summary["candidate"]["dtype"] == "float32"
    model = out / "demo-candidate" / "model.safetensors"
    assert load_model(model).cfg.img_size == 64 and read_metadata(model)["step"] == "2"
    log = (out / "demo-candidate" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [1, 2]
    phases = summary["budget"]["phases_ended_at_s"]
    assert phases["setup"] < phases["check"] < phases["training"] <= phases["candidate"] < elapsed
    assert elapsed < summary["budget"]["budget_s"]
    md = (out / "summary.md").read_text()
    assert "## Demo-model training" in md and "make demo-candidate CKPT=" in md and "### fused-adain: failed" in md
    assert "## Left to make gpu-check" in md and "bench-tiny-64" in md
    with tarfile.open(out / "logs.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"environment.txt", "logs/train-calibrate.log", "logs/train-demo.log", "demo-run/log.jsonl"} <= names


def _processes_with(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (those a test started, and their children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc to find the session's processes")
def test_sigterm_stops_the_step_under_way_with_its_processes_and_reports_what_ran(tmp_path):
    pytest.importorskip("torch")
    out, marker = tmp_path / "out", f"GPU_SESSION_TEST={uuid.uuid4().hex}"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--dry", "--out", str(out)], stderr=subprocess.PIPE, text=True,
        env=_env(GPU_SESSION_TEST=marker.split("=")[1]), cwd=REPO,
    )  # fmt: skip
    try:
        for line in proc.stderr:
            if line.startswith("gpu-session: pytest-gpu (timeout"):
                break
        time.sleep(1.0)  # the step's process is under way
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 143, rest
    finally:
        proc.kill()
        proc.wait()
    assert "terminated (SIGTERM); writing the reports of what ran" in rest
    assert _processes_with(marker) == []  # the step's own process group ended with it
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == "terminated (SIGTERM)"
    assert [(s["name"], s["status"]) for s in summary["steps"]] == [("pytest-gpu", "interrupted")]
    assert summary["not_reached"] == STEPS[1:]
    assert not (out / "demo-candidate").exists()


def test_the_demo_run_is_planned_to_fill_the_time_left_with_the_cpu_demos_schedule():
    gpu_session = benchmark_script("gpu_session")
    recipe = gpu_session.RECIPE
    plan, why_not = gpu_session.demo_plan(reached=900, it_per_s=30.0, left_s=300.0, recipe=recipe)
    train_s = 300.0 - gpu_session.TRAIN_START_S
    assert why_not == "" and plan["time_limit_s"] == train_s
    assert plan["steps"] == 900 + int(30.0 * (train_s - gpu_session.WARMUP_S))
    assert plan["ds_decay_steps"] == round(plan["steps"] * 6000 / 11500)
    assert plan["lr_decay_start"] + plan["lr_decay_steps"] == plan["steps"]
    assert plan["lr_decay_steps"] == round(plan["steps"] * 1500 / 11500)
    assert gpu_session.demo_plan(0, None, 300.0, recipe) == ({}, "train-calibrate left no run to resume")
    assert gpu_session.demo_plan(900, 30.0, 40.0, recipe)[1].startswith("only 40 s left")
    step = gpu_session.demo_step(Path("d"), Path("r"), recipe, "cuda", plan, 275.0)
    assert step.args[step.args.index("--steps") + 1] == str(plan["steps"])
    assert step.args[step.args.index("--time-limit") + 1] == str(train_s) and step.timeout_s == 275.0


def test_the_budget_split_leaves_the_training_its_share_and_fits_the_call():
    """The check's steps end by CHECK_END_S whatever their own limits; after them, at least four minutes of the 570
    s remain for synth and the two training runs, less the end's reserve."""
    gpu_session = benchmark_script("gpu_session")
    assert gpu_session.DEFAULT_BUDGET_S <= 570
    training_floor = gpu_session.DEFAULT_BUDGET_S - gpu_session.CHECK_END_S - gpu_session.END_RESERVE_S
    assert training_floor >= 240
    assert max(gpu_session.CHECK_LIMITS.values()) <= gpu_session.CHECK_END_S


def test_a_model_over_the_file_limit_comes_back_in_half_precision_and_still_loads(tmp_path):
    torch = pytest.importorskip("torch")
    from maskface_rt.checkpoint import load_model, save_model
    from maskface_rt.config import preset
    from maskface_rt.model_info import read_safetensors_header
    from maskface_rt.networks import Nets

    gpu_session = benchmark_script("gpu_session")
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    torch.manual_seed(0)
    nets = Nets(preset("tiny-64"), with_discriminator=False)
    save_model(run / "model.safetensors", nets, step=7)
    (run / "log.jsonl").write_text('{"step": 7}\n')
    written = gpu_session.write_candidate(run, tmp_path / "out", limit=1000)
    assert written == {"written": ["log.jsonl", "model.safetensors"], "dtype": "float16", "step": 7}
    half = tmp_path / "out" / "model.safetensors"
    assert half.stat().st_size < 0.6 * (run / "model.safetensors").stat().st_size
    header = read_safetensors_header(half)
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"F16"}
    loaded = load_model(half)
    reference = nets.generator.state_dict()
    for key, value in loaded.generator.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, reference[key].half().float()), key
