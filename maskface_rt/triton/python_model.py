"""What the python flavour's ``model.py`` runs inside Triton's python backend: one graph of maskface's own backend
(onnxruntime, openvino, or the engine's runtime), on the batches Triton's dynamic batcher forms.

Triton checks each request's dtypes and shapes against ``config.pbtxt``; this model checks what Triton cannot:
a label outside the model's classes is refused for that request alone (one-line error), the other requests of the
batch still run. Tensors cross the stub by DLPack (``np.from_dlpack``, ``Tensor.from_dlpack``), not ``as_numpy`` /
``Tensor(name, array)``: those go through the stub's numpy C layout, which numpy 2 changed (the stubs of the
nvidia-pytriton wheel read wrong input values and send empty outputs under numpy 2); DLPack works with numpy 1
and 2. Never imports torch.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from maskface_rt.graph_contract import GRAPH_IO, LABELS

#: The message of the harmless error the stub's DLPack capsule destructor raises under numpy 2 (the tensor has
#: been taken by then); reported through ``sys.unraisablehook``, which ``_quiet_capsules`` filters.
_CAPSULE_NOISE = "PyCapsule_GetPointer called with incorrect name"


def label_problem(labels: np.ndarray, num_classes: int) -> str | None:
    """Why ``labels`` cannot be generated from (a value outside 0..num_classes-1), or None."""
    if labels.size and int(labels.max()) >= num_classes:
        return (
            f"labels: values must be 0..{num_classes - 1} (the model's {num_classes} classes), got {int(labels.max())}"
        )
    return None


class MaskfaceModel:
    """One graph (``maskface_graph`` in the model's parameters) of the model beside it (``maskface_model``, relative
    to the version folder) on ``maskface_backend``; KIND_GPU instances run on their GPU."""

    def __init__(self, args: dict[str, str]) -> None:
        import triton_python_backend_utils as pb_utils

        from maskface_rt.backends import open_backend

        self.pb = pb_utils
        _quiet_capsules()
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        self.graph = params["maskface_graph"]
        self.inputs, self.output = GRAPH_IO[self.graph]
        folder = Path(args["model_repository"]) / args["model_version"]
        gpu = args.get("model_instance_kind") == "GPU"
        device = f"cuda:{args.get('model_instance_device_id', '0')}" if gpu else "cpu"
        threads = int(params.get("maskface_threads") or 0) or None
        self.backend = open_backend(
            folder / params["maskface_model"], params["maskface_backend"], device=device, threads=threads
        )
        calls: dict[str, Callable[..., np.ndarray]] = {
            "generator": self.backend.generate,
            "style_encoder": self.backend.map_latent,
            "style_decoder": self.backend.encode_style,
        }
        self.call = calls[self.graph]

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request: the batch of every acceptable request in one backend call (split at the
        backend's max batch), an error response for each refused one."""
        pb = self.pb
        feeds = [[np.from_dlpack(pb.get_input_tensor_by_name(r, name)) for name in self.inputs] for r in requests]
        problems = [self._problem(f) for f in feeds]
        good = [f for f, problem in zip(feeds, problems) if problem is None]
        outputs = iter(self._run(good)) if good else iter(())
        responses = []
        for problem in problems:
            if problem is not None:
                responses.append(pb.InferenceResponse(output_tensors=[], error=pb.TritonError(problem)))
            else:
                out = np.ascontiguousarray(next(outputs))
                responses.append(pb.InferenceResponse(output_tensors=[pb.Tensor.from_dlpack(self.output, out)]))
        return responses

    def _problem(self, feed: list[np.ndarray]) -> str | None:
        if self.graph == "generator":
            return label_problem(feed[self.inputs.index(LABELS)], self.backend.config.num_classes)
        return None

    def _run(self, feeds: list[list[np.ndarray]]) -> list[np.ndarray]:
        """The graph on the requests' rows together; each request's rows back."""
        sizes = [len(f[0]) for f in feeds]
        batch = [np.concatenate([f[i] for f in feeds]) for i in range(len(self.inputs))]
        step = self.backend.max_batch or len(batch[0])
        out = np.concatenate([self.call(*(a[i : i + step] for a in batch)) for i in range(0, len(batch[0]), step)])
        return np.split(out, np.cumsum(sizes)[:-1])

    def finalize(self) -> None:
        self.backend.close()


def _quiet_capsules() -> None:
    """Leave out the stub's harmless DLPack capsule error (see the module's docstring); every other unraisable
    error goes to the hook there was."""
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, ValueError) and str(unraisable.exc_value) == _CAPSULE_NOISE:
            return
        previous(unraisable)

    sys.unraisablehook = hook
