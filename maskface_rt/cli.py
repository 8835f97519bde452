"""The ``maskface`` command line.

Exit codes: 0 success; 1 bad input or a failed check (one line on stderr names the file and the
problem); 2 bad usage (an invalid option); 3 some inputs were skipped; 4 nothing could run;
130 interrupted. Progress goes to stderr; ``--json`` results go to stdout.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.progress import TextColumn

from maskface_rt import __version__
from maskface_rt.bench_cli import bench
from maskface_rt.build_cli import build
from maskface_rt.console import emit_json, progress_bar, stderr, stop_progress
from maskface_rt.config import PRESETS, TrainConfig, preset
from maskface_rt.errors import ExitCode, MaskfaceError
from maskface_rt.eval_cli import BACKEND_HELP, PRECISION_HELP, eval_app
from maskface_rt.export_format import DEFAULT_OPSET, MAX_OPSET, MIN_MAX_BATCH, MIN_OPSET
from maskface_rt.kernels.config import DEFAULT_EPS, DEFAULT_SLOPE
from maskface_rt.labels import LABEL_ORDERS

app = typer.Typer(
    name="maskface",
    help="Mask-guided diverse face synthesis: train, export, generate, benchmark.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"maskface-rt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version_callback, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Mask-guided diverse face synthesis: train, export, generate, benchmark."""


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write images/, masks/ and synth.json into.")],
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Number of (image, mask) pairs.")] = 1000,
    size: Annotated[int, typer.Option("--size", min=32, max=1024, help="Side of the square images.")] = 128,
    seed: Annotated[int, typer.Option("--seed", help="Data set seed; pair i depends only on (seed, i).")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing data set's files.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Write a procedural face data set (paired layout) for tests, demos and benchmarks."""
    from maskface_rt.synth import write_dataset

    progress = progress_bar()
    task = progress.add_task("synth", total=count, rate="")

    def advance(n: int) -> None:
        progress.start()  # idempotent: the bar appears only once the checks have passed
        progress.advance(task, n)

    try:
        summary = write_dataset(out, count, size, seed, overwrite=overwrite, progress=advance)
    finally:
        stop_progress(progress)
    rate = summary.count / max(summary.seconds, 1e-9)
    stderr.print(f"wrote {summary.count} pairs of {size}x{size} to {out} in {summary.seconds:.1f} s "
                 f"({rate:.0f} pairs/s)")
    stderr.print(f"next: maskface train {out} --out runs/demo --preset tiny-{'128' if size >= 128 else '64'}")
    if as_json:
        emit_json({**dataclasses.asdict(summary), "pairs_per_s": rate})


def _train_overrides(values: dict[str, Any]) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in values.items() if k in fields and v is not None}


