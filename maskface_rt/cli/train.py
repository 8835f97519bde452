"""``maskface train DATA --out RUN``: train the four networks (needs the [train] extra)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import TextColumn

from maskface_rt.cli.options import device_option, json_option, label_order_option, path_value
from maskface_rt.config import PRESETS, TrainConfig, preset
from maskface_rt.console import emit_json, progress_bar, stderr, stop_progress


def _train_overrides(values: dict[str, Any]) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in values.items() if k in fields and v is not None}


def train(
    data: Annotated[
        Path,
        typer.Argument(
            parser=path_value, metavar="DATA", help="Data set: paired layout (images/, masks/) or CelebAMask-HQ."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", parser=path_value, help="Run folder (checkpoints, samples, log).")
    ],
    preset_name: Annotated[
        Optional[str],
        typer.Option("--preset", help=f"Model size: {', '.join(PRESETS)} (default paper-256; on --resume: as stored)."),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Total training steps (also when resuming).")] = 100_000,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
    device: Annotated[str, device_option()] = "auto",
    split: Annotated[
        str,
        typer.Option(
            "--split",
            help="auto, all, train, val or test (CelebAMask-HQ; auto: train where the split is known, else all).",
        ),
    ] = "auto",
    label_order: Annotated[str, label_order_option()] = "celebamask",
    batch_size: Annotated[
        Optional[int], typer.Option("--batch-size", help="Per-process batch size (default: 8).")
    ] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate of G, E, D (default: 1e-4).")] = None,
    lr_decay_start: Annotated[
        Optional[int],
        typer.Option("--lr-decay-start", help="Step where the linear decay of the rates to 0 starts (default: 0)."),
    ] = None,
    lr_decay_steps: Annotated[
        Optional[int], typer.Option("--lr-decay-steps", help="Steps of that decay; 0: constant rates (default: 0).")
    ] = None,
    mapping_lr: Annotated[
        Optional[float], typer.Option("--mapping-lr", help="Style encoder lr (default: 1e-6).")
    ] = None,
    beta1: Annotated[Optional[float], typer.Option("--beta1", help="Adam beta1 (default: 0).")] = None,
    beta2: Annotated[Optional[float], typer.Option("--beta2", help="Adam beta2 (default: 0.99).")] = None,
    weight_decay: Annotated[
        Optional[float], typer.Option("--weight-decay", help="Adam weight decay (default: 1e-4).")
    ] = None,
    ema_beta: Annotated[
        Optional[float], typer.Option("--ema-beta", help="EMA decay of G, F, E (default: 0.999).")
    ] = None,
    lambda_adv: Annotated[
        Optional[float], typer.Option("--lambda-adv", help="Adversarial weight (default: 1).")
    ] = None,
    lambda_r1: Annotated[Optional[float], typer.Option("--lambda-r1", help="R1 weight (default: 1).")] = None,
    lambda_sty: Annotated[
        Optional[float], typer.Option("--lambda-sty", help="Style reconstruction weight (default: 1).")
    ] = None,
    lambda_ds: Annotated[
        Optional[float], typer.Option("--lambda-ds", help="Diversity weight at step 0 (default: 1).")
    ] = None,
    ds_decay_steps: Annotated[
        Optional[int], typer.Option("--ds-decay-steps", help="Diversity decay steps (default: 100000).")
    ] = None,
    lambda_rec: Annotated[
        Optional[float], typer.Option("--lambda-rec", help="Paired reconstruction weight (default: 10).")
    ] = None,
    hflip: Annotated[Optional[bool], typer.Option("--hflip/--no-hflip", help="Random mirroring (default: on).")] = None,
    seed: Annotated[
        Optional[int], typer.Option("--seed", help="Seed of init, batch order and noise (default: 0).")
    ] = None,
    checkpoint_every: Annotated[
        Optional[int], typer.Option("--checkpoint-every", help="Checkpoint period (default: 1000).")
    ] = None,
    sample_every: Annotated[
        Optional[int], typer.Option("--sample-every", help="Sample grid period (default: 500).")
    ] = None,
    log_every: Annotated[Optional[int], typer.Option("--log-every", help="JSONL log period (default: 10).")] = None,
    num_workers: Annotated[
        Optional[int], typer.Option("--num-workers", help="Data loader workers (default: 2).")
    ] = None,
    amp: Annotated[
        Optional[str], typer.Option("--amp", help="auto (bf16/fp16 on CUDA), bf16, fp16, off (default: auto).")
    ] = None,
    time_limit: Annotated[
        Optional[float],
        typer.Option(
            "--time-limit",
            min=0,
            help="Seconds after which training stops at the end of the step under way, saved and resumable "
            "as if --steps had said that step (default, or 0: no limit).",
        ),
    ] = None,
    as_json: Annotated[bool, json_option()] = False,
) -> None:
    """Train the four networks; writes RUN/model.safetensors (EMA weights + config), resumable."""
    from maskface_rt.datasets import open_dataset, resolve_split

    overrides = _train_overrides(locals())
    try:
        cfg = preset(preset_name) if preset_name is not None else None
        tcfg = TrainConfig(**overrides)
    except (ValueError, TypeError) as e:
        raise typer.BadParameter(str(e)) from None
    if cfg is None and not resume:
        cfg = preset("paper-256")
    img_size = cfg.img_size if cfg is not None else _stored_img_size(out)
    pairs = open_dataset(data, size=img_size, split=resolve_split(data, split), label_order=label_order)

    from maskface_rt.trainer import train as run_training

    progress = progress_bar(TextColumn("{task.fields[losses]}"))
    task = progress.add_task("train", total=steps, rate="", losses="", start=False)

    def on_start(start: int) -> None:
        progress.start()
        progress.update(task, completed=start)
        progress.start_task(task)

    def on_step(done: int, losses: dict[str, float]) -> None:
        shown = " ".join(f"{k} {losses[k]:.3f}" for k in ("d_real", "d_fake", "g_adv", "rec") if k in losses)
        progress.update(task, completed=done, losses=shown)
        speed = progress.tasks[task].speed
        progress.update(task, rate=f"{speed:.2f} it/s" if speed else "")

    try:
        result = run_training(
            pairs,
            out,
            cfg=cfg,
            tcfg=tcfg,
            overrides=overrides,
            steps=steps,
            resume=resume,
            device=device,
            data_description=str(data),
            on_start=on_start,
            on_step=on_step,
            time_limit=time_limit,
        )
    finally:
        stop_progress(progress)
    stopped = f" (stopped by --time-limit {time_limit:g} s)" if result.stopped_by_time_limit else ""
    stderr.print(
        f"trained steps {result.start_step}..{result.steps} in {result.seconds:.1f} s{stopped}; "
        f"model: {result.model} ({result.model.stat().st_size / 1e6:.1f} MB)"
    )
    stderr.print(f"next: maskface export {result.model} --out {Path(out) / 'onnx'}")
    if as_json:
        emit_json(
            {
                "run": str(result.run),
                "model": str(result.model),
                "start_step": result.start_step,
                "steps": result.steps,
                "stopped_by_time_limit": result.stopped_by_time_limit,
                "seconds": result.seconds,
                "losses": result.last_losses,
            }
        )


def _stored_img_size(run: Path) -> int:
    from maskface_rt.checkpoint import read_config

    return read_config(run / "state.safetensors").img_size


command = train
