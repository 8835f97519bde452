"""The Triton kernel on the CPU (TRITON_INTERPRET=1, in a child process) against the numpy reference.

Tolerances: |y - ref| <= atol + rtol * |ref|, ref in float64 from the same (rounded) inputs.
- fp32: atol 1e-5, rtol 1e-5 (fp32 statistics; measured up to 8e-6 abs on a 300x301 plane);
- fp16: atol 1e-3, rtol 2**-10 (one fp16 ulp: the output rounding);
- bf16: atol 1e-2, rtol 2**-7 (one bf16 ulp: the interpreter rounds bf16 by truncation, a GPU to nearest).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("triton")
pytest.importorskip("torch")

from maskface_rt.kernels.reference import fused_adain_reference  # noqa: E402

TOLERANCE = {"fp32": (1e-5, 1e-5), "fp16": (1e-3, 2.0**-10), "bf16": (1e-2, 2.0**-7)}
EPS, SLOPE = 1e-5, 0.2
WORKER = Path(__file__).with_name("_fused_adain_interpret.py")

# (shape, mean, std, via): odd and tiny planes, a plane above the single-pass limit (looped, with a tail),
# many planes, and non-contiguous gamma/beta through the torch op's Triton path.
SHAPES = [
    ((1, 1, 1, 1), 0.0, 1.0, "launch"),
    ((2, 3, 4, 4), 0.0, 1.0, "launch"),
    ((1, 2, 7, 13), 0.5, 2.0, "op"),
    ((2, 4, 16, 16), 0.0, 1.0, "op"),
    ((1, 3, 300, 301), -1.0, 3.0, "launch"),
]
CASES = [
    {
        "id": f"{dtype}-{'x'.join(map(str, shape))}",
        "shape": list(shape),
        "dtype": dtype,
        "mean": mean,
        "std": std,
        "seed": i,
        "eps": EPS,
        "slope": SLOPE,
        "via": via,
    }
    for dtype in ("fp32", "fp16", "bf16")
    for i, (shape, mean, std, via) in enumerate(SHAPES)
]
# A large mean with a small spread: E[x^2] - E[x]^2 in fp32 loses every digit of the variance here.
CASES += [
    {
        "id": f"fp32-mean1e3-std1e-2-{'x'.join(map(str, shape))}",
        "shape": list(shape),
        "dtype": "fp32",
        "mean": 1e3,
        "std": 1e-2,
        "seed": 10 + i,
        "eps": EPS,
        "slope": SLOPE,
        "via": "launch",
    }
    for i, shape in enumerate([(2, 3, 16, 16), (1, 1, 300, 301)])
]
CASES.append(
    {
        "id": "fp16-many-planes",
        "shape": [4, 128, 2, 3],
        "dtype": "fp16",
        "mean": 0.0,
        "std": 1.0,
        "seed": 20,
        "eps": EPS,
        "slope": SLOPE,
        "via": "launch",
    }
)


@pytest.fixture(scope="module")
def kernel_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    folder = tmp_path_factory.mktemp("interpret")
    (folder / "cases.json").write_text(json.dumps(CASES))
    env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(WORKER), str(folder / "cases.json"), str(folder / "out.npz")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(np.load(folder / "out.npz"))


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_kernel_matches_numpy_reference(kernel_outputs, case):
    x, gamma, beta, y = (kernel_outputs[f"{case['id']}/{k}"] for k in ("x", "gamma", "beta", "y"))
    assert x.shape == y.shape == tuple(case["shape"]) and gamma.shape == beta.shape == tuple(case["shape"][:2])
    ref = fused_adain_reference(x, gamma, beta, case["eps"], case["slope"], np.float64)
    atol, rtol = TOLERANCE[case["dtype"]]
    err = np.abs(y.astype(np.float64) - ref)
    worst = np.unravel_index(np.argmax(err - rtol * np.abs(ref)), err.shape)
    assert np.all(err <= atol + rtol * np.abs(ref)), (
        f"max abs error {err.max():.3g}; at {worst}: got {y[worst]}, want {ref[worst]}"
    )
    assert np.isfinite(y).all()


def test_large_mean_case_defeats_the_naive_variance(kernel_outputs):
    """The large-mean cases would catch E[x^2] - E[x]^2: in fp32 it gets the variance wrong."""
    x = kernel_outputs["fp32-mean1e3-std1e-2-1x1x300x301/x"][0, 0]
    true_var = float(np.var(x.astype(np.float64)))
    naive_var = float(np.mean(np.square(x)) - np.square(np.mean(x)))
    assert abs(naive_var - true_var) > 0.5 * true_var
