"""One command for the day a GPU is lent (``make gpu-check``): every GPU figure of the project, in one folder.

    python benchmarks/gpu_check.py [--out DIR] [--budget-s 450] [--dry]

Steps, each in its own process with its own timeout (clamped to what is left of ``--budget-s``), each run
whatever happened to the ones before:

1. ``pytest -m gpu -q``: the kernel on CUDA vs its reference, the torch custom op, the CUDA-graph runner;
2. the fused AdaIN microbenchmark (benchmarks/fused_adain_bench.py) at paper-256's shapes, fp16, batch 1/8/32;
3. ``maskface bench`` CUDA rows (torch eager fp32/fp16/bf16, + fused kernel, CUDA graphs, torch.compile) for
   paper-256 and for tiny-64 (the bundled demo model's architecture, random weights: speed does not depend
   on training; the bundled model itself is an ONNX export, which only onnxruntime runs);
4. CUDA training speed: ``maskface train`` with AMP for a few dozen steps on ``maskface synth`` data, tiny-64
   and paper-256; it/s from log.jsonl (the median of the windows after the first, which holds the warm-up).

Writes to ``--out`` (default: $OUT when set, else out/gpu-check): summary.json (environment, each step's
command, exit status, time and figures), summary.md (the same as tables) and logs.tar.gz (every step's log
and raw JSON). Exit status: 0 every step ran, 1 some step failed or timed out, 4 no CUDA GPU (nothing ran).

``--dry`` (or GPU_CHECK_DRY=1) rehearses every step on the CPU at tiny sizes, so that the script itself is
tested where no GPU is (tests/test_gpu_check.py); GPU-only steps then fail or skip with their own message.
Runs on python 3.11+ (it uses -P) with the GPU machine's packages (../shared/GPU.md). The script imports
maskface_rt (its step runner, maskface_rt.benchmarking.steps): installed, or the checkout on PYTHONPATH, which
``make gpu-check`` sets where the package is not installed; the steps use the package as installed or, without an
install, through a folder of links that lays the checkout out as installed (export/ as maskface_rt.export).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

try:
    from maskface_rt.benchmarking.environment import cpu_isa, cpu_model
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
except ModuleNotFoundError as e:  # a checkout that was never installed, run without make
    sys.exit(f"gpu-check: {e}; install the checkout (pip install --no-deps -e .) or run make gpu-check")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BUDGET_S = 450.0  # the whole run stays under 8 minutes with the set-up and the archive

#: The CUDA rows of maskface bench, without and with torch.compile (compiling is slow: run apart, last).
BENCH_ROWS = "torch-fp32,torch-fp16,torch-bf16,torch-fused-fp16,torch-cudagraphs-fp16,torch-fused-cudagraphs-fp16"
BENCH_COMPILE_ROWS = "torch-compile-fp32,torch-compile-fp16"


def plan(work: Path, dry: bool) -> list[Step]:
    """The steps, in order of importance (the budget cuts the last ones first)."""
    device = "cpu" if dry else "cuda"
    bench_common = [
        "--batch-sizes",
        "1" if dry else "1,8,32",
        "--warmup-s",
        "0" if dry else "0.5",
        "--duration-s",
        "0.05" if dry else "1.5",
        "--iterations",
        "2" if dry else "10",
        "--rounds",
        "1" if dry else "3",
        "--device",
        device,
        "--seed",
        "0",
        "--overwrite",
    ]
    rows = "torch-fp32" if dry else BENCH_ROWS
    big = "tiny-64" if dry else "paper-256"  # dry: the small model stands in for paper-256

    def bench(name: str, preset: str, backends: str, timeout_s: int) -> Step:
        result = "bench_" + name.removeprefix("bench-").replace("-compile", "_compile") + ".json"
        args = ["-m", "maskface_rt", "bench", "--preset", preset, "--backend", backends, *bench_common]
        return Step(name, [*args, "--json-file", str(work / result)], timeout_s, result)

    steps = [
        Step(  # dry: the torch op's file alone (collecting every test file takes longer than its tests)
            "pytest-gpu",
            ["-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
            + [str(REPO / "tests" / "test_kernels_torch_op.py") if dry else str(REPO / "tests")],
            120,
        ),
        Step(
            "fused-adain",
            [
                str(REPO / "benchmarks" / "fused_adain_bench.py"),
                "--preset",
                big,
                "--json",
                str(work / "fused_adain.json"),
            ]
            + (["--batches", "1", "--no-compile"] if dry else []),
            120,
            "fused_adain.json",
        ),
        bench("bench-paper-256", big, rows, 150),
        bench("bench-tiny-64", "tiny-64", rows, 90),
    ]
    for preset, size, steps_n, batch in (("tiny-64", 64, 40, 8), ("paper-256", 256, 30, 8)):
        preset_run = "tiny-64" if dry else preset
        size_run = 64 if dry else size
        data = work / f"data-{size_run}"
        steps.append(
            Step(
                f"synth-{preset}",
                [
                    "-m",
                    "maskface_rt",
                    "synth",
                    str(data),
                    "--count",
                    "8" if dry else "64",
                    "--size",
                    str(size_run),
                    "--seed",
                    "0",
                    "--overwrite",
                ],
                60,
            )
        )
        steps.append(
            Step(
                f"train-{preset}",
                [
                    "-m",
                    "maskface_rt",
                    "train",
                    str(data),
                    "--out",
                    str(work / f"train-{preset}"),
                    "--preset",
                    preset_run,
                    "--steps",
                    "2" if dry else str(steps_n),
                    "--batch-size",
                    "2" if dry else str(batch),
                    "--device",
                    device,
                    "--amp",
                    "off" if dry else "auto",
                    "--log-every",
                    "1" if dry else "5",
                    "--sample-every",
                    "0",
                    "--checkpoint-every",
                    "0",
                    "--num-workers",
                    "0",
                    "--seed",
                    "0",
                ],
                150,
            )
        )
    steps.append(bench("bench-paper-256-compile", big, "torch-compile-fp32" if dry else BENCH_COMPILE_ROWS, 150))
    if dry:  # the CPU rehearsal runs on small shared machines: time matters less than finishing
        for step in steps:
            step.timeout_s *= 4
    return steps


# ----------------------------------------------------------------------------- figures


def adain_figures(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    rows = {}
    for row in data.get("rows", []):
        key = f"{tuple(row['shape'])} b{row['batch']}"
        rows[key] = {
            impl: {k: row[impl][k] for k in ("us", "gbs", "fraction_of_peak")}
            for impl in ("fused", "torch", "compile")
            if impl in row
        }
    return {"peak_gbs": data.get("peak_gbs"), "target_met": data.get("target_met"), "rows": rows}


def train_figures(run: Path) -> dict[str, Any]:
    """it/s of a short run: the median of the log windows after the first (which holds the warm-up)."""
    log = run / "log.jsonl"
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    rates = [float(e["it_s"]) for e in entries if "it_s" in e]
    steady = rates[1:] or rates
    return {
        "steps": entries[-1]["step"] if entries else 0,
        "it_per_s": statistics.median(steady) if steady else None,
        "windows_it_per_s": rates,
        "elapsed_s": entries[-1].get("elapsed_s") if entries else None,
    }


def collect_figures(step: Step, work: Path) -> None:
    try:
        if step.json_file and (work / step.json_file).is_file():
            reader = adain_figures if step.name == "fused-adain" else bench_figures
            step.figures = reader(work / step.json_file)
        elif step.name.startswith("train-") and (work / step.name / "log.jsonl").is_file():
            step.figures = train_figures(work / step.name)
    except (OSError, ValueError, KeyError, TypeError) as e:
        step.figures = {"error": f"could not read the figures: {e}"}


# ----------------------------------------------------------------------------- environment and package


PROBE = """
import json, platform, sys
out = {"python": sys.version.split()[0]}
for name in ("torch", "triton", "onnx", "onnxruntime", "numpy", "cuda.bindings", "maskface_rt"):
    try:
        module = __import__(name, fromlist=["_"])
        out[name] = getattr(module, "__version__", "installed")
    except Exception as e:
        out[name] = f"missing ({type(e).__name__})"
