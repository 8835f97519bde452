"""The metric networks load files laid out like the REAL published ones, not like the package's own networks.

tests/data/published_layouts/<key>.json lists every tensor (name and shape) of each published file in
maskface_rt.evaluation.weights.REGISTRY, derived from the upstream code that saved it (each JSON's "source" says
from where and how). Each test writes a file with exactly those tensors under the published name, loads it through
the package's real path (WeightStore, a weights manifest with the file's sha256, the metric's own loader) and
checks that every tensor landed in the network, and which ones the loader deliberately leaves out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from weights_support import save_weight_files  # noqa: E402

from maskface_rt.evaluation.weights import REGISTRY, WeightStore, read_manifest  # noqa: E402

CPU = torch.device("cpu")
LAYOUTS = Path(__file__).parent / "data" / "published_layouts"


def _layout(key: str) -> dict[str, tuple[int, ...]]:
    data = json.loads((LAYOUTS / f"{key}.json").read_text(encoding="utf-8"))
    assert data["file"] == REGISTRY[key].file and data["source"]
    return {name: tuple(shape) for name, shape in data["tensors"].items()}


def _published_like(layout: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """A state dict with the layout's names and shapes, tensor i holding the constant i + 1 (so a test can tell
    where each one went). Each is one element expanded to its shape: the exact shape, a few bytes on disk (even
    AlexNet's 234 MB classifier)."""
    tensors = {}
    for i, (name, shape) in enumerate(layout.items()):
        dtype = torch.int64 if name.endswith("num_batches_tracked") else torch.float32
        tensors[name] = torch.full((), i + 1, dtype=dtype).expand(shape)
    return tensors


def _store(folder: Path, files: dict[str, dict[str, torch.Tensor]]) -> WeightStore:
    """The files saved under their published names and a weights manifest with their sha256 (as conftest's
    ``eval_weights``): the store the metrics load from."""
    return WeightStore(folder, read_manifest(save_weight_files(folder, files)))


def _assert_loaded(
    module: torch.nn.Module, tensors: dict[str, torch.Tensor], ignored: Iterable[str], rename=lambda name: name
) -> None:
    """Every tensor of the file but ``ignored`` is in ``module`` (under ``rename(name)``) with the file's values,
    and the module holds nothing else."""
    own = module.state_dict()
    used = {rename(name): name for name in tensors if name not in set(ignored)}
    assert set(tensors) - {used[k] for k in used} == set(ignored)
    assert set(own) == set(used), (sorted(set(own) - set(used))[:3], sorted(set(used) - set(own))[:3])
    for key, name in used.items():
        assert own[key].shape == tensors[name].shape and own[key].dtype == tensors[name].dtype, key
        assert torch.equal(own[key], tensors[name]), key


def test_fid_inception_loads_every_tensor_of_the_published_pt_inception_file_but_the_1008_class_fc(tmp_path):
    from maskface_rt.evaluation.inception import InceptionFeatures

    layout = _layout("inception")
    assert len(layout) == 566 and sum(n.endswith("num_batches_tracked") for n in layout) == 94
    tensors = _published_like(layout)
    inception = InceptionFeatures(_store(tmp_path, {"inception": tensors}), CPU)
    _assert_loaded(inception.net, tensors, ignored={"fc.weight", "fc.bias"})
    assert layout["fc.weight"] == (1008, 2048)


def test_lpips_trunk_loads_every_conv_of_the_published_alexnet_owt_file_but_the_classifier(tmp_path):
    from maskface_rt.evaluation.lpips import LPIPS

    layout = _layout("alexnet")
    assert len(layout) == 16
    tensors = _published_like(layout)
    heads = _published_like(_layout("lpips-alex"))
    lpips = LPIPS(_store(tmp_path, {"alexnet": tensors, "lpips-alex": heads}), CPU)
    classifier = {f"classifier.{i}.{p}" for i in (1, 4, 6) for p in ("weight", "bias")}
    _assert_loaded(lpips.net.trunk, tensors, ignored=classifier)


def test_lpips_heads_load_every_tensor_of_the_published_v0_1_alex_file(tmp_path):
    from maskface_rt.evaluation.lpips import LPIPS

    layout = _layout("lpips-alex")
    assert list(layout) == [f"lin{k}.model.1.weight" for k in range(5)]
    tensors = _published_like(layout)
    trunk = _published_like(_layout("alexnet"))
    lpips = LPIPS(_store(tmp_path, {"alexnet": trunk, "lpips-alex": tensors}), CPU)
    _assert_loaded(lpips.net.lins, tensors, ignored=(), rename=lambda name: f"{name[3]}.weight")


def test_bisenet_loads_every_tensor_of_the_published_79999_iter_file(tmp_path):
    from maskface_rt.evaluation.bisenet import BiSeNetParser

    layout = _layout("bisenet")
    assert len(layout) == 191 and sum(n.endswith("num_batches_tracked") for n in layout) == 31
    assert layout["conv_out.conv_out.weight"] == (19, 256, 1, 1)
    tensors = _published_like(layout)
    parser = BiSeNetParser(_store(tmp_path, {"bisenet": tensors}), CPU)
    _assert_loaded(parser.net, tensors, ignored=())
