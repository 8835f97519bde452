"""One command for a CPU that runs bf16 natively (``make bf16-check``): every figure the OpenVINO bf16 path owes.

    python benchmarks/bf16_check.py [--out DIR] [--budget-s 2400] [--dry] [--only STEPS]

On a CPU with AMX-BF16 or AVX512-BF16 (Intel Xeon from Sapphire Rapids on, AMD EPYC from Zen 4 on), each step
in its own process with its own timeout (maskface_rt/benchmarking/steps.py), each run whatever happened to the ones before:

1. bench-tiny-64, bench-paper-256: the committed ``maskface bench`` runs of benchmarks/README.md (the bundled
   model at batch 1 and 8, paper-256 at 8; onnxruntime fp32, OpenVINO fp32 and OpenVINO bf16 in one run),
   their JSON, CSV and PNG under the names they have in benchmarks/results/;
2. pytest-openvino: tests/test_openvino_backend.py, whose bf16 parity tests (PSNR >= 40 dB against
   onnxruntime fp32, mask consistency within 1 point) then run on the bf16 units;
3. demo: ``maskface generate`` of the bundled example masks with ``--backend auto``, as ``make demo`` runs it;
4. int8, int8-accuracy-control: benchmarks/openvino_int8.py, whose adoption verdict is decided only where bf16
   is native (needs ``pip install nncf==3.4.0``; not run without it).

Then the checks: OpenVINO bf16 / onnxruntime fp32 at batch 8 judged on paper-256 against this CPU's target
(>= 2.5x with AMX-BF16, >= 1.8x with AVX512-BF16 alone; maskface_rt.benchmarking.targets) and reported for the
bundled model, the bf16 parity tests passed on native bf16, ``--backend auto`` picked
OpenVINO bf16, and ``make demo`` installs the OpenVINO extra on this CPU (``make -n``).

Writes into ``--out`` (default out/bf16-check; it must not exist or be empty): the result files, logs/,
summary.json and summary.md; copy the result files into benchmarks/results/ to commit them. Exit status: 0
every check passed, 1 a step or a check failed, 2 bad option, 4 no OpenVINO or no native bf16 here (nothing
ran). ``--dry`` (or BF16_CHECK_DRY=1) rehearses every step at tiny sizes on any CPU (tests/test_bf16_check.py):
the backend auto picks and the Makefile's extra are checked against what this CPU should get; speed and
parity on native bf16 are "not judged" where bf16 is emulated, or where OpenVINO runs no bf16 at all (a CPU
without AVX-512: the bf16 rows are unavailable and the parity tests skip).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from maskface_rt.benchmarking.steps import (
    LEFT_OUT,
    Step,
    bench_figures,
    check_parser,
    chosen_steps,
    number,
    run_steps,
    run_text,
)
from maskface_rt.errors import ExitCode

REPO = Path(__file__).resolve().parent.parent

DEFAULT_BUDGET_S = 2400.0
BENCH_ROWS = "onnxruntime-cpu-fp32,openvino-cpu-fp32,openvino-cpu-bf16"
BF16_PARITY_TESTS = ("test_bf16_stays_within_40_db_of_onnxruntime_fp32", "test_bf16_keeps_the_mask_consistency")


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool | None  # None: this run cannot tell
    detail: str
    reported: bool = False  # a figure shown beside the targets, never judged (a real run needs it, not its value)

    def line(self) -> str:
        verdict = (
            "reported"
            if self.reported and self.passed is None
            else ({True: "pass", False: "FAIL", None: "not judged"}[self.passed])
        )
        return f"[{verdict}] {self.name}: {self.detail}"


def plan(out: Path, dry: bool, with_int8: bool) -> list[Step]:
    """The steps, in order of importance (the budget cuts the last ones first)."""
    timing = (
        ["--warmup-s", "0", "--duration-s", "0.05", "--iterations", "1", "--rounds", "1"]
        if dry
        else ["--warmup-s", "2"]
    )
    paper_timing = ["--duration-s", "10", "--iterations", "3"]  # a paper-256 batch of 8 takes seconds on 2 cores

    def bench(name: str, model: list[str], batches: str, extra: list[str], timeout_s: float) -> Step:
        stem = out / f"cpu_openvino_bench_{name}"
        args = ["-m", "maskface_rt", "bench", *model, "--batch-sizes", batches, *timing, *extra]
        args += ["--backend", BENCH_ROWS, "--device", "cpu", "--json-file", f"{stem}.json"]
        args += ["--csv", f"{stem}.csv", "--plot", f"{stem}.png"]
        # A rehearsal runs on any CPU: where OpenVINO runs no bf16 (no AVX-512), the bf16 row is unavailable and
        # bench exits PARTIAL; the speed checks say why. For real, only every row running is ok.
        accepted = (0, int(ExitCode.PARTIAL)) if dry else (0,)
        return Step(f"bench-{name}", args, timeout_s, f"{stem.name}.json", accepted_codes=accepted)

    bundled = ["--model", str(REPO / "maskface_rt" / "data" / "demo-model")]
    steps = [
        bench("tiny-64", bundled, "8" if dry else "1,8", [] if dry else ["--duration-s", "10"], 300),
        # dry: the small architecture stands in for paper-256 (same rows and batch)
        bench("paper-256", ["--preset", "tiny-64" if dry else "paper-256"], "8", [] if dry else paper_timing, 600),
        Step(
            "pytest-openvino",
            ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", f"--junitxml={out / 'pytest.xml'}"]
            + [str(REPO / "tests" / "test_openvino_backend.py")]
            + (["-k", " or ".join(BF16_PARITY_TESTS)] if dry else []),
            600,
        ),
        Step(
            "demo",
            ["-m", "maskface_rt", "generate", str(REPO / "examples" / "masks"), "--out", str(out / "demo")]
            + ["--grid", "--json"],
            300,
            stdout_file="demo.json",
        ),
    ]
    if with_int8:
        int8 = [str(REPO / "benchmarks" / "openvino_int8.py")]
        if dry:
            int8 += ["--seconds", "0.2", "--rounds", "1", "--calibration", "4"]
        plain, controlled = "cpu_openvino_int8_tiny-64.json", "cpu_openvino_int8_tiny-64_accuracy-control.json"
        steps.append(Step("int8", [*int8, "--json", str(out / plain)], 900, plain))
        control = ["--nncf-preset", "mixed", "--accuracy-control", "--json", str(out / controlled)]
        steps.append(Step("int8-accuracy-control", [*int8, *control], 1200, controlled))
    if dry:  # the rehearsal runs on small shared machines: time matters less than finishing
        for step in steps:
            step.timeout_s *= 2
    return steps


def int8_figures(path: Path) -> dict[str, Any]:
    """The adoption verdict of benchmarks/openvino_int8.py, with its speeds and int8's PSNR against fp32."""
    data = json.loads(path.read_text())
    return {
        "verdict": data.get("verdict"),
        "images_per_s": data.get("images_per_s"),
        "int8_psnr_db": data.get("quality", {}).get("openvino-int8", {}).get("psnr_db_vs_onnxruntime_fp32"),
        "checks": data.get("checks"),
    }


