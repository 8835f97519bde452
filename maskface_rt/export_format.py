"""The exported-model folder: file names, metadata keys and the sidecar manifest (no torch here).

An export folder holds ``generator.onnx``, ``style_encoder.onnx``, ``style_decoder.onnx`` and
``maskface.json``. Each graph also carries the essentials in its ONNX ``metadata_props``, so a graph
copied out of its folder still says what it is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskface_rt.config import ModelConfig
from maskface_rt.errors import MaskfaceError
from maskface_rt.fileio import read_json_object
from maskface_rt.graph_contract import GRAPH_IO, GRAPHS, tensor_shape
from maskface_rt.labels import LABEL_ORDERS, NUM_CLASSES
from maskface_rt.values import is_integer

EXPORT_FORMAT = "maskface-onnx/1"
MANIFEST = "maskface.json"
EXPORT_PRECISIONS = ("fp32", "fp16")
#: Largest max_batch an export may declare (maskface export's own limit is far below).
MAX_EXPORT_BATCH = 4096


MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 18, 23, 18
#: Exports are checked at batch 1 and 3, so they must declare at least 3.
CHECK_BATCHES = (1, 3)
MIN_MAX_BATCH = max(CHECK_BATCHES)


def graph_file(graph: str) -> str:
    return f"{graph}.onnx"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ExportManifest:
    """What ``maskface.json`` says about an export."""

    config: ModelConfig
    precision: str
    opset: int
    max_batch: int
    source_sha256: str
    package_version: str
    label_order: str = "celebamask"
    plugin: bool = False
    graphs: dict[str, dict[str, Any]] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)

    def metadata_props(self, graph: str) -> dict[str, str]:
        """The key/value pairs stored in each graph's ONNX metadata_props."""
        return {
            "maskface.format": EXPORT_FORMAT,
            "maskface.graph": graph,
            "maskface.config": self.config.to_json(),
            "maskface.label_order": self.label_order,
            "maskface.img_size": str(self.config.img_size),
            "maskface.precision": self.precision,
            "maskface.plugin": str(self.plugin).lower(),
            "maskface.version": self.package_version,
            "maskface.source_sha256": self.source_sha256,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": EXPORT_FORMAT,
            "config": self.config.to_dict(),
            "img_size": self.config.img_size,
            "label_order": self.label_order,
            "precision": self.precision,
            "plugin": self.plugin,
            "opset": self.opset,
            "max_batch": self.max_batch,
            "source_sha256": self.source_sha256,
            "package_version": self.package_version,
            "graphs": self.graphs,
            "parity": self.parity,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: Path) -> ExportManifest:
        if data.get("format") != EXPORT_FORMAT:
            raise MaskfaceError(where, f"not a {EXPORT_FORMAT} manifest (format is {data.get('format')!r})")
        if not isinstance(data.get("graphs", {}), dict) or not isinstance(data.get("config"), dict):
            raise MaskfaceError(where, "invalid manifest: 'config' and 'graphs' must be JSON objects")
        try:
            manifest = cls(
                config=ModelConfig.from_dict(data["config"]),
                precision=data["precision"],
                opset=data["opset"],
                max_batch=data["max_batch"],
                source_sha256=data["source_sha256"],
                package_version=data["package_version"],
                label_order=data.get("label_order", "celebamask"),
                plugin=data.get("plugin", False),
                graphs=dict(data.get("graphs", {})),
                parity=dict(data.get("parity", {})),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise MaskfaceError(where, f"incomplete or invalid manifest ({e})") from None
        if problems := manifest.problems():
            raise MaskfaceError(where, f"invalid manifest: {'; '.join(problems)}")
        return manifest

    def problems(self) -> list[str]:
        """What in this manifest no export by maskface holds (each field's type and range, checked before any
        work: an untrusted folder must not reach a backend with a negative batch or a 3-class model)."""
        found = []
        if not is_integer(self.max_batch, 1, MAX_EXPORT_BATCH):
            found.append(f"max_batch must be an integer in 1..{MAX_EXPORT_BATCH}, got {self.max_batch!r}")
        if not is_integer(self.opset, 7, 99):
            found.append(f"opset must be an integer in 7..99, got {self.opset!r}")
        if self.precision not in EXPORT_PRECISIONS:
            found.append(f"precision must be one of {', '.join(EXPORT_PRECISIONS)}, got {self.precision!r}")
        if self.label_order not in LABEL_ORDERS:
            found.append(f"label_order must be one of {', '.join(LABEL_ORDERS)}, got {self.label_order!r}")
        if not isinstance(self.plugin, bool):
            found.append(f"plugin must be true or false, got {self.plugin!r}")
        if self.config.num_classes != NUM_CLASSES:
            found.append(f"config.num_classes must be {NUM_CLASSES} (the mask classes), got {self.config.num_classes}")
        for name in ("source_sha256", "package_version"):
            if not isinstance(getattr(self, name), str):
                found.append(f"{name} must be a string, got {getattr(self, name)!r}")
        return found


def read_manifest(folder: str | Path, *, verify: bool = True) -> ExportManifest:
    """Read ``folder/maskface.json``; with ``verify`` check that every graph file is there and intact.

    The manifest comes from outside: its shape is checked, each graph's file must be a plain name of a
    file inside the folder, and (``verify``) its sha256 must match, it must carry all its weights (no ONNX
    external data, which the export never writes and the hash would not cover) and its inputs and outputs
    must have the manifest's sizes. Any problem is one MaskfaceError naming the file.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise MaskfaceError(folder, "no such export folder" if not folder.exists() else "not an export folder")
    if not path.is_file():
        raise MaskfaceError(path, "missing: not a maskface export folder (make one with 'maskface export')")
    manifest = ExportManifest.from_dict(read_json_object(path, f"{EXPORT_FORMAT} manifest"), path)
    files = {graph: _graph_path(folder, path, manifest.graphs, graph) for graph in GRAPHS}
    if verify:
        for graph, gpath in files.items():
            blob = gpath.read_bytes()
            if hashlib.sha256(blob).hexdigest() != manifest.graphs[graph].get("sha256"):
                raise MaskfaceError(gpath, "sha256 does not match maskface.json: the file was changed or truncated")
            check_graph_file(blob, graph, manifest.config, gpath)
    return manifest


def _graph_path(folder: Path, where: Path, graphs: dict[str, Any], graph: str) -> Path:
    """The file of one graph: a plain file name, resolving to a regular file inside ``folder``."""
    info = graphs.get(graph)
    if info is None:
        raise MaskfaceError(where, f"lists no {graph} graph")
    name = info.get("file") if isinstance(info, dict) else None
    if not isinstance(name, str) or not isinstance(info.get("sha256"), str):
        raise MaskfaceError(where, f"graph {graph!r} must be an object with a 'file' name and a 'sha256'")
    gpath = folder / name
    if name in ("", ".", "..") or Path(name).name != name or "\\" in name:
        raise MaskfaceError(where, f"graph {graph!r} file {name!r} is not a plain file name in the folder")
    if gpath.resolve().parent != folder.resolve():
        raise MaskfaceError(where, f"graph {graph!r} file {name!r} points outside the export folder")
    if not gpath.is_file():
        raise MaskfaceError(gpath, "missing: the export folder is incomplete")
    return gpath


def _expected_io(graph: str, cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Per-sample shapes (no batch axis) of a graph's inputs and output, from the graph contract."""
    inputs, output = GRAPH_IO[graph]
    return {name: tensor_shape(name, cfg, 1)[1:] for name in (*inputs, output)}


def check_graph_file(blob: bytes, graph: str, cfg: ModelConfig, where: Path) -> None:
    """The serialized graph holds all its weights and its fixed sizes agree with ``cfg`` (one line if not)."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    try:
        model = onnx.load_model_from_string(blob)
    except Exception as e:  # protobuf decode errors have no common base
        raise MaskfaceError(where, f"not a readable ONNX model ({e})") from None
    if any(uses_external_data(t) for t in _get_all_tensors(model)):
        raise MaskfaceError(
            where,
            "refers to external data files; maskface exports keep every weight inside the "
            ".onnx file (the sha256 in maskface.json covers only that file)",
        )
    found = {
        v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
        for v in [*model.graph.input, *model.graph.output]
    }
    for name, shape in _expected_io(graph, cfg).items():
        dims = found.get(name)
        if dims is None:
            raise MaskfaceError(where, f"has no {name!r} input or output")
        if len(dims) != len(shape) + 1 or any(d is not None and d != s for d, s in zip(dims[1:], shape)):
            shown = ["batch", *shape]
            raise MaskfaceError(
                where, f"{name!r} has shape {dims}, but maskface.json (img_size {cfg.img_size}) needs {shown}"
            )
