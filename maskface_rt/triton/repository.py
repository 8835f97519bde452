"""``maskface triton MODEL --out REPO``: a Triton Inference Server model repository from an export or an engine set.

    REPO/
      maskface_style_encoder/   config.pbtxt, 1/ (model.plan | model.onnx | model.py + the model's files)
      maskface_generator/       ...
      maskface_style_decoder/   ...
      maskface/                 ensemble: labels uint8 [H, W] + latent fp32 [Z] -> image uint8 [H, W, 3]
                                (style encoder, then generator)
      maskface_reference/       ensemble: labels + reference photo uint8 [H, W, 3] -> image
                                (style decoder, then generator)

Three flavours (``platform``): ``tensorrt_plan`` (an engine set from ``maskface build --runtime tensorrt``: each
plan file exactly as TensorRT wrote it, the TensorRT version and GPU beside it in ``built_with.json``),
``onnxruntime_onnx`` (an export's graphs) and ``python`` (Triton's python backend running maskface's own backend,
``maskface_rt/triton/python_model.py``, on the export or engine set copied beside it). Every ``config.pbtxt`` is
parsed against Triton's schema and the ensembles' wiring checked before anything is published; the repository
(or each model folder, in an existing repository) appears whole or not at all, and an existing model folder is
replaced only with ``overwrite``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskface_rt.backends.registry import REGISTRY
from maskface_rt.config import ModelConfig
from maskface_rt.errors import MaskfaceError, OptionError
from maskface_rt.export_format import MANIFEST, read_manifest
from maskface_rt.fileio import fsync, publishable_mode
from maskface_rt.graph_contract import GRAPH_IO, GRAPHS, IMAGE, LABELS, LATENT, STYLE, TENSOR_DTYPES, tensor_shape
from maskface_rt.model_kind import ModelKind, model_kind
from maskface_rt.triton.config import (
    ENSEMBLE,
    MODEL_FILES,
    DynamicBatcher,
    EnsembleStep,
    InstanceGroup,
    Tensor,
    TritonModel,
    check_ensemble,
    parse_config,
)

PLATFORMS = ("auto", "tensorrt_plan", "onnxruntime_onnx", "python")
INSTANCE_KINDS = ("auto", "cpu", "gpu")
#: The models of a repository: one per graph, and the two ensembles.
MODEL_NAMES = {graph: f"maskface_{graph}" for graph in GRAPHS}
ENSEMBLES = {"maskface": ("style_encoder", LATENT), "maskface_reference": ("style_decoder", IMAGE)}
#: The ensembles' own name for the reference photo (the style decoder's input is the graph contract's "image").
REFERENCE = "reference"
#: Where the python flavour keeps the model it runs, inside each model's version folder.
PYTHON_MODEL_DIR = "model"
MAX_INSTANCES = 64
#: The python flavour's backends of each model kind (an engine set runs on the runtime that built it).
PYTHON_BACKENDS = {ModelKind.ONNX_EXPORT: ("onnxruntime", "openvino"), ModelKind.ENGINE: ("tensorrt", "tensorrt-rtx")}


@dataclass(frozen=True)
class RepositoryOptions:
    """What ``maskface triton`` is asked for (checked by ``check_options`` and against the model, before any
    write; a bad value is an OptionError naming the field)."""

    platform: str = "auto"  # auto: tensorrt_plan for an engine set, onnxruntime_onnx for an export
    max_batch: int | None = None  # each model's max_batch_size (default: the export's or the engine profile's)
    preferred_batch_sizes: tuple[int, ...] = ()  # the dynamic batcher's preferred sizes (default: none)
    max_queue_delay_us: int = 2000  # how long a request waits for company (microseconds)
    instances: int = 1  # instances of each graph's model
    instance_kind: str = "auto"  # auto (gpu for tensorrt_plan and onnxruntime_onnx, cpu for python), cpu, gpu
    backend: str = "auto"  # the python flavour's maskface backend (auto: onnxruntime, or the engine's runtime)
    threads: int = 0  # the python flavour's math threads per instance (0: the backend's default)
    overwrite: bool = False  # replace existing model folders of the same names


def check_options(options: RepositoryOptions) -> None:
    """The options' own ranges (what needs the model is checked by ``plan_repository``)."""
    if options.platform not in PLATFORMS:
        raise OptionError("platform", f"unknown platform {options.platform!r}; valid: {', '.join(PLATFORMS)}")
    if options.instance_kind not in INSTANCE_KINDS:
        raise OptionError("instance_kind", f"must be one of {', '.join(INSTANCE_KINDS)}, got {options.instance_kind!r}")
    if options.max_batch is not None and options.max_batch < 1:
        raise OptionError("max_batch", f"must be at least 1, got {options.max_batch}")
    if any(size < 1 for size in options.preferred_batch_sizes):
        raise OptionError("preferred_batch_sizes", "batch sizes must be at least 1")
    if not 0 <= options.max_queue_delay_us <= 10_000_000:
        raise OptionError("max_queue_delay_us", f"must be 0..10000000 microseconds, got {options.max_queue_delay_us}")
    if not 1 <= options.instances <= MAX_INSTANCES:
        raise OptionError("instances", f"must be 1..{MAX_INSTANCES}, got {options.instances}")
    if options.threads < 0:
        raise OptionError("threads", f"must be 0 (the backend's default) or more, got {options.threads}")
    if options.platform == "tensorrt_plan" and options.instance_kind == "cpu":
        raise OptionError("instance_kind", "tensorrt_plan models run on GPUs only (KIND_GPU)")
    if options.backend != "auto" and options.platform not in ("python", "auto"):
        raise OptionError("backend", f"only the python platform runs a maskface backend, not {options.platform}")


