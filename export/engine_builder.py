"""ONNX -> TensorRT or TensorRT-RTX: ``maskface build EXPORT --out ENGINE [--runtime tensorrt|tensorrt-rtx]``.

One engine per exported graph (generator at ENGINE, style encoder and decoder beside it, see
``maskface_rt.backends.trt.engine_file``), each a strongly typed network (precision comes from the ONNX graph: an
fp16 export gives an fp16 engine) with one optimization profile over the batch dimension. The
generator of a plugin export (``maskface export --plugin``, the default here) runs its FusedAdaIN nodes
as the TensorRT plugin ``maskface::FusedAdaIN``, AOT implementation (PTX embedded in the engine).

The runtime (``backends/trt/compat.RUNTIMES``) decides what differs: TensorRT builds for the GPU it runs
on; TensorRT-RTX builds ahead of time, with no GPU needed, for the compute capabilities asked for, and
has no Python plugin API (plugin exports are refused).

Order of work: every option is checked (``check_build_options``, no TensorRT needed), then the runtime,
CUDA and the plugin's needs; the cache key decides whether anything is built (same key as the
sidecar beside ENGINE: nothing changed, nothing rebuilt; ``force`` rebuilds); the engines are built,
run against ONNX Runtime fp32 on a random batch (``PARITY_PSNR_DB``, ``STYLE_PARITY``) where a GPU
that can run them is present (else the sidecar records the check as not run, and why), and only then
written: engines first, the sidecar last. Any exception from inside TensorRT becomes a one-line error
naming the file.

The builder calls are thin (``maskface_rt.backends.trt.builder``); they ran here with TensorRT-RTX 1.7.1 on the CPU
and are written against TensorRT 10.9+/11.x's documented API, where they were not run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from maskface_rt import __version__
from maskface_rt.backends.trt import builder as trt_builder
from maskface_rt.backends.trt.builder import BuilderSettings
from maskface_rt.backends.trt.compat import PLUGIN_REFUSAL, TensorRTRuntime, make_logger, resolve_runtime
from maskface_rt.backends.trt.engine_file import (
    DEFAULT_OPTIMIZATION_LEVEL,
    OPTIMIZATION_LEVELS,
    EngineSidecar,
    cache_key,
    engine_files,
    layer_info_path,
    read_sidecar,
    sidecar_path,
    verify_engine_files,
    write_sidecar,
)
from maskface_rt.backends.trt.profile import BuildProfile
from maskface_rt.cuda.device import CudaDevice, DeviceInfo
from maskface_rt.errors import MaskfaceError, OptionError
from maskface_rt.export_format import MANIFEST, ExportManifest, read_manifest
from maskface_rt.fileio import write_bytes_atomic, write_json_atomic
from maskface_rt.graph_contract import GRAPH_IO, GRAPHS, sample_inputs
from maskface_rt.model_kind import ModelKind, classify, export_folder_of
from maskface_rt.parity import PARITY_PSNR_DB, STYLE_PARITY, ParityAccumulator, ParityCheck, max_rel_error

PARITY_SEED = 0
TENSORRT_VS_ORT = "TensorRT vs ONNX Runtime fp32"
MAX_WORKSPACE_MIB = 1 << 20

StageCallback = Callable[[str], None]
LogCallback = Callable[[str, str], None]


@dataclass
class BuildOptions:
    """``maskface build``'s options (one field per CLI option)."""

    min_batch: int = 1
    opt_batch: int | None = None  # default: 8, within min..max
    max_batch: int | None = None  # default: 32, at most the export's max_batch
    plugin: bool = True  # the FusedAdaIN generator of a plugin export; False: a portable export
    timing_cache: Path | None = None  # read when present, written back after a build
    workspace_mib: int | None = None  # TensorRT's default: the GPU's memory
    optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL
    layer_info: bool = False  # write ENGINE.layers.json (engine inspector, per layer)
    force: bool = False  # rebuild even when the cache key matches; replace files without a sidecar
    device: str = "auto"  # auto, cuda, cuda:N
    runtime: str | None = None  # tensorrt, tensorrt-rtx; None: the first installed (TensorRT first)
    compute_capabilities: tuple[str, ...] = ()  # TensorRT-RTX targets as given ("8.6", "sm86"; comma lists too)


