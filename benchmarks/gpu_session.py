"""One call on the GPU machine that measures and trains (``make gpu-session``): gpu-check's essential steps, then a
demo-model training run with the time that is left, everything in one folder.

    python benchmarks/gpu_session.py [--out DIR] [--budget-s 570] [--dry] [--only STEPS]

The steps, each in its own process with its own time limit (benchmarks/README.md, "gpu-session", says why these
limits), each run whatever happened to the ones before:

1. gpu-check's essential steps, as ``make gpu-check`` plans them, until CHECK_END_S after the start:
   ``pytest -m gpu`` (the kernel and the CUDA paths, never yet run on a GPU), the fused AdaIN microbenchmark and
   ``maskface bench``'s CUDA rows for paper-256. gpu-check's other steps (tiny-64 rows, training speed, the
   torch.compile rows) are left to ``make gpu-check``: the training below measures tiny-64's speed anyway;
2. ``synth``: ``maskface synth`` training data on every core (RECIPE.pairs pairs at 64 px, seed 0);
3. ``train-calibrate``: ``maskface train`` tiny-64 at batch RECIPE.batch with bf16 autocast, stopped by its
   ``--time-limit`` after RECIPE.calibrate_s s: a first model, and the speed that sets the next step's length;
4. ``train-demo``: the same run resumed to as many steps as that speed fits into the time left (less
   END_RESERVE_S), with the CPU demo's schedule scaled to that length (the diversity weight to 0 by 52% of it, the
   learning rates to 0 over its last 13%), and ``--time-limit`` so that it ends in time whatever its speed;
   a checkpoint every RECIPE.checkpoint_every steps, so that even a killed run leaves a usable model.

Writes to ``--out`` (default: $OUT when set, else out/gpu-session), each file whole or not at all:
summary.json and summary.md (what ran, what did not and why, the figures, the budget), logs.tar.gz (every
step's log and raw JSON, nvidia-smi, pip freeze, the run's log and config), and the demo candidate in
demo-candidate/: model.safetensors (the EMA inference weights, fp16 where fp32 would pass 16 MiB), log.jsonl
(the training log), config.json and samples.png (the last sample grid). On the CPU afterwards,
``make demo-candidate CKPT=<out>/demo-candidate/model.safetensors`` judges it against the bundled model.

Exit status: 0 every step ran and a candidate was written; 1 some step failed or timed out, or no candidate
(the reports say which and why); 2 bad option; 4 no CUDA GPU (nothing ran, nothing written); 130 interrupted
(Ctrl-C), 143 terminated (SIGTERM): the step under way is stopped with its processes, and the reports of what ran
are written. ``--dry`` (or GPU_SESSION_DRY=1) rehearses the whole call on the CPU at tiny sizes
(tests/test_gpu_session.py). Run like gpu-check: the package installed, or the checkout on PYTHONPATH.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

try:
    import gpu_check  # the sibling script: gpu-check's plan, probe, package layout and reports

    from maskface_rt.benchmarking.steps import LEFT_OUT, Step, check_parser, chosen_steps, run_step, run_text
    from maskface_rt.errors import Termination
except ModuleNotFoundError as e:  # a checkout that was never installed, run without make
    sys.exit(f"gpu-session: {e}; install the checkout (pip install --no-deps -e .) or run make gpu-session")

REPO = Path(__file__).resolve().parent.parent
LABEL = "gpu-session"

# The budget split, in seconds (benchmarks/README.md, "gpu-session", gives the reasons and the rehearsal's times).
DEFAULT_BUDGET_S = 570.0  # the whole call, from the script's start: 20 s under the run's limit of about 590 s
CHECK_END_S = 300.0  # gpu-check's essential steps end by then (seconds from the start), whatever their own limits
CHECK_LIMITS = {"pytest-gpu": 100.0, "fused-adain": 90.0, "bench-paper-256": 150.0}  # each step's own limit
SYNTH_LIMIT_S = 60.0
END_RESERVE_S = 20.0  # after the last step: the candidate's files, the reports and the archive
TRAIN_START_S = 20.0  # a training step's limit minus its --time-limit: interpreter, imports, CUDA, the last save
WARMUP_S = 10.0  # of a resumed run's --time-limit, not at full speed: model, state, loader workers, autotuning
MIN_TRAIN_S = 30.0  # train-demo is not started for less training than this
DRY_SCALE = 4  # the CPU rehearsal's limits (a small shared machine: finishing matters more than time)
MAX_FILE_BYTES = 16 * 2**20  # what comes back from the GPU machine, per file


@dataclass(frozen=True)
class Recipe:
    """The demo-model run (benchmarks/README.md, "gpu-session", says why this preset and these sizes)."""

    preset: str = "tiny-64"
    size: int = 64
    pairs: int = 10_000
    batch: int = 32
    amp: str = "bf16"
    loader_workers: int = 8
    calibrate_s: float = 30.0
    checkpoint_every: int = 500
    log_every: int = 25
    ds_decay_fraction: float = 6000 / 11500  # the CPU demo's: the diversity weight reaches 0 at step 6000 of 11500
    lr_decay_fraction: float = 1500 / 11500  # its last 1500 steps of 11500: every rate decays linearly to 0
    max_steps: int = 1_000_000  # in practice the time decides


RECIPE = Recipe()
#: The rehearsal: the same steps at tiny sizes; train-calibrate stops by its time limit after its first step.
DRY_RECIPE = replace(
    RECIPE, pairs=16, batch=2, amp="off", loader_workers=0, calibrate_s=0.001, checkpoint_every=2, log_every=1,
    max_steps=2,
)  # fmt: skip
TRAIN_NAMES = ("synth", "train-calibrate", "train-demo")


def check_steps(work: Path, dry: bool) -> list[Step]:
    """gpu-check's essential steps, as gpu-check plans them, each with the session's own limit."""
    steps = [step for step in gpu_check.plan(work, dry) if step.name in CHECK_LIMITS]
    for step in steps:
        step.timeout_s = CHECK_LIMITS[step.name] * (DRY_SCALE if dry else 1)
    return steps


def left_to_gpu_check(work: Path) -> list[str]:
    """gpu-check's steps that this session does not run."""
    return [step.name for step in gpu_check.plan(work, False) if step.name not in CHECK_LIMITS]


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def synth_step(data: Path, recipe: Recipe, scale: int) -> Step:
    args = ["-m", "maskface_rt", "synth", str(data), "--count", str(recipe.pairs), "--size", str(recipe.size)]
    args += ["--seed", "0", "--workers", str(cores()), "--overwrite"]
    return Step("synth", args, SYNTH_LIMIT_S * scale)


