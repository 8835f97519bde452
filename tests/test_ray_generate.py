"""`maskface generate --ray` on one local Ray instance (2 CPUs) for the whole module: the same bytes, names,
report and exit codes as a local run; references, bad masks, resume and --overwrite, option errors. The CLI
in its own process (its own Ray instance) for a worker killed mid-run and Ctrl-C; Ray not installed."""

import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maskface_rt.bundled import default_model
from maskface_rt.errors import MaskfaceError
from maskface_rt.generation.pipeline import run_generate
from maskface_rt.generation.plan import GenerateOptions, complete_png

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'maskface-rt[ray]')")
# make test's pytest-xdist --dist loadfile runs a module's tests in one worker process: one Ray instance.
pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "masks"
WORKER_TITLE = b"ray::MapWorker(MapBatches(MaskWorker))"


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    """One local instance for the module: run_generate_ray and the in-process CLI join it instead of starting
    their own. Its workers (and those of the CLI runs below, which inherit the variable) run at normal
    priority, not Ray's default nice 15: the suite shares the cores with another pytest-xdist worker."""
    os.environ["RAY_worker_niceness"] = "0"
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)  # never a cluster
    yield
    ray.shutdown()
    del os.environ["RAY_worker_niceness"]


@pytest.fixture(scope="module")
def backend():
    from maskface_rt.backends import open_backend

    with open_backend(default_model(), "onnxruntime") as runtime:
        yield runtime


def _masks(folder: Path, copies: int = 1) -> Path:
    """The example masks of one file each (synth*, hand*: 12, five formats), each ``copies`` times."""
    folder.mkdir()
    for path in sorted(EXAMPLES.glob("[sh][ya]*")):
        for i in range(copies):
            shutil.copy(path, folder / (path.name if copies == 1 else f"{path.stem}-{i}{path.suffix}"))
    return folder


def _ray(mask_dir: Path, opts: GenerateOptions, **ray_options):
    from maskface_rt.generation.distributed import RayOptions, WorkerModel, run_generate_ray

    return run_generate_ray(mask_dir, opts, WorkerModel(str(default_model()), "onnxruntime"), RayOptions(**ray_options))


