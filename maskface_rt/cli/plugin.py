"""``maskface plugin ptx``: the fused AdaIN kernel of the TensorRT plugin, built ahead of time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from maskface_rt.cli.options import json_option, path_value
from maskface_rt.console import emit_json, stderr
from maskface_rt.errors import ExitCode, MaskfaceError
from maskface_rt.kernels.config import DEFAULT_EPS, DEFAULT_SLOPE

plugin_app = typer.Typer(
    help="The fused AdaIN kernel of the TensorRT plugin maskface::FusedAdaIN.", no_args_is_help=True
)


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
    out: Annotated[
        Path, typer.Option("--out", "-o", parser=path_value, help="Folder for the .ptx files and fused_adain_ptx.json.")
    ],
    arch: Annotated[
        Optional[list[str]],
        typer.Option("--arch", help="GPU target, repeatable: sm_80, sm_86, sm_89, sm_90 (default: all)."),
    ] = None,
    dtype: Annotated[
        Optional[list[str]], typer.Option("--dtype", help="fp16 or fp32, repeatable (default: both).")
    ] = None,
    plane: Annotated[
        Optional[list[str]],
        typer.Option(
            "--plane", help="Plane size HxW the kernel is specialised for, or 'any', repeatable (default: any)."
        ),
    ] = None,
    eps: Annotated[float, typer.Option("--eps", help="Instance norm epsilon (baked in).")] = DEFAULT_EPS,
    negative_slope: Annotated[
        float, typer.Option("--negative-slope", help="LeakyReLU slope (baked in).")
    ] = DEFAULT_SLOPE,
    as_json: Annotated[bool, json_option()] = False,
) -> None:
    """Build the fused AdaIN kernel's PTX ahead of time (no GPU needed; needs triton) and assemble it with ptxas."""
    import importlib.util

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
    variants = [
        ptx.Variant(a, d, kernel_config(hw), eps, negative_slope) for a in arches for d in dtypes for hw in sizes
    ]
    with stderr.status(f"compiling {len(variants)} kernel variants"):
        kernels = ptx.build(variants)
    written = ptx.write(kernels, out)
    ptxas = ptx.find_ptxas()
    checks = {}
    for kernel in kernels:
        ok, message = ptx.assemble(kernel, ptxas) if ptxas else (None, "no ptxas (PATH, triton wheel): not assembled")
        checks[kernel.variant.stem] = {"ptxas_ok": ok, "message": message}
        verdict = {True: "ptxas ok", False: "ptxas FAILED", None: message}[ok]
        stderr.print(
            f"  {kernel.variant.stem}.ptx: block {kernel.block_x}, shared {kernel.shared_mem} B, "
            f"global scratch {kernel.global_scratch_size} B; {verdict}",
            markup=False,
        )
        if ok is False:
            stderr.print(f"    {message}", markup=False)
    stderr.print(f"wrote {len(written)} files to {out}")
    stderr.print(
        "next: maskface export MODEL --out DIR --plugin --fp16, then maskface build DIR --out ENGINE", markup=False
    )
    if as_json:
        emit_json(
            {
                "out": str(out),
                "files": [str(p) for p in written],
                "ptxas": checks,
                "kernels": [k.launch_info() for k in kernels],
            }
        )
    if any(c["ptxas_ok"] is False for c in checks.values()):
        raise typer.Exit(int(ExitCode.FAILED))


command = plugin_app
