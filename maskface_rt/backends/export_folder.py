"""What the backends of an export folder (onnxruntime, openvino) share: opening the folder, and the three
generator calls as feeds of the graph contract; each runtime loads and runs the graphs itself. Never imports torch.
"""

from __future__ import annotations

import abc
from pathlib import Path

import numpy as np

from maskface_rt.backends.base import GeneratorBackend
from maskface_rt.errors import MaskfaceError
from maskface_rt.export_format import ExportManifest, read_manifest
from maskface_rt.graph_contract import graph_feeds


def portable_manifest(folder: Path, runtime: str) -> ExportManifest:
    """The verified manifest of an export that ``runtime`` can run: any but a plugin export."""
    manifest = read_manifest(folder)
    if manifest.plugin:
        raise MaskfaceError(
            folder,
            "is a plugin export (maskface export --plugin): its generator's FusedAdaIN "
            f"nodes run only in TensorRT; export without --plugin for {runtime}",
        )
    return manifest


class ExportFolderBackend(GeneratorBackend):
    """The three ONNX graphs of a ``maskface export`` folder; a subclass loads them and runs one (``_run``)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.manifest = portable_manifest(self.folder, self.name)
        super().__init__(self.manifest.config, str(self.folder))

    @property
    def max_batch(self) -> int | None:
        """The export's declared max batch: larger batches are split (memory grows with the batch)."""
        return self.manifest.max_batch

    def graph_path(self, graph: str) -> Path:
        return self.folder / self.manifest.graphs[graph]["file"]

    @abc.abstractmethod
    def _run(self, graph: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """``graph``'s output for ``feeds`` (its inputs by name)."""

    def generate(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        return self._run("generator", graph_feeds("generator", labels, styles))

    def map_latent(self, latents: np.ndarray) -> np.ndarray:
        return self._run("style_encoder", graph_feeds("style_encoder", latents))

    def encode_style(self, images: np.ndarray) -> np.ndarray:
        return self._run("style_decoder", graph_feeds("style_decoder", images))
