"""Triton model configurations as small dataclasses (PyTriton's style), their ``config.pbtxt`` text, and the check
of that text against Triton's own schema (``tritonclient``'s ``model_config_pb2``, parsed with protobuf's
``text_format``: an unknown field, a bad enum or a wrong type is a one-line error naming the file).

No Triton import at module level: the schema is imported by ``parse_config`` (the ``[triton]`` extra).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskface_rt.errors import MaskfaceError

#: numpy dtypes -> Triton's data types (config.pbtxt) and wire names (the clients' ``InferInput`` datatype).
TRITON_TYPES = {np.dtype(np.uint8): "TYPE_UINT8", np.dtype(np.float32): "TYPE_FP32", np.dtype(np.float16): "TYPE_FP16"}
WIRE_TYPES = {np.dtype(np.uint8): "UINT8", np.dtype(np.float32): "FP32", np.dtype(np.float16): "FP16"}
#: Triton's instance kinds.
INSTANCE_KINDS = ("KIND_CPU", "KIND_GPU")
#: The platform of an ensemble, and where each backend's model file lives in a version folder.
ENSEMBLE = "ensemble"
MODEL_FILES = {"tensorrt_plan": "model.plan", "onnxruntime_onnx": "model.onnx", "python": "model.py"}
INSTALL_HINT = "pip install 'maskface-rt[triton]'"


@dataclass(frozen=True)
class Tensor:
    """One input or output, without the batch dimension (Triton adds it where ``max_batch_size`` > 0)."""

    name: str
    dtype: np.dtype
    dims: tuple[int, ...]

    def to_pbtxt(self) -> str:
        dims = ", ".join(str(d) for d in self.dims)
        return f'{{ name: "{self.name}" data_type: {TRITON_TYPES[np.dtype(self.dtype)]} dims: [ {dims} ] }}'


@dataclass(frozen=True)
class DynamicBatcher:
    """Triton's dynamic batcher: requests wait up to ``max_queue_delay_microseconds`` for company."""

    preferred_batch_size: tuple[int, ...] = ()
    max_queue_delay_microseconds: int = 0

    def to_pbtxt(self) -> str:
        preferred = (
            f"preferred_batch_size: [ {', '.join(str(b) for b in self.preferred_batch_size)} ] "
            if self.preferred_batch_size
            else ""
        )
        return f"dynamic_batching {{ {preferred}max_queue_delay_microseconds: {self.max_queue_delay_microseconds} }}"


@dataclass(frozen=True)
class InstanceGroup:
    """How many copies of a model run, and on what (KIND_CPU, KIND_GPU)."""

    count: int = 1
    kind: str = "KIND_CPU"

    def to_pbtxt(self) -> str:
        return f"instance_group [ {{ count: {self.count} kind: {self.kind} }} ]"


@dataclass(frozen=True)
class EnsembleStep:
    """One step of an ensemble: ``input_map`` (the model's input -> the ensemble's tensor) and ``output_map``."""

    model_name: str
    input_map: Mapping[str, str]
    output_map: Mapping[str, str]

    def to_pbtxt(self) -> str:
        maps = [f'input_map {{ key: "{k}" value: "{v}" }}' for k, v in self.input_map.items()]
        maps += [f'output_map {{ key: "{k}" value: "{v}" }}' for k, v in self.output_map.items()]
        return f'{{ model_name: "{self.model_name}" model_version: -1 {" ".join(maps)} }}'


