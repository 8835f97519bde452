"""``maskface doctor``: what this machine can run and how to get the rest."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from rich.markup import escape

from maskface_rt.cli.options import json_option
from maskface_rt.console import emit_json, stderr


def doctor(as_json: Annotated[bool, json_option("Print JSON on stdout.")] = False) -> None:
    """List what this machine can run (backends, providers, GPUs, TensorRT, Triton) and how to get the rest."""
    from maskface_rt.doctor import checks

    results = checks()
    if as_json:
        emit_json({"checks": [dataclasses.asdict(c) for c in results]})
        return
    for check in results:
        mark = "[green]ok[/]  " if check.ok else "[yellow]--[/]  "
        stderr.print(f"{mark}{check.name:20s} {escape(check.detail)}")


command = doctor
