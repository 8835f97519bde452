"""Against the real TensorRT 11.4 Python bindings, loaded without TensorRT's native libraries.

Full TensorRT cannot be installed here: its ``-libs`` wheels download the native libraries from NVIDIA's own index
at install time. Its ``-bindings`` wheel (``tensorrt-cu13-bindings``, pinned in requirements-test.txt) is the real
Python extension; it loads over three stub libraries built here, which export the ten functions the extension
links against and return nothing. So these tests read names, signatures and pure-Python behaviour (the
``tensorrt.plugin`` decorators, the import-time warning); no builder, engine or parser runs. The ``tensorrt``
package itself is a shim, as the ``tensorrt-cu13`` sdist is (``from tensorrt_bindings import *``), plus a Python
stand-in for the (native) plugin registry.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The files that call TensorRT.
TENSORRT_CODE = [
    "maskface_rt/backends/trt/compat.py",
    "maskface_rt/backends/trt/runner.py",
    "export/engine_builder.py",
    "maskface_rt/backends/trt/parse.py",
    "kernels/trt_plugin.py",
]
#: Module-level names only TensorRT-RTX has: used on its code paths alone (tensorrt_compat's runtime table).
RTX_ONLY = {"EngineValidity", "EngineInvalidityDiagnostics", "CudaGraphStrategy", "ComputeCapability"}

_STUB = r"""
void *createInferBuilder_INTERNAL(void *logger, int version) { return 0; }
void *createInferRefitter_INTERNAL(void *engine, void *logger, int version) { return 0; }
void *createInferRuntime_INTERNAL(void *logger, int version) { return 0; }
void *createNvOnnxParserRefitter_INTERNAL(void *refitter, void *logger, int version) { return 0; }
void *createNvOnnxParser_INTERNAL(void *network, void *logger, int version) { return 0; }
void *getBuilderPluginRegistry(int capability) { return 0; }
int getNvOnnxParserVersion(void) { return 110400; }
void *getPluginRegistry(void) { return 0; }
int initLibNvInferPlugins(void *logger, const char *ns) { return 1; }
"""
#: The plugin registry is native (stubbed: null): a Python stand-in keeps what tensorrt.plugin registers.
_REGISTRY = """
class _Registry:
    creators = {}
    def register_creator(self, creator, namespace):
        self.creators[(creator.name, namespace)] = creator
        return True
    def get_creator(self, name, version, namespace):
        return self.creators[(name, namespace)]
get_plugin_registry = _Registry
"""
_LIBRARIES = ("libnvinfer.so.11", "libnvonnxparser.so.11", "libnvinfer_plugin.so.11")


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the ``tensorrt`` shim package (put it on PYTHONPATH)."""
    if importlib.util.find_spec("tensorrt_bindings") is None:
        pytest.skip("tensorrt-cu13-bindings is not installed (pip install -r requirements-test.txt)")
    folder = tmp_path_factory.mktemp("tensorrt-shim")
    (folder / "tensorrt" / "plugin").mkdir(parents=True)
    (folder / "tensorrt" / "__init__.py").write_text(
        "from tensorrt_bindings import *\nfrom tensorrt_bindings import __version__\n" + _REGISTRY
    )
    (folder / "tensorrt" / "plugin" / "__init__.py").write_text("from tensorrt_bindings.plugin import *\n")
    return folder


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of stand-ins for TensorRT's native libraries (put it on LD_LIBRARY_PATH)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the stand-ins for TensorRT's native libraries")
    folder = tmp_path_factory.mktemp("tensorrt-stubs")
    (folder / "stub.c").write_text(_STUB)
    for name in _LIBRARIES:
        subprocess.run(
            [cc, "-shared", "-fPIC", f"-Wl,-soname,{name}", "-o", str(folder / name), str(folder / "stub.c")],
            check=True,
            timeout=120,
        )
    return folder


def _env(shim: Path, stubs: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "PYTHONPATH")}
    env["PYTHONPATH"] = str(shim)
    env["NO_COLOR"] = "1"
    if stubs is not None:
        env["LD_LIBRARY_PATH"] = str(stubs)
    return env


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


#: Attributes TensorRT 11 removed (weak typing, the INT8 calibrator, the old scratch-size query): no code path may
#: read them, not even as a fallback.
REMOVED_IN_11 = {
    "device_memory_size": "ICudaEngine",
    "platform_has_fast_fp16": "Builder",
    "OBEY_PRECISION_CONSTRAINTS": "BuilderFlag",
    "FP16": "BuilderFlag",
    "int8_calibrator": "IBuilderConfig",
}


def _attributes_read() -> set[str]:
    return {
        node.attr
        for path in TENSORRT_CODE
        for node in ast.walk(ast.parse((ROOT / path).read_text()))
        if isinstance(node, ast.Attribute)
    }


