import math

import pytest

torch = pytest.importorskip("torch")

from maskface_rt.config import PRESETS, ModelConfig, TrainConfig, preset  # noqa: E402
from maskface_rt.losses import Models, discriminator_loss, generator_loss  # noqa: E402
from maskface_rt.networks import AdaINAct, Nets, adain_act_reference, count_parameters  # noqa: E402


def _inputs(cfg: ModelConfig, batch: int = 2):
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, cfg.num_classes, (batch, cfg.img_size, cfg.img_size), generator=gen)
    return labels, torch.randn(batch, cfg.style_dim, generator=gen), torch.randn(batch, cfg.latent_dim, generator=gen)


@pytest.mark.parametrize("name", ["tiny-64", "tiny-128"])
def test_shapes_per_preset(name):
    cfg = preset(name)
    nets = Nets(cfg)
    labels, s, z = _inputs(cfg)
    x = nets.generator(labels, s)
    assert x.shape == (2, 3, cfg.img_size, cfg.img_size)
    assert float(x.detach().abs().max()) <= 1.0
    assert nets.style_encoder(z).shape == (2, cfg.style_dim)
    assert nets.style_decoder(x).shape == (2, cfg.style_dim)
    assert nets.discriminator(x, labels).shape == (2,)


@pytest.mark.slow
def test_paper_256_matches_the_published_size():
    from torch.utils.flop_counter import FlopCounterMode

    cfg = preset("paper-256")
    nets = Nets(cfg)
    # StarGAN v2's generator with a 19-channel input: 33.9 M parameters, ~98.5 GFLOPs per 256x256 image.
    assert count_parameters(nets.generator) == pytest.approx(33.9e6, rel=0.005)
    labels, s, _ = _inputs(cfg, batch=1)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        nets.generator(labels, s)
    assert counter.get_total_flops() == pytest.approx(98.5e9, rel=0.01)
    assert cfg.first_dim == 64 and cfg.num_downsamples == 4


def test_preset_counts_are_ordered():
    sizes = {name: count_parameters(Nets(cfg).generator) for name, cfg in PRESETS.items() if name != "paper-256"}
    assert sizes["tiny-64"] < sizes["tiny-128"] < 33.9e6


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="img_size"):
        ModelConfig(img_size=100)
    with pytest.raises(ValueError, match="bottleneck_size"):
        ModelConfig(img_size=64, bottleneck_size=128)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_adain_statistics_are_fp32_under_half_precision(dtype):
    torch.manual_seed(0)
    module = AdaINAct(style_dim=8, num_features=4).to(dtype)
    # Activations around 300: their squares (9e4) overflow fp16, so statistics computed in the
    # module's own precision would be inf/NaN; fp32 statistics stay exact to the input's rounding.
    x = (torch.randn(2, 4, 16, 16) * 4 + 300).to(dtype)
    s = torch.randn(2, 8).to(dtype)
    assert dtype != torch.float16 or torch.isinf(x.square()).any()
    y = module(x, s)
    assert y.dtype == dtype and torch.isfinite(y).all()
    gamma, beta = module.affine(s)
    ref = adain_act_reference(x.double(), gamma.double(), beta.double(), module.eps, module.negative_slope)
    # Output rounding to the half format is the only error left (bf16 has 8 mantissa bits).
    tol = 1e-2 if dtype == torch.float16 else 6e-2
    assert (y.double() - ref).abs().max().item() < tol * max(1.0, ref.abs().max().item())


def test_adain_matches_instance_norm_formula():
    torch.manual_seed(1)
    module = AdaINAct(style_dim=8, num_features=6)
    x, s = torch.randn(3, 6, 5, 7), torch.randn(3, 8)
    gamma, beta = module.affine(s)
    expected = torch.nn.functional.leaky_relu(
        (1 + gamma[:, :, None, None]) * torch.nn.functional.instance_norm(x, eps=1e-5) + beta[:, :, None, None], 0.2
    )
    assert torch.allclose(module(x, s), expected, atol=1e-5)


@pytest.mark.slow
def test_gradients_reach_all_four_networks():
    cfg = preset("tiny-64")
    nets = Nets(cfg)
    m = Models(nets.generator, nets.style_encoder, nets.style_decoder, nets.discriminator)
    tcfg = TrainConfig(batch_size=2)
    labels, _, z = _inputs(cfg)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    d_loss, _ = discriminator_loss(m, tcfg, x, labels, nets.style_encoder(z).detach())
    d_loss.backward()
    g_loss, _ = generator_loss(m, tcfg, x, labels, nets.style_encoder(z), nets.style_encoder(z.flip(0)).detach(), 1.0)
    g_loss.backward()
    for name in ("generator", "style_encoder", "style_decoder", "discriminator"):
        for pname, p in getattr(nets, name).named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), f"{name}.{pname}"
            assert p.grad.abs().sum() > 0, f"{name}.{pname} got a zero gradient"


def test_he_init_zero_biases():
    nets = Nets(preset("tiny-64"))
    conv = nets.generator.from_mask
    assert float(conv.bias.detach().abs().max()) == 0.0
    fan_in = conv.weight[0].numel()
    assert float(conv.weight.detach().std()) == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)


def test_whole_generator_runs_in_half_precision():
    cfg = preset("tiny-64")
    torch.manual_seed(0)  # the weights, so the result does not depend on which tests ran before
    nets = Nets(cfg).eval()
    labels, s, _ = _inputs(cfg)
    with torch.no_grad():
        ref = nets.generator(labels, s)
        half = nets.generator.to(torch.bfloat16)(labels, s.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    assert (half.float() - ref).abs().max().item() < 0.1
