"""TensorRT engine files: layout, sidecar, cache key and compatibility (the batch profile: ``profile.py``).

No torch, TensorRT or CUDA here: every decision about engines that is not a TensorRT call lives in
this module, so that it is tested on any machine.

``maskface build EXPORT --out faces.engine`` writes one engine per exported graph and one sidecar:

    faces.engine                  generator G       (labels uint8 [B, H, W], style float32 [B, S] -> image uint8)
    faces.style_encoder.engine    style encoder F   (latent float32 [B, Z] -> style float32 [B, S])
    faces.style_decoder.engine    style decoder E   (image uint8 [B, H, W, 3] -> style float32 [B, S])
    faces.engine.json             the sidecar (what was built, from what, for which GPU and TensorRT)

The engine files stay raw TensorRT plans (trtexec and other tools read them); everything else is in
the sidecar. All three engines share one batch profile.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskface_rt.backends.trt.profile import BuildProfile
from maskface_rt.config import ModelConfig
from maskface_rt.cuda.device import DeviceInfo
from maskface_rt.errors import MaskfaceError
from maskface_rt.export_format import sha256_file
from maskface_rt.fileio import read_json_object, write_json_atomic
from maskface_rt.graph_contract import GRAPH_IO, GRAPHS, TENSOR_DTYPES, tensor_shape
from maskface_rt.model_kind import ENGINE_SUFFIXES
from maskface_rt.values import is_integer, is_number

ENGINE_FORMAT = "maskface-engine/1"
#: TensorRT's builder optimisation levels and its default.
OPTIMIZATION_LEVELS = range(0, 6)
DEFAULT_OPTIMIZATION_LEVEL = 3
#: What a sidecar's plugin_implementation may say: "aot" (the plugin's kernel embedded in the engine, what
#: maskface build makes) or "" (no plugin, or not recorded).
PLUGIN_IMPLEMENTATIONS = ("", "aot")


# ----------------------------------------------------------------------------- file layout


def check_engine_path(engine: str | Path) -> Path:
    """``engine`` as a Path, if its name ends in .engine or .plan."""
    engine = Path(engine)
    if engine.suffix not in ENGINE_SUFFIXES:
        raise MaskfaceError(
            engine,
            f"an engine file name must end in {' or '.join(ENGINE_SUFFIXES)} "
            f"(e.g. {engine.with_suffix('.engine').name})",
        )
    return engine


def engine_files(engine: str | Path) -> dict[str, Path]:
    """Where each graph's engine lives: the generator at ``engine``, F and E beside it."""
    engine = check_engine_path(engine)
    return {
        graph: engine if graph == "generator" else engine.with_name(f"{engine.stem}.{graph}{engine.suffix}")
        for graph in GRAPHS
    }


def sidecar_path(engine: str | Path) -> Path:
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def layer_info_path(engine: str | Path) -> Path:
    """Where ``--layer-info`` writes the engine inspector's per-layer JSON."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".layers.json")


# ----------------------------------------------------------------------------- versions


def parse_version(version: str) -> tuple[int, ...]:
    """'10.9.0.34' -> (10, 9, 0, 34); the leading numeric components only."""
    numbers = []
    for part in version.split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        numbers.append(int(match.group()))
        if match.group() != part:
            break
    if not numbers:
        raise ValueError(f"not a version number: {version!r}")
    return tuple(numbers)


@dataclass(frozen=True)
class TensorInfo:
    """One I/O tensor of a deserialized engine, as TensorRT reports it (-1: dynamic dimension)."""

    name: str
    is_input: bool
    dtype: np.dtype
    shape: tuple[int, ...]


def check_engine_io(graph: str, found: list[TensorInfo], config: ModelConfig, where: str | Path) -> None:
    """Refuse an engine whose I/O is not ``graph``'s for this model config (names, modes, dtypes, shapes)."""
    inputs, output = GRAPH_IO[graph]
    expected = {name: True for name in inputs} | {output: False}
    got = {t.name: t for t in found}
    if set(got) != set(expected):
        raise MaskfaceError(
            where,
            f"engine tensors are {sorted(got)}, expected {sorted(expected)} for the {graph}: "
            "not this model's engine (rebuild with 'maskface build')",
        )
    for name, is_input in expected.items():
        tensor = got[name]
        want_shape = tensor_shape(name, config, -1)
        problems = []
        if tensor.is_input != is_input:
            problems.append(f"is an {'input' if tensor.is_input else 'output'}")
        if np.dtype(tensor.dtype) != TENSOR_DTYPES[name]:
            problems.append(f"is {np.dtype(tensor.dtype).name}, expected {TENSOR_DTYPES[name].name}")
        if len(tensor.shape) != len(want_shape) or tuple(tensor.shape[1:]) != want_shape[1:]:
            problems.append(f"has shape {list(tensor.shape)}, expected {['B', *want_shape[1:]]}")
        if problems:
            raise MaskfaceError(
                where,
                f"engine tensor {name!r} {' and '.join(problems)}: not this model's {graph} "
                "engine (rebuild with 'maskface build')",
            )