def train_args(data: Path, run: Path, recipe: Recipe, device: str) -> list[str]:
    """What both training steps pass to ``maskface train``."""
    return [
        "-m",
        "maskface_rt",
        "train",
        str(data),
        "--out",
        str(run),
        "--device",
        device,
        "--num-workers",
        str(recipe.loader_workers),
        "--log-every",
        str(recipe.log_every),
        "--sample-every",
        "0",
        "--checkpoint-every",
        str(recipe.checkpoint_every),
    ]


def calibrate_step(data: Path, run: Path, recipe: Recipe, device: str, scale: int) -> Step:
    args = train_args(data, run, recipe, device)
    args += ["--preset", recipe.preset, "--batch-size", str(recipe.batch), "--amp", recipe.amp, "--seed", "0"]
    args += ["--steps", str(recipe.max_steps), "--time-limit", f"{recipe.calibrate_s:g}"]
    return Step("train-calibrate", args, (recipe.calibrate_s + 2 * TRAIN_START_S) * scale)


def log_entries(run: Path) -> list[dict[str, Any]]:
    log = run / "log.jsonl"
    if not log.is_file():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def phase_figures(entries: list[dict[str, Any]], after: int = 0) -> dict[str, Any]:
    """The steps reached and the speed of the log lines past step ``after``: the median it/s of the windows after
    the first (which holds the start's warm-up), and the seconds of training those lines cover."""
    mine = [e for e in entries if e["step"] > after]
    if not mine:
        return {"steps": after, "it_per_s": None, "seconds": 0.0}
    rates = [float(e["it_s"]) for e in mine]
    steady = rates[1:] or rates
    return {
        "steps": mine[-1]["step"],
        "it_per_s": round(statistics.median(steady), 3),
        "seconds": round(mine[-1]["elapsed_s"], 1),
        "last_losses": {k: v for k, v in mine[-1].items() if k not in ("step", "elapsed_s", "it_s")},
    }