@dataclass(frozen=True)
class ModelSource:
    """The model a repository is made from: its kind, config, largest batch and files."""

    path: Path
    kind: ModelKind
    config: ModelConfig
    max_batch: int
    graph_files: dict[str, Path]  # graph -> its ONNX graph or engine file
    files: tuple[Path, ...]  # everything the python flavour copies (the export folder, or the engine set)
    sidecar: Any = None  # an engine set's EngineSidecar


def read_source(model: Path) -> ModelSource:
    """An export folder (or one of its graphs) or an engine set, verified (checksums, sidecar)."""
    kind = model_kind(model)
    if kind is ModelKind.ONNX_EXPORT:
        folder = model if model.is_dir() else model.parent
        manifest = read_manifest(folder)
        graphs = {g: folder / manifest.graphs[g]["file"] for g in GRAPHS}
        return ModelSource(
            folder, kind, manifest.config, manifest.max_batch, graphs, (folder / MANIFEST, *graphs.values())
        )
    if kind is ModelKind.ENGINE:
        from maskface_rt.backends.trt.engine_file import read_sidecar, sidecar_path, verify_engine_files

        sidecar = read_sidecar(model)
        graphs = verify_engine_files(model, sidecar)
        files = (sidecar_path(model), *graphs.values())
        return ModelSource(model, kind, sidecar.config, sidecar.profile.max, graphs, files, sidecar)
    raise MaskfaceError(
        model, "is a checkpoint: Triton serves exports and engines; make one with 'maskface export MODEL --out DIR'"
    )


def _platform(source: ModelSource, options: RepositoryOptions) -> str:
    if options.platform != "auto":
        return options.platform
    return "tensorrt_plan" if source.kind is ModelKind.ENGINE else "onnxruntime_onnx"


def _check_platform(source: ModelSource, platform: str) -> None:
    """An export cannot become plan files, nor an engine set ONNX models; an engine set must suit Triton's
    TensorRT backend (TensorRT, not TensorRT-RTX; a plugin engine with the plugin embedded; batches from 1)."""
    if platform == "tensorrt_plan" and source.kind is not ModelKind.ENGINE:
        raise OptionError(
            "platform", "tensorrt_plan needs an engine set: build one with 'maskface build EXPORT --out ENGINE'"
        )
    if platform == "onnxruntime_onnx" and source.kind is not ModelKind.ONNX_EXPORT:
        raise OptionError("platform", "onnxruntime_onnx needs an export folder, not an engine set")
    if platform == "onnxruntime_onnx" and read_manifest(source.path).plugin:
        raise MaskfaceError(
            source.path,
            "is a plugin export: its FusedAdaIN nodes run only in TensorRT; export without --plugin for "
            "onnxruntime_onnx, or build an engine set for tensorrt_plan",
        )
    if platform == "tensorrt_plan":
        check_tensorrt_plan(source.path, source.sidecar)