# ----------------------------------------------------------------------------- cache key


def cache_key(
    *,
    onnx_sha256: dict[str, str],
    tensorrt_version: str,
    device: DeviceInfo | None,
    profile: BuildProfile,
    plugin: bool,
    workspace_mib: int | None,
    optimization_level: int,
    package_version: str,
    runtime: str = "tensorrt",
    compute_capabilities: tuple[str, ...] = (),
) -> str:
    """sha256 of everything an engine set depends on: same key, same engines (the build is skipped).

    ``device`` is the GPU present at build time (None: none, a TensorRT-RTX build on the CPU; a later build
    where a GPU is present then differs, and runs the parity check); ``compute_capabilities``: TensorRT-RTX's
    targets."""
    identity = {
        "format": ENGINE_FORMAT,
        "runtime": runtime,
        "compute_capabilities": list(compute_capabilities),
        "onnx_sha256": dict(sorted(onnx_sha256.items())),
        "tensorrt_version": tensorrt_version,
        "device": device.to_dict() if device is not None else None,
        "profile": profile.to_dict(),
        "plugin": bool(plugin),
        "workspace_mib": workspace_mib,
        "optimization_level": optimization_level,
        "package_version": package_version,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# ----------------------------------------------------------------------------- sidecar


@dataclass
class EngineSidecar:
    """What ``ENGINE.json`` says about an engine set."""

    tensorrt_version: str  # of ``runtime``
    device: DeviceInfo | None  # the GPU it was built on; None: built without one (TensorRT-RTX ahead of time)
    onnx_sha256: dict[str, str]  # per graph, of the ONNX file the engine was built from
    profile: BuildProfile
    plugin: bool
    precision: str  # of the ONNX graphs (strongly typed: the engine follows them)
    build_seconds: float
    model: dict[str, Any]  # the export's maskface.json (config, label order, versions, checksums)
    engines: dict[str, dict[str, Any]]  # graph -> {"file", "sha256", "bytes"}
    cache_key: str
    package_version: str
    onnx_source: str = ""  # the export folder it was built from (for messages)
    options: dict[str, Any] = field(default_factory=dict)  # workspace_mib, optimization_level, timing_cache
    parity: dict[str, Any] = field(default_factory=dict)  # status ("passed" or "not run"), reason, results
    runtime: str = "tensorrt"  # tensorrt or tensorrt-rtx (compat.RUNTIMES)
    compute_capabilities: list[str] = field(default_factory=list)  # TensorRT-RTX's targets ("8.6", ...)
    #: How the FusedAdaIN plugin's code travels with a plugin engine: "aot" (its kernel embedded in the engine,
    #: so the engine runs where the plugin's Python is absent: Triton, trtexec); "" for no plugin, or a sidecar
    #: written before maskface recorded it.
    plugin_implementation: str = ""

    @property
    def built_with(self) -> str:
        """'tensorrt 10.9.0.34 on NVIDIA H100 ...' or 'tensorrt-rtx 1.7.1.116 for compute capabilities 8.0, 8.6'."""
        if not self.compute_capabilities:
            return f"{self.runtime} {self.tensorrt_version} on {self.device}"
        where = f", built on {self.device}" if self.device is not None else ", built without a GPU"
        return (
            f"{self.runtime} {self.tensorrt_version} for compute capabilities "
            f"{', '.join(self.compute_capabilities)}{where}"
        )

    @property
    def config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.model["config"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": ENGINE_FORMAT,
            "runtime": self.runtime,
            "tensorrt_version": self.tensorrt_version,
            "compute_capabilities": self.compute_capabilities,
            "plugin_implementation": self.plugin_implementation,
            "device": self.device.to_dict() if self.device is not None else None,
            "onnx_sha256": self.onnx_sha256,
            "onnx_source": self.onnx_source,
            "profile": self.profile.to_dict(),
            "plugin": self.plugin,
            "precision": self.precision,
            "build_seconds": self.build_seconds,
            "model": self.model,
            "engines": self.engines,
            "cache_key": self.cache_key,
            "package_version": self.package_version,
            "options": self.options,
            "parity": self.parity,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str | Path) -> EngineSidecar:
        """The sidecar ``data`` says, each field's type and range checked first (a sidecar comes from outside:
        it must not reach a runtime with a negative batch, a float that says true, or a path for a file name)."""
        if not isinstance(data, dict) or data.get("format") != ENGINE_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise MaskfaceError(
                where, f"not a {ENGINE_FORMAT} sidecar (format is {found!r}); rebuild the engine with 'maskface build'"
            )
        if problems := sidecar_problems(data):
            raise MaskfaceError(
                where,
                f"incomplete or invalid sidecar ({'; '.join(problems)}); rebuild the engine with 'maskface build'",
            )
        return cls(
            tensorrt_version=data["tensorrt_version"],
            device=DeviceInfo.from_dict(data["device"]) if data["device"] is not None else None,
            onnx_sha256=dict(data["onnx_sha256"]),
            profile=BuildProfile.from_dict(data["profile"]),
            plugin=data["plugin"],
            precision=data["precision"],
            build_seconds=data["build_seconds"],
            model=dict(data["model"]),
            engines={g: dict(v) for g, v in data["engines"].items()},
            cache_key=data["cache_key"],
            package_version=data["package_version"],
            onnx_source=data.get("onnx_source", ""),
            options=dict(data.get("options", {})),
            parity=dict(data.get("parity", {})),
            runtime=data.get("runtime", "tensorrt"),
            compute_capabilities=list(data.get("compute_capabilities", [])),
            plugin_implementation=data.get("plugin_implementation", ""),
        )


_SIDECAR_FIELDS = (
    "tensorrt_version",
    "device",
    "onnx_sha256",
    "profile",
    "plugin",
    "precision",
    "build_seconds",
    "model",
    "engines",
    "cache_key",
    "package_version",
)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CAPABILITY = re.compile(r"\d{1,2}\.\d")


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def _is_file_name(value: object) -> bool:
    """A plain file name (an engine beside the sidecar), never a path."""
    return isinstance(value, str) and value not in ("", ".", "..") and "/" not in value and "\\" not in value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def sidecar_problems(data: dict[str, Any]) -> list[str]:
    """What in a sidecar's fields no 'maskface build' writes (the sidecar of ``EngineSidecar.to_dict``)."""
    from maskface_rt.export_format import EXPORT_PRECISIONS, MAX_EXPORT_BATCH
    from maskface_rt.labels import NUM_CLASSES

    missing = [name for name in _SIDECAR_FIELDS if name not in data]
    if missing:
        return [f"missing {', '.join(missing)}"]
    checks: list[tuple[str, bool, str]] = [
        # an unknown runtime name is the backend choice's to refuse (it names the runtimes this maskface has)
        ("runtime", isinstance(data.get("runtime", "tensorrt"), str), "a runtime's name"),
        (
            "tensorrt_version",
            isinstance(data["tensorrt_version"], str) and data["tensorrt_version"][:1].isdigit(),
            "a version string",
        ),
        (
            "compute_capabilities",
            isinstance(caps := data.get("compute_capabilities", []), list)
            and all(isinstance(c, str) and _CAPABILITY.fullmatch(c) for c in caps),
            'a list like ["8.6"]',
        ),
        (
            "device",
            data["device"] is None
            or (
                isinstance(device := data["device"], dict)
                and set(device) == {"name", "compute_capability"}
                and isinstance(device["name"], str)
                and isinstance(device["compute_capability"], str)
                and _CAPABILITY.fullmatch(device["compute_capability"]) is not None
            ),
            'null or {"name": ..., "compute_capability": "9.0"}',
        ),
        (
            "onnx_sha256",
            isinstance(onnx := data["onnx_sha256"], dict)
            and set(onnx) == set(GRAPHS)
            and all(_is_sha256(v) for v in onnx.values()),
            f"a sha256 for each of {', '.join(GRAPHS)}",
        ),
        (
            "profile",
            isinstance(profile := data["profile"], dict)
            and set(profile) == {"min", "opt", "max"}
            and all(is_integer(v, 1, MAX_EXPORT_BATCH) for v in profile.values())
            and profile["min"] <= profile["opt"] <= profile["max"],
            f"{{min, opt, max}}: integers in 1..{MAX_EXPORT_BATCH}, min <= opt <= max",
        ),
        ("plugin", isinstance(data["plugin"], bool), "true or false"),
        (
            "plugin_implementation",
            data.get("plugin_implementation", "") in PLUGIN_IMPLEMENTATIONS,
            f"one of {', '.join(repr(v) for v in PLUGIN_IMPLEMENTATIONS)}",
        ),
        ("precision", data["precision"] in EXPORT_PRECISIONS, f"one of {', '.join(EXPORT_PRECISIONS)}"),
        ("build_seconds", is_number(data["build_seconds"], 0), "a number of seconds"),
        (
            "engines",
            isinstance(engines := data["engines"], dict)
            and set(engines) == set(GRAPHS)
            and all(
                isinstance(e, dict)
                and _is_file_name(e.get("file"))
                and _is_sha256(e.get("sha256"))
                and is_integer(e.get("bytes"), 1, 2**50)
                for e in engines.values()
            ),
            f'{{"file": NAME, "sha256": HEX, "bytes": N}} for each of {", ".join(GRAPHS)}',
        ),
        ("cache_key", _is_sha256(data["cache_key"]), "a sha256"),
        ("package_version", isinstance(data["package_version"], str), "a string"),
        ("onnx_source", isinstance(data.get("onnx_source", ""), str), "a string"),
        ("options", isinstance(data.get("options", {}), dict), "an object"),
        ("parity", isinstance(data.get("parity", {}), dict), "an object"),
        (
            "model",
            isinstance(data["model"], dict) and isinstance(data["model"].get("config"), dict),
            'an object with the export\'s "config"',
        ),
    ]
    found = [f"{name} must be {what}, got {_short(data.get(name))}" for name, ok, what in checks if not ok]
    if not found:
        try:
            config = ModelConfig.from_dict(data["model"]["config"])
        except (TypeError, ValueError) as e:
            found.append(f"model.config: {e}")
        else:
            if config.num_classes != NUM_CLASSES:
                found.append(f"model.config.num_classes must be {NUM_CLASSES}, got {config.num_classes}")
    return found


def write_sidecar(engine: str | Path, sidecar: EngineSidecar) -> Path:
    """Write ``ENGINE.json`` atomically (replacing an earlier one)."""
    path = sidecar_path(engine)
    write_json_atomic(path, sidecar.to_dict(), overwrite=True)
    return path


def read_sidecar(engine: str | Path) -> EngineSidecar:
    """The sidecar of ``engine``; an engine without one is refused (it cannot say what it is)."""
    engine = Path(engine)
    path = sidecar_path(engine)
    if not path.is_file():
        raise MaskfaceError(
            engine,
            f"has no sidecar {path.name}: maskface cannot tell which model, GPU and TensorRT "
            "it was built for; build engines with 'maskface build EXPORT --out ENGINE'",
        )
    return EngineSidecar.from_dict(read_json_object(path, "sidecar"), path)


def verify_engine_files(engine: str | Path, sidecar: EngineSidecar) -> dict[str, Path]:
    """Each graph's engine file, checked against the sidecar's sha256 (a half-replaced set is refused)."""
    files = engine_files(engine)
    for graph, path in files.items():
        info = sidecar.engines[graph]
        if path.name != info.get("file"):
            raise MaskfaceError(
                path,
                f"the sidecar names {info.get('file')!r} for the {graph}; engine files were "
                "renamed: keep the names 'maskface build' wrote, or rebuild",
            )
        if not path.is_file():
            raise MaskfaceError(
                path, f"missing: the {graph} engine of {Path(engine).name} (rebuild with 'maskface build')"
            )
        if sha256_file(path) != info.get("sha256"):
            raise MaskfaceError(
                path,
                "sha256 does not match the sidecar: the file was changed or a build was "
                "interrupted; rebuild with 'maskface build'",
            )
    return files


def rebuild_hint(engine: str | Path, sidecar: EngineSidecar) -> str:
    source = sidecar.onnx_source or "EXPORT"
    return f"rebuild it here: maskface build {source} --out {engine}"


def check_compatible(
    engine: str | Path, sidecar: EngineSidecar, tensorrt_version: str, device: DeviceInfo, *, runtime: str = "tensorrt"
) -> None:
    """Refuse an engine built by another runtime, another TensorRT version or for another GPU (TensorRT plans
    are specific to the GPU model; TensorRT-RTX engines to their target compute capabilities)."""
    hint = rebuild_hint(engine, sidecar)
    if sidecar.runtime != runtime:
        raise MaskfaceError(
            engine,
            f"was built with {sidecar.runtime}, not {runtime}: open it with --backend "
            f"{sidecar.runtime}, or {hint} --runtime {runtime}",
        )
    if sidecar.tensorrt_version != tensorrt_version:
        raise MaskfaceError(
            engine,
            f"was built with TensorRT {sidecar.tensorrt_version}, this is TensorRT "
            f"{tensorrt_version}: engines do not move between TensorRT versions; {hint}",
        )
    if sidecar.compute_capabilities:
        if device.compute_capability not in sidecar.compute_capabilities:
            raise MaskfaceError(
                engine,
                f"was built for compute capabilities {', '.join(sidecar.compute_capabilities)}"
                f", this GPU is {device}; {hint} --compute-capability "
                f"{device.compute_capability}",
            )
        return
    if (
        sidecar.device is None
        or sidecar.device.compute_capability != device.compute_capability
        or sidecar.device.name != device.name
    ):
        raise MaskfaceError(
            engine,
            f"was built for {sidecar.device}, this GPU is {device}: TensorRT engines "
            f"are specific to the GPU model; {hint}",
        )