def demo_plan(reached: int, it_per_s: float | None, left_s: float, recipe: Recipe) -> tuple[dict[str, Any], str]:
    """train-demo's length and schedule for the time left, or the reason it cannot run ('' when it can)."""
    train_s = left_s - TRAIN_START_S
    if not reached or not it_per_s:
        return {}, "train-calibrate left no run to resume"
    if train_s < MIN_TRAIN_S:
        return {}, f"only {left_s:.0f} s left, under {TRAIN_START_S + MIN_TRAIN_S:g} s"
    total = min(recipe.max_steps, reached + math.floor(it_per_s * (train_s - WARMUP_S)))
    if total <= reached:
        return {}, f"no steps past {reached} fit ({it_per_s} it/s, {train_s:.0f} s)"
    decay = max(1, round(total * recipe.lr_decay_fraction))
    plan = {
        "steps": total,
        "ds_decay_steps": max(1, round(total * recipe.ds_decay_fraction)),
        "lr_decay_start": total - decay,
        "lr_decay_steps": decay,
        "time_limit_s": round(train_s, 1),
    }
    return plan, ""


def demo_step(data: Path, run: Path, recipe: Recipe, device: str, plan: dict[str, Any], timeout_s: float) -> Step:
    args = train_args(data, run, recipe, device) + ["--resume"]
    for option in ("steps", "ds_decay_steps", "lr_decay_start", "lr_decay_steps", "time_limit_s"):
        args += ["--" + option.removesuffix("_s").replace("_", "-"), str(plan[option])]
    return Step("train-demo", args, timeout_s)


@dataclass
class Session:
    work: Path
    env: dict[str, str]
    dry: bool
    chosen: set[str]
    start: float
    budget_s: float
    names: list[str] = field(default_factory=list)  # every step of the session, in order
    steps: list[Step] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    times: dict[str, float] = field(default_factory=dict)

    @property
    def recipe(self) -> Recipe:
        return DRY_RECIPE if self.dry else RECIPE

    @property
    def scale(self) -> int:
        return DRY_SCALE if self.dry else 1

    @property
    def run_folder(self) -> Path:
        return self.work / "demo-run"

    def at(self, seconds: float) -> float:
        """The monotonic time ``seconds`` after the start (the budget's times are scaled in the rehearsal)."""
        return self.start + seconds * self.scale

    def run(self, step: Step, deadline: float) -> Step:
        self.steps.append(step)
        if self.chosen and step.name not in self.chosen:
            step.command, step.tail = shlex.join(["python", *step.args]), LEFT_OUT
        else:
            run_step(step, self.env, self.work, deadline, LABEL, cwd=REPO)
        return step

    def skip(self, step: Step, reason: str) -> None:
        self.steps.append(step)
        step.command, step.tail = shlex.join(["python", *step.args]), f"not run: {reason}"

    def run_all(self) -> None:
        """Every step in order; ``times`` gets the seconds from the start at which each phase ended."""
        self.times["setup"] = round(time.monotonic() - self.start, 1)
        for step in check_steps(self.work, self.dry):
            self.run(step, self.at(CHECK_END_S))
            gpu_check.collect_figures(step, self.work)
        self.times["check"] = round(time.monotonic() - self.start, 1)
        end = self.start + self.budget_s - END_RESERVE_S * self.scale
        self.train(end)
        self.times["training"] = round(time.monotonic() - self.start, 1)

    def train(self, end: float) -> None:
        recipe, device, data = self.recipe, "cpu" if self.dry else "cuda", self.work / f"data-{RECIPE.size}"
        self.training = {"recipe": asdict(recipe), "device": device}
        synth = self.run(synth_step(data, recipe, self.scale), end)
        calibrate = calibrate_step(data, self.run_folder, recipe, device, self.scale)
        if synth.status != "ok" and synth.tail != LEFT_OUT:
            self.skip(calibrate, f"not run: no training data (synth: {synth.status})")
        else:
            self.run(calibrate, end)
        entries = log_entries(self.run_folder)
        calibrated = phase_figures(entries)
        self.training["calibrate"] = calibrated
        plan, why_not = demo_plan(calibrated["steps"], calibrated["it_per_s"], end - time.monotonic(), recipe)
        self.training["demo_plan"] = plan
        demo = demo_step(data, self.run_folder, recipe, device, plan, end - time.monotonic()) if plan else None
        if demo is None:
            self.skip(Step("train-demo", [*train_args(data, self.run_folder, recipe, device), "--resume"], 0), why_not)
        else:
            self.run(demo, end)
            self.training["demo"] = phase_figures(log_entries(self.run_folder), calibrated["steps"])
        self.training["steps"] = phase_figures(log_entries(self.run_folder))["steps"]


