"""``maskface triton MODEL --out REPO``: a Triton Inference Server model repository from an export or an engine set.

A plain command function (``command``, registered by ``maskface_rt.cli``). Options are checked before any work
(a bad value, or one the model cannot take, exits 2 naming the flag); a bad model is one line, exit 1; nothing is
written until every config.pbtxt has passed Triton's schema. Needs the ``[triton]`` extra; never imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from maskface_rt.cli.options import json_option, path_value, usage_error
from maskface_rt.errors import OptionError
from maskface_rt.triton.repository import INSTANCE_KINDS, PLATFORMS, RepositoryOptions


def _batch_sizes(value: str) -> tuple[int, ...]:
    """'4,8' -> (4, 8); an empty value: none."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        raise typer.BadParameter(
            f"{value!r} is not a comma list of batch sizes, e.g. 4,8", param_hint="--preferred-batch-sizes"
        )
    return tuple(int(p) for p in parts)


def triton(
    model: Annotated[
        Path,
        typer.Argument(
            parser=path_value,
            metavar="MODEL",
            help="A maskface export folder (onnxruntime_onnx, python) or an engine set from 'maskface build' "
            "(tensorrt_plan, python).",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", parser=path_value, help="The model repository (made, or added to: its other models stay)."
        ),
    ],
    platform: Annotated[
        str,
        typer.Option(
            "--platform",
            help=f"{', '.join(PLATFORMS)}: auto is tensorrt_plan for an engine set, onnxruntime_onnx for an export; "
            "python runs maskface's own backend in Triton's python backend (CPU fleets).",
        ),
    ] = "auto",
    max_batch: Annotated[
        Optional[int],
        typer.Option(
            "--max-batch",
            help="Each model's max_batch_size (default: the export's max batch, or the engine profile's max).",
        ),
    ] = None,
    preferred_batch_sizes: Annotated[
        str,
        typer.Option(
            "--preferred-batch-sizes", help="The dynamic batcher's preferred batch sizes, e.g. 4,8 (default: none)."
        ),
    ] = "",
    max_queue_delay_us: Annotated[
        int, typer.Option("--max-queue-delay-us", help="How long a request may wait for a batch, in microseconds.")
    ] = 2000,
    instances: Annotated[int, typer.Option("--instances", help="Instances of each graph's model.")] = 1,
    instance_kind: Annotated[
        str,
        typer.Option(
            "--instance-kind",
            help=f"{', '.join(INSTANCE_KINDS)}: auto is gpu for tensorrt_plan and onnxruntime_onnx, cpu for python.",
        ),
    ] = "auto",
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="python platform only: the maskface backend inside (onnxruntime or openvino for an export; an engine "
            "set's own runtime; default: onnxruntime, or the engine's runtime).",
        ),
    ] = "auto",
    threads: Annotated[
        int,
        typer.Option(
            "--threads", help="python platform only: math threads per instance (default: 0, the backend's own)."
        ),
    ] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace model folders of the same names already in the repository.")
    ] = False,
    as_json: Annotated[bool, json_option()] = False,
) -> None:
    """Write a Triton Inference Server model repository: one model per graph and the ensembles maskface (labels +
    latent) and maskface_reference (labels + reference photo), every config.pbtxt checked against Triton's schema."""
    from maskface_rt.console import emit_json, stderr
    from maskface_rt.triton.repository import write_repository

    options = RepositoryOptions(
        platform=platform,
        max_batch=max_batch,
        preferred_batch_sizes=_batch_sizes(preferred_batch_sizes),
        max_queue_delay_us=max_queue_delay_us,
        instances=instances,
        instance_kind=instance_kind,
        backend=backend,
        threads=threads,
        overwrite=overwrite,
    )
    try:
        with stderr.status("checking") as status:
            result = write_repository(model, out, options, on_stage=status.update)
    except OptionError as e:  # plan_repository's, raised before anything is written
        raise usage_error(e) from None
    stderr.print(f"wrote {result.platform} models to {result.repository}: {', '.join(result.models)}", markup=False)
    for note in result.notes:
        stderr.print(note, markup=False)
    stderr.print(
        f"next: tritonserver --model-repository {result.repository} (docs/triton.md: the container, the clients)",
        markup=False,
    )
    if as_json:
        emit_json(result.to_json())


command = triton
