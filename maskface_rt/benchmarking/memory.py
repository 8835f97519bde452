"""Peak memory of a benchmark row, on the host and on the GPU.

Host: the process's resident-set high-water mark (VmHWM in /proc/self/status). Linux resets it to the
current RSS on ``echo 5 > /proc/self/clear_refs``; where that is refused, the mark is the process's
lifetime peak and the report says so. GPU: device memory in use (cudaMemGetInfo, device-wide), which
includes the pools runtimes keep (torch's caching allocator, ONNX Runtime's arena, TensorRT's
activation memory), so after a row it is the row's peak as far as the runtimes hold on to memory.
"""

from __future__ import annotations

import sys
from pathlib import Path

from maskface_rt.devices import parse_device

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_bytes() -> int | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def hwm_bytes() -> int | None:
    kib = _status_kib("VmHWM")
    return None if kib is None else kib * 1024


def reset_hwm() -> bool:
    """Reset the high-water mark to the current RSS; False where the kernel does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def gpu_memory_used(index: int = 0) -> int | None:
    """Bytes in use on CUDA device ``index`` (all processes), or None when no CUDA API is at hand.

    torch is used only when already imported; otherwise cuda-python's runtime bindings."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info(index)
        return total - free
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError:
            return None
    err, current = cudart.cudaGetDevice()
    if int(err) != 0:
        return None
    if current != index:
        cudart.cudaSetDevice(index)
    err, free, total = cudart.cudaMemGetInfo()
    if current != index:
        cudart.cudaSetDevice(current)
    return None if int(err) != 0 else total - free


class MemoryProbe:
    """Peak memory of a runner while other runners stay loaded (bench alternates them): ``start()`` before it
    loads, ``loaded()`` after, ``begin_row()`` before each batch size, ``peak()`` after it. The peak is what
    its load added plus how far the row rose above the level it began at, so runners loaded later do not count.
    """

    def __init__(self, device: str) -> None:
        parsed = parse_device(device)
        self.cuda_index = (parsed.index or 0) if parsed.is_cuda else None
        self.baseline: int | None = None
        self.footprint: int | None = None  # what loading the runner added
        self.row_start: int | None = None
        self.resettable = True

    @property
    def kind(self) -> str:
        if self.cuda_index is not None:
            return (
                "gpu: device memory the runner's load added, plus the rise from the row's start to its end "
                "(cudaMemGetInfo)"
            )
        if self.resettable:
            return "cpu: RSS the runner's load added, plus the peak RSS rise during the row (VmHWM)"
        return (
            "cpu: RSS the runner's load added, plus the process lifetime peak RSS above the row's start "
            "(VmHWM not resettable here)"
        )

    def _now(self) -> int | None:
        return gpu_memory_used(self.cuda_index) if self.cuda_index is not None else rss_bytes()

    def start(self) -> None:
        self.baseline = self._now()

    def loaded(self) -> None:
        now = self._now()
        self.footprint = None if now is None or self.baseline is None else max(now - self.baseline, 0)

    def begin_row(self) -> None:
        if self.cuda_index is None:
            self.resettable = reset_hwm() and self.resettable
        self.row_start = self._now()

    def peak(self) -> int | None:
        now = gpu_memory_used(self.cuda_index) if self.cuda_index is not None else hwm_bytes()
        if now is None or self.row_start is None or self.footprint is None:
            return None
        return self.footprint + max(now - self.row_start, 0)