@dataclass
class BuildPlan:
    """What a build will read and write, checked before any work."""

    folder: Path
    manifest: ExportManifest
    out: Path
    engines: dict[str, Path]
    profile: BuildProfile
    options: BuildOptions
    runtime: TensorRTRuntime
    targets: tuple[str, ...] = ()  # TensorRT-RTX compute capabilities ("8.6"); empty for TensorRT

    @property
    def onnx_files(self) -> dict[str, Path]:
        return {g: self.folder / self.manifest.graphs[g]["file"] for g in GRAPHS}

    @property
    def onnx_sha256(self) -> dict[str, str]:
        return {g: self.manifest.graphs[g]["sha256"] for g in GRAPHS}

    @property
    def settings(self) -> BuilderSettings:
        """What the TensorRT builder needs of this plan."""
        return BuilderSettings(
            self.runtime,
            self.manifest.config,
            self.profile,
            self.targets,
            self.options.workspace_mib,
            self.options.optimization_level,
            self.options.timing_cache,
        )


def export_folder(onnx_path: str | Path) -> Path:
    """The export folder of a ``maskface export`` folder or of one of its .onnx graphs."""
    path = Path(onnx_path)
    if path.is_dir():
        return path  # its manifest is read (and checked) next
    if not path.exists():
        raise MaskfaceError(path, "no such ONNX file" if path.suffix == ".onnx" else "no such export folder")
    kind = classify(path)
    if kind is ModelKind.ONNX_EXPORT:
        return export_folder_of(path)
    if kind is ModelKind.ONNX_GRAPH:
        raise MaskfaceError(
            path,
            f"is not in a maskface export folder (no {MANIFEST} beside it): the build needs "
            "the three graphs and their metadata; make them with 'maskface export'",
        )
    raise MaskfaceError(path, "expected a maskface export folder (or its generator.onnx)")


def check_build_options(onnx_path: str | Path, out: str | Path, options: BuildOptions) -> BuildPlan:
    """Every option and path checked before any work (no TensorRT needed)."""
    from maskface_rt.devices import cuda_index

    try:
        engines = engine_files(out)
    except MaskfaceError as e:
        raise OptionError("out", f"{out}: {e.problem}") from None
    out = engines["generator"]
    if out.is_dir():
        raise OptionError("out", f"{out} is a folder; give the engine file to write, e.g. {out / 'faces.engine'}")
    if out.parent.exists() and not out.parent.is_dir():
        raise OptionError("out", f"{out}: cannot write here: {out.parent} is not a folder")
    if not isinstance(options.optimization_level, int) or options.optimization_level not in OPTIMIZATION_LEVELS:
        raise OptionError(
            "optimization_level",
            f"{options.optimization_level} is invalid; valid: "
            f"{OPTIMIZATION_LEVELS[0]}..{OPTIMIZATION_LEVELS[-1]} (TensorRT's default "
            f"{DEFAULT_OPTIMIZATION_LEVEL}; higher builds longer, may run faster)",
        )
    if options.workspace_mib is not None and not 1 <= options.workspace_mib <= MAX_WORKSPACE_MIB:
        raise OptionError(
            "workspace_mib",
            f"{options.workspace_mib} MiB is invalid; valid: "
            f"1..{MAX_WORKSPACE_MIB} MiB, or leave it out for TensorRT's default",
        )
    if options.timing_cache is not None and Path(options.timing_cache).is_dir():
        raise OptionError("timing_cache", f"{options.timing_cache} is a folder; give a file (created when missing)")
    try:
        cuda_index(options.device)
    except MaskfaceError as e:
        raise OptionError("device", e.problem) from None
    runtime, targets = _check_runtime_options(options)

    folder = export_folder(onnx_path)
    manifest = read_manifest(folder)
    profile = BuildProfile.resolve(options.min_batch, options.opt_batch, options.max_batch, limit=manifest.max_batch)
    if options.plugin and not manifest.plugin:
        raise OptionError(
            "plugin",
            f"{folder} is a portable export (no FusedAdaIN nodes); for the fused AdaIN plugin "
            "export with 'maskface export MODEL --out DIR --plugin [--fp16]', or build "
            "this one without the plugin",
        )
    if not options.plugin and manifest.plugin:
        raise OptionError(
            "plugin",
            f"{folder} is a plugin export (FusedAdaIN nodes); build it with the plugin, or build a portable "
            "export (maskface export without --plugin) without it",
        )
    _check_existing_output(engines, options.force)
    return BuildPlan(folder, manifest, out, engines, profile, options, runtime, targets)