@app.command()
def train(
    data: Annotated[Path, typer.Argument(metavar="DATA", help="Data set: paired layout (images/, masks/) or CelebAMask-HQ.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoints, samples, log).")],
    preset_name: Annotated[Optional[str], typer.Option(
        "--preset", help=f"Model size: {', '.join(PRESETS)} (default paper-256; on --resume: as stored).")] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Total training steps (also when resuming).")] = 100_000,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    split: Annotated[str, typer.Option("--split", help="auto, all, train, val or test (CelebAMask-HQ; auto: train "
                                                       "where the split is known, else all).")] = "auto",
    label_order: Annotated[str, typer.Option("--label-order",
                                             help=f"Label order of the masks: {', '.join(LABEL_ORDERS)}.")] = "celebamask",
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Per-process batch size [8].")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate of G, E, D [1e-4].")] = None,
    lr_decay_start: Annotated[Optional[int], typer.Option(
        "--lr-decay-start", help="Step where the linear decay of the rates to 0 starts [0].")] = None,
    lr_decay_steps: Annotated[Optional[int], typer.Option(
        "--lr-decay-steps", help="Steps of that decay; 0: constant rates [0].")] = None,
    mapping_lr: Annotated[Optional[float], typer.Option("--mapping-lr", help="Style encoder lr [1e-6].")] = None,
    beta1: Annotated[Optional[float], typer.Option("--beta1", help="Adam beta1 [0].")] = None,
    beta2: Annotated[Optional[float], typer.Option("--beta2", help="Adam beta2 [0.99].")] = None,
    weight_decay: Annotated[Optional[float], typer.Option("--weight-decay", help="Adam weight decay [1e-4].")] = None,
    ema_beta: Annotated[Optional[float], typer.Option("--ema-beta", help="EMA decay of G, F, E [0.999].")] = None,
    lambda_adv: Annotated[Optional[float], typer.Option("--lambda-adv", help="Adversarial weight [1].")] = None,
    lambda_r1: Annotated[Optional[float], typer.Option("--lambda-r1", help="R1 weight [1].")] = None,
    lambda_sty: Annotated[Optional[float], typer.Option("--lambda-sty", help="Style reconstruction weight [1].")] = None,
    lambda_ds: Annotated[Optional[float], typer.Option("--lambda-ds", help="Diversity weight at step 0 [1].")] = None,
    ds_decay_steps: Annotated[Optional[int], typer.Option("--ds-decay-steps", help="Diversity decay steps [100000].")] = None,
    lambda_rec: Annotated[Optional[float], typer.Option("--lambda-rec", help="Paired reconstruction weight [10].")] = None,
    hflip: Annotated[Optional[bool], typer.Option("--hflip/--no-hflip", help="Random mirroring [on].")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of init, batch order and noise [0].")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option("--checkpoint-every", help="Checkpoint period [1000].")] = None,
    sample_every: Annotated[Optional[int], typer.Option("--sample-every", help="Sample grid period [500].")] = None,
    log_every: Annotated[Optional[int], typer.Option("--log-every", help="JSONL log period [10].")] = None,
    num_workers: Annotated[Optional[int], typer.Option("--num-workers", help="Data loader workers [2].")] = None,
    amp: Annotated[Optional[str], typer.Option("--amp", help="auto (bf16/fp16 on CUDA), bf16, fp16, off [auto].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Train the four networks; writes RUN/model.safetensors (EMA weights + config), resumable."""
    from maskface_rt.datasets import open_dataset, resolve_split

    overrides = _train_overrides(locals())
    try:
        cfg = preset(preset_name) if preset_name is not None else None
        tcfg = TrainConfig(**overrides)
    except (ValueError, TypeError) as e:
        raise typer.BadParameter(str(e)) from None
    if cfg is None and not resume:
        cfg = preset("paper-256")
    img_size = cfg.img_size if cfg is not None else _stored_img_size(out)
    pairs = open_dataset(data, size=img_size, split=resolve_split(data, split), label_order=label_order)

    from maskface_rt.trainer import train as run_training

    progress = progress_bar(TextColumn("{task.fields[losses]}"))
    task = progress.add_task("train", total=steps, rate="", losses="", start=False)

    def on_start(start: int) -> None:
        progress.start()
        progress.update(task, completed=start)
        progress.start_task(task)

    def on_step(done: int, losses: dict[str, float]) -> None:
        shown = " ".join(f"{k} {losses[k]:.3f}" for k in ("d_real", "d_fake", "g_adv", "rec") if k in losses)
        progress.update(task, completed=done, losses=shown)
        speed = progress.tasks[task].speed
        progress.update(task, rate=f"{speed:.2f} it/s" if speed else "")

    try:
        result = run_training(pairs, out, cfg=cfg, tcfg=tcfg, overrides=overrides, steps=steps, resume=resume,
                              device=device, data_description=str(data), on_start=on_start, on_step=on_step)
    finally:
        stop_progress(progress)
    stderr.print(f"trained steps {result.start_step}..{result.steps} in {result.seconds:.1f} s; "
                 f"model: {result.model} ({result.model.stat().st_size / 1e6:.1f} MB)")
    stderr.print(f"next: maskface export {result.model} --out {Path(out) / 'onnx'}")
    if as_json:
        emit_json({"run": str(result.run), "model": str(result.model), "start_step": result.start_step,
                   "steps": result.steps, "seconds": result.seconds, "losses": result.last_losses})


@app.command()
def export(
    model: Annotated[Path, typer.Argument(metavar="MODEL", help="A .safetensors model file (maskface train).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the ONNX graphs and maskface.json.")],
    fp16: Annotated[bool, typer.Option("--fp16", help="fp16 weights and activations (statistics stay fp32).")] = False,
    opset: Annotated[int, typer.Option("--opset", min=MIN_OPSET, max=MAX_OPSET, help="ONNX opset.")] = DEFAULT_OPSET,
    max_batch: Annotated[int, typer.Option("--max-batch", min=MIN_MAX_BATCH,
                                           help="Largest batch the graphs declare.")] = 64,
    plugin: Annotated[bool, typer.Option("--plugin", help="Generator with one FusedAdaIN node per AdaIN + LeakyReLU "
                                                          "(TensorRT plugin maskface::FusedAdaIN; ONNX Runtime "
                                                          "cannot run it).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier export in --out.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Export a checkpoint to ONNX (generator, style encoder, style decoder), checked before it is written."""
    from maskface_rt.export.onnx_export import export_onnx, format_bytes

    with stderr.status("exporting") as status:
        result = export_onnx(model, out, fp16=fp16, opset=opset, max_batch=max_batch, overwrite=overwrite,
                             plugin=plugin, on_stage=lambda text: status.update(text))
    for parity in result.parity:
        stderr.print(parity.line(), markup=False)
    stderr.print(result.tensorrt_parse.line(), markup=False)
    stderr.print(f"wrote {out} in {result.seconds:.1f} s:")
    for name, size in result.files.items():
        stderr.print(f"  {name:24s} {format_bytes(size):>10s}")
    if fp16 or plugin:
        stderr.print(f"next: maskface build {out} --out {out.with_suffix('.engine')}"
                     + ("" if plugin else " --no-plugin"), markup=False)
    if not plugin:
        stderr.print(f"next: maskface generate MASK_DIR --model {out} --out out/")
    if as_json:
        emit_json({"out": str(out), "files": result.files, "seconds": result.seconds,
                   "parity": [dataclasses.asdict(p) for p in result.parity],
                   "tensorrt_parse": result.tensorrt_parse.to_dict(), "manifest": result.manifest.to_dict()})


app.command("build")(build)
app.command("bench")(bench)

plugin_app = typer.Typer(help="The fused AdaIN kernel of the TensorRT plugin maskface::FusedAdaIN.",
                         no_args_is_help=True)
app.add_typer(plugin_app, name="plugin")


def _plane(text: str) -> int | None:
    """'HxW' -> H*W; 'any' -> None (one kernel for every plane size)."""
    if text == "any":
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not HxW (e.g. 64x64) or 'any'", param_hint="--plane") from None
    if h < 1 or w < 1:
        raise typer.BadParameter(f"{text!r}: H and W must be positive", param_hint="--plane")
    return h * w


@plugin_app.command("ptx")
def plugin_ptx(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the .ptx files and fused_adain_ptx.json.")],
    arch: Annotated[Optional[list[str]], typer.Option("--arch", help="GPU target, repeatable: sm_80, sm_86, sm_89, "
                                                                     "sm_90 [all].")] = None,
    dtype: Annotated[Optional[list[str]], typer.Option("--dtype", help="fp16 or fp32, repeatable [both].")] = None,
    plane: Annotated[Optional[list[str]], typer.Option("--plane", help="Plane size HxW the kernel is specialised "
                                                                       "for, or 'any', repeatable [any].")] = None,
    eps: Annotated[float, typer.Option("--eps", help="Instance norm epsilon (baked in).")] = DEFAULT_EPS,
    negative_slope: Annotated[float, typer.Option("--negative-slope",
                                                  help="LeakyReLU slope (baked in).")] = DEFAULT_SLOPE,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Build the fused AdaIN kernel's PTX ahead of time (no GPU needed; needs triton) and assemble it with ptxas."""
    import importlib.util
    import shutil

    from maskface_rt.kernels import ptx
    from maskface_rt.kernels.config import PLUGIN_DTYPES, check_constants, kernel_config

    arches, dtypes = arch or list(ptx.ARCHES), dtype or list(PLUGIN_DTYPES)
    for value, valid, name in ((arches, ptx.ARCHES, "--arch"), (dtypes, PLUGIN_DTYPES, "--dtype")):
        bad = [v for v in value if v not in valid]
        if bad:
            raise typer.BadParameter(f"{', '.join(bad)} not supported; valid: {', '.join(valid)}", param_hint=name)
    sizes = [_plane(p) for p in plane or ["any"]]
    try:
        eps, negative_slope = check_constants(eps, negative_slope)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    if importlib.util.find_spec("triton") is None:
        raise MaskfaceError(None, "building PTX needs triton: pip install 'maskface-rt[kernels]'")
    variants = [ptx.Variant(a, d, kernel_config(hw), eps, negative_slope)
                for a in arches for d in dtypes for hw in sizes]
    with stderr.status(f"compiling {len(variants)} kernel variants"):
        kernels = ptx.build(variants)
    written = ptx.write(kernels, out)
    ptxas = shutil.which("ptxas")
    checks = {}
    for kernel in kernels:
        ok, message = ptx.assemble(kernel, ptxas) if ptxas else (None, "ptxas not on PATH: not assembled")
        checks[kernel.variant.stem] = {"ptxas_ok": ok, "message": message}
        verdict = {True: "ptxas ok", False: "ptxas FAILED", None: message}[ok]
        stderr.print(f"  {kernel.variant.stem}.ptx: block {kernel.block_x}, shared {kernel.shared_mem} B, "
                     f"global scratch {kernel.global_scratch_size} B; {verdict}", markup=False)
        if ok is False:
            stderr.print(f"    {message}", markup=False)
    stderr.print(f"wrote {len(written)} files to {out}")
    stderr.print("next: maskface export MODEL --out DIR --plugin --fp16, then maskface build DIR --out ENGINE",
                 markup=False)
    if as_json:
        emit_json({"out": str(out), "files": [str(p) for p in written], "ptxas": checks,
                   "kernels": [k.launch_info() for k in kernels]})
    if any(c["ptxas_ok"] is False for c in checks.values()):
        raise typer.Exit(int(ExitCode.FAILED))


@app.command()
def generate(
    mask_dir: Annotated[Path, typer.Argument(metavar="MASK_DIR", help="Folder of masks (or one mask file).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for <mask>_s<k>.png.")],
    model: Annotated[Optional[Path], typer.Option("--model", "-m", help="Checkpoint, export folder or engine "
                                                                        "(default: the bundled demo model).")] = None,
    backend: Annotated[str, typer.Option("--backend", help=BACKEND_HELP)] = "auto",
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", help=PRECISION_HELP)] = "auto",
    styles: Annotated[int, typer.Option("--styles", "-k", help="Styles per mask (indices 0..K-1).")] = 4,
    seed: Annotated[int, typer.Option("--seed", help="Style k depends only on (seed, k).")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per backend call.")] = 8,
    reference: Annotated[Optional[list[Path]], typer.Option("--reference", "-r", help="Take the style from this "
                                                            "photo (repeatable) instead of seeds.")] = None,
    label_order: Annotated[str, typer.Option("--label-order", help="celebamask or faceparsing.")] = "celebamask",
    recursive: Annotated[bool, typer.Option("--recursive", help="Also read masks in subfolders.")] = False,
    grid: Annotated[bool, typer.Option("--grid", help="Also write contact sheet(s) grid*.png.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Regenerate outputs that already exist.")] = False,
    workers: Annotated[int, typer.Option("--workers", help="Threads decoding masks and encoding PNGs.")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Generate faces for every mask in a folder: OUT/<mask>_s<k>.png, resumable, never overwriting."""
    from maskface_rt.backends import open_backend, precision_problem
    from maskface_rt.bundled import default_model
    from maskface_rt.generate import GenerateOptions, options_problem, run_generate

    if label_order not in LABEL_ORDERS:
        raise typer.BadParameter(f"unknown label order {label_order!r}; valid: {', '.join(LABEL_ORDERS)}")
    opts = GenerateOptions(out=out, styles=styles, seed=seed, batch_size=batch_size,
                           references=tuple(reference or ()), label_order=label_order, recursive=recursive,
                           grid=grid, overwrite=overwrite, workers=workers)
    if problem := options_problem(opts):
        raise typer.BadParameter(problem)
    model = model if model is not None else default_model()
    if problem := precision_problem(model, backend, precision):
        raise typer.BadParameter(problem, param_hint="--precision")
    with open_backend(model, backend, device=device, precision=precision) as runtime:
        progress = progress_bar()
        task = progress.add_task("generate", total=None, rate="", start=False)

        def on_total(n: int) -> None:
            progress.start()
            progress.update(task, total=n)
            progress.start_task(task)

        def on_advance(n: int) -> None:
            progress.advance(task, n)
            speed = progress.tasks[task].speed
            progress.update(task, rate=f"{speed:.1f} img/s" if speed else "")

        try:
            report = run_generate(runtime, mask_dir, opts, on_total=on_total, on_advance=on_advance)
        finally:
            stop_progress(progress)
    for skipped in report.skipped:
        stderr.print(f"skipped {skipped}", markup=False)
    stderr.print(f"{report.images_written} images written, {report.images_existing} already there, "
                 f"{len(report.skipped)} masks skipped, {report.images_per_s:.1f} images/s ({report.backend})")
    if as_json:
        emit_json(report.to_json())
    raise typer.Exit(int(report.exit_code))


@app.command()
def info(model: Annotated[Path, typer.Argument(metavar="MODEL", help="Checkpoint, export folder or .onnx graph.")],
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False) -> None:
    """Print a model's metadata: config, versions, checksums, graph inputs and outputs."""
    from maskface_rt.model_info import describe

    described = describe(model)
    if as_json:
        emit_json(described)
        return
    for key, value in described.items():
        shown = json.dumps(value) if isinstance(value, (dict, list)) else value
        typer.echo(f"{key}: {shown}")


@app.command()
def doctor(as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False) -> None:
    """List what this machine can run (backends, providers, GPUs, TensorRT, Triton) and how to get the rest."""
    from maskface_rt.doctor import checks

    results = checks()
    if as_json:
        emit_json({"checks": [dataclasses.asdict(c) for c in results]})
        return
    for check in results:
        mark = "[green]ok[/]  " if check.ok else "[yellow]--[/]  "
        stderr.print(f"{mark}{check.name:20s} {escape(check.detail)}")


def _stored_img_size(run: Path) -> int:
    from maskface_rt.checkpoint import read_config

    return read_config(run / "state.safetensors").img_size



app.add_typer(eval_app, name="eval", help="Evaluate a model: mask consistency, diversity, FID/KID, parity.")


def main() -> None:
    try:
        app()
    except MaskfaceError as e:
        stderr.print("[bold red]error:[/] ", end="")
        stderr.print(str(e), markup=False)
        sys.exit(ExitCode.FAILED)
    except KeyboardInterrupt:
        stderr.print("interrupted")
        sys.exit(130)
