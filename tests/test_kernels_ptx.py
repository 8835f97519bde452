"""Ahead-of-time PTX of the fused AdaIN kernel, built without a GPU, assembled by ptxas for every target."""

import json
import re

import pytest
from cli_support import maskface

pytest.importorskip("triton")

from maskface_rt.kernels import ptx  # noqa: E402
from maskface_rt.kernels.config import LOOP_BLOCK, MAX_SINGLE_PASS, PLUGIN_DTYPES, kernel_config  # noqa: E402

#: any size, the generator's planes from 16x16 to 256x256 (single pass up to 128x128, looped above), an odd one.
PLANES = (None, 16 * 16, 64 * 64, 128 * 128, 256 * 256, 7 * 13)
VARIANTS = [
    ptx.Variant(arch, dtype, kernel_config(hw)) for arch in ptx.ARCHES for dtype in PLUGIN_DTYPES for hw in PLANES
]
#: The TensorRT AOT ABI: x, gamma, beta pointers, int32 H*W, y pointer.
ABI = ("u64", "u64", "u64", "u32", "u64")


@pytest.fixture(scope="module")
def kernels() -> list[ptx.CompiledKernel]:
    return ptx.build(VARIANTS)


def _entry_params(text: str) -> list[tuple[str, str]]:
    """(type, name) of the .entry's parameters, in order."""
    entry = re.search(r"\.visible \.entry \w+\((.*?)\)", text, flags=re.DOTALL)
    assert entry is not None
    return re.findall(r"\.param \.(\w+)(?: \.ptr \.global \.align \d+)? (\w+)", entry.group(1))


def test_every_variant_is_built_for_its_target_without_scratch(kernels):
    assert len(kernels) == len(VARIANTS) == 4 * 2 * len(PLANES)
    for kernel in kernels:
        arch = kernel.variant.arch
        assert ptx.ptx_target(kernel.ptx) == arch, kernel.variant.stem
        assert ptx.ptx_version(kernel.ptx) == ptx.PTX_VERSION == 86
        assert kernel.global_scratch_size == 0
        assert kernel.name == "fused_adain_kernel"
        # TensorRT launches block_x threads: the kernel demands exactly that many.
        assert re.search(rf"\.reqntid {kernel.block_x}\b", kernel.ptx), kernel.variant.stem
        assert kernel.block_x == 32 * kernel.variant.config.num_warps
        assert 0 <= kernel.shared_mem < 48 * 1024


def test_kernel_abi_is_inputs_then_int32_then_output(kernels):
    for kernel in kernels:
        params = _entry_params(kernel.ptx)
        assert tuple(t for t, _ in params[:5]) == ABI, kernel.variant.stem
        # Triton appends scratch pointers the launch does not fill: the kernel must never read them.
        loaded = set(re.findall(r"ld\.param\.\w+\s+%\w+, \[(\w+)\]", kernel.ptx))
        assert loaded == {name for _, name in params[:5]}, kernel.variant.stem


def test_variants_follow_the_plane_size(kernels):
    by_hw = {hw: kernel_config(hw) for hw in PLANES}
    assert not by_hw[None].single_pass and not by_hw[None].hw_multiple_of_16
    assert by_hw[64 * 64].single_pass and by_hw[64 * 64].block == 64 * 64 and by_hw[64 * 64].hw_multiple_of_16
    assert by_hw[MAX_SINGLE_PASS].single_pass
    assert not by_hw[256 * 256].single_pass and by_hw[256 * 256].block == LOOP_BLOCK
    assert by_hw[7 * 13].single_pass and by_hw[7 * 13].block == 128 and not by_hw[7 * 13].hw_multiple_of_16
    stems = {k.variant.stem for k in kernels}
    assert len(stems) == len(kernels)  # file names never collide


def test_ptxas_assembles_every_variant(kernels):
    assert ptx.find_ptxas() is not None  # the pinned triton ships one where the CUDA toolkit is missing
    failures = []
    for kernel in kernels:
        ok, message = ptx.assemble(kernel)
        if not ok:
            failures.append(f"{kernel.variant.stem}: {message}")
    assert not failures, "\n".join(failures)