def _check_runtime_options(options: BuildOptions) -> tuple[TensorRTRuntime, tuple[str, ...]]:
    """The runtime and what it can do against the options: compute capabilities, timing cache, plugin."""
    runtime = resolve_runtime(options.runtime)
    asked = [part for value in options.compute_capabilities for part in str(value).split(",") if part.strip()]
    if asked and not runtime.compute_capabilities:
        raise OptionError(
            "compute_capabilities", f"is for the tensorrt-rtx runtime; {runtime.label} builds for the GPU it runs on"
        )
    targets = tuple(dict.fromkeys(runtime.compute_capability(value) for value in asked))
    if options.timing_cache is not None and not runtime.timing_cache:
        raise OptionError(
            "timing_cache",
            f"{runtime.label} has no timing cache (its "
            "timing-cache calls are no-ops, and without a GPU it cannot "
            "read one); leave the option out",
        )
    if options.plugin and not runtime.python_plugins:
        raise OptionError("runtime", f"{runtime.name}: {runtime.label} has no Python plugin API, so {PLUGIN_REFUSAL}")
    return runtime, targets or runtime.default_compute_capabilities


def _check_existing_output(engines: dict[str, Path], force: bool) -> None:
    """Files at the output names are replaced only when they are a maskface build (a sidecar) or with force."""
    out = engines["generator"]
    present = [p for p in engines.values() if p.exists()]
    if any(p.is_dir() for p in present):
        folder = next(p for p in present if p.is_dir())
        raise OptionError("out", f"{folder} is a folder in the way of an engine file")
    if force or not present:
        return
    if not sidecar_path(out).is_file():
        raise OptionError(
            "out",
            f"{present[0]} exists without a sidecar ({sidecar_path(out).name}), so it "
            "was not written by maskface build; force the build to replace it",
        )
    try:
        read_sidecar(out)
    except MaskfaceError as e:
        raise OptionError(
            "out", f"{out}: its sidecar cannot be read ({e.problem}); force the build to replace it"
        ) from None


# ----------------------------------------------------------------------------- parity


def compare(graph: str, reference: np.ndarray, engine: np.ndarray, precision: str) -> ParityCheck:
    """PSNR of generator images (uint8), relative max error of style codes, against their bounds."""
    if reference.shape != engine.shape:
        raise MaskfaceError(
            None, f"{graph}: engine output {engine.shape} differs in shape from ONNX Runtime's {reference.shape}"
        )
    if graph == "generator":
        acc = ParityAccumulator()
        acc.update(reference, engine)
        parity = acc.result()
        return ParityCheck(
            graph,
            "psnr_db",
            parity.psnr_db,
            PARITY_PSNR_DB[precision],
            (len(reference),),
            TENSORRT_VS_ORT,
            parity.max_abs_error,
        )
    return ParityCheck(
        graph,
        "max_rel_error",
        max_rel_error(reference, engine),
        STYLE_PARITY[precision],
        (len(reference),),
        TENSORRT_VS_ORT,
    )


def parity_batch(profile: BuildProfile) -> int:
    return profile.opt


def parity_not_run_reason(plan: BuildPlan, device: DeviceInfo | None) -> str | None:
    """Why the engines cannot be run against ONNX Runtime here (None: they can): no GPU, or a GPU that is not
    among TensorRT-RTX's targets."""
    if device is None:
        return "no GPU"
    if plan.targets and device.compute_capability not in plan.targets:
        return (
            f"{device} is not among the engines' compute capabilities {', '.join(plan.targets)}; add "
            f"--compute-capability {device.compute_capability} where {plan.runtime.label} targets it"
        )
    return None


