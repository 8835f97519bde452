"""``maskface eval``: evaluation commands, a typer sub-app (``command``, registered as ``maskface eval``).

    maskface eval MODEL --data DIR [options]      evaluate (the default command, also ``maskface eval run``)
    maskface eval train-parser DATA --out FILE     train the package's face parser for mask consistency

The metric networks need torch (the [train] extra); nothing here imports it before a command runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from maskface_rt.cli.options import (
    backend_option,
    device_option,
    json_option,
    label_order_option,
    path_value,
    precision_option,
    style_seed_option,
    styles_option,
    usage_error,
)
from maskface_rt.errors import MaskfaceError, OptionError


class DefaultCommandGroup(TyperGroup):
    """A group that hands its arguments to the ``run`` command unless the first one names a subcommand,
    so ``maskface eval MODEL --data DIR`` and ``maskface eval train-parser ...`` both work."""

    default_command = "run"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


eval_app = typer.Typer(
    cls=DefaultCommandGroup,
    help="Evaluate a model (maskface eval MODEL --data DIR): mask consistency, diversity, FID/KID, backend parity.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _require_torch() -> None:
    from maskface_rt.backends.torch_backend import available

    if not available()[0]:
        raise MaskfaceError(None, "maskface eval needs torch for its metric networks: pip install 'maskface-rt[train]'")


@eval_app.command("run")
def run(
    model: Annotated[
        Path,
        typer.Argument(parser=path_value, metavar="MODEL", help="Checkpoint, export folder or engine to evaluate."),
    ],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            "-d",
            parser=path_value,
            help="Data set (paired layout or CelebAMask-HQ): held-out masks, and real photos for FID/KID.",
        ),
    ],
    metrics: Annotated[
        Optional[str],
        typer.Option(
            "--metrics",
            help="Comma-separated: consistency, diversity, lpips, fid, kid, parity. Default: all that can "
            "run here (missing weights skip a metric; named metrics must run).",
        ),
    ] = None,
    backend: Annotated[str, backend_option()] = "auto",
    device: Annotated[str, device_option("auto, cpu or cuda (backend and metric networks).")] = "auto",
    precision: Annotated[str, precision_option()] = "auto",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Masks: the first N of the split.")] = 100,
    styles: Annotated[int, styles_option(min=2)] = 10,
    seed: Annotated[int, style_seed_option()] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per network call.")] = 8,
    split: Annotated[
        str, typer.Option("--split", help="auto (CelebAMask-HQ: test, else all), all, train, val, test.")
    ] = "auto",
    label_order: Annotated[str, label_order_option()] = "celebamask",
    real_limit: Annotated[
        Optional[int], typer.Option("--real-limit", min=2, help="Real photos for FID/KID (default: whole split).")
    ] = None,
    parser: Annotated[
        Optional[str],
        typer.Option(
            "--parser",
            help="Face parser for consistency: a file from 'maskface eval train-parser', or 'bisenet' "
            "(79999_iter.pth in --weights-dir; the default when it is there).",
        ),
    ] = None,
    compare: Annotated[
        Optional[list[str]],
        typer.Option(
            "--compare",
            help="BACKEND\\[@PRECISION]:MODEL to compare with MODEL on the same masks and seeds (repeatable), "
            "e.g. onnxruntime:runs/demo/onnx-fp16 or openvino@fp32:runs/demo/onnx (PRECISION: openvino's "
            "auto, fp32 or bf16).",
        ),
    ] = None,
    weights_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--weights-dir",
            parser=path_value,
            help="Folder of the pretrained metric networks (default: $MASKFACE_WEIGHTS_DIR or ./weights).",
        ),
    ] = None,
    weights_manifest: Annotated[
        Optional[Path],
        typer.Option(
            "--weights-manifest",
            parser=path_value,
            help="JSON replacing file names/sha256 of known weights (converted files).",
        ),
    ] = None,
    stats_cache: Annotated[
        Optional[Path],
        typer.Option(
            "--stats-cache",
            parser=path_value,
            help="Folder caching real-set Inception features (default: ~/.cache/maskface-rt/fid).",
        ),
    ] = None,
    no_stats_cache: Annotated[bool, typer.Option("--no-stats-cache", help="Neither read nor write the cache.")] = False,
    kid_subsets: Annotated[int, typer.Option("--kid-subsets", min=1, help="KID subsets.")] = 100,
    kid_subset_size: Annotated[int, typer.Option("--kid-subset-size", min=2, help="KID subset size.")] = 1000,
    report: Annotated[
        Optional[Path], typer.Option("--report", parser=path_value, help="Write a markdown report here.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --report file.")] = False,
    as_json: Annotated[bool, json_option("Print the results as JSON on stdout.")] = False,
) -> None:
    """Evaluate MODEL on held-out masks of --data: consistency, diversity, FID/KID and backend parity."""
    from maskface_rt.console import emit_json, progress_bar, stderr

    _require_torch()
    from maskface_rt.backends import backend_problem, precision_problem
    from maskface_rt.evaluation.fid import default_cache_dir
    from maskface_rt.evaluation.report import summary, write_report
    from maskface_rt.evaluation.runner import Comparison, EvalOptions, evaluate
    from maskface_rt.evaluation.weights import REGISTRY, WeightStore, read_manifest

    if problem := backend_problem(model, backend, device=device, precision=precision):
        raise usage_error(problem)
    try:
        comparisons = tuple(Comparison.parse(c) for c in compare or ())
    except OptionError as e:
        raise usage_error(e) from None
    for comparison in comparisons:
        if problem := precision_problem(comparison.model, comparison.backend, comparison.precision):
            raise typer.BadParameter(problem.problem, param_hint="--compare")
    if report is not None and report.exists() and not overwrite:
        raise MaskfaceError(report, "already exists (pass --overwrite to replace it)")
    store = WeightStore(weights_dir, read_manifest(weights_manifest) if weights_manifest else REGISTRY)
    options = EvalOptions(
        data=data,
        metrics=tuple(m.strip() for m in metrics.split(",") if m.strip()) if metrics else None,
        limit=limit,
        styles=styles,
        seed=seed,
        batch_size=batch_size,
        split=split,
        label_order=label_order,
        real_limit=real_limit,
        parser=parser,
        compare=comparisons,
        stats_cache=None if no_stats_cache else (stats_cache or default_cache_dir()),
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
        device=device,
    )
    with progress_bar() as progress:

        def stage(name: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(name, total=total, rate="")
            return lambda n: progress.advance(task, n)

        result = evaluate(model, options, backend=backend, precision=precision, store=store, progress=stage)
    for line in summary(result):
        stderr.print(line, markup=False)
    if report is not None:
        write_report(report, result, overwrite=overwrite)
        stderr.print(f"wrote {report}", markup=False)
    if as_json:
        emit_json(result.to_json())


@eval_app.command("train-parser")
def train_parser_command(
    data: Annotated[
        Path,
        typer.Argument(parser=path_value, metavar="DATA", help="Paired data set (images/, masks/) or CelebAMask-HQ."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", parser=path_value, help="Parser file to write (.safetensors).")],
    size: Annotated[
        int, typer.Option("--size", min=8, help="Image side the parser works at (multiple of 8); use the model's size.")
    ] = 64,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Training steps.")] = 600,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Pairs per step.")] = 16,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Adam learning rate.")] = 2e-3,
    width: Annotated[int, typer.Option("--width", min=1, help="Channels of the first U-Net level.")] = 16,
    max_pairs: Annotated[int, typer.Option("--max-pairs", min=1, help="Pairs held in memory for training.")] = 4000,
    split: Annotated[
        str, typer.Option("--split", help="auto (CelebAMask-HQ: train, else all), all, train, val, test.")
    ] = "auto",
    label_order: Annotated[str, label_order_option()] = "celebamask",
    seed: Annotated[int, typer.Option("--seed", help="Seed of init and batch order.")] = 0,
    device: Annotated[str, device_option()] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file.")] = False,
    as_json: Annotated[bool, json_option()] = False,
) -> None:
    """Train the package's face parser (a small U-Net) on paired data, for 'maskface eval --parser FILE'."""
    from maskface_rt.console import emit_json, progress_bar, stderr

    _require_torch()
    from maskface_rt.datasets import open_dataset, resolve_split
    from maskface_rt.devices import resolve_device
    from maskface_rt.evaluation.unet_parser import ParserConfig, train_parser

    ParserConfig(img_size=size, width=width)  # refuse bad sizes before reading the data
    if out.exists() and not overwrite:
        raise MaskfaceError(out, "already exists (pass --overwrite to replace it)")
    pairs = open_dataset(data, size=size, split=resolve_split(data, split), label_order=label_order)
    with progress_bar() as progress:
        task = progress.add_task("train-parser", total=steps, rate="")

        def on_step(step: int, loss: float, accuracy: float) -> None:
            progress.update(task, completed=step, rate=f"loss {loss:.3f} acc {accuracy:.3f}")

        result = train_parser(
            pairs,
            out,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            width=width,
            max_pairs=max_pairs,
            seed=seed,
            device=resolve_device(device),
            overwrite=overwrite,
            data_description=str(data),
            on_step=on_step,
        )
    stderr.print(
        f"trained a {size} px parser on {result.pairs} pairs in {result.seconds:.1f} s: training pixel "
        f"accuracy {result.pixel_accuracy:.3f}, loss {result.loss:.3f}; wrote {out}",
        markup=False,
    )
    stderr.print(f"next: maskface eval MODEL --data HELD_OUT_DATA --parser {out}", markup=False)
    if as_json:
        emit_json(
            {
                "out": str(out),
                "steps": result.steps,
                "pairs": result.pairs,
                "seconds": result.seconds,
                "loss": result.loss,
                "pixel_accuracy": result.pixel_accuracy,
            }
        )


command = eval_app
