"""``maskface export MODEL --out DIR``: a checkpoint to checked ONNX graphs (needs the [train] extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from maskface_rt.cli.options import json_option, path_value
from maskface_rt.console import emit_json, stderr
from maskface_rt.export_format import DEFAULT_OPSET, MAX_OPSET, MIN_MAX_BATCH, MIN_OPSET


def export(
    model: Annotated[
        Path, typer.Argument(parser=path_value, metavar="MODEL", help="A .safetensors model file (maskface train).")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", parser=path_value, help="Folder for the ONNX graphs and maskface.json.")
    ],
    fp16: Annotated[bool, typer.Option("--fp16", help="fp16 weights and activations (statistics stay fp32).")] = False,
    opset: Annotated[int, typer.Option("--opset", min=MIN_OPSET, max=MAX_OPSET, help="ONNX opset.")] = DEFAULT_OPSET,
    max_batch: Annotated[
        int, typer.Option("--max-batch", min=MIN_MAX_BATCH, help="Largest batch the graphs declare.")
    ] = 64,
    plugin: Annotated[
        bool,
        typer.Option(
            "--plugin",
            help="Generator with one FusedAdaIN node per AdaIN + LeakyReLU "
            "(TensorRT plugin maskface::FusedAdaIN; ONNX Runtime "
            "cannot run it).",
        ),
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier export in --out.")] = False,
    as_json: Annotated[bool, json_option()] = False,
) -> None:
    """Export a checkpoint to ONNX (generator, style encoder, style decoder), checked before it is written."""
    from maskface_rt.export.onnx_export import export_onnx, format_bytes

    with stderr.status("exporting") as status:
        result = export_onnx(
            model,
            out,
            fp16=fp16,
            opset=opset,
            max_batch=max_batch,
            overwrite=overwrite,
            plugin=plugin,
            on_stage=lambda text: status.update(text),
        )
    for parity in result.parity:
        stderr.print(parity.line(), markup=False)
    stderr.print(result.tensorrt_parse.line(), markup=False)
    stderr.print(f"wrote {out} in {result.seconds:.1f} s:")
    for name, size in result.files.items():
        stderr.print(f"  {name:24s} {format_bytes(size):>10s}")
    if fp16 or plugin:
        stderr.print(
            f"next: maskface build {out} --out {out.with_suffix('.engine')}" + ("" if plugin else " --no-plugin"),
            markup=False,
        )
    if not plugin:
        stderr.print(f"next: maskface generate MASK_DIR --model {out} --out out/")
    if as_json:
        emit_json(
            {
                "out": str(out),
                "files": result.files,
                "seconds": result.seconds,
                "parity": [{"graph": graph, **check} for graph, check in result.manifest.parity.items()],
                "tensorrt_parse": result.tensorrt_parse.to_dict(),
                "manifest": result.manifest.to_dict(),
            }
        )


command = export