def check_parity(plan: BuildPlan, run_engine: Callable[[str, dict[str, np.ndarray]], np.ndarray]) -> list[ParityCheck]:
    """Each graph's engine (``run_engine(graph, feeds)``) against ONNX Runtime fp32 on one random batch."""
    from maskface_rt.export.fp32_reference import reference_session

    config, batch = plan.manifest.config, parity_batch(plan.profile)
    results = []
    for graph in GRAPHS:
        feeds = sample_inputs(graph, config, batch, seed=PARITY_SEED)
        session = reference_session(onnx.load(str(plan.onnx_files[graph])))
        (reference,) = session.run([GRAPH_IO[graph][1]], feeds)
        results.append(compare(graph, reference, run_engine(graph, feeds), plan.manifest.precision))
    return results


# ----------------------------------------------------------------------------- the build


@dataclass
class BuildResult:
    engine: Path
    files: dict[str, int]  # file name -> bytes, engines and sidecar
    cache_hit: bool
    seconds: float  # this command
    sidecar: EngineSidecar
    parity: list[ParityCheck]  # each graph's check (read back from the sidecar on a cache hit)
    layer_info: Path | None = None
    timing_cache: Path | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def parity_status(self) -> str:
        """'passed', or 'not run (REASON)' (no GPU able to run the engines at build time)."""
        status = self.sidecar.parity.get("status", "passed")
        reason = self.sidecar.parity.get("reason")
        return f"{status} ({reason})" if reason else status

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": str(self.engine),
            "files": self.files,
            "cache_hit": self.cache_hit,
            "seconds": self.seconds,
            "runtime": self.sidecar.runtime,
            "compute_capabilities": self.sidecar.compute_capabilities,
            "parity_status": self.parity_status,
            "parity": [p.to_dict() for p in self.parity],
            "layer_info": str(self.layer_info) if self.layer_info else None,
            "timing_cache": str(self.timing_cache) if self.timing_cache else None,
            "warnings": self.warnings,
            "sidecar": self.sidecar.to_dict(),
        }


def build_engine(
    onnx_path: str | Path,
    out: str | Path,
    options: BuildOptions | None = None,
    *,
    on_stage: StageCallback | None = None,
    on_log: LogCallback | None = None,
) -> BuildResult:
    """Build (or find up to date) the engines of an export; see the module docstring for the order of work."""
    t0 = time.perf_counter()
    plan = check_build_options(onnx_path, out, options or BuildOptions())
    trt = plan.runtime.load()
    if plan.options.plugin:
        trt_builder.check_plugin_needs()
    cuda, no_gpu = _open_gpu(plan)
    build = _Build(plan, trt, cuda, no_gpu, make_logger(trt, on_log, "warning"), on_stage or (lambda _: None))
    try:
        return build.run(t0)
    finally:
        build.close()


