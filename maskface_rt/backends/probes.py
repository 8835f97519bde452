"""What this machine's runtimes can do, asked without opening a backend: the CPU threads this process may use,
whether onnxruntime has CUDA, whether OpenVINO runs bf16 natively (``$MASKFACE_NATIVE_BF16`` may say instead).

``registry.AUTO_CHOICE``, the backends, doctor and bench ask here; this module imports no backend module, and
onnxruntime or openvino only when a probe asks them. Never imports torch.
"""

from __future__ import annotations

import functools
import os

from maskface_rt.errors import MaskfaceError, printable

#: Overrides the native-bf16 probe for ``--precision auto`` and ``--backend auto``: 1 (take bf16 as native), 0 (not
#: native), unset or empty (ask the CPU). The suite runs both of auto's branches on any CPU with it.
NATIVE_BF16_ENV = "MASKFACE_NATIVE_BF16"


def cpu_threads() -> int:
    """Cores this process may run on (cgroup/affinity aware where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def has_cuda_provider() -> bool:
    """Whether this onnxruntime runs on CUDA (onnxruntime-gpu with a usable CUDA)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


#: OpenVINO's CPU plugin property listing what it optimises for: FP32, BF16 (native bf16 only), INT8, ...
OPENVINO_CAPABILITIES = "OPTIMIZATION_CAPABILITIES"


@functools.cache
def cpu_native_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively on this CPU (AVX512-BF16 or AMX-BF16), whatever
    ``$MASKFACE_NATIVE_BF16`` says; asked once per process."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", OPENVINO_CAPABILITIES)


def native_bf16_override() -> bool | None:
    """What ``$MASKFACE_NATIVE_BF16`` says (the one place it is read): True, False, or None where it is unset."""
    value = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if not value:
        return None
    if value not in ("0", "1"):
        raise MaskfaceError(None, f"${NATIVE_BF16_ENV} must be 1, 0 or unset (ask the CPU), got {printable(value)!r}")
    return value == "1"


def native_bf16() -> bool:
    """Whether auto's decisions (precision, backend) take bf16 as native here: ``$MASKFACE_NATIVE_BF16`` where
    set, else the CPU's answer (``cpu_native_bf16``)."""
    override = native_bf16_override()
    return cpu_native_bf16() if override is None else override
