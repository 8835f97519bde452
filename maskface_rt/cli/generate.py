"""``maskface generate MASK_DIR --out OUT``: faces for every mask in a folder, resumable."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Optional

import typer

from maskface_rt.cli.options import (
    backend_option,
    device_option,
    json_option,
    label_order_option,
    model_option,
    path_value,
    precision_option,
    style_seed_option,
    styles_option,
    usage_error,
)
from maskface_rt.console import emit_json, progress_bar, stderr, stop_progress
from maskface_rt.errors import MaskfaceError

if TYPE_CHECKING:
    from maskface_rt.generation.distributed import RayOptions
    from maskface_rt.generation.plan import GenerateOptions
    from maskface_rt.generation.report import GenerateReport


def _ray_option(flag: str, help: str) -> Any:
    return typer.Option(flag, help=help.replace("[", "\\["), rich_help_panel="Ray")


def generate(
    ctx: typer.Context,
    mask_dir: Annotated[
        Path, typer.Argument(parser=path_value, metavar="MASK_DIR", help="Folder of masks (or one mask file).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", parser=path_value, help="Folder for <mask>_s<k>.png.")],
    model: Annotated[Optional[Path], model_option()] = None,
    backend: Annotated[str, backend_option()] = "auto",
    device: Annotated[str, device_option("auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, precision_option()] = "auto",
    styles: Annotated[int, styles_option()] = 4,
    seed: Annotated[int, style_seed_option()] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per backend call.")] = 8,
    reference: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--reference", "-r", parser=path_value, help="Take the style from this photo (repeatable) instead of seeds."
        ),
    ] = None,
    label_order: Annotated[str, label_order_option()] = "celebamask",
    recursive: Annotated[bool, typer.Option("--recursive", help="Also read masks in subfolders.")] = False,
    grid: Annotated[bool, typer.Option("--grid", help="Also write contact sheet(s) grid*.png.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Regenerate outputs that already exist.")] = False,
    workers: Annotated[int, typer.Option("--workers", help="Threads decoding masks and encoding PNGs.")] = 2,
    as_json: Annotated[bool, json_option()] = False,
    ray: Annotated[
        bool, _ray_option("--ray", "Run on Ray workers ([ray] extra): a new local Ray instance, or --ray-address.")
    ] = False,
    ray_address: Annotated[
        Optional[str],
        _ray_option("--ray-address", "Join this cluster instead: auto (the one here), host:port or ray://host:port."),
    ] = None,
    ray_workers: Annotated[
        Optional[int], _ray_option("--ray-workers", "Worker actors (default: as many as the cluster holds).")
    ] = None,
    cpus_per_worker: Annotated[
        Optional[float], _ray_option("--cpus-per-worker", "CPUs per worker, also its backend's threads (default 1).")
    ] = None,
    gpus_per_worker: Annotated[
        Optional[float],
        _ray_option("--gpus-per-worker", "GPUs per worker (default: 1 where the cluster has GPUs, else 0)."),
    ] = None,
) -> None:
    """Generate faces for every mask in a folder: OUT/<mask>_s<k>.png, resumable, never overwriting."""
    from maskface_rt.backends import backend_problem, open_backend
    from maskface_rt.bundled import default_model
    from maskface_rt.generation.pipeline import run_generate
    from maskface_rt.generation.plan import GenerateOptions, options_problem
    from maskface_rt.generation.report import RunStopped

    opts = GenerateOptions(
        out=out,
        styles=styles,
        seed=seed,
        batch_size=batch_size,
        references=tuple(reference or ()),
        label_order=label_order,
        recursive=recursive,
        grid=grid,
        overwrite=overwrite,
        workers=workers,
    )
    if problem := options_problem(opts):
        raise usage_error(problem)
    if reference and (seeded := [f"--{name}" for name in ("styles", "seed") if _given(ctx, name)]):
        raise typer.BadParameter(
            f"{' and '.join(seeded)} {'apply' if len(seeded) > 1 else 'applies'} to seeded styles; with --reference "
            "each photo gives its own style: give one or the other"
        )
    ray_flags = {
        "--ray-address": ray_address,
        "--ray-workers": ray_workers,
        "--cpus-per-worker": cpus_per_worker,
        "--gpus-per-worker": gpus_per_worker,
    }
    if not ray and (given := [flag for flag, value in ray_flags.items() if value is not None]):
        raise typer.BadParameter(f"{', '.join(given)} apply to --ray runs only; add --ray or leave them out")
    model = model if model is not None else default_model()
    if ray:
        from maskface_rt.generation.distributed import RayOptions, ray_options_problem

        cpus = 1.0 if cpus_per_worker is None else cpus_per_worker
        ray_opts = RayOptions(ray_address, ray_workers, cpus, gpus_per_worker)
        if problem := ray_options_problem(ray_opts, opts):
            raise usage_error(problem)
        _run_on_ray(mask_dir, opts, model, backend, device, precision, ray_opts, as_json)
    if problem := backend_problem(model, backend, device=device, precision=precision):
        raise usage_error(problem)
    try:
        with open_backend(model, backend, device=device, precision=precision) as runtime, _Progress() as bar:
            report = run_generate(runtime, mask_dir, opts, on_total=bar.on_total, on_advance=bar.on_advance)
    except RunStopped as stopped:
        if as_json:  # what was written before the stop, with the error: stdout still says what happened
            emit_json(stopped.report.to_json())
        raise
    _finish(report, as_json)


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether the option ``name`` was given on the command line (not left at its default; typer's own click
    names the source, compared by name)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


class _Progress:
    """The run's bar on stderr: images done / planned, images/s (and, on Ray, the workers reporting)."""

    def __init__(self) -> None:
        self.bar = progress_bar()
        self.task = self.bar.add_task("generate", total=None, rate="", start=False)
        self.workers: int | None = None

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        stop_progress(self.bar)

    def on_total(self, n: int) -> None:
        self.bar.start()
        self.bar.update(self.task, total=n)
        self.bar.start_task(self.task)

    def on_advance(self, n: int) -> None:
        self.bar.advance(self.task, n)
        self._rate()

    def on_workers(self, n: int) -> None:
        self.workers = n
        self._rate()

    def _rate(self) -> None:
        speed = self.bar.tasks[self.task].speed
        parts = ([f"{speed:.1f} img/s"] if speed else []) + ([f"{self.workers} workers"] if self.workers else [])
        self.bar.update(self.task, rate=", ".join(parts))


