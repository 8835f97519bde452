"""benchmarks/bf16_check.py (make bf16-check) rehearsed here, so that it runs right the first time on a CPU with
native bf16; where this CPU has it, the refusal test skips and the rehearsal's checks are judged for real."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("openvino")

from openvino_support import openvino_runs_bf16  # noqa: E402
from script_support import benchmark_script  # noqa: E402

from maskface_rt.backends.probes import cpu_native_bf16  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "bf16_check.py"


def _run(*args, dry=False, timeout=900):
    env = {k: v for k, v in os.environ.items() if k != "BF16_CHECK_DRY"}
    if dry:
        env["BF16_CHECK_DRY"] = "1"
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO
    )


def test_without_native_bf16_it_says_so_in_one_line_and_writes_nothing(tmp_path):
    if cpu_native_bf16():
        pytest.skip("this CPU runs bf16 natively: the real check would run")
    done = _run("--out", str(tmp_path / "out"))
    assert done.returncode == 4, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("bf16-check: this CPU (") and "has no AMX-BF16 or AVX512-BF16" in done.stderr
    assert "BF16_CHECK_DRY=1" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "demo,warp-drive"], "unknown step(s) warp-drive; valid: bench-tiny-64, bench-paper-256, "),
        (["--budget-s", "0"], "--budget-s must be > 0 seconds, got 0"),
        (["--out", "{nonempty}"], "exists and is not an empty folder; remove it or name another"),
    ],
)
def test_bad_options_exit_2_before_any_work(tmp_path, args, message):
    nonempty = tmp_path / "old"
    nonempty.mkdir()
    (nonempty / "summary.json").write_text("{}")
    args = [arg.format(nonempty=nonempty) for arg in args]
    done = _run(*(args if "--out" in args else [*args, "--out", str(tmp_path / "out")]), dry=True)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and (nonempty / "summary.json").read_text() == "{}"


@pytest.mark.slow
def test_dry_run_executes_its_steps_and_checks_what_this_cpu_should_get(tmp_path):
    """Every step at tiny sizes: both benches (tiny-64 stands in for paper-256), the bf16 parity tests, the demo's
    backend choice, make demo's install line; int8 only where NNCF is installed."""
    out = tmp_path / "out"
    done = _run("--out", str(out), dry=True)
    native = cpu_native_bf16()  # the script asks the CPU itself, whatever $MASKFACE_NATIVE_BF16 says here
    summary = json.loads((out / "summary.json").read_text())
    checks = {c["name"]: c for c in summary["checks"]}
    assert summary["mode"] == "dry (rehearsal at tiny sizes)" and summary["native_bf16"] is native
    names = [s["name"] for s in summary["steps"]]
    assert names[:4] == ["bench-tiny-64", "bench-paper-256", "pytest-openvino", "demo"]
    assert all(s["status"] == "ok" for s in summary["steps"]), summary["steps"]
    for stem in ("cpu_openvino_bench_tiny-64", "cpu_openvino_bench_paper-256"):
        assert {p.name for p in out.glob(f"{stem}.*")} == {f"{stem}.{s}" for s in ("json", "csv", "png")}
    rows = summary["steps"][0]["figures"]
    bf16_row = "openvino-cpu-bf16 b8" if openvino_runs_bf16() else "openvino-cpu-bf16"  # else: unavailable, no batch
    assert set(rows) == {"onnxruntime-cpu-fp32 b8", "openvino-cpu-fp32 b8", bf16_row}, rows
    speed = [c for name, c in checks.items() if "openvino-cpu-bf16" in name]
    assert len(speed) == 2 and [c["reported"] for c in speed] == [True, False]  # tiny-64 reported, paper-256 judged
    expected = {"avx512_bf16": "1.8x", "amx_bf16": "2.5x"}
    ratio = next((expected[flag] for flag in ("amx_bf16", "avx512_bf16") if flag in summary["cpu_isa"]), "1.8x")
    assert f">= {ratio} onnxruntime-cpu-fp32" in speed[1]["name"], speed[1]
    parity = next(c for name, c in checks.items() if name.startswith("bf16 parity tests"))
    # Where OpenVINO cannot execute bf16 at all (no AVX-512: it compiles fp32), its parity tests skip, and say so.
    assert parity["detail"].count(": passed" if openvino_runs_bf16() else ": skipped") == 2, parity
    if not native:  # emulated bf16, or none: speed and parity cannot be judged here, and both say why
        ran = "bf16 emulated, measured " if openvino_runs_bf16() else "unavailable: OpenVINO runs no bf16 on this CPU"
        assert all(c["passed"] is None and ran in c["detail"] for c in speed), speed
        why = "(bf16 emulated here)" if openvino_runs_bf16() else "(OpenVINO runs no bf16 on this CPU)"
        assert parity["passed"] is None and parity["detail"].endswith(why), parity
    demo = checks[
        f"--backend auto picks {'OpenVINO bf16' if native else 'onnxruntime (no native bf16)'} (make demo's run)"
    ]
    assert demo["passed"] is True, demo
    make = checks[f"make demo installs {'the openvino extra' if native else 'no extra'} on this CPU"]
    assert make["passed"] is True and "pip install" in make["detail"], make
    assert done.returncode == (0 if all(c["passed"] is not False for c in checks.values()) else 1), done.stderr
    md = (out / "summary.md").read_text()
    assert "| demo | ok |" in md and "## bench-tiny-64" in md and bf16_row in md
    assert (out / "logs" / "demo.log").is_file() and json.loads((out / "demo.json").read_text())["images_written"]


def test_parity_check_reads_skips_and_failures_from_the_junit_file(tmp_path):
    bf16_check = benchmark_script("bf16_check")
    step = bf16_check.Step("pytest-openvino", [], 1, status="ok")

    def junit(outcomes: dict[str, str]) -> None:
        cases = "".join(
            f'<testcase name="{name}">' + ("" if kind == "passed" else f"<{kind}/>") + "</testcase>"
            for name, kind in outcomes.items()
        )
        (tmp_path / "pytest.xml").write_text(f"<testsuites><testsuite>{cases}</testsuite></testsuites>")

    a, b = bf16_check.BF16_PARITY_TESTS[0], bf16_check.BF16_PARITY_TESTS[1] + "_within_one_point"
    junit({a: "passed", b: "passed", "test_other": "failure"})
    assert bf16_check.parity_check(tmp_path, step, native=True).passed is True
    assert bf16_check.parity_check(tmp_path, step, native=False).passed is None
    junit({a: "passed", b: "skipped"})
    check = bf16_check.parity_check(tmp_path, step, native=True)
    assert check.passed is False and f"{b}: skipped" in check.detail
    junit({a: "passed"})
    assert bf16_check.parity_check(tmp_path, step, native=True).passed is False
    (tmp_path / "pytest.xml").unlink()
    assert bf16_check.parity_check(tmp_path, step, native=True).line().startswith("[FAIL] bf16 parity tests")
