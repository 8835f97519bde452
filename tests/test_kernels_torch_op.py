"""torch.ops.maskface.fused_adain: registration, fake and autograd on the CPU; the Triton path on a GPU."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from maskface_rt.kernels.reference import fused_adain_reference  # noqa: E402
from maskface_rt.kernels.torch_op import adain_act_reference  # noqa: E402

from maskface_rt import networks  # noqa: E402
from maskface_rt.config import preset  # noqa: E402

EPS, SLOPE = 1e-5, 0.2
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")


def _inputs(shape, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    n, c = shape[:2]
    x = torch.randn(shape, generator=g) * 2 + 0.5
    affine = torch.randn(n, 2 * c, generator=g) * 0.5
    gamma, beta = affine.to(device, dtype).chunk(2, dim=1)
    return x.to(device, dtype), gamma, beta


def test_op_passes_opcheck():
    x, gamma, beta = _inputs((2, 3, 5, 7))
    args = (x.requires_grad_(), gamma.detach().requires_grad_(), beta.detach().requires_grad_(), EPS, SLOPE)
    results = torch.library.opcheck(torch.ops.maskface.fused_adain.default, args)
    assert set(results.values()) == {"SUCCESS"}, results


def test_backward_matches_autograd_through_the_reference():
    x, gamma, beta = _inputs((2, 4, 6, 5), seed=1)
    leaves = [t.detach().requires_grad_() for t in (x, gamma, beta)]
    y = torch.ops.maskface.fused_adain(*leaves, EPS, SLOPE)
    grad = torch.randn_like(y)
    got = torch.autograd.grad(y, leaves, grad)
    ref_leaves = [t.detach().requires_grad_() for t in (x, gamma, beta)]
    want = torch.autograd.grad(adain_act_reference(*ref_leaves, EPS, SLOPE), ref_leaves, grad)
    for name, a, b in zip(("x", "gamma", "beta"), got, want):
        assert a.shape == b.shape and (a - b).abs().max().item() < 1e-5, name


def test_cpu_op_is_the_reference_and_matches_numpy():
    x, gamma, beta = _inputs((2, 3, 9, 4), seed=2)
    y = torch.ops.maskface.fused_adain(x, gamma, beta, EPS, SLOPE)
    assert torch.equal(y, adain_act_reference(x, gamma, beta, EPS, SLOPE))
    ref = fused_adain_reference(x.numpy(), gamma.numpy(), beta.numpy(), EPS, SLOPE, np.float64)
    assert np.abs(y.numpy() - ref).max() < 1e-5


def test_adain_act_uses_the_op_only_where_asked_on_the_cpu():
    torch.manual_seed(0)
    module = networks.AdaINAct(style_dim=8, num_features=3)
    x, s = torch.randn(2, 3, 8, 8), torch.randn(2, 8)
    assert not module.fused_active(x)  # CPU: the reference math, as before
    with networks.adain_as_op(module):
        assert module.fused_active(x)
        via_op = module(x, s)
        program = torch.export.export(module, (x, s))
    assert not module.fused_active(x)
    assert torch.equal(via_op, module(x, s))
    targets = [n.target for n in program.graph.nodes if n.op == "call_function"]
    assert targets.count(torch.ops.maskface.fused_adain.default) == 1
    assert torch.ops.aten.leaky_relu.default not in targets


def test_the_adain_implementation_is_a_setting_of_each_network():
    cfg = preset("tiny-64")
    first, second = networks.Generator(cfg), networks.Generator(cfg)

    def impls(net):
        return {m.impl for m in net.modules() if isinstance(m, networks.AdaINAct)}

    assert impls(first) == impls(second) == {networks.DEFAULT_ADAIN_IMPL}
    first.set_adain_impl("torch")
    with networks.adain_as_op(second):
        assert impls(first) == {"torch"} and impls(second) == {"op"}
    assert impls(second) == {networks.DEFAULT_ADAIN_IMPL} and impls(first) == {"torch"}
    with pytest.raises(ValueError, match="valid: fused, torch, op"):
        first.set_adain_impl("triton")


def test_torch_compile_sees_through_the_op():
    cfg = preset("tiny-64")
    generator = networks.Generator(cfg).eval()
    labels, s = torch.randint(0, cfg.num_classes, (1, 64, 64)), torch.randn(1, cfg.style_dim)
    with torch.no_grad(), networks.adain_as_op(generator):
        compiled = torch.compile(generator, backend="aot_eager", fullgraph=True)
        assert torch.allclose(compiled(labels, s), generator(labels, s), atol=1e-6)


def test_importing_the_networks_does_not_import_triton():
    code = "import sys, maskface_rt.networks, maskface_rt.kernels.torch_op; print('triton' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


# -- GPU ---------------------------------------------------------------------------------------------------

GPU_TOL = {torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(
    "shape",
    [
        (1, 1, 1, 1),
        (2, 3, 4, 4),
        (1, 2, 7, 13),
        (8, 512, 16, 16),
        (2, 64, 256, 256),
        (1, 3, 300, 301),
        (3, 5, 129, 127),
    ],
)
def test_cuda_op_matches_the_reference(dtype, shape):
    x, gamma, beta = _inputs(shape, dtype, "cuda", seed=3)
    y = torch.ops.maskface.fused_adain(x, gamma, beta, EPS, SLOPE)
    assert y.dtype == dtype and y.shape == x.shape and y.is_contiguous()
    ref = adain_act_reference(x.double(), gamma.double(), beta.double(), EPS, SLOPE)
    assert (y.double() - ref).abs().max().item() <= GPU_TOL[dtype] * max(1.0, ref.abs().max().item())


@pytest.mark.gpu
@gpu
def test_cuda_op_keeps_a_large_mean_small_variance_plane_right():
    x = (torch.randn(2, 3, 64, 64, dtype=torch.float64) * 1e-2 + 1e3).float().cuda()
    gamma, beta = torch.zeros(2, 3, device="cuda"), torch.zeros(2, 3, device="cuda")
    y = torch.ops.maskface.fused_adain(x, gamma, beta, EPS, SLOPE)
    ref = adain_act_reference(x.double(), gamma.double(), beta.double(), EPS, SLOPE)
    assert (y.double() - ref).abs().max().item() < 1e-3


@pytest.mark.gpu
@pytest.mark.slow
@gpu
def test_cuda_op_handles_more_than_2_to_the_31_elements():
    if torch.cuda.get_device_properties(0).total_memory < 24 << 30:
        pytest.skip("needs 24 GiB of GPU memory")
    n, c, h, w = 1, 2**21 + 3, 32, 32  # N*C*H*W > 2**31: plane offsets need 64 bits
    x = torch.empty(n, c, h, w, device="cuda", dtype=torch.float16).normal_()
    gamma, beta = (
        torch.zeros(n, c, device="cuda", dtype=torch.float16),
        torch.zeros(n, c, device="cuda", dtype=torch.float16),
    )
    y = torch.ops.maskface.fused_adain(x, gamma, beta, EPS, SLOPE)
    tail = slice(c - 4, c)
    ref = adain_act_reference(x[:, tail].double(), gamma[:, tail].double(), beta[:, tail].double(), EPS, SLOPE)
    assert (y[:, tail].double() - ref).abs().max().item() < 4e-3 * max(1.0, ref.abs().max().item())


@pytest.mark.gpu
@gpu
def test_cuda_adain_act_switch_and_backward():
    torch.manual_seed(0)
    module = networks.AdaINAct(style_dim=8, num_features=16).cuda()
    x = torch.randn(4, 16, 32, 32, device="cuda", requires_grad=True)
    s = torch.randn(4, 8, device="cuda")
    assert module.fused_active(x)
    fused = module(x, s)
    (gx_fused,) = torch.autograd.grad(fused.square().sum(), x)
    with networks.adain_impl(module, "torch"):
        assert not module.fused_active(x)
        plain = module(x, s)
        (gx_plain,) = torch.autograd.grad(plain.square().sum(), x)
    assert (fused - plain).abs().max().item() < 1e-4
    assert (gx_fused - gx_plain).abs().max().item() < 1e-3 * max(1.0, gx_plain.abs().max().item())


@pytest.mark.gpu
@gpu
def test_cuda_generator_with_the_kernel_matches_without_and_compiles():
    cfg = preset("tiny-64")
    generator = networks.Generator(cfg).cuda().half().eval()
    labels = torch.randint(0, cfg.num_classes, (2, 64, 64), device="cuda")
    s = torch.randn(2, cfg.style_dim, device="cuda", dtype=torch.float16)
    assert generator.decode[0].act1.fused_active(s)
    with torch.no_grad():
        eager = generator(labels, s)
        compiled = torch.compile(generator, fullgraph=True)(labels, s)
        with networks.adain_impl(generator, "torch"):
            plain = generator(labels, s)
    assert (compiled.float() - eager.float()).abs().max().item() < 2e-2
    assert (eager.float() - plain.float()).abs().max().item() < 2e-2
