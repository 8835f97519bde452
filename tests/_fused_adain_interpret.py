"""Runs the Triton kernel on CPU tensors under TRITON_INTERPRET=1 (a child process of test_kernels_triton.py).

    python tests/_fused_adain_interpret.py CASES.json OUT.npz

For each case writes ``<id>/x``, ``<id>/gamma``, ``<id>/beta`` (the inputs as the kernel saw them, in
float32) and ``<id>/y`` (its output, in float32). The caller computes the reference and asserts.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from maskface_rt.kernels.fused_adain import launch  # noqa: E402
from maskface_rt.kernels.torch_op import fused_adain_triton  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def run_case(case: dict) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(case["seed"])
    n, c = case["shape"][:2]
    dtype = DTYPES[case["dtype"]]
    x = torch.from_numpy((rng.standard_normal(case["shape"]) * case["std"] + case["mean"]).astype(np.float32))
    affine = torch.from_numpy((rng.standard_normal((n, 2 * c)) * 0.5).astype(np.float32))
    x, affine = x.to(dtype), affine.to(dtype)
    gamma, beta = affine.chunk(2, dim=1)  # non-contiguous views, as AdaINAct makes them
    if case["via"] == "op":
        y = fused_adain_triton(x, gamma, beta, case["eps"], case["slope"])
    else:
        gamma, beta = gamma.contiguous(), beta.contiguous()
        y = launch(x, gamma, beta, torch.empty_like(x), case["eps"], case["slope"])
    return {name: t.float().numpy() for name, t in (("x", x), ("gamma", gamma), ("beta", beta), ("y", y))}


def main() -> None:
    cases = json.loads(open(sys.argv[1]).read())
    arrays = {f"{case['id']}/{k}": v for case in cases for k, v in run_case(case).items()}
    np.savez(sys.argv[2], **arrays)


if __name__ == "__main__":
    main()