def _same_files(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_same_bytes_names_and_json_as_local(tmp_path, backend):
    from maskface_rt.cli import app

    masks = EXAMPLES  # five file formats and one CelebAMask-HQ mask of per-part files (00010_*.png)
    local = run_generate(backend, masks, GenerateOptions(out=tmp_path / "local", styles=3, seed=7))
    assert local.masks == 13
    done = CliRunner().invoke(
        app,
        ["generate", str(masks), "--out", str(tmp_path / "ray"), "--styles", "3", "--seed", "7"]
        + ["--backend", "onnxruntime", "--batch-size", "5", "--ray", "--json"],
    )
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert set(summary) == set(local.to_json()) | {"cluster", "per_worker"}
    assert summary["images_written"] == local.images_written == 3 * local.masks
    assert summary["backend"] == local.backend
    assert [Path(p).name for p in summary["outputs"]] == [Path(p).name for p in local.outputs]
    assert summary["cluster"]["cpus"] == 2 and summary["cluster"]["workers"] == 2
    assert sum(summary["per_worker"].values()) == summary["images_written"]
    _same_files(tmp_path / "local", tmp_path / "ray")


def test_openvino_workers_give_the_local_bytes(tmp_path):
    """An OpenVINO worker that runs one image per call gives the bytes of local batches of 8: a single item must
    not round differently from a batch (the backend's batch-of-one padding). With two threads, as locally: on one
    thread OpenVINO's kernels for one item agreed with a batch's even without the padding, so 1-CPU workers hide it."""
    pytest.importorskip("openvino")
    from maskface_rt.backends import open_backend
    from maskface_rt.cli import app

    with open_backend(default_model(), "openvino") as runtime:
        local = run_generate(runtime, EXAMPLES, GenerateOptions(out=tmp_path / "local", styles=2, seed=3))
    done = CliRunner().invoke(
        app,
        ["generate", str(EXAMPLES), "--out", str(tmp_path / "ray"), "--styles", "2", "--seed", "3"]
        + ["--backend", "openvino", "--batch-size", "1", "--ray", "--cpus-per-worker", "2", "--json"],
    )
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["backend"] == local.backend and local.backend.startswith("openvino CPU ")
    assert summary["images_written"] == local.images_written == 26
    _same_files(tmp_path / "local", tmp_path / "ray")


def test_styles_from_a_reference_photo_match_local(tmp_path, backend):
    masks = _masks(tmp_path / "masks")
    run_generate(backend, masks, GenerateOptions(out=tmp_path / "faces", styles=1))
    photo = shutil.copy(sorted((tmp_path / "faces").iterdir())[0], tmp_path / "photo.png")
    local = run_generate(backend, masks, GenerateOptions(out=tmp_path / "local", references=(photo,)))
    report = _ray(masks, GenerateOptions(out=tmp_path / "ray", references=(photo,)))
    assert report.images_written == local.images_written == local.masks
    assert all(Path(p).name.endswith("_ref-photo.png") for p in report.outputs)
    _same_files(tmp_path / "local", tmp_path / "ray")


def test_bad_masks_are_skipped_by_name_and_the_rest_completes(tmp_path, backend):
    masks = _masks(tmp_path / "masks")
    (masks / "broken.png").write_bytes(b"not a png")
    (masks / "words.png").write_text("text")
    local = run_generate(backend, masks, GenerateOptions(out=tmp_path / "local", styles=2))
    report = _ray(masks, GenerateOptions(out=tmp_path / "ray", styles=2))
    assert int(report.exit_code) == 3 == int(local.exit_code)
    assert [s.path for s in report.skipped] == [str(masks / "broken.png"), str(masks / "words.png")]
    assert report.skipped == local.skipped and report.masks_skipped == 2
    assert report.images_written == local.images_written > 0
    _same_files(tmp_path / "local", tmp_path / "ray")


def test_resume_makes_only_the_missing_outputs(tmp_path, backend):
    masks = _masks(tmp_path / "masks")
    opts = GenerateOptions(out=tmp_path / "ray", styles=2)
    first = _ray(masks, opts)
    outputs = sorted((tmp_path / "ray").iterdir())
    expected = {p.name: p.read_bytes() for p in outputs}
    outputs[0].unlink()
    outputs[3].unlink()
    outputs[5].write_bytes(expected[outputs[5].name][:100])  # truncated: not a complete PNG, remade
    again = _ray(masks, opts)
    assert again.images_written == 3 and again.images_existing == first.images_written - 3
    assert sorted(Path(p).name for p in again.outputs) == sorted(p.name for p in (outputs[0], outputs[3], outputs[5]))
    assert {p.name: p.read_bytes() for p in (tmp_path / "ray").iterdir()} == expected
    nothing = _ray(masks, opts)
    assert nothing.images_written == 0 and nothing.images_existing == first.images_written
    remade = _ray(masks, dataclasses.replace(opts, overwrite=True))
    assert remade.images_written == first.images_written and remade.images_existing == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "ray").iterdir()} == expected


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state; the name may hold spaces


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid and pid != ancestor:
        pid = _parent(pid) or 0
    return pid == ancestor


