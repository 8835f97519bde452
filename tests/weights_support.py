"""Metric weight files for the tests: state dicts saved under the published file names, with a weights manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def save_weight_files(folder: Path, files: dict[str, dict[str, Any]]) -> Path:
    """Each registry key's tensors saved (torch.save, as the published .pth files are) under its published name
    in ``folder``, and a weights manifest with their sha256: the manifest's path."""
    import torch

    from maskface_rt.evaluation.weights import REGISTRY
    from maskface_rt.export_format import sha256_file

    manifest = {}
    for key, tensors in files.items():
        path = folder / REGISTRY[key].file
        torch.save(tensors, path)
        manifest[key] = {"sha256": sha256_file(path)}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder / "manifest.json"