class _Build:
    """One build's state: the plan, TensorRT, the GPU (None: none), the engines' runners and what it warned of."""

    def __init__(
        self, plan: BuildPlan, trt: Any, cuda: CudaDevice | None, no_gpu: str, logger: Any, stage: StageCallback
    ) -> None:
        self.plan, self.trt, self.cuda, self.no_gpu, self.logger, self.stage = plan, trt, cuda, no_gpu, logger, stage
        self.device = cuda.info if cuda is not None else None
        self.warnings: list[str] = []
        self.runners: dict[str, Any] = {}
        self.timing: dict[str, Any] = {}  # the timing cache, once loaded
        self.skip_parity: str | None = None

    @property
    def gpu(self) -> CudaDevice:
        """The build's GPU: there is one wherever the engines are run (parity, layer information)."""
        assert self.cuda is not None, "the engines run only where a GPU was opened"
        return self.cuda

    def run(self, t0: float) -> BuildResult:
        plan, options = self.plan, self.plan.options
        if options.plugin and self.cuda is not None:
            trt_builder.check_plugin_arch(self.cuda.info)
        self.skip_parity = parity_not_run_reason(plan, self.device)
        if options.layer_info and self.skip_parity is not None:
            raise OptionError(
                "layer_info",
                f"reads the built engines back, which needs a GPU that runs them; here: {self.skip_parity}",
            )
        key = self.cache_key()
        cached = None if options.force else find_cached(plan, key)
        if cached is not None:
            return self.up_to_date(cached, t0)
        build_t0 = time.perf_counter()
        blobs = {graph: self.build_one(graph) for graph in GRAPHS}
        build_seconds = time.perf_counter() - build_t0
        parity = self.check_parity(blobs)
        self.stage("writing the engines")
        for graph, blob in blobs.items():
            write_bytes_atomic(plan.engines[graph], blob, overwrite=True)
        timing_path = self.write_timing_cache()
        sidecar = self.sidecar(blobs, key, build_seconds, parity)
        write_sidecar(plan.out, sidecar)
        layer_path = _write_layer_info(plan, self.runners) if options.layer_info else None
        if layer_path is None:
            layer_info_path(plan.out).unlink(missing_ok=True)  # an earlier build's, no longer true
        return BuildResult(
            plan.out,
            _files(plan),
            False,
            time.perf_counter() - t0,
            sidecar,
            parity,
            layer_path,
            timing_path,
            self.warnings,
        )

    def cache_key(self) -> str:
        plan, options = self.plan, self.plan.options
        return cache_key(
            onnx_sha256=plan.onnx_sha256,
            tensorrt_version=self.trt.__version__,
            device=self.device,
            profile=plan.profile,
            plugin=options.plugin,
            workspace_mib=options.workspace_mib,
            optimization_level=options.optimization_level,
            package_version=__version__,
            runtime=plan.runtime.name,
            compute_capabilities=plan.targets,
        )

    def up_to_date(self, cached: EngineSidecar, t0: float) -> BuildResult:
        """The result of a build whose engines beside the output are up to date (its layer information rewritten
        when asked)."""
        plan = self.plan
        layer_path = None
        if plan.options.layer_info:
            self.stage("writing layer information")
            blobs = {g: p.read_bytes() for g, p in plan.engines.items()}
            self.runners.update(_runners(self.trt, plan, blobs, self.gpu, self.logger))
            layer_path = _write_layer_info(plan, self.runners)
        checks = [ParityCheck.from_dict(d, TENSORRT_VS_ORT) for d in cached.parity.get("results", [])]
        return BuildResult(
            plan.out, _files(plan), True, time.perf_counter() - t0, cached, checks, layer_path, None, self.warnings
        )

    def build_one(self, graph: str) -> bytes:
        plan = self.plan
        plugin_graph = plan.options.plugin and graph == "generator"
        self.stage(
            f"building the {graph} engine ({plan.manifest.precision}"
            f"{', FusedAdaIN plugin' if plugin_graph else ''}, {plan.profile}, {plan.runtime.label})"
        )
        with trt_builder.reported(plan.runtime, plan.onnx_files[graph], f"building the {graph} engine"):
            return trt_builder.build_serialized(
                self.trt,
                self.logger,
                plan.onnx_files[graph],
                graph,
                plan.settings,
                plugin_graph,
                self.timing,
                self.warnings,
            )

    def check_parity(self, blobs: dict[str, bytes]) -> list[ParityCheck]:
        """The engines against ONNX Runtime fp32 where a GPU runs them (none elsewhere); a failure writes nothing."""
        plan = self.plan
        if self.skip_parity is not None:
            return []
        self.stage(f"checking the engines against ONNX Runtime fp32 (batch {parity_batch(plan.profile)})")
        with trt_builder.reported(plan.runtime, plan.out, "running the engines for the parity check"):
            self.runners.update(_runners(self.trt, plan, blobs, self.gpu, self.logger))
            parity = check_parity(plan, lambda graph, feeds: self.runners[graph].run(feeds))
        failed = [p for p in parity if not p.passed]
        if failed:
            raise MaskfaceError(
                plan.out,
                "the engines failed their parity check (nothing was written): " + "; ".join(p.line() for p in failed),
            )
        return parity

    def write_timing_cache(self) -> Path | None:
        path = self.plan.options.timing_cache
        blob = trt_builder.timing_cache_bytes(self.timing)
        if path is None or blob is None:
            return None
        write_bytes_atomic(Path(path), blob, overwrite=True)
        return Path(path)

    def sidecar(
        self, blobs: dict[str, bytes], key: str, build_seconds: float, parity: list[ParityCheck]
    ) -> EngineSidecar:
        plan, options = self.plan, self.plan.options
        return EngineSidecar(
            tensorrt_version=self.trt.__version__,
            device=self.device,
            onnx_sha256=plan.onnx_sha256,
            profile=plan.profile,
            plugin=options.plugin,
            plugin_implementation="aot" if options.plugin else "",  # compat.network_flags: PREFER_AOT_PYTHON_PLUGINS
            precision=plan.manifest.precision,
            build_seconds=build_seconds,
            model=_model_metadata(plan.manifest),
            cache_key=key,
            package_version=__version__,
            engines={
                g: {"file": plan.engines[g].name, "sha256": _sha256(blob), "bytes": len(blob)}
                for g, blob in blobs.items()
            },
            onnx_source=str(plan.folder.resolve()),
            options={
                "workspace_mib": options.workspace_mib,
                "optimization_level": options.optimization_level,
                "timing_cache": str(options.timing_cache) if options.timing_cache else None,
                "profiling_verbosity": "detailed",
            },
            parity={
                "status": "passed" if self.skip_parity is None else "not run",
                "reason": self.skip_parity,
                "no_gpu": self.no_gpu or None,  # why no GPU could be opened
                "reference": "onnxruntime fp32 (fp32_reference of the exported graphs)",
                "results": [p.to_dict() for p in parity],
            },
            runtime=plan.runtime.name,
            compute_capabilities=list(plan.targets),
        )

    def close(self) -> None:
        for runner in self.runners.values():
            runner.close()  # TensorRT objects go before the memory they use
        if self.cuda is not None:
            self.cuda.close()


