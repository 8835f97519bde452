"""The exported-model folder: file names, metadata keys and the sidecar manifest (no torch here).

An export folder holds ``generator.onnx``, ``style_encoder.onnx``, ``style_decoder.onnx`` and
``maskface.json``. Each graph also carries the essentials in its ONNX ``metadata_props``, so a graph
copied out of its folder still says what it is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskface_rt.config import ModelConfig
from maskface_rt.errors import MaskfaceError
from maskface_rt.graph_contract import GRAPHS

EXPORT_FORMAT = "maskface-onnx/1"
MANIFEST = "maskface.json"
PRECISIONS = ("fp32", "fp16")
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
        try:
            return cls(config=ModelConfig.from_dict(data["config"]), precision=data["precision"],
                       opset=int(data["opset"]), max_batch=int(data["max_batch"]),
                       source_sha256=data["source_sha256"], package_version=data["package_version"],
                       label_order=data.get("label_order", "celebamask"), plugin=bool(data.get("plugin", False)),
                       graphs=dict(data.get("graphs", {})), parity=dict(data.get("parity", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise MaskfaceError(where, f"incomplete or invalid manifest ({e})") from None


def read_manifest(folder: str | Path, *, verify: bool = True) -> ExportManifest:
    """Read ``folder/maskface.json``; with ``verify`` check that every graph file is there and intact."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise MaskfaceError(folder, "no such export folder" if not folder.exists() else "not an export folder")
    if not path.is_file():
        raise MaskfaceError(path, "missing: not a maskface export folder (make one with 'maskface export')")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise MaskfaceError(path, f"unreadable manifest ({e})") from None
    manifest = ExportManifest.from_dict(data, path)
    if verify:
        for graph in GRAPHS:
            info = manifest.graphs.get(graph)
            if info is None:
                raise MaskfaceError(path, f"lists no {graph} graph")
            gpath = folder / info["file"]
            if not gpath.is_file():
                raise MaskfaceError(gpath, "missing: the export folder is incomplete")
            if sha256_file(gpath) != info["sha256"]:
                raise MaskfaceError(gpath, "sha256 does not match maskface.json: the file was changed or truncated")
    return manifest
