"""Training: ``maskface train DATA --out RUN``.

Each iteration makes four updates, as in StarGAN v2: D with a latent-guided and with a
reference-guided fake, then G (with F and E) latent-guided and G reference-guided. EMA copies of
G, F and E are the inference weights. Several GPUs: launch with torchrun (DistributedDataParallel,
see ``ddp``). The run folder's files are named in ``run_layout``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from maskface_rt import __version__
from maskface_rt.checkpoint import load_into, load_state, save_model, save_state
from maskface_rt.config import ModelConfig, TrainConfig
from maskface_rt.datasets import PairedDataset
from maskface_rt.ddp import DistInfo, init_distributed
from maskface_rt.devices import resolve_device
from maskface_rt.errors import MaskfaceError
from maskface_rt.fileio import write_json_atomic
from maskface_rt.graph_contract import GRAPHS
from maskface_rt.image_io import save_png
from maskface_rt.labels import colorize
from maskface_rt.losses import Models, discriminator_loss, diversity_weight, generator_loss, lr_factor
from maskface_rt.networks import Nets, to_uint8_nhwc
from maskface_rt.run_layout import RunPaths, prepare_run
from maskface_rt.train_data import StepBatchSampler, TorchPairs, derive_seed, random_hflip

NET_NAMES = (*GRAPHS, "discriminator")
SAMPLE_MASKS = 6
SAMPLE_STYLES = 4


def amp_dtype(tcfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    if tcfg.amp == "off" or (tcfg.amp == "auto" and device.type != "cuda"):
        return None
    if tcfg.amp == "fp16" or (tcfg.amp == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


class Trainer:
    """The networks, their EMA copies and optimizers, and one training iteration."""

    def __init__(
        self, cfg: ModelConfig, tcfg: TrainConfig, device: torch.device, dist_info: DistInfo = DistInfo()
    ) -> None:
        self.cfg, self.tcfg, self.device, self.dist = cfg, tcfg, device, dist_info
        torch.manual_seed(derive_seed(tcfg.seed, 0))
        self.nets = Nets(cfg).to(device)
        self.ema = copy.deepcopy(self.nets)
        self.ema.discriminator = None
        self.ema.eval().requires_grad_(False)
        self.optims = {
            name: torch.optim.Adam(getattr(self.nets, name).parameters(), **self._adam_settings(name))
            for name in NET_NAMES
        }
        self.models = Models(**{name: self._wrap(getattr(self.nets, name)) for name in NET_NAMES})
        self.autocast_dtype = amp_dtype(tcfg, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.autocast_dtype == torch.float16)

    def _adam_settings(self, name: str, step: int = 0) -> dict[str, Any]:
        tcfg = self.tcfg
        lr = tcfg.mapping_lr if name == "style_encoder" else tcfg.lr
        return {"lr": lr * lr_factor(tcfg, step), "betas": (tcfg.beta1, tcfg.beta2), "weight_decay": tcfg.weight_decay}

    def _schedule_rates(self, step: int) -> None:
        for name, opt in self.optims.items():
            for group in opt.param_groups:
                group["lr"] = self._adam_settings(name, step)["lr"]

    def _wrap(self, module: nn.Module) -> nn.Module:
        if self.dist.world_size == 1:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _update(self, loss: torch.Tensor, names: tuple[str, ...]) -> None:
        for opt in self.optims.values():
            opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        for name in names:
            self.scaler.step(self.optims[name])
        self.scaler.update()

    def train_step(self, step: int, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """One iteration on a batch; returns the losses (averaged over the latent and reference steps)."""
        self.nets.train()
        m, tcfg = self.models, self.tcfg
        gen = torch.Generator(self.device).manual_seed(derive_seed(tcfg.seed, 2, step, self.dist.rank))
        images, labels = images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
        if tcfg.hflip:
            images, labels = random_hflip(images, labels, gen)
        batch = images.shape[0]
        z1, z2 = (torch.randn(batch, self.cfg.latent_dim, generator=gen, device=self.device) for _ in range(2))
        refs = (images.roll(1, 0), images.roll(-1, 0))
        lambda_ds = diversity_weight(tcfg, step)
        self._schedule_rates(step)
        r1_scale = self.scaler.get_scale() if self.scaler.is_enabled() else 1.0
        logs: dict[str, list[float]] = {}

        def record(values: dict[str, float]) -> None:
            for k, v in values.items():
                logs.setdefault(k, []).append(v)

        for style_of in (lambda: m.style_encoder(z1), lambda: m.style_decoder(refs[0])):
            with self._autocast():
                with torch.no_grad():
                    style = style_of()
                loss, values = discriminator_loss(m, tcfg, images, labels, style, r1_scale)
            self._update(loss, ("discriminator",))
            record(values)

        latent = (lambda: m.style_encoder(z1), lambda: m.style_encoder(z2))
        reference = (lambda: m.style_decoder(refs[0]), lambda: m.style_decoder(refs[1]))
        for (style1_of, style2_of), updated in ((latent, GRAPHS), (reference, ("generator",))):
            with self._autocast():
                with torch.no_grad():
                    style2 = style2_of()
                loss, values = generator_loss(m, tcfg, images, labels, style1_of(), style2, lambda_ds)
            self._update(loss, updated)
            record(values)

        self.update_ema(step)
        out = {k: float(np.mean(v)) for k, v in logs.items()}
        out["lambda_ds"] = lambda_ds
        out["lr"] = self.optims["generator"].param_groups[0]["lr"]
        return out

    @torch.no_grad()
    def update_ema(self, step: int) -> None:
        """EMA with a warm-up (beta_t = min(beta, (1 + t) / (10 + t))), so short runs are not mostly init."""
        beta = min(self.tcfg.ema_beta, (1 + step) / (10 + step))
        for name in GRAPHS:
            for p_ema, p in zip(getattr(self.ema, name).parameters(), getattr(self.nets, name).parameters()):
                p_ema.lerp_(p.detach(), 1.0 - beta)

    def state_dict(self, step: int) -> dict[str, Any]:
        return {
            "step": step,
            "train_config": self.tcfg.to_dict(),
            "nets": {name: getattr(self.nets, name).state_dict() for name in NET_NAMES},
            "ema": {name: getattr(self.ema, name).state_dict() for name in GRAPHS},
            "optims": {name: opt.state_dict() for name, opt in self.optims.items()},
            "scaler": self.scaler.state_dict(),
            "rng": {"torch": torch.get_rng_state()},
        }

    def load_state_dict(self, state: dict[str, Any], path: Path) -> int:
        for name in NET_NAMES:
            load_into(getattr(self.nets, name), state["nets"][name], path, name)
        for name in GRAPHS:
            load_into(getattr(self.ema, name), state["ema"][name], path, f"EMA {name}")
        for name, opt in self.optims.items():
            opt.load_state_dict(state["optims"][name])
            for group in opt.param_groups:  # load_state_dict restores the stored rates; --lr etc. on resume win
                group.update(self._adam_settings(name))
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        return int(state["step"])

    @torch.no_grad()
    def sample_grid(self, pairs: PairedDataset) -> np.ndarray:
        """Rows: mask | G_ema with SAMPLE_STYLES fixed latent styles | real image (uint8 RGB)."""
        n = min(SAMPLE_MASKS, len(pairs))
        reals, masks = zip(*(pairs[i] for i in range(n)))
        labels = torch.from_numpy(np.stack(masks).astype(np.int64)).to(self.device)
        gen = torch.Generator(self.device).manual_seed(derive_seed(self.tcfg.seed, 3))
        z = torch.randn(SAMPLE_STYLES, self.cfg.latent_dim, generator=gen, device=self.device)
        styles = self.ema.style_encoder(z)
        columns = [np.stack([colorize(mk) for mk in masks])]
        for k in range(SAMPLE_STYLES):
            fake = self.ema.generator(labels, styles[k : k + 1].expand(n, -1))
            columns.append(to_uint8_nhwc(fake).cpu().numpy())
        columns.append(np.stack(reals))
        rows = [np.concatenate([col[i] for col in columns], axis=1) for i in range(n)]
        return np.concatenate(rows, axis=0)


@dataclass
class TrainResult:
    run: Path
    model: Path
    start_step: int
    steps: int  # the step reached: the asked --steps, or fewer where the time limit stopped the run
    seconds: float
    last_losses: dict[str, float]
    stopped_by_time_limit: bool = False


def train(
    pairs: PairedDataset,
    out: str | Path,
    *,
    cfg: ModelConfig | None,
    tcfg: TrainConfig,
    overrides: dict[str, Any] | None = None,
    steps: int,
    resume: bool = False,
    device: str = "auto",
    data_description: str = "",
    on_start: Callable[[int], None] | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    time_limit: float | None = None,
) -> TrainResult:
    """Train until ``steps`` (the total step count, also when resuming) and write the run folder.

    ``cfg``: the model config (None on resume means "as stored"). ``tcfg`` applies to new runs; on
    resume the stored training config is used with ``overrides`` applied over it. ``time_limit``: seconds
    from this call after which the run stops at the end of the step under way, written as a run that was
    asked for that many steps (model, checkpoint, state, sample, log line), so that it can be resumed;
    None or 0: no limit. The step count it stops at depends on the machine's speed, not the batches of a step.
    """
    stop_at = time.monotonic() + time_limit if time_limit else None
    run = RunPaths(Path(out))
    prepare_run(run, resume=resume)
    dev = resolve_device(device)
    dist_info = init_distributed(dev)
    cfg, tcfg, state = _configs(run, cfg, tcfg, overrides, resume)
    if cfg.img_size != pairs.size:
        raise MaskfaceError(None, f"data set is read at {pairs.size} px but the model is {cfg.img_size} px")

    session = _Session(run, Trainer(cfg, tcfg, dev, dist_info), pairs, data_description)
    start = session.trainer.load_state_dict(state, run.state) if state is not None else 0
    if start >= steps:
        raise MaskfaceError(run.state, f"the run is already at step {start}; pass a larger --steps to go on")
    if on_start is not None and dist_info.is_main:
        on_start(start)

    loader = _loader(pairs, tcfg, dev, start, dist_info)
    session.write_config()
    t0 = time.perf_counter()
    losses, done = session.train_steps(loader, start, steps, on_step, _LossLog(run.log, t0), stop_at)
    session.save(done)
    session.sample(done)
    if dist_info.world_size > 1:
        dist.barrier()
    return TrainResult(run.root, run.model, start, done, time.perf_counter() - t0, losses, done < steps)


def _configs(
    run: RunPaths, cfg: ModelConfig | None, tcfg: TrainConfig, overrides: dict[str, Any] | None, resume: bool
) -> tuple[ModelConfig, TrainConfig, dict[str, Any] | None]:
    """The model and training configs of the run, and its stored state when resuming (None for a new run)."""
    if not resume:
        if cfg is None:
            raise MaskfaceError(None, "a new run needs a model config (--preset)")
        return cfg, tcfg, None
    stored_cfg, state = load_state(run.state)
    if cfg is not None and cfg != stored_cfg:
        raise MaskfaceError(run.state, f"the run was trained with {stored_cfg}, not the asked {cfg}")
    return stored_cfg, TrainConfig.from_dict({**state["train_config"], **(overrides or {})}), state


def _loader(pairs: PairedDataset, tcfg: TrainConfig, dev: torch.device, start: int, dist_info: DistInfo) -> DataLoader:
    """This rank's batches from step ``start`` on (the same batches a run without a break would have had)."""
    sampler = StepBatchSampler(len(pairs), tcfg.batch_size, tcfg.seed, start, dist_info.rank, dist_info.world_size)
    return DataLoader(
        TorchPairs(pairs),
        batch_sampler=sampler,
        num_workers=tcfg.num_workers,
        pin_memory=dev.type == "cuda",
        persistent_workers=tcfg.num_workers > 0,
    )