def test_without_the_cuda_toolkit_the_triton_wheels_ptxas_assembles(kernels, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ptxas on PATH, as on a machine without the CUDA toolkit
    found = ptx.find_ptxas()
    assert found is not None and found.endswith("triton/backends/nvidia/bin/ptxas"), found
    ok, message = ptx.assemble(kernels[0])
    assert ok, message


def test_aot_kernel_specialises_on_a_known_plane_size():
    kernel = ptx.aot_kernel("sm_90", "fp16", 64 * 64, 1e-5, 0.2)
    assert kernel.variant.config == kernel_config(64 * 64) and kernel.block_x == 256
    assert ptx.aot_kernel("sm_86", "fp32", None, 1e-5, 0.2).variant.config == kernel_config(None)
    with pytest.raises(ValueError, match="eps must be a positive"):
        ptx.aot_kernel("sm_90", "fp16", 256, 0.0, 0.2)
    with pytest.raises(ValueError, match="unsupported arch 'sm_75'"):
        ptx.Variant("sm_75", "fp16", kernel_config(None))
    with pytest.raises(ValueError, match="unsupported dtype 'bf16'"):
        ptx.Variant("sm_90", "bf16", kernel_config(None))
    assert ptx.arch_for_capability(9, 0) == "sm_90"
    with pytest.raises(ValueError, match="no fused AdaIN PTX for sm_120"):
        ptx.arch_for_capability(12, 0)


def test_build_ignores_an_interpreter_setting_of_the_caller(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    (kernel,) = ptx.build([ptx.Variant("sm_80", "fp32", kernel_config(5 * 5), eps=1e-3, negative_slope=0.1)])
    assert ptx.ptx_target(kernel.ptx) == "sm_80" and kernel.global_scratch_size == 0


def test_eps_and_slope_are_baked_in():
    low, high = ptx.build(
        [
            ptx.Variant("sm_90", "fp32", kernel_config(256), eps=1e-5, negative_slope=0.2),
            ptx.Variant("sm_90", "fp32", kernel_config(256), eps=1e-3, negative_slope=0.1),
        ]
    )
    assert low.ptx != high.ptx


def test_cli_writes_ptx_and_launch_parameters(tmp_path):
    done = maskface(
        "plugin",
        "ptx",
        "--arch",
        "sm_90",
        "--arch",
        "sm_80",
        "--dtype",
        "fp16",
        "--plane",
        "64x64",
        "--plane",
        "any",
        "--out",
        str(tmp_path / "ptx"),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    files = sorted(p.name for p in (tmp_path / "ptx").iterdir())
    assert len(files) == 5 and "fused_adain_ptx.json" in files
    assert "fused_adain_fp16_sm_90_single4096w8a16.ptx" in files
    index = json.loads((tmp_path / "ptx" / "fused_adain_ptx.json").read_text())
    assert index["ptx_version"] == "8.6" and len(index["kernels"]) == 4
    single = next(k for k in index["kernels"] if k["ptx"] == "fused_adain_fp16_sm_90_single4096w8a16.ptx")
    assert single["block_x"] == 256 and single["grid_x"] == "N*C" and single["global_scratch_size"] == 0
    assert single["hw"] == "H*W <= 4096 and a multiple of 16"
    assert single["arguments"] == ["x_ptr", "gamma_ptr", "beta_ptr", "hw", "y_ptr"]
    assert all(check["ptxas_ok"] for check in summary["ptxas"].values())  # ptxas: PATH's or triton's
    assert "ptxas ok" in done.stderr
    assert "wrote 5 files" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "sm_75"], "sm_75 not supported; valid: sm_80, sm_86, sm_89, sm_90"),
        (["--dtype", "bf16"], "bf16 not supported; valid: fp16, fp32"),
        (["--plane", "64by64"], "'64by64' is not HxW"),
        (["--eps", "0"], "eps must be a positive finite number"),
    ],
)
def test_cli_rejects_bad_options_before_any_work(tmp_path, args, message):
    done = maskface("plugin", "ptx", "--out", str(tmp_path / "o"), *args, env={"COLUMNS": "200"}, timeout=120)
    assert done.returncode == 2
    assert message in " ".join(done.stderr.split())
    assert not (tmp_path / "o").exists()