def _finish(report: GenerateReport, as_json: bool) -> NoReturn:
    """Print the skipped inputs and the summary (stderr), the JSON report (stdout), and exit with its code."""
    for skipped in report.skipped:
        stderr.print(f"skipped {skipped}", markup=False)
    stderr.print(
        f"{report.images_written} images written, {report.images_existing} already there, "
        f"{len(report.skipped)} masks skipped, {report.images_per_s:.1f} images/s ({report.backend})"
    )
    if as_json:
        emit_json(report.to_json())
    raise typer.Exit(int(report.exit_code))


def _run_on_ray(
    mask_dir: Path,
    opts: GenerateOptions,
    model: Path,
    backend: str,
    device: str,
    precision: str,
    ray_opts: RayOptions,
    as_json: bool,
) -> NoReturn:
    """``generate --ray``: the run on Ray workers, with the local run's progress bar, summary and exit codes."""
    from maskface_rt.backends import precision_problem
    from maskface_rt.generation.distributed import WorkerModel, run_generate_ray

    for flag, path in (("MASK_DIR", mask_dir), ("--out", opts.out), ("--model", model)):
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/", str(path)):  # s3://b/k, which a Path holds as s3:/b/k
            raise typer.BadParameter(
                f"{path}: URIs are not supported by --ray yet; give a local or shared (mounted) folder", param_hint=flag
            )
    try:
        problem = precision_problem(model, backend, precision)
    except MaskfaceError:  # the backend's runtime is not installed here: the workers check it
        problem = None
    if problem:
        raise usage_error(problem)
    worker_model = WorkerModel(str(model), backend, device, precision)
    with _Progress() as bar:
        report = run_generate_ray(
            mask_dir,
            opts,
            worker_model,
            ray_opts,
            on_total=bar.on_total,
            on_advance=bar.on_advance,
            on_workers=bar.on_workers,
        )
    _finish(report, as_json)


command = generate