@dataclass(frozen=True)
class TritonModel:
    """One model of a repository: a backend's model (``platform`` tensorrt_plan, onnxruntime_onnx or python) or
    an ensemble of such (``steps``)."""

    name: str
    platform: str
    max_batch_size: int
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    dynamic_batching: DynamicBatcher | None = None
    instance_group: InstanceGroup | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    steps: tuple[EnsembleStep, ...] = ()

    def to_pbtxt(self) -> str:
        """The model's ``config.pbtxt``."""
        kind = f'backend: "{self.platform}"' if self.platform == "python" else f'platform: "{self.platform}"'
        lines = [
            f'name: "{self.name}"',
            kind,
            f"max_batch_size: {self.max_batch_size}",
            "input [\n  " + ",\n  ".join(t.to_pbtxt() for t in self.inputs) + "\n]",
            "output [\n  " + ",\n  ".join(t.to_pbtxt() for t in self.outputs) + "\n]",
        ]
        if self.platform in MODEL_FILES and self.platform != "python":
            lines.append(f'default_model_filename: "{MODEL_FILES[self.platform]}"')
        if self.dynamic_batching is not None:
            lines.append(self.dynamic_batching.to_pbtxt())
        if self.instance_group is not None:
            lines.append(self.instance_group.to_pbtxt())
        for key, value in self.parameters.items():
            lines.append(f'parameters {{ key: "{key}" value {{ string_value: "{value}" }} }}')
        if self.steps:
            lines.append("ensemble_scheduling {\n  step [\n    " + ",\n    ".join(s.to_pbtxt() for s in self.steps))
            lines.append("  ]\n}")
        return "\n".join(lines) + "\n"


def schema() -> Any:
    """Triton's ``model_config_pb2`` (from tritonclient), or a one-line error saying what to install."""
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError as e:
        raise MaskfaceError(
            None, f"Triton's model configuration schema needs tritonclient ({e}); {INSTALL_HINT}"
        ) from None
    return model_config_pb2


def parse_config(text: str, where: str | Path) -> Any:
    """``text`` (a config.pbtxt) as Triton's ``ModelConfig`` message; an unknown field, a bad enum or a value of
    the wrong type is a MaskfaceError naming ``where`` and the line."""
    from google.protobuf import text_format

    message = schema().ModelConfig()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        raise MaskfaceError(where, f"not a valid Triton model configuration: {e}") from None
    return message


def tensor_signature(message: Any) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The inputs and outputs of a parsed ``ModelConfig``: name -> (data type name, dims)."""
    types = schema().DataType
    return {t.name: (types.Name(t.data_type), tuple(t.dims)) for t in (*message.input, *message.output)}


def check_ensemble(ensemble: Any, members: Mapping[str, Any], where: str | Path) -> None:
    """The wiring of a parsed ensemble against its parsed members: every step's model is there, each mapped
    tensor exists on both sides with the same data type and dims, every tensor a step reads is an ensemble
    input or an earlier step's output, and every ensemble output is produced. A problem is one line naming
    ``where``."""
    known = {t.name: (t.data_type, tuple(t.dims)) for t in ensemble.input}
    for step in ensemble.ensemble_scheduling.step:
        member = members.get(step.model_name)
        if member is None:
            raise MaskfaceError(where, f"step model {step.model_name!r} is not in the repository")
        own = {t.name: (t.data_type, tuple(t.dims)) for t in (*member.input, *member.output)}
        for model_tensor, ensemble_tensor in step.input_map.items():
            _check_link(where, step.model_name, own.get(model_tensor), known.get(ensemble_tensor), model_tensor)
        for model_tensor, ensemble_tensor in step.output_map.items():
            if model_tensor not in own:
                raise MaskfaceError(where, f"{step.model_name} has no output {model_tensor!r}")
            known[ensemble_tensor] = own[model_tensor]
        if member.max_batch_size < ensemble.max_batch_size:
            raise MaskfaceError(
                where, f"max_batch_size {ensemble.max_batch_size} is over {step.model_name}'s {member.max_batch_size}"
            )
    for t in ensemble.output:
        _check_link(where, "the ensemble", (t.data_type, tuple(t.dims)), known.get(t.name), t.name)


def _check_link(where: str | Path, model: str, ours: Any, theirs: Any, name: str) -> None:
    if ours is None or theirs is None:
        raise MaskfaceError(where, f"{model}'s tensor {name!r} is not wired (no such tensor on one side)")
    if ours != theirs:
        types = schema().DataType
        raise MaskfaceError(
            where,
            f"{model}'s tensor {name!r} is {types.Name(ours[0])} {list(ours[1])} on one side and "
            f"{types.Name(theirs[0])} {list(theirs[1])} on the other",
        )