def check_tensorrt_plan(engine: Path, sidecar: Any) -> None:
    """What Triton's TensorRT backend can load: TensorRT (not -RTX) engines, a plugin only as the embedded (AOT)
    implementation, a batch profile from 1 (the dynamic batcher sends any batch up to max_batch_size)."""
    if sidecar.runtime != "tensorrt":
        raise MaskfaceError(
            engine,
            f"was built with {sidecar.runtime}: Triton's TensorRT backend runs TensorRT, not TensorRT-RTX; serve "
            "it with --platform python (maskface's tensorrt-rtx backend inside), or build with --runtime tensorrt",
        )
    if sidecar.plugin and sidecar.plugin_implementation != "aot":
        raise MaskfaceError(
            engine,
            "is a plugin engine whose sidecar does not say the FusedAdaIN plugin is embedded (AOT): Triton "
            "would not find the plugin; rebuild it with this maskface build (it embeds the plugin), or build "
            "with --no-plugin from a portable export",
        )
    if sidecar.profile.min != 1:
        raise MaskfaceError(
            engine,
            f"its batch profile starts at {sidecar.profile.min}; Triton's dynamic batcher sends batches from 1: "
            "rebuild with --min-batch 1",
        )


def _python_backend(source: ModelSource, options: RepositoryOptions) -> str:
    allowed = PYTHON_BACKENDS[source.kind]
    if options.backend == "auto":
        return source.sidecar.runtime if source.kind is ModelKind.ENGINE else "onnxruntime"
    if options.backend not in allowed:
        raise OptionError(
            "backend", f"{options.backend} cannot run a {source.kind.value}; valid here: {', '.join(allowed)}"
        )
    if source.kind is ModelKind.ENGINE and options.backend != source.sidecar.runtime:
        raise OptionError("backend", f"the engine set was built with {source.sidecar.runtime}, not {options.backend}")
    REGISTRY[options.backend].check_available()
    return options.backend


def _batching(source: ModelSource, options: RepositoryOptions) -> tuple[int, DynamicBatcher]:
    max_batch = options.max_batch or source.max_batch
    if max_batch > source.max_batch:
        what = "engine profile's" if source.kind is ModelKind.ENGINE else "export's"
        raise OptionError("max_batch", f"must be at most the {what} max batch, {source.max_batch}; got {max_batch}")
    if too_big := [b for b in options.preferred_batch_sizes if b > max_batch]:
        raise OptionError("preferred_batch_sizes", f"{too_big} over the max batch {max_batch}")
    preferred = tuple(sorted(set(options.preferred_batch_sizes)))
    return max_batch, DynamicBatcher(preferred, options.max_queue_delay_us)


def _graph_tensors(graph: str, config: ModelConfig) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    inputs, output = GRAPH_IO[graph]

    def tensor(name: str) -> Tensor:
        return Tensor(name, TENSOR_DTYPES[name], tensor_shape(name, config, 1)[1:])

    return tuple(tensor(n) for n in inputs), (tensor(output),)


@dataclass
class ModelFolder:
    """One model folder to write: its config, texts beside it (name -> text) and the files of its version folder
    ``1/`` (name -> the file copied there)."""

    model: TritonModel
    files: dict[str, Path] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    config_text: str = ""


@dataclass
class RepositoryPlan:
    """What ``write_repository`` will write, every config already parsed against Triton's schema."""

    source: ModelSource
    platform: str
    folders: list[ModelFolder]
    notes: list[str]  # what to print (the TensorRT rule, the python flavour's environment)