def _worker_pids(under: int, past_init: bool = True) -> list[int]:
    """Pids of the actors (those past their constructor) that descend from process ``under`` (the driver whose
    Ray instance started them; never another user's workers): Ray titles each process by what it runs."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except (OSError, ValueError):
            continue
        if title.startswith(WORKER_TITLE) and not (past_init and b"__init__" in title):
            if _descends_from(int(entry.name), under):
                pids.append(int(entry.name))
    return pids


def _cli(masks: Path, out: Path, *args: str) -> list[str]:
    """``maskface generate MASKS --out OUT --ray ...`` in its own process, which starts its own Ray instance, on
    onnxruntime like the local runs it is compared with."""
    command = ["generate", str(masks), "--out", str(out), "--ray", "--backend", "onnxruntime", *args]
    return [sys.executable, "-m", "maskface_rt", *command]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"NO_COLOR": "1"}


def test_a_worker_killed_mid_run_does_not_fail_it(tmp_path, backend):
    """The CLI as users run it: a worker killed with SIGKILL once outputs appear; its batch is rerun."""
    masks, out = _masks(tmp_path / "masks", copies=4), tmp_path / "ray"
    command = _cli(masks, out, "--styles", "2", "--batch-size", "2", "--workers", "1", "--json")
    killed = None
    with subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as driver:
        deadline = time.monotonic() + 120
        while driver.poll() is None and time.monotonic() < deadline:
            pids = _worker_pids(under=driver.pid)
            if pids and any(out.glob("*.png")):
                killed = pids[0]
                os.kill(killed, signal.SIGKILL)
                before = set(_worker_pids(under=driver.pid, past_init=False)) | {killed}
                break
            time.sleep(0.02)
        stdout, stderr = driver.communicate(timeout=300)
    assert killed is not None, "no worker was seen mid-run"
    assert driver.returncode == 0, stderr
    report = json.loads(stdout)  # stdout holds the report only: Ray's worker-death messages stay in its logs
    total = 2 * len(list(masks.iterdir()))
    assert report["images_written"] + report["images_existing"] == total
    # The restarted worker (a new process) ran the killed one's batch: the kill was mid-run.
    assert {int(w.rsplit(":", 1)[1]) for w in report["per_worker"]} - before
    written = sorted(out.iterdir())
    assert len(written) == total and all(p.suffix == ".png" and complete_png(p) for p in written)  # no temp files
    run_generate(backend, masks, GenerateOptions(out=tmp_path / "local", styles=2))
    _same_files(tmp_path / "local", out)


def test_option_errors_exit_2_naming_the_flag(tmp_path):
    from maskface_rt.cli import app

    masks = _masks(tmp_path / "masks")
    for args, flag in (
        (["--ray", "--ray-workers", "0"], "--ray-workers"),
        (["--ray", "--cpus-per-worker", "0"], "--cpus-per-worker"),
        (["--ray", "--gpus-per-worker", "-1"], "--gpus-per-worker"),
        (["--ray-workers", "2"], "--ray-workers"),
        (["--gpus-per-worker", "1", "--ray-address", "auto"], "--ray-address, --gpus-per-worker"),
        (["--ray", "--grid"], "--grid"),
        (["--ray", "--model", "s3://bucket/model"], "URIs are not supported"),
    ):
        done = CliRunner().invoke(app, ["generate", str(masks), "--out", str(tmp_path / "out"), *args])
        assert done.exit_code == 2, (args, done.output)
        assert flag in done.output, (args, done.output)
    assert not (tmp_path / "out").exists()
    with pytest.raises(MaskfaceError, match="^ray.gpus_per_worker: each worker needs 1 GPUs but the Ray cluster has 0"):
        _ray(masks, GenerateOptions(out=tmp_path / "out"), gpus_per_worker=1)


def test_without_ray_one_line_says_how_to_install_it(tmp_path):
    fake = tmp_path / "no-ray"
    fake.mkdir()
    (fake / "ray.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    masks = _masks(tmp_path / "masks")
    done = subprocess.run(
        [sys.executable, "-m", "maskface_rt", "generate", str(masks), "--out", str(tmp_path / "out"), "--ray"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(fake)},
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: --ray: a Ray run needs Ray Data (No module named 'ray'): pip install 'maskface-rt[ray]'"
    ]
    assert not (tmp_path / "out").exists()


def test_ctrl_c_stops_the_workers_exit_130_and_a_rerun_completes(tmp_path):
    masks, out = _masks(tmp_path / "masks", copies=4), tmp_path / "out"
    command = _cli(masks, out, "--batch-size", "2", "--json")
    with subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as driver:
        deadline = time.monotonic() + 120
        while driver.poll() is None and time.monotonic() < deadline and not any(out.glob("*.png")):
            time.sleep(0.05)
        driver.send_signal(signal.SIGINT)
        _, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, stderr
    assert "Traceback" not in stderr
    made = sorted(out.iterdir())
    total = 4 * len(list(masks.iterdir()))
    assert 0 < len(made) < total and all(complete_png(p) for p in made)  # no temp files, no partial PNGs
    report = _ray(masks, GenerateOptions(out=out, batch_size=2))  # the rerun, on the module's Ray instance
    assert int(report.exit_code) == 0
    assert report.images_existing == len(made) and report.images_written == total - len(made)


def test_an_unreachable_address_is_one_line_within_seconds(tmp_path):
    command = _cli(_masks(tmp_path / "masks"), tmp_path / "out", "--ray-address", "127.0.0.1:1")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env={"NO_COLOR": "1"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: --ray-address: cannot reach a Ray cluster at 127.0.0.1:1 (Connection refused)"
    ]
    assert not (tmp_path / "out").exists()
