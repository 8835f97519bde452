"""The step runner of the one-command hardware checks (``make gpu-check``, ``make bf16-check``: benchmarks/).

Each step runs in its own process and process group with its own timeout, clamped to what is left of the
check's budget, its output in logs/<step>.log of the work folder; a step runs whatever happened before it.
Only the standard library here: gpu_check.py imports it before it knows which of the package's runtimes (torch,
the exporter, the kernels) its steps can import.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LEFT_OUT = "left out (--only)"  # the tail of a step that --only did not choose


@dataclass
class Step:
    name: str
    args: list[str]  # after the python interpreter
    timeout_s: float
    json_file: str | None = None  # a result file the step writes into the work folder
    stdout_file: str | None = None  # the step's stdout goes to this file of the work folder, not its log
    accepted_codes: tuple[int, ...] = (0,)  # exit codes that make the step "ok"
    # filled in by run_step
    command: str = ""
    status: str = "not run"  # ok, failed, timed out, not run, interrupted
    returncode: int | None = None
    seconds: float = 0.0
    tail: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


def check_parser(doc: str, out: Path, budget_help: str, dry_variable: str, dry_help: str) -> argparse.ArgumentParser:
    """The options every check takes: --out, --budget-s (None: the check's default), --dry, --only."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--budget-s", type=float, default=None, help=budget_help)
    parser.add_argument(
        "--dry",
        action="store_true",
        default=os.environ.get(dry_variable, "") not in ("", "0"),
        help=f"{dry_help} (also {dry_variable}=1)",
    )
    parser.add_argument("--only", default="", help="comma-separated step names to run (default: all)")
    return parser


def chosen_steps(only: str, names: list[str]) -> set[str]:
    """The step names --only chose (empty: all); ValueError naming the unknown ones and the valid names."""
    chosen = {name for name in only.split(",") if name}
    unknown = chosen - set(names)
    if unknown:
        raise ValueError(f"unknown step(s) {', '.join(sorted(unknown))}; valid: {', '.join(names)}")
    return chosen


def run_steps(
    steps: list[Step],
    chosen: set[str],
    env: dict[str, str],
    work: Path,
    deadline: float,
    label: str,
    collect: Callable[[Step], None],
    cwd: Path | None = None,
) -> dict[str, Step]:
    """Run the chosen steps (all where none was chosen) in order, in ``cwd`` (None: this process's), collecting each
    one's figures; returns those run."""
    for step in steps:
        if chosen and step.name not in chosen:
            step.command, step.tail = shlex.join(["python", *step.args]), LEFT_OUT
            continue
        run_step(step, env, work, deadline, label, cwd)
        collect(step)
    return {step.name: step for step in steps if step.tail != LEFT_OUT}


def run_step(
    step: Step, env: dict[str, str], work: Path, deadline: float, label: str = "gpu-check", cwd: Path | None = None
) -> None:
    """Run one step to completion or its timeout, in ``cwd`` (None: this process's); fills in its command, status,
    return code, time and log tail."""
    left = deadline - time.monotonic()
    step.command = shlex.join(["python", *step.args])
    if left < 5:
        step.status, step.tail = "not run", "no time left in the budget"
        return
    timeout = min(step.timeout_s, left)
    log = work / "logs" / f"{step.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"{label}: {step.name} (timeout {timeout:.0f} s): {step.command}", file=sys.stderr, flush=True)
    start = time.monotonic()
    stdout_path = work / step.stdout_file if step.stdout_file else None
    with log.open("w") as out, stdout_path.open("w") if stdout_path else out as stdout:
        out.write(f"$ {step.command}\n")
        out.flush()
        proc = subprocess.Popen(
            [sys.executable, *step.args],
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is out else out,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        try:
            step.returncode = proc.wait(timeout=timeout)
            step.status = "ok" if step.returncode in step.accepted_codes else "failed"
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            step.status = "timed out"
        except BaseException:  # Ctrl-C, or SIGTERM made one by the check: the step's processes end with it
            _kill_group(proc)
            step.status, step.seconds = "interrupted", round(time.monotonic() - start, 1)
            step.tail = _tail(log)
            raise
    step.seconds = round(time.monotonic() - start, 1)
    step.tail = _tail(log)
    print(f"{label}: {step.name}: {step.status} in {step.seconds} s", file=sys.stderr, flush=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the step's own process group (start_new_session), nothing else
    except ProcessLookupError:
        pass
    proc.wait()


def _tail(log: Path, lines: int = 6) -> str:
    text = log.read_text(errors="replace").strip().splitlines()
    return "\n".join(text[-lines:])


def bench_figures(path: Path) -> dict[str, Any]:
    """images/s and median latency per backend and batch, from a maskface bench --json file."""
    data = json.loads(path.read_text())
    rows = {}
    for row in data.get("rows", []):
        key = f"{row.get('backend')} b{row.get('batch')}"
        if row.get("status") == "ok":
            rows[key] = {
                k: row.get(k)
                for k in ("images_per_s", "latency_median_ms", "gpu_ms", "tflops", "fraction_of_peak", "psnr_db")
                if row.get(k) is not None
            }
        else:
            rows[key if row.get("batch") is not None else str(row.get("backend"))] = {
                "status": row.get("status"),
                "reason": row.get("reason"),
            }
    return rows


def run_text(args: list[str], timeout: float = 30, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"({args[0]} failed: {e})"
    return (done.stdout + done.stderr).strip()


def number(value: Any) -> str:
    """A figure for a markdown table: 4 significant digits, or - where there is none."""
    return f"{value:.4g}" if isinstance(value, (int, float)) else "-"
