"""``maskface build ONNX --out ENGINE [--runtime tensorrt|tensorrt-rtx]``: TensorRT or TensorRT-RTX engines
from a maskface export.

A plain command function (``command``, registered by ``maskface_rt.cli``). Options are
checked before any work (bad values exit 2 with what would be valid), progress and TensorRT's log go
to stderr, ``--json`` prints the result on stdout. Imports neither torch nor TensorRT before it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from maskface_rt.backends.trt.compat import RUNTIMES
from maskface_rt.backends.trt.engine_file import DEFAULT_OPTIMIZATION_LEVEL
from maskface_rt.backends.trt.profile import DEFAULT_MAX_BATCH, DEFAULT_OPT_BATCH
from maskface_rt.cli.options import device_option, json_option, path_value, usage_error
from maskface_rt.errors import OptionError

if TYPE_CHECKING:
    from maskface_rt.export.engine_builder import BuildOptions, BuildResult

_RTX = RUNTIMES["tensorrt-rtx"]
COMPUTE_CAPABILITY_HELP = (
    "TensorRT-RTX only: the GPUs to build for, repeatable or a comma list: "
    + "; ".join(f"{cc} {gpus}" for cc, (_, gpus) in _RTX.compute_capabilities.items())
    + ". Hopper (H100/H200, 9.0) is not a TensorRT-RTX target: use --runtime tensorrt there. "
    + f"Default: TensorRT-RTX's own, {', '.join(_RTX.default_compute_capabilities)}."
)


def build(
    onnx_path: Annotated[
        Path,
        typer.Argument(
            parser=path_value,
            metavar="ONNX",
            help="A maskface export folder (or its generator.onnx); a --plugin export unless --no-plugin.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            parser=path_value,
            help="Generator engine file (.engine); the style encoder and "
            "decoder engines and the sidecar ENGINE.json go beside it.",
        ),
    ],
    plugin: Annotated[
        bool,
        typer.Option(
            "--plugin/--no-plugin",
            help="Build the FusedAdaIN generator of a 'maskface "
            "export --plugin' folder (TensorRT plugin "
            "maskface::FusedAdaIN); --no-plugin for a "
            "portable export.",
        ),
    ] = True,
    min_batch: Annotated[int, typer.Option("--min-batch", help="Smallest batch of the optimization profile.")] = 1,
    opt_batch: Annotated[
        Optional[int],
        typer.Option(
            "--opt-batch", help=f"Batch TensorRT tunes for (default: {DEFAULT_OPT_BATCH}, kept within min..max)."
        ),
    ] = None,
    max_batch: Annotated[
        Optional[int],
        typer.Option(
            "--max-batch", help=f"Largest batch (default: {DEFAULT_MAX_BATCH}, at most the export's max batch)."
        ),
    ] = None,
    timing_cache: Annotated[
        Optional[Path],
        typer.Option(
            "--timing-cache",
            parser=path_value,
            help="TensorRT timing cache: read when present, written back after a build.",
        ),
    ] = None,
    workspace: Annotated[
        Optional[int],
        typer.Option("--workspace", help="Builder workspace limit in MiB (default: TensorRT's, the GPU's memory)."),
    ] = None,
    optimization_level: Annotated[
        int, typer.Option("--optimization-level", help="Builder optimisation level 0..5.")
    ] = DEFAULT_OPTIMIZATION_LEVEL,
    layer_info: Annotated[
        bool,
        typer.Option("--layer-info", help="Also write ENGINE.layers.json (the engine inspector's per-layer JSON)."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Rebuild even when nothing changed; replace files that maskface build did not write."
        ),
    ] = False,
    device: Annotated[
        str, device_option("auto, cuda or cuda:N (TensorRT-RTX: the GPU of the parity check; auto builds without one).")
    ] = "auto",
    runtime: Annotated[
        Optional[str],
        typer.Option(
            "--runtime",
            help="tensorrt (builds and runs on an NVIDIA GPU) or tensorrt-rtx (builds on any machine, the "
            "CPU included; its engines run on RTX-class GPUs). Default: the first installed, TensorRT "
            "first.",
        ),
    ] = None,
    compute_capability: Annotated[
        Optional[list[str]], typer.Option("--compute-capability", help=COMPUTE_CAPABILITY_HELP)
    ] = None,
    as_json: Annotated[bool, json_option()] = False,
) -> None:
    """Build TensorRT or TensorRT-RTX engines (generator, style encoder, style decoder) from an export, checked
    against ONNX Runtime fp32 where a GPU can run them; skipped when the engines beside --out are up to date."""
    from maskface_rt.console import emit_json
    from maskface_rt.export.engine_builder import BuildOptions

    options = BuildOptions(
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        plugin=plugin,
        timing_cache=timing_cache,
        workspace_mib=workspace,
        optimization_level=optimization_level,
        layer_info=layer_info,
        force=force,
        device=device,
        runtime=runtime,
        compute_capabilities=tuple(compute_capability or ()),
    )
    result = _build(onnx_path, out, options)
    _print_checks(result)
    _print_engines(result)
    if as_json:
        emit_json(result.to_json())


def _build(onnx_path: Path, out: Path, options: BuildOptions) -> BuildResult:
    """build_engine with its stages on the status line and TensorRT's log on stderr; a bad option is a usage
    error (exit 2), an ONNX parse error lists the nodes it names."""
    from maskface_rt.backends.trt.parse import OnnxParseError
    from maskface_rt.console import stderr
    from maskface_rt.export.engine_builder import build_engine

    def log(severity: str, message: str) -> None:
        stderr.print(f"{options.runtime or 'TensorRT'} {severity}: {message}", markup=False)

    try:
        with stderr.status("checking") as status:
            return build_engine(onnx_path, out, options, on_stage=status.update, on_log=log)
    except OptionError as e:
        raise usage_error(e) from None
    except OnnxParseError as e:
        for line in e.node_errors:
            stderr.print(f"  {e.where}: {line}", markup=False)
        raise


def _print_checks(result: BuildResult) -> None:
    """The build's warnings, then its parity checks against ONNX Runtime (or why there were none)."""
    from maskface_rt.console import stderr

    for warning in result.warnings:
        stderr.print(f"warning: {warning}", markup=False)
    for parity in result.parity:
        stderr.print(parity.line(), markup=False)
    if not result.parity:
        stderr.print(f"parity check against ONNX Runtime: {result.parity_status}", markup=False)


