"""``maskface bench``: latency, throughput, accuracy and roofline per backend and batch size.

A plain command function (``command``, registered by ``maskface_rt.cli``). Options are checked before any
work; nothing heavier than typer is imported before a run starts. ``--json`` prints the report on stdout, as
in the other commands; ``--json-file FILE`` writes it to a file (the old ``--json FILE`` / ``--json -``
still work, with a deprecation note on stderr).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from typer.core import TyperCommand

from maskface_rt.benchmarking.variants import BACKEND_NAMES
from maskface_rt.cli.options import device_option, json_option, path_value
from maskface_rt.config import PRESETS
from maskface_rt.devices import parse_device
from maskface_rt.errors import ExitCode, MaskfaceError

if TYPE_CHECKING:
    from maskface_rt.benchmarking.suite import BenchOptions, BenchResult

ALL = "all"
STDOUT = Path("-")


def parse_backends(values: list[str] | None) -> tuple[tuple[str, ...], bool]:
    """--backend values (repeatable, comma-separated) -> (backend names in report order, named explicitly)."""
    names = [v.strip() for value in values or [ALL] for v in value.split(",") if v.strip()]
    bad = [n for n in names if n != ALL and n not in BACKEND_NAMES]
    if bad or not names:
        raise typer.BadParameter(
            f"unknown backend {', '.join(map(repr, bad)) or '(empty)'}; valid: {ALL}, {', '.join(BACKEND_NAMES)}",
            param_hint="--backend",
        )
    if ALL in names:
        return BACKEND_NAMES, False
    return tuple(n for n in BACKEND_NAMES if n in names), True


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        sizes = []
    if not sizes or sizes[0] < 1:
        raise typer.BadParameter(
            f"{text!r} is not a comma-separated list of positive integers (e.g. 1,8,32)", param_hint="--batch-sizes"
        )
    return tuple(sizes)


def _check_outputs(paths: dict[str, Path | None], overwrite: bool) -> None:
    given = {name: path for name, path in paths.items() if path is not None}
    resolved = [path.resolve() for path in given.values()]
    if len(set(resolved)) != len(resolved):
        raise typer.BadParameter(f"{', '.join(given)} must name different files")
    for path in given.values():
        if path.exists() and not overwrite:
            raise MaskfaceError(path, "already exists (pass --overwrite to replace it)")
        if path.is_dir():
            raise MaskfaceError(path, "is a folder; give a file name")


def bench(
    model: Annotated[
        Optional[Path],
        typer.Option(
            "--model",
            "-m",
            parser=path_value,
            help="A .safetensors checkpoint or an export folder (default: a randomly initialised "
            "model of --preset; speed does not depend on training).",
        ),
    ] = None,
    preset_name: Annotated[
        Optional[str],
        typer.Option("--preset", help=f"Size of the random model: {', '.join(PRESETS)} (default: paper-256)."),
    ] = None,
    backend: Annotated[
        Optional[list[str]],
        typer.Option(
            "--backend",
            help=f"Repeatable or comma-separated: {ALL} (default: every backend, those that cannot run "
            f"here listed with the reason) or {', '.join(BACKEND_NAMES)}.",
        ),
    ] = None,
    batch_sizes: Annotated[str, typer.Option("--batch-sizes", help="Comma-separated batch sizes.")] = "1,8,32",
    warmup_s: Annotated[
        float, typer.Option("--warmup-s", min=0.0, help="Warm-up seconds per backend and batch size.")
    ] = 2.0,
    duration_s: Annotated[
        float, typer.Option("--duration-s", min=0.0, help="Measured seconds per backend and batch size.")
    ] = 5.0,
    iterations: Annotated[
        int, typer.Option("--iterations", min=1, help="Measured calls at least, however long they take.")
    ] = 10,
    rounds: Annotated[
        int,
        typer.Option(
            "--rounds",
            min=1,
            help="Alternating rounds per batch size (A B C A B C ...): each times every backend for "
            "--duration-s / ROUNDS; images/s is the median over rounds.",
        ),
    ] = 3,
    device: Annotated[
        str, device_option("auto, cpu, cuda or cuda:N: where torch fp32 runs and whether the CUDA backends run.")
    ] = "auto",
    peak_tflops: Annotated[
        Optional[float],
        typer.Option(
            "--peak-tflops",
            help="The device's peak TFLOPS for the roofline columns (default: the table of "
            "common GPUs, an estimate for the CPU).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the inputs and of the random model.")] = 0,
    as_json: Annotated[bool, json_option("Print the rows, settings and environment as JSON on stdout.")] = False,
    json_path: Annotated[
        Optional[Path],
        typer.Option("--json-file", parser=path_value, help="Write that JSON to this file ('-': stdout)."),
    ] = None,
    csv_path: Annotated[
        Optional[Path], typer.Option("--csv", parser=path_value, help="Write the rows as CSV to this file.")
    ] = None,
    plot_path: Annotated[
        Optional[Path],
        typer.Option(
            "--plot", parser=path_value, help="Write a PNG of images/s against batch size per backend to this file."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing --json-file/--csv/--plot files.")
    ] = False,
) -> None:
    """Benchmark backends: latency percentiles, images/s, GPU compute time, memory, accuracy vs torch fp32, roofline."""
    names, named = parse_backends(backend)
    sizes = parse_batch_sizes(batch_sizes)
    _check_model_options(model, preset_name, peak_tflops)
    json_path = _json_destination(as_json, json_path)
    to_stdout = json_path == STDOUT
    _check_outputs({"--json-file": None if to_stdout else json_path, "--csv": csv_path, "--plot": plot_path}, overwrite)
    if model is not None:
        from maskface_rt.backends import model_kind

        model_kind(model)  # a missing or unknown model file stops here, before any work

    from maskface_rt.benchmarking import report
    from maskface_rt.benchmarking.suite import DEFAULT_PRESET, BenchOptions, run_bench
    from maskface_rt.console import stderr

    options = BenchOptions(
        backends=names,
        batch_sizes=sizes,
        named=named,
        model=model,
        preset=preset_name or DEFAULT_PRESET,
        device=device,
        warmup_s=warmup_s,
        duration_s=duration_s,
        min_iterations=iterations,
        rounds=rounds,
        peak_tflops=peak_tflops,
        seed=seed,
    )
    with stderr.status("bench") as status:
        result = run_bench(options, on_row=_print_row, on_stage=lambda text: status.update(text))
    result.meta["command"] = _command_line(options, model)
    report.print_table(result.rows, stderr, result.meta["environment"])
    if to_stdout:
        typer.echo(json.dumps(report.to_json(result.rows, result.meta), indent=2))
    written = _write_files(result, None if to_stdout else json_path, csv_path, plot_path, overwrite)
    for path in written:
        stderr.print(f"wrote {path}", markup=False, highlight=False)
    if result.exit_code != ExitCode.OK:
        raise typer.Exit(int(result.exit_code))


def _check_model_options(model: Path | None, preset_name: str | None, peak_tflops: float | None) -> None:
    """--preset (a known one, only for the random model) and --peak-tflops (positive)."""
    if preset_name is not None and preset_name not in PRESETS:
        raise typer.BadParameter(f"unknown preset {preset_name!r}; valid: {', '.join(PRESETS)}", param_hint="--preset")
    if preset_name is not None and model is not None:
        raise typer.BadParameter("sets the size of the random model; --model has its own config", param_hint="--preset")
    if peak_tflops is not None and not peak_tflops > 0:
        raise typer.BadParameter(f"must be positive, got {peak_tflops}", param_hint="--peak-tflops")


def _print_row(row: dict) -> None:
    """A measured row as it comes, on stderr (unavailable backends are listed under the table)."""
    from maskface_rt.console import stderr

    if row["status"] == "ok":
        stderr.print(
            f"{row['backend']} batch {row['batch']}: {row['images_per_s']:.2f} images/s, median "
            f"{row['latency_median_ms']:.2f} ms",
            markup=False,
            highlight=False,
        )
    elif row["status"] == "failed":
        batch = f" batch {row['batch']}" if row["batch"] is not None else ""
        stderr.print(f"{row['backend']}{batch}: failed: {row['reason']}", markup=False, highlight=False)


def _write_files(
    result: BenchResult, json_path: Path | None, csv_path: Path | None, plot_path: Path | None, overwrite: bool
) -> list[Path]:
    """The --json-file, --csv and --plot files that were asked for, in that order; returns their paths."""
    from maskface_rt.benchmarking import report

    written = []
    if json_path is not None:
        report.write_json(json_path, result.rows, result.meta, overwrite=overwrite)
        written.append(json_path)
    if csv_path is not None:
        report.write_csv(csv_path, result.rows, overwrite=overwrite)
        written.append(csv_path)
    if plot_path is not None:
        report.write_plot(
            plot_path,
            result.rows,
            f"maskface bench: {result.meta['model']}, {_where(result.meta)}",
            report.environment_line(result.meta["environment"]),
            overwrite=overwrite,
        )
        written.append(plot_path)
    return written


def _where(meta: dict[str, Any]) -> str:
    """The plot title's machine: the first GPU's name for a CUDA run, else the CPU."""
    gpus = meta["environment"].get("gpus") or []
    return gpus[0].get("name", "GPU") if parse_device(meta["device"]).is_cuda and gpus else meta["environment"]["cpu"]


def _json_destination(as_json: bool, json_path: Path | None) -> Path | None:
    """--json (stdout) and --json-file FILE ('-': stdout) -> the one destination."""
    if as_json and json_path is not None:
        raise typer.BadParameter("give --json or --json-file, not both", param_hint="--json")
    return STDOUT if as_json else json_path


def _old_json_spelling(args: list[str]) -> list[str]:
    """The old ``--json FILE`` / ``--json -`` / ``--json=FILE`` -> ``--json-file FILE``, with a note on stderr."""
    rewritten, rest = [], list(args)
    while rest:
        arg = rest.pop(0)
        if arg.startswith("--json="):
            value = arg.removeprefix("--json=")
        elif arg == "--json" and rest and (rest[0] == "-" or not rest[0].startswith("-")):
            value = rest.pop(0)
        else:
            rewritten.append(arg)
            continue
        from maskface_rt.console import stderr

        stderr.print(
            f"note: --json {value} is deprecated: --json prints on stdout, --json-file FILE writes a file",
            markup=False,
            highlight=False,
        )
        rewritten += ["--json-file", value]
    return rewritten


class BenchCommand(TyperCommand):
    """Accepts the old ``--json FILE`` spelling (bench has no arguments, so a word after --json is a file)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _old_json_spelling(args))


def _command_line(options: BenchOptions, model: Path | None) -> str:
    """The settings as a maskface bench command (file outputs left out)."""
    args = ["maskface", "bench"]
    args += ["--model", str(model)] if model is not None else ["--preset", options.preset]
    backends = ",".join(options.backends) if options.named else ALL
    args += [
        "--backend",
        backends,
        "--batch-sizes",
        ",".join(map(str, options.batch_sizes)),
        "--warmup-s",
        f"{options.warmup_s:g}",
        "--duration-s",
        f"{options.duration_s:g}",
        "--iterations",
        str(options.min_iterations),
        "--rounds",
        str(options.rounds),
        "--device",
        options.device,
        "--seed",
        str(options.seed),
    ]
    if options.peak_tflops is not None:
        args += ["--peak-tflops", f"{options.peak_tflops:g}"]
    return shlex.join(args)


command = bench
command_class = BenchCommand