def plan_repository(model: Path, options: RepositoryOptions) -> RepositoryPlan:
    """Every check, no write: the options, the model, each config against Triton's schema, the ensembles."""
    check_options(options)
    source = read_source(model)
    platform = _platform(source, options)
    _check_platform(source, platform)
    backend = _python_backend(source, options) if platform == "python" else None
    max_batch, batcher = _batching(source, options)
    kind = options.instance_kind if options.instance_kind != "auto" else ("cpu" if platform == "python" else "gpu")
    group = InstanceGroup(options.instances, f"KIND_{kind.upper()}")
    folders = []
    for graph in GRAPHS:
        inputs, outputs = _graph_tensors(graph, source.config)
        parameters = {}
        if backend is not None:
            parameters = {
                "maskface_graph": graph,
                "maskface_backend": backend,
                "maskface_model": f"{PYTHON_MODEL_DIR}/{source.graph_files['generator'].name}"
                if source.kind is ModelKind.ENGINE
                else PYTHON_MODEL_DIR,
                "maskface_threads": str(options.threads),
            }
        triton = TritonModel(MODEL_NAMES[graph], platform, max_batch, inputs, outputs, batcher, group, parameters)
        folders.append(_graph_folder(triton, graph, source, platform))
    folders += [_ensemble_folder(name, source.config, max_batch) for name in ENSEMBLES]
    _check_configs(folders)
    return RepositoryPlan(source, platform, folders, _notes(source, platform, backend))


def _graph_folder(triton: TritonModel, graph: str, source: ModelSource, platform: str) -> ModelFolder:
    folder = ModelFolder(triton)
    if platform == "python":
        from maskface_rt.triton import python_stub

        folder.files = {"model.py": Path(python_stub.__file__)}
        folder.files |= {f"{PYTHON_MODEL_DIR}/{p.name}": p for p in source.files}
    else:
        folder.files = {MODEL_FILES[platform]: source.graph_files[graph]}
    if platform == "tensorrt_plan":
        folder.texts["built_with.json"] = _built_with(source, graph)
    return folder


def _built_with(source: ModelSource, graph: str) -> str:
    import json

    sidecar = source.sidecar
    info = {
        "runtime": sidecar.runtime,
        "tensorrt_version": sidecar.tensorrt_version,
        "device": sidecar.device.to_dict() if sidecar.device is not None else None,
        "plugin": sidecar.plugin,
        "plugin_implementation": sidecar.plugin_implementation,
        "sha256": sidecar.engines[graph]["sha256"],
        "rule": f"Triton's container must carry TensorRT {sidecar.tensorrt_version} and run on a "
        f"{sidecar.device} (compute capability {sidecar.device.compute_capability if sidecar.device else '?'}): "
        "TensorRT plans move neither between TensorRT versions nor between GPU models",
    }
    return json.dumps(info, indent=2, sort_keys=True) + "\n"


def _ensemble_folder(name: str, config: ModelConfig, max_batch: int) -> ModelFolder:
    style_graph, style_input = ENSEMBLES[name]
    outer_input = REFERENCE if style_input == IMAGE else style_input
    labels = Tensor(LABELS, TENSOR_DTYPES[LABELS], tensor_shape(LABELS, config, 1)[1:])
    style_in = Tensor(outer_input, TENSOR_DTYPES[style_input], tensor_shape(style_input, config, 1)[1:])
    image = Tensor(IMAGE, TENSOR_DTYPES[IMAGE], tensor_shape(IMAGE, config, 1)[1:])
    steps = (
        EnsembleStep(MODEL_NAMES[style_graph], {style_input: outer_input}, {STYLE: STYLE}),
        EnsembleStep(MODEL_NAMES["generator"], {LABELS: LABELS, STYLE: STYLE}, {IMAGE: IMAGE}),
    )
    return ModelFolder(TritonModel(name, ENSEMBLE, max_batch, (labels, style_in), (image,), steps=steps))


def _check_configs(folders: list[ModelFolder]) -> None:
    """Each config.pbtxt parsed against Triton's schema (its name must come back), then the ensembles' wiring."""
    parsed = {}
    for folder in folders:
        where = f"{folder.model.name}/config.pbtxt"
        folder.config_text = folder.model.to_pbtxt()
        message = parse_config(folder.config_text, where)
        if message.name != folder.model.name:
            raise MaskfaceError(where, f"names the model {message.name!r}, not {folder.model.name!r}")
        parsed[folder.model.name] = message
    for name in ENSEMBLES:
        check_ensemble(parsed[name], parsed, f"{name}/config.pbtxt")


def _notes(source: ModelSource, platform: str, backend: str | None) -> list[str]:
    if platform == "tensorrt_plan":
        sidecar = source.sidecar
        return [
            f"engines built with TensorRT {sidecar.tensorrt_version} on {sidecar.device}: serve them from a Triton "
            f"container whose TensorRT is {sidecar.tensorrt_version}, on the same GPU model "
            "(written beside each plan in built_with.json)"
        ]
    if platform == "python":
        return [
            f"python backend running maskface's {backend} backend: the python backend's Python must import "
            "maskface_rt (pip install maskface-rt in Triton's container, or start tritonserver with this "
            "environment's bin/ first on PATH); docs/triton.md"
        ]
    return ["onnxruntime_onnx models: Triton's onnxruntime backend (NVIDIA's containers)"]


