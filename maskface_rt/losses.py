"""Losses of the training recipe (StarGAN v2's, with a mask-conditioned D and a paired reconstruction)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from maskface_rt.config import TrainConfig


@dataclass
class Models:
    """The networks a loss needs (plain modules or their DistributedDataParallel wrappers)."""

    generator: nn.Module
    style_encoder: nn.Module
    style_decoder: nn.Module
    discriminator: nn.Module


def r1_penalty(d_out: torch.Tensor, x_real: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """0.5 * E[|grad_x D(x)|^2] on real images (Mescheder et al. 2018). ``scale``: an AMP loss scale
    that ``d_out`` is multiplied by before differentiating and that is divided out again."""
    (grad,) = torch.autograd.grad(d_out.float().sum() * scale, x_real, create_graph=True)
    grad = grad.float() / scale
    return 0.5 * grad.square().flatten(1).sum(1).mean()


def diversity_weight(tcfg: TrainConfig, step: int) -> float:
    """The diversity-sensitive loss weight, decayed linearly to 0 over ``ds_decay_steps``."""
    if tcfg.ds_decay_steps == 0:
        return 0.0
    return tcfg.lambda_ds * max(0.0, 1.0 - step / tcfg.ds_decay_steps)


def lr_factor(tcfg: TrainConfig, step: int) -> float:
    """The factor on every learning rate at ``step``: 1, then linearly to 0 from ``lr_decay_start``
    over ``lr_decay_steps`` (constant when ``lr_decay_steps`` is 0)."""
    if tcfg.lr_decay_steps == 0:
        return 1.0
    return min(1.0, max(0.0, 1.0 - (step - tcfg.lr_decay_start) / tcfg.lr_decay_steps))


def discriminator_loss(
    m: Models, tcfg: TrainConfig, x_real: torch.Tensor, labels: torch.Tensor, style: torch.Tensor, r1_scale: float = 1.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """Non-saturating loss on real vs G(labels, style), plus R1 on reals. ``style`` needs no grad."""
    x_real = x_real.detach().requires_grad_(True)
    out_real = m.discriminator(x_real, labels)
    loss_real = F.softplus(-out_real.float()).mean()
    loss_r1 = r1_penalty(out_real, x_real, r1_scale)
    with torch.no_grad():
        x_fake = m.generator(labels, style)
    loss_fake = F.softplus(m.discriminator(x_fake, labels).float()).mean()
    loss = loss_real + loss_fake + tcfg.lambda_r1 * loss_r1
    return loss, {"d_real": loss_real.item(), "d_fake": loss_fake.item(), "r1": loss_r1.item()}


def generator_loss(
    m: Models,
    tcfg: TrainConfig,
    x_real: torch.Tensor,
    labels: torch.Tensor,
    style1: torch.Tensor,
    style2: torch.Tensor,
    lambda_ds: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Adversarial + style reconstruction - diversity + paired reconstruction, for two target styles
    (``style2`` only serves the diversity term and needs no grad)."""
    x_fake = m.generator(labels, style1)
    loss_adv = F.softplus(-m.discriminator(x_fake, labels).float()).mean()
    loss_sty = (m.style_decoder(x_fake) - style1).float().abs().mean()
    with torch.no_grad():
        x_fake2 = m.generator(labels, style2)
    loss_ds = (x_fake - x_fake2).float().abs().mean()
    x_rec = m.generator(labels, m.style_decoder(x_real))
    loss_rec = (x_rec - x_real).float().abs().mean()
    loss = tcfg.lambda_adv * loss_adv + tcfg.lambda_sty * loss_sty - lambda_ds * loss_ds + tcfg.lambda_rec * loss_rec
    return loss, {"g_adv": loss_adv.item(), "sty": loss_sty.item(), "ds": loss_ds.item(), "rec": loss_rec.item()}