class _LossLog:
    """The losses averaged over each logging window, one JSON line per window in the run's log."""

    def __init__(self, path: Path, t0: float) -> None:
        self.path, self.t0 = path, t0
        self.window: dict[str, list[float]] = {}
        self.window_start = time.perf_counter()

    def add(self, losses: dict[str, float]) -> None:
        for k, v in losses.items():
            self.window.setdefault(k, []).append(v)

    def write(self, done: int) -> None:
        """The window's line, at step ``done``; a new window starts."""
        elapsed = time.perf_counter() - self.window_start
        entry = {
            "step": done,
            "elapsed_s": round(time.perf_counter() - self.t0, 3),
            "it_s": round(len(self.window["rec"]) / max(elapsed, 1e-9), 4),
            **{k: round(float(np.mean(v)), 6) for k, v in self.window.items()},
        }
        with self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        self.window, self.window_start = {}, time.perf_counter()


@dataclass
class _Session:
    """One process's part of a run: the training loop, and the files only the main process writes."""

    run: RunPaths
    trainer: Trainer
    pairs: PairedDataset
    data_description: str

    @property
    def is_main(self) -> bool:
        return self.trainer.dist.is_main

    def train_steps(
        self,
        loader: DataLoader,
        start: int,
        steps: int,
        on_step: Callable[[int, dict[str, float]], None] | None,
        log: _LossLog,
        stop_at: float | None = None,
    ) -> tuple[dict[str, float], int]:
        """Steps start..steps-1, with the log, samples and checkpoints the training config asks for, until
        ``stop_at`` (time.monotonic(); None: no limit) has passed; returns the last step's losses and the step
        reached (the caller writes its checkpoint)."""
        tcfg = self.trainer.tcfg
        losses: dict[str, float] = {}
        done = start
        for step, (images, labels) in zip(range(start, steps), loader):
            losses = self.trainer.train_step(step, images, labels)
            done = step + 1
            last = done == steps or self._time_is_up(stop_at)
            log.add(losses)
            if self.is_main and (done % tcfg.log_every == 0 or last):
                log.write(done)
            if tcfg.sample_every and done % tcfg.sample_every == 0:
                self.sample(done)
            if tcfg.checkpoint_every and done % tcfg.checkpoint_every == 0 and not last:
                self.save(done)
            if on_step is not None and self.is_main:
                on_step(done, losses)
            if last:
                break
        return losses, done

    def _time_is_up(self, stop_at: float | None) -> bool:
        """Whether the time limit has passed; several processes go by the main one's clock, so that all stop
        at the same step."""
        if stop_at is None:
            return False
        up = time.monotonic() >= stop_at
        if self.trainer.dist.world_size == 1:
            return up
        flag = torch.tensor([float(up)], device=self.trainer.device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def write_config(self) -> None:
        """config.json: the model and training configs, the data and the number of processes."""
        if not self.is_main:
            return
        trainer = self.trainer
        write_json_atomic(
            self.run.config,
            {
                "model": trainer.cfg.to_dict(),
                "train": trainer.tcfg.to_dict(),
                "data": self.data_description,
                "maskface_version": __version__,
                "world_size": trainer.dist.world_size,
            },
            overwrite=True,
        )

    def save(self, step: int) -> None:
        """The EMA model as checkpoint ``step`` and as the run's model, and the training state."""
        if not self.is_main:
            return
        meta = {"data": self.data_description}
        trainer = self.trainer
        save_model(self.run.checkpoint(step), trainer.ema, step=step, overwrite=True, extra=meta)
        save_model(self.run.model, trainer.ema, step=step, overwrite=True, extra=meta)
        save_state(self.run.state, trainer.cfg, trainer.state_dict(step))

    def sample(self, step: int) -> None:
        """The sample grid of step ``step``."""
        if self.is_main:
            save_png(self.run.samples(step), self.trainer.sample_grid(self.pairs), overwrite=True)
