"""Checkpoints without pickles: safetensors for tensors, JSON (in the safetensors metadata) for the rest.

A *model file* is one ``.safetensors`` holding the inference networks (EMA weights by default) with the
model config in its metadata: one file is a complete model. A *training state* file holds everything
``--resume`` needs: raw and EMA weights of all four networks, optimizer states, the step and RNG states.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from maskface_rt import __version__
from maskface_rt.config import ModelConfig
from maskface_rt.errors import MaskfaceError
from maskface_rt.fileio import atomic_path
from maskface_rt.graph_contract import GRAPHS
from maskface_rt.networks import Nets

MODEL_FORMAT = "maskface-model/1"
STATE_FORMAT = "maskface-train-state/1"


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a safetensors file, with one-line errors for missing or corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise MaskfaceError(path, "no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise MaskfaceError(path, f"not a readable safetensors checkpoint ({e})") from None


def read_config(path: str | Path) -> ModelConfig:
    """The model config of a model file or a training state."""
    path = Path(path)
    meta = read_metadata(path)
    fmt = meta.get("format")
    return _config_from_metadata(path, meta, fmt if fmt in (MODEL_FORMAT, STATE_FORMAT) else MODEL_FORMAT)


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise MaskfaceError(path, f"not a readable safetensors checkpoint ({e})") from None


def _save(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str], overwrite: bool) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _config_from_metadata(path: Path, meta: Mapping[str, str], expected_format: str) -> ModelConfig:
    if meta.get("format") != expected_format:
        raise MaskfaceError(path, f"not a {expected_format} file (format is {meta.get('format')!r})")
    try:
        return ModelConfig.from_json(meta["config"])
    except (KeyError, ValueError, TypeError, RecursionError) as e:
        raise MaskfaceError(path, f"bad model config in metadata ({e})") from None


def check_state_shapes(
    own: Mapping[str, torch.Tensor],
    tensors: Mapping[str, torch.Tensor],
    path: Path,
    what: str,
    against: str = "its config",
) -> None:
    """The same tensor names and shapes, or one line naming the file and the first mismatching tensor."""
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        detail = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise MaskfaceError(
            path,
            f"{what} does not match {against}: {len(missing)} missing and "
            f"{len(unexpected)} unexpected tensors ({detail})",
        )
    for key, value in own.items():
        if tuple(tensors[key].shape) != tuple(value.shape):
            raise MaskfaceError(
                path,
                f"{what} does not match {against}: {key} has shape "
                f"{tuple(tensors[key].shape)}, expected {tuple(value.shape)}",
            )


def load_into(
    module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], path: Path, what: str, against: str = "its config"
) -> None:
    """load_state_dict(strict) whose failures name the file and the first mismatching tensor."""
    check_state_shapes(module.state_dict(), tensors, path, what, against)
    module.load_state_dict(dict(tensors))


def _check_header_shapes(path: Path, cfg: ModelConfig) -> None:
    """The file's tensors (from its header) are the ones ``cfg``'s networks have, before any is allocated."""
    from maskface_rt.model_info import read_safetensors_header

    header = read_safetensors_header(path)
    header.pop("__metadata__", None)
    with torch.device("meta"):  # shapes only, no memory
        own = Nets(cfg, with_discriminator=False).state_dict()
    shapes = {k: torch.empty(v["shape"], device="meta") for k, v in header.items()}
    check_state_shapes(own, shapes, path, "model")


def save_model(
    path: str | Path,
    nets: Nets,
    *,
    weights: str = "ema",
    step: int | None = None,
    overwrite: bool = False,
    extra: Mapping[str, str] | None = None,
) -> None:
    """Write the inference networks (generator, style encoder, style decoder) of ``nets``."""
    tensors = {f"{name}.{k}": v for name in GRAPHS for k, v in getattr(nets, name).state_dict().items()}
    metadata = {
        "format": MODEL_FORMAT,
        "config": nets.cfg.to_json(),
        "weights": weights,
        "maskface_version": __version__,
        **(extra or {}),
    }
    if step is not None:
        metadata["step"] = str(step)
    _save(Path(path), tensors, metadata, overwrite)


def load_model(path: str | Path, *, expect: ModelConfig | None = None) -> Nets:
    """A model file -> Nets (eval mode, no discriminator). ``expect``: refuse another config."""
    path = Path(path)
    meta = read_metadata(path)
    cfg = _config_from_metadata(path, meta, MODEL_FORMAT)
    if expect is not None and cfg != expect:
        raise MaskfaceError(path, f"model config {cfg} does not match the expected {expect}")
    _check_header_shapes(path, cfg)
    nets = Nets(cfg, with_discriminator=False)
    load_into(nets, _read_tensors(path), path, "model")
    return nets.eval()


# --- training state ---------------------------------------------------------------------------------


def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Split a nested structure into JSON (with tensor references) and a flat tensor dict."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, Mapping):
        return {
            "__dict__": [
                [_flatten(k, f"{prefix}.k{i}", tensors), _flatten(v, f"{prefix}.{i}", tensors)]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    if isinstance(obj, tuple):
        return {"__tuple__": [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at {prefix} without pickling")


def _unflatten(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
    return obj


def save_state(path: str | Path, cfg: ModelConfig, state: Mapping[str, Any], *, overwrite: bool = True) -> None:
    """Write a training state: any nest of dicts/lists/tuples/scalars/tensors, no pickles."""
    tensors: dict[str, torch.Tensor] = {}
    tree = _flatten(dict(state), "s", tensors)
    # safetensors refuses tensors that share memory; the state never needs sharing back.
    tensors = {k: v.clone() for k, v in tensors.items()}
    metadata = {
        "format": STATE_FORMAT,
        "config": cfg.to_json(),
        "tree": json.dumps(tree),
        "maskface_version": __version__,
    }
    _save(Path(path), tensors, metadata, overwrite)


def load_state(path: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    path = Path(path)
    meta = read_metadata(path)
    cfg = _config_from_metadata(path, meta, STATE_FORMAT)
    try:
        tree = json.loads(meta["tree"])
        return cfg, _unflatten(tree, _read_tensors(path))
    except (KeyError, ValueError, TypeError) as e:
        raise MaskfaceError(path, f"corrupt training state ({e})") from None