# ----------------------------------------------------------------------------- the candidate's files


def write_candidate(run: Path, folder: Path, limit: int = MAX_FILE_BYTES) -> dict[str, Any]:
    """The run's inference model (fp16 when fp32 would pass ``limit`` bytes), training log, config and last sample
    grid in ``folder``, each written whole; what was written."""
    from maskface_rt.fileio import atomic_path

    model = run / "model.safetensors"
    if not model.is_file():
        return {"written": [], "why_not": "the run wrote no model"}
    folder.mkdir(parents=True, exist_ok=True)
    dtype = "float32" if model.stat().st_size <= limit else "float16"
    with atomic_path(folder / model.name, overwrite=True) as tmp:
        if dtype == "float32":
            shutil.copyfile(model, tmp)
        else:
            halve(model, tmp)
    samples = sorted((run / "samples").glob("step_*.png"))
    sources = {"log.jsonl": run / "log.jsonl", "config.json": run / "config.json"}
    if samples:
        sources["samples.png"] = samples[-1]
    for name, source in sources.items():
        if source.is_file():
            with atomic_path(folder / name, overwrite=True) as tmp:
                shutil.copyfile(source, tmp)
    from maskface_rt.checkpoint import read_metadata

    written = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    return {"written": written, "dtype": dtype, "step": int(read_metadata(model).get("step", 0))}


def halve(model: Path, dest: Path) -> None:
    """A model file with its floating-point tensors in fp16 (metadata kept; loading casts them back)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(model), framework="pt") as f:
        metadata = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(tensors, str(dest), metadata={**metadata, "stored_dtype": str(torch.float16)})


# ----------------------------------------------------------------------------- reports


def training_markdown(summary: dict[str, Any]) -> str:
    training = summary.get("training") or {}
    recipe = training.get("recipe", {})
    lines = ["", "## Demo-model training", ""]
    if recipe:
        lines.append(
            f"{recipe['preset']} at batch {recipe['batch']}, amp {recipe['amp']}, on {training.get('device')}; "
            f"{recipe['pairs']} synth pairs (seed 0); steps reached: {training.get('steps')}."
        )
    for phase in ("calibrate", "demo"):
        figures = training.get(phase)
        if figures:
            lines.append(
                f"- {phase}: to step {figures['steps']}, {figures['it_per_s']} it/s, {figures['seconds']} s of training"
            )
    if training.get("demo_plan"):
        lines.append(f"- train-demo's plan: {json.dumps(training['demo_plan'])}")
    candidate = summary.get("candidate") or {}
    if candidate.get("written"):
        lines += [
            "",
            f"Candidate (step {candidate['step']}, {candidate['dtype']}): demo-candidate/ "
            f"{', '.join(candidate['written'])}. On the CPU: "
            "`make demo-candidate CKPT=<this folder>/demo-candidate/model.safetensors`.",
        ]
    else:
        lines += ["", f"No candidate: {candidate.get('why_not', 'training did not run')}."]
    lines += ["", "## Left to make gpu-check", "", ", ".join(summary["left_to_gpu_check"]) + "."]
    budget = summary["budget"]
    lines += ["", "## Budget", "", f"`{json.dumps(budget)}`"]
    return "\n".join(lines) + "\n"


def budget_record(budget_s: float, dry: bool, times: dict[str, float]) -> dict[str, Any]:
    scale = DRY_SCALE if dry else 1
    return {
        "budget_s": budget_s,
        "check_end_s": CHECK_END_S * scale,
        "check_limits_s": {name: limit * scale for name, limit in CHECK_LIMITS.items()},
        "synth_limit_s": SYNTH_LIMIT_S * scale,
        "end_reserve_s": END_RESERVE_S * scale,
        "train_start_s": TRAIN_START_S,
        "warmup_s": WARMUP_S,
        "phases_ended_at_s": times,
    }


def write_outputs(out: Path, session: Session, started: str, found: dict[str, Any], meta: dict[str, Any]) -> int:
    """The candidate's files and the reports; the exit status."""
    candidate = write_candidate(session.run_folder, out / "demo-candidate")
    session.times["candidate"] = round(time.monotonic() - session.start, 1)
    ran = [step for step in session.steps if step.tail != LEFT_OUT]
    summary = {
        "title": LABEL,
        "started": started,
        "mode": "dry (CPU rehearsal)" if session.dry else "gpu",
        **meta,
        "host": gpu_check.host_info(),
        "environment": found,
        "budget": budget_record(session.budget_s, session.dry, session.times),
        "steps": [asdict(step) for step in session.steps],
        "training": session.training,
        "candidate": candidate,
        "left_to_gpu_check": left_to_gpu_check(session.work),
        "not_reached": [name for name in session.names if name not in {step.name for step in session.steps}],
    }
    written = gpu_check.write_reports(out, session.work, summary, training_markdown(summary))
    for path in [*written, *(out / "demo-candidate" / name for name in candidate["written"])]:
        print(f"wrote {path}", file=sys.stderr)
    if meta.get("stopped"):
        return Termination.exit_code()
    return 0 if ran and all(step.status == "ok" for step in ran) and candidate["written"] else 1