def _print_engines(result: BuildResult) -> None:
    """What was built (or found up to date), the files beside it, and the generate command that runs it."""
    from maskface_rt.console import stderr

    sidecar = result.sidecar
    what = (
        f"{sidecar.precision}{', FusedAdaIN plugin' if sidecar.plugin else ''}, {sidecar.profile}, {sidecar.built_with}"
    )
    if result.cache_hit:
        stderr.print(
            f"up to date: {result.engine} ({what}; cache key {sidecar.cache_key[:12]}); --force rebuilds", markup=False
        )
    else:
        stderr.print(
            f"built {result.engine} ({what}) in {sidecar.build_seconds:.1f} s "
            f"({result.seconds:.1f} s with the checks):",
            markup=False,
        )
        for name, size in result.files.items():
            stderr.print(f"  {name:40s} {size / 2**20:10.1f} MiB", markup=False)
    if result.layer_info is not None:
        stderr.print(f"layer information: {result.layer_info}", markup=False)
    if result.timing_cache is not None:
        stderr.print(f"timing cache: {result.timing_cache}", markup=False)
    stderr.print(
        f"next: maskface generate MASK_DIR --out out/ --backend {sidecar.runtime} --model {result.engine} "
        f"--batch-size {sidecar.profile.opt}",
        markup=False,
    )


command = build