try:
    import maskface_rt.export, maskface_rt.kernels
    out["maskface_rt.export"] = "importable"
except Exception as e:
    out["maskface_rt.export"] = f"missing ({e})"
try:
    import torch
    out["cuda_available"] = torch.cuda.is_available()
    out["torch_cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
        out["capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
except Exception as e:
    out["cuda_available"] = False
    out["torch_error"] = str(e)
print(json.dumps(out))
"""


def probe(env: dict[str, str]) -> dict[str, Any]:
    text = run_text([sys.executable, "-c", PROBE], timeout=120, env=env)
    try:
        return json.loads(text.splitlines()[-1])
    except (ValueError, IndexError):
        return {"probe_error": text[-2000:]}


def no_gpu_line(label: str, found: dict[str, Any], dry_variable: str) -> str:
    """The one line of a check started where torch sees no CUDA GPU (``found``: what ``probe`` found)."""
    return (
        f"{label}: no CUDA GPU here (torch {found.get('torch')} sees none: "
        f"{found.get('torch_error') or 'torch.cuda.is_available() is False'}); run it on the GPU machine, "
        f"or rehearse it on the CPU with {dry_variable}=1"
    )


def write_environment(work: Path, env: dict[str, str]) -> None:
    """environment.txt in the work folder: nvidia-smi and pip freeze."""
    (work / "environment.txt").write_text(
        f"$ nvidia-smi\n{run_text(['nvidia-smi']) if shutil.which('nvidia-smi') else '(no nvidia-smi)'}\n\n"
        f"$ pip freeze\n{run_text([sys.executable, '-m', 'pip', 'freeze'], env=env)}\n"
    )


def package_env(work: Path) -> tuple[dict[str, str], str]:
    """The environment the steps run in, with maskface_rt importable as installed (export/ and kernels/ as
    maskface_rt.export and maskface_rt.kernels): as it is when installed, else through a folder of links."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    check = [sys.executable, "-P", "-c", "import maskface_rt.export, maskface_rt.kernels, maskface_rt.backends"]
    if subprocess.run(check, capture_output=True, env=env, cwd=tempfile.gettempdir()).returncode == 0:
        return env, "installed"
    layout = Path(tempfile.mkdtemp(prefix="maskface-gpu-check-")) / "maskface_rt"
    layout.mkdir()
    for entry in (REPO / "maskface_rt").iterdir():
        if entry.name != "__pycache__":
            (layout / entry.name).symlink_to(entry)
    (layout / "export").symlink_to(REPO / "export")
    (layout / "kernels").symlink_to(REPO / "kernels")
    env["PYTHONPATH"] = os.pathsep.join([str(layout.parent), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONSAFEPATH"] = "1"  # the checkout's own maskface_rt/ (no export/) must not shadow the layout
    return env, f"checkout through links in {layout.parent}"


# ----------------------------------------------------------------------------- report


def write_reports(out: Path, work: Path, summary: dict[str, Any], more_markdown: str = "") -> list[Path]:
    """summary.json, summary.md (``more_markdown`` at its end) and logs.tar.gz in ``out``, each written whole
    or not at all (a temporary file renamed into place)."""
    from maskface_rt.fileio import atomic_path

    out.mkdir(parents=True, exist_ok=True)
    summary_json, summary_md, archive = out / "summary.json", out / "summary.md", out / "logs.tar.gz"
    with atomic_path(summary_json, overwrite=True) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    with atomic_path(summary_md, overwrite=True) as tmp:
        tmp.write_text(markdown(summary) + more_markdown)
    with atomic_path(archive, overwrite=True) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(work.rglob("*")):
            if path.is_file() and (path.suffix in (".log", ".json", ".jsonl", ".txt")) and "data-" not in str(path):
                tar.add(path, arcname=str(path.relative_to(work)))
    return [summary_json, summary_md, archive]


def markdown(summary: dict[str, Any]) -> str:
    env = summary["environment"]
    lines = [
        f"# {summary.get('title', 'gpu-check')} {summary['started']}",
        "",
        f"GPU: {env.get('gpu', 'none')} (capability {env.get('capability', '-')}); torch {env.get('torch')} "
        f"(CUDA {env.get('torch_cuda')}), triton {env.get('triton')}, python {env.get('python')}; "
        f"commit {summary['commit']}; package: {summary['package']}; mode: {summary['mode']}",
        "",
        f"Host CPU: {summary['host']['cpu']} x {summary['host']['cpus']} ({', '.join(summary['host']['cpu_isa'])})",
        "",
        "| step | status | seconds | command |",
        "|---|---|---|---|",
    ]
    for step in summary["steps"]:
        lines.append(f"| {step['name']} | {step['status']} | {step['seconds']} | `{step['command']}` |")
    for step in summary["steps"]:
        figures = step["figures"]
        if not figures:
            continue
        lines += ["", f"## {step['name']}", ""]
        if step["name"].startswith("train-"):
            lines.append(f"{figures.get('it_per_s')} it/s (steady windows; all: {figures.get('windows_it_per_s')})")
        elif step["name"] == "fused-adain":
            lines.append(f"peak {figures.get('peak_gbs')} GB/s; target met: {figures.get('target_met')}")
            lines += ["", "| shape, batch | fused us | fused GB/s | torch us | compile us |", "|---|---|---|---|---|"]
            for key, row in figures.get("rows", {}).items():
                cell = [row.get(i, {}).get("us") for i in ("fused", "torch", "compile")]
                lines.append(
                    f"| {key} | {number(cell[0])} | {number(row.get('fused', {}).get('gbs'))} | {number(cell[1])} "
                    f"| {number(cell[2])} |"
                )
        else:
            lines += ["| backend, batch | images/s | median ms | note |", "|---|---|---|---|"]
            for key, row in figures.items():
                lines.append(
                    f"| {key} | {number(row.get('images_per_s'))} | {number(row.get('latency_median_ms'))} | "
                    f"{row.get('reason') or ''} |"
                )
    failed = [s for s in summary["steps"] if s["status"] != "ok" and s["tail"] != LEFT_OUT]
    if failed:
        lines += ["", "## Not ok", ""]
        for step in failed:
            lines += [f"### {step['name']}: {step['status']}", "", "```", step["tail"], "```", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = check_parser(
        __doc__,
        Path(os.environ.get("OUT") or REPO / "out" / "gpu-check"),
        f"seconds for all steps together [{DEFAULT_BUDGET_S:g}; dry: 4x]",
        "GPU_CHECK_DRY",
        "rehearse every step on the CPU at tiny sizes",
    )
    args = parser.parse_args(argv)
    try:
        chosen = chosen_steps(args.only, [step.name for step in plan(args.out, args.dry)])
    except ValueError as e:
        print(f"gpu-check: {e}", file=sys.stderr)
        return 2
    if args.budget_s is None:
        args.budget_s = DEFAULT_BUDGET_S * (4 if args.dry else 1)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    deadline = time.monotonic() + args.budget_s
    work = Path(tempfile.mkdtemp(prefix="gpu-check-work-"))
    try:
        env, package = package_env(work)
        if args.dry:
            env["CUDA_VISIBLE_DEVICES"] = ""  # the rehearsal never touches a GPU, even where there is one
        found = probe(env)
        if not args.dry and not found.get("cuda_available"):
            print(no_gpu_line("gpu-check", found, "GPU_CHECK_DRY"), file=sys.stderr)
            return 4
        write_environment(work, env)
        steps = plan(work, args.dry)
        ran = run_steps(
            steps, chosen, env, work, deadline, "gpu-check", lambda step: collect_figures(step, work), cwd=REPO
        )
        summary = {
            "started": started,
            "mode": "dry (CPU rehearsal)" if args.dry else "gpu",
            "package": package,
            "commit": run_text(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
            "host": host_info(),
            "environment": found,
            "budget_s": args.budget_s,
            "command": shlex.join(["python", "benchmarks/gpu_check.py", *(argv or sys.argv[1:])]),
            "steps": [asdict(s) for s in steps],
        }
        written = write_reports(args.out, work, summary)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0 if all(step.status == "ok" for step in ran.values()) else 1


def host_info() -> dict[str, Any]:
    """The host's CPU: its model and SIMD/matrix flags (AMX-BF16 there would let it run make bf16-check too)."""
    return {"machine": platform.machine(), "cpu": cpu_model(), "cpu_isa": cpu_isa(), "cpus": os.cpu_count()}


if __name__ == "__main__":
    sys.exit(main())