# ----------------------------------------------------------------------------- checks


def speed_checks(out: Path, steps: dict[str, Step]) -> list[Check]:
    """The bf16 target (maskface_rt.benchmarking.targets): judged on paper-256, reported for the bundled model."""
    from maskface_rt.benchmarking.environment import cpu_isa
    from maskface_rt.benchmarking.targets import BF16_BATCH, BF16_JUDGED, BF16_RATIOS, bf16_threshold, bf16_verdict

    flag, ratio = bf16_threshold(cpu_isa()) or ("emulated", BF16_RATIOS[-1][1])
    checks = []
    for name in ("tiny-64", "paper-256"):
        step = steps.get(f"bench-{name}")
        if step is None:
            continue
        report = out / f"cpu_openvino_bench_{name}.json"
        judged = name == BF16_JUDGED
        title = f"{name} batch {BF16_BATCH}: openvino-cpu-bf16 " + (
            f">= {ratio:g}x onnxruntime-cpu-fp32 ({flag})" if judged else "/ onnxruntime-cpu-fp32 (reported)"
        )
        if step.status != "ok" or not report.is_file():
            checks.append(Check(title, False, f"{step.name} {step.status}", reported=not judged))
            continue
        verdict = bf16_verdict(json.loads(report.read_text()))
        if verdict is None:
            checks.append(Check(title, False, f"{report.name} has no batch-{BF16_BATCH} bf16 row", not judged))
        else:
            value = "" if verdict.value is None else f"{verdict.value:.3g}x; "
            checks.append(Check(title, verdict.passed, value + verdict.detail, reported=not judged))
    return checks


