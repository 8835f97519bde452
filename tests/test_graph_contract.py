"""The graph contract (names, I/O, dtypes, shapes, sample inputs, uint8 <-> [-1, 1]), parity records and the
JSON encoder: one home each, checked here without an export."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from maskface_rt.config import preset
from maskface_rt.fileio import json_safe
from maskface_rt.graph_contract import GRAPH_IO, GRAPHS, TENSOR_DTYPES, graph_feeds, sample_inputs, tensor_shape
from maskface_rt.parity import ParityCheck

CONFIG = preset("tiny-64")


@pytest.mark.parametrize("graph", GRAPHS)
def test_sample_inputs_follow_the_contract(graph):
    inputs, output = GRAPH_IO[graph]
    feeds = sample_inputs(graph, CONFIG, 3)
    assert tuple(feeds) == inputs and output not in feeds
    for name, array in feeds.items():
        assert array.shape == tensor_shape(name, CONFIG, 3) and array.dtype == TENSOR_DTYPES[name]


@pytest.mark.parametrize("graph", GRAPHS)
def test_feeds_take_the_contract_names_and_dtypes(graph):
    inputs, _ = GRAPH_IO[graph]
    arrays = [np.asfortranarray(np.ones(tensor_shape(name, CONFIG, 2), np.float64)) for name in inputs]
    feeds = graph_feeds(graph, *arrays)
    assert tuple(feeds) == inputs
    for name, array in feeds.items():
        assert array.dtype == TENSOR_DTYPES[name] and array.flags.c_contiguous and (array == 1).all()
    with pytest.raises(ValueError):
        graph_feeds(graph, *arrays, arrays[0])  # one input too many


def test_uint8_round_trip_is_exact_and_rounds_half_up():
    torch = pytest.importorskip("torch")
    from maskface_rt.networks import from_uint8_nhwc, to_uint8_nhwc

    levels = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16, 1).expand(2, 16, 16, 3).contiguous()
    unit = from_uint8_nhwc(levels)
    assert unit.shape == (2, 3, 16, 16) and unit.dtype == torch.float32
    assert float(unit.min()) == -1.0 and float(unit.max()) == 1.0
    assert torch.equal(to_uint8_nhwc(unit), levels)
    half = torch.full((1, 3, 1, 1), 0.5 / 127.5 - 1.0)  # level 0.5: half up to 1
    assert int(to_uint8_nhwc(half).max()) == 1


def test_json_safe_makes_what_json_cannot_hold_plain():
    data = {
        "psnr": math.inf,
        "low": -math.inf,
        "undefined": math.nan,
        "batches": (1, 3),
        "file": Path("a/b"),
        "nested": [{"x": np.float64(math.inf)}],
        "n": 2,
    }
    safe = json_safe(data)
    assert safe == {
        "psnr": "inf",
        "low": "-inf",
        "undefined": None,
        "batches": [1, 3],
        "file": "a/b",
        "nested": [{"x": "inf"}],
        "n": 2,
    }
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe


def test_parity_check_round_trips_and_reads_older_sidecars():
    check = ParityCheck("generator", "psnr_db", math.inf, 30.0, (4,), "TensorRT vs ONNX Runtime fp32", 0)
    assert json.loads(json.dumps(check.to_dict(), allow_nan=False))["value"] == "inf"
    assert ParityCheck.from_dict(check.to_dict()) == check
    older = {
        "graph": "style_encoder",
        "metric": "max_rel_error",
        "value": 0.02,
        "bound": 0.01,
        "batch": 8,
        "max_uint8_diff": None,
        "passed": False,
    }  # a sidecar written before batch_sizes and compared
    read = ParityCheck.from_dict(older, "TensorRT vs ONNX Runtime fp32")
    assert read.batch_sizes == (8,) and not read.passed
    assert read.line() == (
        "style_encoder: max relative error 0.02 at batch 8 (TensorRT vs ONNX Runtime fp32); "
        "tolerance 0.01, minimum tolerance that would pass 0.02 [FAILED]"
    )
    with pytest.raises(ValueError, match="not one of psnr_db"):
        ParityCheck("generator", "ssim", 1.0, 0.9, (1,), "")
    with pytest.raises(AttributeError, match="no max_abs_error"):
        check.max_abs_error  # noqa: B018