@dataclass(frozen=True)
class RepositoryResult:
    """What was written: the repository, its models, the flavour and what to know about them."""

    repository: Path
    models: tuple[str, ...]
    platform: str
    notes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": str(self.repository),
            "models": list(self.models),
            "platform": self.platform,
            "notes": list(self.notes),
        }


def write_repository(
    model: Path, out: Path, options: RepositoryOptions, on_stage: Callable[[str], None] | None = None
) -> RepositoryResult:
    """Write the repository of ``model`` at ``out`` (an existing repository gains the models); checks first,
    then everything is written in a temp folder and moved into place."""
    stage = on_stage or (lambda _: None)
    stage("checking")
    plan = plan_repository(model, options)
    names = [f.model.name for f in plan.folders]
    if out.exists() and not out.is_dir():
        raise MaskfaceError(out, "is not a folder: the model repository must be one")
    taken = [name for name in names if (out / name).exists()]
    if taken and not options.overwrite:
        raise MaskfaceError(
            out / taken[0], "already exists: a model of that name is in the repository (pass --overwrite to replace it)"
        )
    stage("writing the models")
    with _temp_folder(out) as tmp:
        linked: dict[Path, Path] = {}
        for folder in plan.folders:
            _write_folder(tmp / folder.model.name, folder, linked)
        stage("publishing")
        _publish(tmp, out, names)
    return RepositoryResult(out, tuple(names), plan.platform, tuple(plan.notes))


@contextlib.contextmanager
def _temp_folder(out: Path) -> Iterator[Path]:
    """A temp folder on ``out``'s file system (inside it when it exists, else beside it), removed afterwards."""
    parent = out if out.is_dir() else out.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".maskface-triton-{os.getpid()}-", suffix=".tmp", dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_folder(path: Path, folder: ModelFolder, linked: dict[Path, Path]) -> None:
    """A model folder: config.pbtxt, its texts, and the version folder ``1/`` with its files."""
    version = path / "1"
    version.mkdir(parents=True)
    (path / "config.pbtxt").write_text(folder.config_text)
    for name, text in folder.texts.items():
        (path / name).write_text(text)
    for name, source in folder.files.items():
        target = version / name
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy(source, target, linked)
    for entry in [path, *path.rglob("*")]:
        os.chmod(entry, publishable_mode(is_dir=entry.is_dir()))


def _copy(source: Path, target: Path, linked: dict[Path, Path]) -> None:
    """A byte-for-byte copy (a plan file exactly as TensorRT wrote it); a file copied before (the python flavour's
    three models share the export) is hard-linked to its first copy where the file system allows."""
    first = linked.get(source)
    if first is not None:
        with contextlib.suppress(OSError):
            os.link(first, target)
            return
    shutil.copyfile(source, target)
    linked.setdefault(source, target)


def _publish(tmp: Path, out: Path, names: list[str]) -> None:
    """Move the written models into place: the whole repository at once when ``out`` is new; else each model folder,
    an existing one replaced only as a whole, the moves undone when one fails."""
    for entry in [tmp, *tmp.rglob("*")]:
        if entry.is_dir():
            fsync(entry)
    if not out.exists():
        os.chmod(tmp, publishable_mode(is_dir=True))
        os.rename(tmp, out)
        tmp.mkdir()  # for _temp_folder's clean-up
        fsync(out.parent)
        return
    moved: list[tuple[str, bool]] = []
    try:
        for name in names:
            had_old = (out / name).exists()
            if had_old:
                os.rename(out / name, tmp / f".old-{name}")
            moved.append((name, had_old))
            os.rename(tmp / name, out / name)
    except OSError:
        for name, had_old in reversed(moved):
            if not (tmp / name).exists() and (out / name).exists():  # the new folder got there: take it back
                os.rename(out / name, tmp / name)
            if had_old:
                os.rename(tmp / f".old-{name}", out / name)
        raise
    fsync(out)
