"""``maskface synth OUT``: a procedural face data set for tests, demos and benchmarks."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from maskface_rt.cli.options import json_option, path_value
from maskface_rt.console import emit_json, progress_bar, stderr, stop_progress


def synth(
    out: Annotated[
        Path,
        typer.Argument(parser=path_value, metavar="OUT", help="Folder to write images/, masks/ and synth.json into."),
    ],
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Number of (image, mask) pairs.")] = 1000,
    size: Annotated[int, typer.Option("--size", min=32, max=1024, help="Side of the square images.")] = 128,
    seed: Annotated[int, typer.Option("--seed", help="Data set seed; pair i depends only on (seed, i).")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing data set's files.")] = False,
    workers: Annotated[
        Optional[int],
        typer.Option("--workers", min=1, help="Processes drawing the pairs (default: the CPUs here, at most 8)."),
    ] = None,
    as_json: Annotated[bool, json_option()] = False,
) -> None:
    """Write a procedural face data set (paired layout) for tests, demos and benchmarks."""
    from maskface_rt.synth import write_dataset

    progress = progress_bar()
    task = progress.add_task("synth", total=count, rate="")

    def advance(n: int) -> None:
        progress.start()  # idempotent: the bar appears only once the checks have passed
        progress.advance(task, n)

    try:
        summary = write_dataset(out, count, size, seed, overwrite=overwrite, workers=workers, progress=advance)
    finally:
        stop_progress(progress)
    rate = summary.count / max(summary.seconds, 1e-9)
    stderr.print(
        f"wrote {summary.count} pairs of {size}x{size} to {out} in {summary.seconds:.1f} s ({rate:.0f} pairs/s)"
    )
    stderr.print(f"next: maskface train {out} --out runs/demo --preset tiny-{'128' if size >= 128 else '64'}")
    if as_json:
        emit_json({**dataclasses.asdict(summary), "pairs_per_s": rate})


command = synth
