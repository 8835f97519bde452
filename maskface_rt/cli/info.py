"""``maskface info MODEL``: a model's metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from maskface_rt.cli.options import json_option, path_value
from maskface_rt.console import emit_json


def info(
    model: Annotated[
        Path, typer.Argument(parser=path_value, metavar="MODEL", help="Checkpoint, export folder or .onnx graph.")
    ],
    as_json: Annotated[bool, json_option("Print JSON on stdout.")] = False,
) -> None:
    """Print a model's metadata: config, versions, checksums, graph inputs and outputs."""
    from maskface_rt.model_info import describe

    described = describe(model)
    if as_json:
        emit_json(described)
        return
    for key, value in described.items():
        shown = json.dumps(value) if isinstance(value, (dict, list)) else value
        typer.echo(f"{key}: {shown}")


command = info