def _open_gpu(plan: BuildPlan) -> tuple[CudaDevice | None, str]:
    """The build's GPU, or None and why (the parity step's stand-ins in the tests replace this)."""
    return trt_builder.open_gpu(plan.runtime, plan.options.device)


def _runners(trt: Any, plan: BuildPlan, blobs: dict[str, bytes], cuda: CudaDevice, logger: Any) -> dict[str, Any]:
    """The built engines, deserialized and run as the backend runs them (a test replaces this with stand-ins)."""
    return trt_builder.open_runners(trt, blobs, plan.settings, cuda, logger, plan.engines)


def find_cached(plan: BuildPlan, key: str) -> EngineSidecar | None:
    """The sidecar beside the output when it has this cache key and its engine files are intact."""
    if not sidecar_path(plan.out).is_file():
        return None
    try:
        sidecar = read_sidecar(plan.out)
        if sidecar.cache_key != key:
            return None
        verify_engine_files(plan.out, sidecar)
    except MaskfaceError:
        return None
    return sidecar


def _model_metadata(manifest: ExportManifest) -> dict[str, Any]:
    """The export's manifest as the sidecar keeps it (graph files are the engines' business now)."""
    data = manifest.to_dict()
    data["onnx_graphs"] = data.pop("graphs")
    data["export_parity"] = data.pop("parity")
    return data


def _sha256(blob: bytes) -> str:
    import hashlib

    return hashlib.sha256(blob).hexdigest()


def _files(plan: BuildPlan) -> dict[str, int]:
    paths = [*plan.engines.values(), sidecar_path(plan.out)]
    return {p.name: p.stat().st_size for p in paths if p.is_file()}


def _write_layer_info(plan: BuildPlan, runners: dict[str, Any]) -> Path:
    """The engine inspector's per-layer JSON of each engine, in one file beside ENGINE."""
    info: dict[str, Any] = {}
    for graph, runner in runners.items():
        text = runner.layer_information()
        try:
            info[graph] = json.loads(text)
        except ValueError:
            info[graph] = text
    path = layer_info_path(plan.out)
    write_json_atomic(path, info, overwrite=True)
    return path
