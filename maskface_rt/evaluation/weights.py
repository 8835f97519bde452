"""The pretrained networks evaluation uses: known files, checksums, lookup in --weights-dir, safe loading.

Nothing is ever downloaded. A missing or altered file is a one-line error that names the file,
its expected sha256 and where to get it. Loading never runs pickled code: ``.pth`` files go
through ``torch.load(weights_only=True)``, ``.safetensors`` through safetensors.

A *weights manifest* (JSON, ``--weights-manifest``) replaces entries of the registry, e.g. for a
converted or re-trained file: ``{"inception": {"file": "my-inception.pth", "sha256": "..."}}``.
The tests use it to load small random networks through the same path as the real files.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from maskface_rt.errors import MaskfaceError
from maskface_rt.export_format import sha256_file

#: Where --weights-dir defaults to when neither the option nor the environment variable is set.
DEFAULT_WEIGHTS_DIR = Path("weights")
WEIGHTS_DIR_ENV = "MASKFACE_WEIGHTS_DIR"

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class WeightFile:
    """One known pretrained file."""

    key: str  # registry key, also used in the manifest
    file: str  # file name looked up in --weights-dir
    sha256: str  # full hex digest of the published file
    url: str  # where a user gets it (told, never fetched)
    network: str  # what the file holds
    used_for: str  # which metrics need it


REGISTRY: dict[str, WeightFile] = {
    w.key: w
    for w in (
        WeightFile(
            "inception",
            "pt_inception-2015-12-05-6726825d.pth",
            "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth",
            "pytorch-fid's FID Inception-v3",
            "FID and KID",
        ),
        WeightFile(
            "alexnet",
            "alexnet-owt-7be5be79.pth",
            "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            "torchvision's AlexNet",
            "LPIPS",
        ),
        WeightFile(
            "lpips-alex",
            "alex.pth",
            "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
            "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth "
            "(also lpips/weights/v0.1/alex.pth inside the lpips wheel)",
            "the LPIPS v0.1 AlexNet heads",
            "LPIPS",
        ),
        WeightFile(
            "bisenet",
            "79999_iter.pth",
            "468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567",
            "https://drive.google.com/open?id=154JgKpzCPW82qINcVieuPH3fZ2e0P812 "
            "(face-parsing.PyTorch's pretrained model)",
            "face-parsing.PyTorch's BiSeNet",
            "mask consistency",
        ),
    )
}


def default_weights_dir() -> Path:
    """$MASKFACE_WEIGHTS_DIR, else ./weights."""
    return Path(os.environ.get(WEIGHTS_DIR_ENV) or DEFAULT_WEIGHTS_DIR)


def read_manifest(path: str | Path) -> dict[str, WeightFile]:
    """The registry with the entries of a weights manifest JSON file replaced."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MaskfaceError(path, "no such weights manifest") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MaskfaceError(path, f"not a readable JSON weights manifest ({e})") from None
    if not isinstance(data, dict):
        raise MaskfaceError(path, 'a weights manifest is a JSON object: {key: {"file": ..., "sha256": ...}}')
    registry = dict(REGISTRY)
    for key, entry in data.items():
        if key not in REGISTRY:
            raise MaskfaceError(path, f"unknown weights key {key!r}; valid: {', '.join(REGISTRY)}")
        fields = {"file", "sha256", "url"}
        if not isinstance(entry, dict) or not set(entry) <= fields or not entry:
            raise MaskfaceError(path, f"entry {key!r} must be an object with some of: {', '.join(sorted(fields))}")
        sha = entry.get("sha256", REGISTRY[key].sha256)
        if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha.lower())):
            raise MaskfaceError(path, f"entry {key!r}: sha256 must be 64 hex digits")
        registry[key] = dataclasses.replace(REGISTRY[key], **{**entry, "sha256": sha.lower()})
    return registry


class WeightStore:
    """Finds, verifies and loads the registry's files in one folder."""

    def __init__(self, folder: str | Path | None = None, registry: Mapping[str, WeightFile] = REGISTRY) -> None:
        self.folder = Path(folder) if folder is not None else default_weights_dir()
        self.registry = dict(registry)
        self._verified: dict[Path, tuple[int, int]] = {}  # path -> (size, mtime_ns) whose sha256 matched

    def spec(self, key: str) -> WeightFile:
        return self.registry[key]

    def available(self, key: str) -> bool:
        """Whether the file is present (its checksum is checked when it is loaded)."""
        return (self.folder / self.registry[key].file).is_file()

    def missing_error(self, key: str) -> MaskfaceError:
        """The one-line error for a missing file: its path, expected sha256 and where to get it."""
        spec = self.registry[key]
        return MaskfaceError(
            self.folder / spec.file,
            f"missing; expected sha256 {spec.sha256}; get it from "
            f"{spec.url} and put it in --weights-dir (needed for {spec.used_for})",
        )

    def path(self, key: str) -> Path:
        """The verified file of ``key``, or a one-line error."""
        spec = self.registry[key]
        path = self.folder / spec.file
        if not path.is_file():
            raise self.missing_error(key)
        stat = path.stat()
        if self._verified.get(path) != (stat.st_size, stat.st_mtime_ns):
            actual = sha256_file(path)
            if actual != spec.sha256:
                raise MaskfaceError(
                    path,
                    f"sha256 is {actual}, expected {spec.sha256} ({spec.network}); "
                    f"get the published file from {spec.url}",
                )
            self._verified[path] = (stat.st_size, stat.st_mtime_ns)
        return path

    def load_into(
        self,
        module: torch.nn.Module,
        key: str,
        *,
        ignore_prefixes: tuple[str, ...] = (),
        rename: Mapping[str, str] | None = None,
    ) -> None:
        """Load ``key``'s verified file into ``module`` (strict, after dropping ``ignore_prefixes``
        and renaming keys by ``rename``); never runs pickled code."""
        import torch

        from maskface_rt.checkpoint import load_into

        path = self.path(key)
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                tensors = load_file(str(path))
            else:
                tensors = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch.load and safetensors raise many types for a bad file
            detail = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise MaskfaceError(path, f"cannot load the weights ({detail})") from None
        if not isinstance(tensors, Mapping) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
            raise MaskfaceError(path, "is not a state dict (a mapping of names to tensors)")
        rename = rename or {}
        tensors = {rename.get(k, k): v for k, v in tensors.items() if not k.startswith(ignore_prefixes)}
        load_into(module, tensors, path, "state dict", against=self.registry[key].network)
        module.eval()
