"""Ahead-of-time PTX of the fused AdaIN kernel, built without a GPU (for the TensorRT AOT plugin).

Each variant is compiled in a child process (``python -m maskface_rt.kernels.ptx``), so that neither
TRITON_INTERPRET nor triton's state in the calling process can affect it. The PTX:

- declares PTX ISA 8.6 (triton 3.9's default, 9.4, is rejected by CUDA 13.0's ptxas and driver 580);
- targets the generic ``sm_XX`` (triton writes ``sm_90a`` for Hopper; the kernel uses nothing
  arch-specific, and generic PTX can also be JIT-compiled by the driver for newer GPUs);
- uses no global scratch memory (TensorRT gives an AOT kernel no scratch buffer): checked here. Triton
  still appends two scratch pointer parameters after ``y_ptr``; a launch that passes only the ABI's
  arguments leaves them unset, which is safe because the kernel never reads them (tested).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from maskface_rt.kernels.config import (
    DEFAULT_EPS,
    DEFAULT_SLOPE,
    PLUGIN_DTYPES,
    KernelConfig,
    check_constants,
    kernel_config,
)

ARCHES = ("sm_80", "sm_86", "sm_89", "sm_90")
PTX_VERSION = 86
#: The kernel's non-constexpr arguments in launch order (the TensorRT AOT ABI): inputs, int32 extras, outputs.
ARGUMENTS = ("x_ptr", "gamma_ptr", "beta_ptr", "hw", "y_ptr")
POINTERS = ("x_ptr", "gamma_ptr", "beta_ptr", "y_ptr")


@dataclass(frozen=True)
class Variant:
    """One PTX: target, element type, launch config and the baked-in constants."""

    arch: str
    dtype: str
    config: KernelConfig
    eps: float = DEFAULT_EPS
    negative_slope: float = DEFAULT_SLOPE

    def __post_init__(self) -> None:
        if self.arch not in ARCHES:
            raise ValueError(f"unsupported arch {self.arch!r}; valid: {', '.join(ARCHES)}")
        if self.dtype not in PLUGIN_DTYPES:
            raise ValueError(f"unsupported dtype {self.dtype!r}; valid: {', '.join(PLUGIN_DTYPES)}")
        check_constants(self.eps, self.negative_slope)

    @property
    def stem(self) -> str:
        return f"fused_adain_{self.dtype}_{self.arch}_{self.config.tag}"


@dataclass(frozen=True)
class CompiledKernel:
    variant: Variant
    name: str
    ptx: str
    num_warps: int
    shared_mem: int
    global_scratch_size: int

    @property
    def block_x(self) -> int:
        return self.num_warps * 32

    def launch_info(self) -> dict[str, Any]:
        """What a launcher needs besides the PTX (written next to it by ``write``)."""
        return {
            "kernel": self.name,
            "ptx": f"{self.variant.stem}.ptx",
            "arch": self.variant.arch,
            "dtype": self.variant.dtype,
            "arguments": list(ARGUMENTS),
            "grid_x": "N*C",
            "hw": self.variant.config.hw_rule,
            "block_x": self.block_x,
            "shared_mem": self.shared_mem,
            "config": asdict(self.variant.config),
            "eps": self.variant.eps,
            "negative_slope": self.variant.negative_slope,
            "global_scratch_size": self.global_scratch_size,
        }


def arch_for_capability(major: int, minor: int) -> str:
    """'sm_XY' of a CUDA compute capability, if a PTX variant is built for it."""
    arch = f"sm_{major}{minor}"
    if arch not in ARCHES:
        raise ValueError(
            f"no fused AdaIN PTX for {arch}; built for {', '.join(ARCHES)} "
            "(use the plugin's JIT implementation on other GPUs)"
        )
    return arch


def ptx_target(ptx: str) -> str:
    match = re.search(r"^\.target\s+(sm_\w+)", ptx, flags=re.MULTILINE)
    if match is None:
        raise ValueError("PTX without a .target line")
    return match.group(1)


def ptx_version(ptx: str) -> int:
    match = re.search(r"^\.version\s+(\d+)\.(\d+)", ptx, flags=re.MULTILINE)
    if match is None:
        raise ValueError("PTX without a .version line")
    return int(match.group(1)) * 10 + int(match.group(2))


def build(variants: list[Variant] | tuple[Variant, ...]) -> list[CompiledKernel]:
    """Compile the variants in one child process; raises RuntimeError with its stderr if it fails."""
    return list(_build(tuple(variants)))


@lru_cache(maxsize=64)
def _build(variants: tuple[Variant, ...]) -> tuple[CompiledKernel, ...]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    request = json.dumps([asdict(v) for v in variants])
    done = subprocess.run(
        [sys.executable, "-m", "maskface_rt.kernels.ptx"],
        input=request,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"PTX build failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    kernels = []
    for variant, item in zip(variants, json.loads(done.stdout), strict=True):
        kernel = CompiledKernel(variant=variant, **item)
        if kernel.global_scratch_size:
            raise RuntimeError(
                f"{variant.stem} needs {kernel.global_scratch_size} bytes of global scratch; "
                "TensorRT AOT kernels get none"
            )
        kernels.append(kernel)
    return tuple(kernels)


def aot_kernel(arch: str, dtype: str, hw: int | None, eps: float, negative_slope: float) -> CompiledKernel:
    """The kernel a TensorRT AOT plugin embeds for planes of ``hw`` elements (None: not known at build time).

    Launch: grid_x = N*C, block_x = ``block_x``, shared_mem = ``shared_mem``, extra int32 argument H*W.
    """
    (kernel,) = build([Variant(arch, dtype, kernel_config(hw), *check_constants(eps, negative_slope))])
    return kernel


def _variant_from_dict(data: dict[str, Any]) -> Variant:
    return Variant(**{**data, "config": KernelConfig(**data["config"])})


def _compile(variant: Variant) -> dict[str, Any]:
    """Runs in the child process: triton.compile for a GPU that need not be present."""
    import triton
    from maskface_rt.kernels.fused_adain import fused_adain_kernel
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    cfg = variant.config
    signature = {name: f"*{variant.dtype}" for name in POINTERS}
    signature.update(hw="i32", BLOCK="constexpr", SINGLE_PASS="constexpr", EPS="constexpr", SLOPE="constexpr")
    # TensorRT hands out 256-byte aligned buffers; the plane size's alignment is only promised when known.
    aligned = [*POINTERS, "hw"] if cfg.hw_multiple_of_16 else list(POINTERS)
    attrs = {(ARGUMENTS.index(name),): [["tt.divisibility", 16]] for name in aligned}
    src = ASTSource(
        fused_adain_kernel,
        {k: signature[k] for k in fused_adain_kernel.arg_names},
        constexprs={
            "BLOCK": cfg.block,
            "SINGLE_PASS": cfg.single_pass,
            "EPS": variant.eps,
            "SLOPE": variant.negative_slope,
        },
        attrs=attrs,
    )
    capability = int(variant.arch.removeprefix("sm_"))
    compiled = triton.compile(
        src,
        target=GPUTarget("cuda", capability, 32),
        options={"ptx_version": PTX_VERSION, "num_warps": cfg.num_warps, "enable_fp_fusion": True},
    )
    ptx = re.sub(r"^\.target\s+sm_\w+", f".target {variant.arch}", compiled.asm["ptx"], count=1, flags=re.MULTILINE)
    md = compiled.metadata
    return {
        "name": md.name,
        "ptx": ptx,
        "num_warps": md.num_warps,
        "shared_mem": md.shared,
        "global_scratch_size": md.global_scratch_size,
    }


def find_ptxas() -> str | None:
    """ptxas from PATH (the CUDA toolkit's), else the one the triton wheel ships (triton/backends/nvidia/bin),
    or None."""
    found = shutil.which("ptxas")
    if found is not None:
        return found
    spec = importlib.util.find_spec("triton")
    if spec is None or not spec.submodule_search_locations:
        return None
    bundled = Path(next(iter(spec.submodule_search_locations))) / "backends" / "nvidia" / "bin" / "ptxas"
    return str(bundled) if bundled.is_file() and os.access(bundled, os.X_OK) else None


def assemble(kernel: CompiledKernel, ptxas: str | None = None) -> tuple[bool, str]:
    """Assemble the PTX with ptxas for its target: (ok, ptxas's message). Raises FileNotFoundError without ptxas."""
    ptxas = ptxas or find_ptxas()
    if ptxas is None:
        raise FileNotFoundError("ptxas not found on PATH or in the triton wheel (it comes with the CUDA toolkit)")
    with tempfile.TemporaryDirectory(prefix="maskface-ptxas-") as tmp:
        src = Path(tmp) / f"{kernel.variant.stem}.ptx"
        src.write_text(kernel.ptx)
        done = subprocess.run(
            [ptxas, f"-arch={ptx_target(kernel.ptx)}", str(src), "-o", str(src.with_suffix(".cubin"))],
            capture_output=True,
            text=True,
            timeout=120,
        )
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def write(kernels: list[CompiledKernel], out: str | Path) -> list[Path]:
    """Write each kernel's ``.ptx`` and one ``fused_adain_ptx.json`` with their launch parameters."""
    from maskface_rt.fileio import write_bytes_atomic, write_json_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kernel in kernels:
        path = out / f"{kernel.variant.stem}.ptx"
        write_bytes_atomic(path, kernel.ptx.encode(), overwrite=True)
        written.append(path)
    index = out / "fused_adain_ptx.json"
    write_json_atomic(
        index,
        {"ptx_version": f"{PTX_VERSION // 10}.{PTX_VERSION % 10}", "kernels": [k.launch_info() for k in kernels]},
        overwrite=True,
    )
    return [*written, index]


def _main() -> None:
    variants = [_variant_from_dict(item) for item in json.loads(sys.stdin.read())]
    json.dump([_compile(v) for v in variants], sys.stdout)


if __name__ == "__main__":
    _main()