def parity_check(out: Path, step: Step, native: bool) -> Check:
    title = "bf16 parity tests (PSNR >= 40 dB, mask consistency within 1 point) on native bf16"
    results = out / "pytest.xml"
    if not results.is_file():
        return Check(title, False, f"pytest-openvino {step.status}, no results")
    outcome = {}
    for case in ET.parse(results).getroot().iter("testcase"):
        name = case.get("name", "")
        if name.startswith(BF16_PARITY_TESTS):
            kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
            outcome[name] = kinds[0] if kinds else "passed"
    if len(outcome) != len(BF16_PARITY_TESTS):
        return Check(title, False, f"found {sorted(outcome)} in {results.name}")
    detail = ", ".join(f"{name}: {kind}" for name, kind in sorted(outcome.items()))
    kinds = set(outcome.values())
    if kinds == {"passed"}:
        return Check(title, True if native else None, detail + ("" if native else " (bf16 emulated here)"))
    if kinds == {"skipped"} and not native:  # they skip where OpenVINO compiles fp32 for a bf16 asked for
        return Check(title, None, detail + " (OpenVINO runs no bf16 on this CPU)")
    return Check(title, False, detail)


def demo_check(out: Path, step: Step, native: bool) -> Check:
    title = f"--backend auto picks {'OpenVINO bf16' if native else 'onnxruntime (no native bf16)'} (make demo's run)"
    try:
        backend = json.loads((out / "demo.json").read_text())["backend"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return Check(title, False, f"demo {step.status}, no JSON summary ({e})")
    picked = backend.startswith("openvino CPU bf16,") if native else backend.startswith("onnxruntime ")
    return Check(title, picked, f"backend: {backend}")


def makefile_check(native: bool) -> Check:
    title = f"make demo installs {'the openvino extra' if native else 'no extra'} on this CPU"
    with tempfile.TemporaryDirectory() as scratch:  # a venv folder that does not exist: make prints the install
        text = run_text(["make", "-n", "-C", str(REPO), "demo", f"RUN_VENV={scratch}/venv"])
    install = next(
        (line.strip() for line in text.splitlines() if "pip install" in line and "--upgrade" not in line), None
    )
    if install is None:
        return Check(title, False, f"make -n demo printed no install line: {text[-300:]}")
    return Check(title, ("[openvino]" in install) == native, install.replace(scratch, "RUN_VENV"))


# ----------------------------------------------------------------------------- report


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"# bf16-check {summary['started']}",
        "",
        f"CPU: {summary['cpu']} (ISA: {', '.join(summary['cpu_isa']) or '-'}); {summary['openvino']}; "
        f"commit {summary['commit']}; mode: {summary['mode']}",
        "",
        *(f"- {Check(**check).line()}" for check in summary["checks"]),
        "",
        "| step | status | seconds | command |",
        "|---|---|---|---|",
    ]
    lines += [f"| {s['name']} | {s['status']} | {s['seconds']} | `{s['command']}` |" for s in summary["steps"]]
    for step in summary["steps"]:
        if step["name"].startswith("bench-") and step["figures"]:
            lines += ["", f"## {step['name']}", "", "| backend, batch | images/s | median ms |", "|---|---|---|"]
            for key, row in step["figures"].items():
                lines.append(f"| {key} | {number(row.get('images_per_s'))} | {number(row.get('latency_median_ms'))} |")
    for step in summary["steps"]:
        if step["name"].startswith("int8") and step["figures"]:
            figures = step["figures"]
            speeds = ", ".join(f"{k} {number(v)}" for k, v in (figures.get("images_per_s") or {}).items())
            lines += ["", f"## {step['name']}: {figures.get('verdict')}", ""]
            lines.append(f"images/s: {speeds}; int8 PSNR vs fp32 {number(figures.get('int8_psnr_db'))} dB")
    for step in (s for s in summary["steps"] if s["status"] != "ok" and s["tail"] != LEFT_OUT):
        lines += ["", f"### {step['name']}: {step['status']}", "", "```", step["tail"], "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        chosen = _chosen_steps(args)
    except ValueError as e:
        return _refuse(str(e), 2)

    from maskface_rt.backends.openvino_backend import available
    from maskface_rt.backends.probes import NATIVE_BF16_ENV, cpu_native_bf16
    from maskface_rt.benchmarking.environment import cpu_model

    # This CPU's own answer, for this script and every step it runs: auto's choices are checked, not overridden.
    os.environ.pop(NATIVE_BF16_ENV, None)
    has_openvino, openvino_line = available()
    if not has_openvino:
        return _refuse(openvino_line, 4)
    native = cpu_native_bf16()
    if not native and not args.dry:
        return _refuse(
            f"this CPU ({cpu_model()}) has no AMX-BF16 or AVX512-BF16 ({openvino_line}): its bf16 would be "
            "emulated; run it on a CPU that has them, or rehearse it with BF16_CHECK_DRY=1",
            4,
        )

    with_int8 = importlib.util.find_spec("nncf") is not None
    started, deadline = time.strftime("%Y-%m-%dT%H:%M:%S%z"), time.monotonic() + args.budget_s
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    steps = plan(args.out, args.dry, with_int8)
    ran = run_steps(
        steps, chosen, env, args.out, deadline, "bf16-check", lambda step: _collect(step, args.out), cwd=REPO
    )
    checks = _checks(args.out, ran, native)
    summary = {
        "started": started,
        **_machine(args.dry, native, openvino_line, with_int8),
        "budget_s": args.budget_s,
        "command": shlex.join(["python", "benchmarks/bf16_check.py", *(argv if argv is not None else sys.argv[1:])]),
        "checks": [asdict(c) for c in checks],
        "steps": [asdict(s) for s in steps],
    }
    _write_summary(args.out, summary, checks)
    return _exit_status(args.dry, ran, checks)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = check_parser(
        __doc__,
        REPO / "out" / "bf16-check",
        f"seconds for all steps together [{DEFAULT_BUDGET_S:g}]",
        "BF16_CHECK_DRY",
        "rehearse every step at tiny sizes on any CPU",
    )
    args = parser.parse_args(argv)
    if args.budget_s is None:
        args.budget_s = DEFAULT_BUDGET_S
    return args


def _chosen_steps(args: argparse.Namespace) -> set[str]:
    """The steps --only chose, once every option is checked; ValueError: what is wrong with them."""
    if args.budget_s <= 0:
        raise ValueError(f"--budget-s must be > 0 seconds, got {args.budget_s:g}")
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise ValueError(f"--out {args.out}: exists and is not an empty folder; remove it or name another")
    return chosen_steps(args.only, [step.name for step in plan(args.out, args.dry, with_int8=True)])


def _checks(out: Path, ran: dict[str, Step], native: bool) -> list[Check]:
    """The checks of the steps that ran, then the Makefile's (which needs no step)."""
    checks = speed_checks(out, ran)
    if "pytest-openvino" in ran:
        checks.append(parity_check(out, ran["pytest-openvino"], native))
    if "demo" in ran:
        checks.append(demo_check(out, ran["demo"], native))
    checks.append(makefile_check(native))
    return checks


def _machine(dry: bool, native: bool, openvino_line: str, with_int8: bool) -> dict[str, Any]:
    """The summary's mode, commit, CPU and OpenVINO fields."""
    from maskface_rt.benchmarking.environment import cpu_isa, cpu_model

    return {
        "mode": "dry (rehearsal at tiny sizes)" if dry else "native bf16",
        "commit": run_text(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
        "cpu": cpu_model(),
        "cpu_isa": cpu_isa(),
        "native_bf16": native,
        "openvino": openvino_line,
        "int8": "run" if with_int8 else "not run: nncf is not installed (pip install nncf==3.4.0)",
    }


def _write_summary(out: Path, summary: dict[str, Any], checks: list[Check]) -> None:
    from maskface_rt.fileio import write_bytes_atomic, write_json_atomic

    write_json_atomic(out / "summary.json", summary)
    write_bytes_atomic(out / "summary.md", markdown(summary).encode())
    for check in checks:
        print(f"bf16-check: {check.line()}", file=sys.stderr)
    print(f"bf16-check: wrote {out}/summary.md and summary.json", file=sys.stderr)


def _exit_status(dry: bool, ran: dict[str, Step], checks: list[Check]) -> int:
    """1 when a step or a check failed; a real run also needs every target judged (a rehearsal cannot judge)."""
    if any(s.status != "ok" for s in ran.values()) or any(c.passed is False for c in checks):
        return 1
    return 0 if dry or all(c.passed for c in checks if not c.reported) else 1


def _collect(step: Step, out: Path) -> None:
    if step.json_file and step.status == "ok":
        reader = bench_figures if step.name.startswith("bench-") else int8_figures
        step.figures = reader(out / step.json_file)


def _refuse(message: str, code: int) -> int:
    print(f"bf16-check: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
