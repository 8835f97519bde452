"""``maskface generate MASK_DIR --out OUT``: faces for every mask in a folder, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from maskface_rt.cli.options import backend_option, device_option, json_option, label_order_option, precision_option
from maskface_rt.console import emit_json, progress_bar, stderr, stop_progress


def generate(
    mask_dir: Annotated[Path, typer.Argument(metavar="MASK_DIR", help="Folder of masks (or one mask file).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for <mask>_s<k>.png.")],
    model: Annotated[
        Optional[Path],
        typer.Option("--model", "-m", help="Checkpoint, export folder or engine (default: the bundled demo model)."),
    ] = None,
    backend: Annotated[str, backend_option()] = "auto",
    device: Annotated[str, device_option("auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, precision_option()] = "auto",
    styles: Annotated[int, typer.Option("--styles", "-k", help="Styles per mask (indices 0..K-1).")] = 4,
    seed: Annotated[int, typer.Option("--seed", help="Style k depends only on (seed, k).")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per backend call.")] = 8,
    reference: Annotated[
        Optional[list[Path]],
        typer.Option("--reference", "-r", help="Take the style from this photo (repeatable) instead of seeds."),
    ] = None,
    label_order: Annotated[str, label_order_option()] = "celebamask",
    recursive: Annotated[bool, typer.Option("--recursive", help="Also read masks in subfolders.")] = False,
    grid: Annotated[bool, typer.Option("--grid", help="Also write contact sheet(s) grid*.png.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Regenerate outputs that already exist.")] = False,
    workers: Annotated[int, typer.Option("--workers", help="Threads decoding masks and encoding PNGs.")] = 2,
    as_json: Annotated[bool, json_option()] = False,
) -> None:
    """Generate faces for every mask in a folder: OUT/<mask>_s<k>.png, resumable, never overwriting."""
    from maskface_rt.backends import open_backend, precision_problem
    from maskface_rt.bundled import default_model
    from maskface_rt.generate import GenerateOptions, options_problem, run_generate

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
    stderr.print(
        f"{report.images_written} images written, {report.images_existing} already there, "
        f"{len(report.skipped)} masks skipped, {report.images_per_s:.1f} images/s ({report.backend})"
    )
    if as_json:
        emit_json(report.to_json())
    raise typer.Exit(int(report.exit_code))


command = generate
