"""What OpenVINO's CPU plugin does with bf16 on this CPU, for the tests whose expectation depends on it: native
(AVX512-BF16, AMX-BF16), emulated (AVX-512 without them: slower, same math) or none (no AVX-512: it compiles fp32,
and the openvino backend refuses a bf16 asked for)."""

from __future__ import annotations

import functools


@functools.cache
def openvino_runs_bf16() -> bool:
    """Whether OpenVINO executes the bundled generator in bf16 when asked to: OpenVINO's own answer (the compiled
    model's INFERENCE_PRECISION_HINT), not the backend's, whose refusal the tests check against it."""
    import openvino as ov

    from maskface_rt.backends.openvino_backend import compile_config
    from maskface_rt.bundled import default_model

    compiled = ov.Core().compile_model(str(default_model() / "generator.onnx"), "CPU", compile_config("bf16"))
    return compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "bf16"