def _module_names_used() -> set[str]:
    """Every ``trt.NAME`` (and ``self.trt.NAME``) the TensorRT code reads, dotted chains included."""
    names = set()
    for path in TENSORRT_CODE:
        for node in ast.walk(ast.parse((ROOT / path).read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            chain, value = [node.attr], node.value
            while isinstance(value, ast.Attribute) and value.attr != "trt":
                chain.append(value.attr)
                value = value.value
            is_trt = (isinstance(value, ast.Name) and value.id == "trt") or (
                isinstance(value, ast.Attribute) and value.attr == "trt"
            )
            if is_trt:
                names.add(".".join(reversed(chain)))
    # keep the longest chains only: trt.A.B covers trt.A
    return {n for n in names if not any(m.startswith(n + ".") for m in names)}


#: Methods and properties the TensorRT code calls on TensorRT's objects (TensorRT-RTX-only ones left out).
METHODS = {
    "Builder": ["create_network", "create_builder_config", "create_optimization_profile", "build_serialized_network"],
    "IBuilderConfig": [
        "create_timing_cache",
        "set_timing_cache",
        "set_memory_pool_limit",
        "builder_optimization_level",
        "profiling_verbosity",
        "add_optimization_profile",
    ],
    "IOptimizationProfile": ["set_shape"],
    "ITimingCache": ["serialize"],
    "OnnxParser": ["parse_from_file", "num_errors", "get_error"],
    "ParserError": ["node", "node_name", "node_operator", "desc"],
    "Runtime": ["deserialize_cuda_engine"],
    "ICudaEngine": [
        "num_io_tensors",
        "num_optimization_profiles",
        "get_tensor_name",
        "get_tensor_mode",
        "get_tensor_dtype",
        "get_tensor_shape",
        "get_tensor_profile_shape",
        "device_memory_size_v2",
        "create_execution_context",
        "create_engine_inspector",
    ],
    "IExecutionContext": [
        "set_device_memory",
        "set_input_shape",
        "set_tensor_address",
        "get_tensor_shape",
        "execute_async_v3",
    ],
    "EngineInspector": ["get_engine_information"],
}


def test_every_tensorrt_name_the_code_uses_exists_in_the_tensorrt_11_bindings(shim, stubs):
    """Names only: a TensorRT 11 rename or removal (device_memory_size, the weak-typing flags) shows here."""
    used = _module_names_used()
    assert {"Builder", "OnnxParser", "Runtime", "MemoryPoolType.WORKSPACE"} <= used  # the scan finds the code's
    code = f"""
import json, tensorrt as trt
def has(obj, chain):
    for part in chain.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True
names = {sorted(used)!r}
methods = {METHODS!r}
print(json.dumps({{
    "version": trt.__version__,
    "missing": [n for n in names if not has(trt, n)],
    "missing_methods": [f"{{c}}.{{m}}" for c, ms in methods.items() for m in ms if not has(trt, c + "." + m)],
    "not_gone": [f"{{c}}.{{n}}" for n, c in {REMOVED_IN_11!r}.items() if has(trt, c + "." + n) or not has(trt, c)],
}}))
"""
    done = _python(code, _env(shim, stubs))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["version"].startswith("11.")
    assert {n.split(".")[0] for n in found["missing"]} == RTX_ONLY, found["missing"]
    assert found["missing_methods"] == []
    assert found["not_gone"] == []  # the list of what TensorRT 11 removed is true...
    assert _attributes_read() & set(REMOVED_IN_11) == set()  # ...and no code path reads any of it


def test_tensorrt_11s_plugin_decorators_accept_the_fused_adain_plugin(shim, stubs):
    """kernels/trt_plugin.py registers through the real tensorrt.plugin: its signature checks of register, impl,
    aot_impl and autotune run for real (into the shim's stand-in registry)."""
    code = """
import sys, tensorrt as trt
from maskface_rt.backends.trt.compat import import_python_plugins
plugin = import_python_plugins("maskface_rt.kernels.trt_plugin")
print(plugin.PLUGIN_ID, sorted(trt.get_plugin_registry().creators), file=sys.stderr)
"""
    done = _python(code, _env(shim, stubs))
    assert done.returncode == 0, done.stderr
    assert "maskface::FusedAdaIN [('FusedAdaIN', 'maskface')]" in done.stderr
    # import tensorrt.plugin logs a warning through TensorRT's default logger, which prints on stdout: moved
    assert "tensorrt.plugin module is experimental" in done.stderr and done.stdout == ""


def test_build_json_of_a_plugin_export_keeps_tensorrts_plugin_warning_off_stdout(shim, stubs, tiny_plugin_export_fp16):
    """maskface build imports tensorrt.plugin for a plugin export, before it needs the GPU: with --json, stdout
    carries the result and nothing else (here, no GPU: nothing, and a one-line error)."""
    done = subprocess.run(
        [sys.executable, "-m", "maskface_rt", "build", str(tiny_plugin_export_fp16), "--out", "x.engine", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(shim, stubs),
        cwd=shim,
    )
    assert "tensorrt.plugin module is experimental" in done.stderr, done.stderr
    assert done.stdout == ""
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert not (shim / "x.engine").exists()


def test_a_tensorrt_without_its_native_libraries_is_reported_broken_and_the_runtime_choice_takes_tensorrt_rtx(shim):
    """The bindings without the libraries: ``import tensorrt`` fails (libnvonnxparser.so.11). It is installed,
    but broken: said so by name, and the runtime choice moves on to TensorRT-RTX."""
    pytest.importorskip("tensorrt_rtx")
    code = """
import json
from maskface_rt.errors import MaskfaceError
from maskface_rt.backends.trt.compat import RUNTIMES, resolve_runtime
try:
    RUNTIMES["tensorrt"].load()
except MaskfaceError as e:
    print(json.dumps({"error": str(e), "chosen": resolve_runtime(None).name, "installed": RUNTIMES["tensorrt"].installed}))
"""
    done = _python(code, _env(shim, None))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["installed"] and found["chosen"] == "tensorrt-rtx"
    assert re.match(
        r"TensorRT is installed but cannot be loaded \(ImportError: .*libnvonnxparser\.so\.11", found["error"]
    )
    assert "pip install 'maskface-rt[tensorrt]'" in found["error"]
