"""Option types shared by the commands. Each checks its value while the command line is parsed, before
any work: a bad value exits 2 with one line naming the flag and the valid values.

Use them as ``device: Annotated[str, device_option("where it runs")] = "auto"``; the help text is the
command's own, the check is the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer

from maskface_rt.backends import BACKENDS, PRECISIONS
from maskface_rt.backends.registry import BACKEND_HELP
from maskface_rt.devices import DEVICE_HELP, DeviceError, parse_device
from maskface_rt.errors import OptionError
from maskface_rt.labels import LABEL_ORDERS

PRECISION_HELP = (
    "openvino's math: fp32, bf16, or auto (bf16 where the CPU runs it natively: AVX512-BF16/AMX, "
    "else fp32); other backends run the model's own precision."
)


#: Options whose flag is not ``--`` + the option's name with dashes (``batch_size``: ``--batch-size``).
_IRREGULAR_FLAGS = {
    "ray.address": "--ray-address",
    "ray.workers": "--ray-workers",
    "ray.cpus_per_worker": "--cpus-per-worker",
    "ray.gpus_per_worker": "--gpus-per-worker",
    "compute_capabilities": "--compute-capability",
    "workspace_mib": "--workspace",
}


def flag_for(option: str) -> str:
    """The flag of an option as the library names it (``OptionError.option``): the one place that maps them."""
    return _IRREGULAR_FLAGS.get(option) or "--" + option.replace("_", "-")


def usage_error(error: OptionError) -> typer.BadParameter:
    """A library's option error as a usage error (exit 2, before any work), naming the flag."""
    return typer.BadParameter(error.problem, param_hint=flag_for(error.option))


def _checker(what: str, valid: Sequence[str], ok: Callable[[str], bool]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not ok(value):
            raise typer.BadParameter(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
        return value

    return check


def path_value(value: str) -> Path:
    """A path option's or argument's value (``parser=path_value``): an empty one is refused, since it would
    silently mean the current folder ('--out ""' wrote the faces there)."""
    if not value.strip():
        raise typer.BadParameter(f"{value!r} is empty; give a file or folder name ('.' for the current folder)")
    return Path(value)


def check_device(value: str) -> str:
    try:
        parse_device(value)
    except DeviceError as e:
        raise typer.BadParameter(e.problem) from None
    return value


check_backend = _checker("backend", BACKENDS, lambda v: v in BACKENDS)
check_precision = _checker("precision", PRECISIONS, lambda v: v in PRECISIONS)
check_label_order = _checker("label order", tuple(LABEL_ORDERS), lambda v: v in LABEL_ORDERS)


def device_option(help: str = DEVICE_HELP) -> Any:
    return typer.Option("--device", help=help, callback=check_device)


def backend_option(help: str = BACKEND_HELP) -> Any:
    return typer.Option("--backend", help=help, callback=check_backend)


def precision_option(help: str = PRECISION_HELP) -> Any:
    return typer.Option("--precision", help=help, callback=check_precision)


def label_order_option(help: str = f"Label order of the masks: {', '.join(LABEL_ORDERS)}.") -> Any:
    return typer.Option("--label-order", help=help, callback=check_label_order)


def json_option(help: str = "Print a JSON summary on stdout.") -> Any:
    return typer.Option("--json", help=help)


def model_option(help: str = "Checkpoint, export folder or engine (default: the bundled demo model).") -> Any:
    return typer.Option("--model", "-m", parser=path_value, help=help)


def styles_option(min: int | None = None) -> Any:
    return typer.Option("--styles", "-k", min=min, help="Styles per mask (indices 0..K-1).")


def style_seed_option() -> Any:
    return typer.Option("--seed", help="Style k depends only on (seed, k).")