def main(argv: list[str] | None = None) -> int:
    start = time.monotonic()
    parser = check_parser(
        __doc__,
        Path(os.environ.get("OUT") or REPO / "out" / "gpu-session"),
        f"seconds for the whole call [{DEFAULT_BUDGET_S:g}; dry: {DRY_SCALE}x]",
        "GPU_SESSION_DRY",
        "rehearse the whole call on the CPU at tiny sizes",
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="gpu-session-work-"))
    names = [*(step.name for step in check_steps(work, args.dry)), *TRAIN_NAMES]
    try:
        chosen = chosen_steps(args.only, names)
    except ValueError as e:
        shutil.rmtree(work, ignore_errors=True)
        print(f"{LABEL}: {e}", file=sys.stderr)
        return 2
    budget_s = args.budget_s if args.budget_s is not None else DEFAULT_BUDGET_S * (DRY_SCALE if args.dry else 1)
    Termination.install()
    try:
        return _session(args, Session(work, {}, args.dry, chosen, start, budget_s, names))
    except KeyboardInterrupt:  # before the session could write anything
        print(f"{LABEL}: {Termination.word()}", file=sys.stderr)
        return Termination.exit_code()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _session(args: Any, session: Session) -> int:
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    env, package = gpu_check.package_env(session.work)
    if args.dry:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the rehearsal never touches a GPU, even where there is one
        env.setdefault("OMP_NUM_THREADS", "1")  # tiny steps on small shared machines: two threads wait more than work
    found = gpu_check.probe(env)
    if not args.dry and not found.get("cuda_available"):
        print(gpu_check.no_gpu_line(LABEL, found, "GPU_SESSION_DRY"), file=sys.stderr)
        return 4
    gpu_check.write_environment(session.work, env)
    session.env = env
    stopped = ""
    try:
        session.run_all()
    except KeyboardInterrupt:
        stopped = f"{Termination.word()} ({'SIGTERM' if Termination.terminated else 'Ctrl-C'})"
        print(f"{LABEL}: {stopped}; writing the reports of what ran", file=sys.stderr)
    meta = {
        "package": package,
        "commit": run_text(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
        "command": shlex.join(["python", "benchmarks/gpu_session.py", *(sys.argv[1:])]),
        "stopped": stopped,
    }
    return write_outputs(args.out, session, started, found, meta)


if __name__ == "__main__":
    sys.exit(main())
