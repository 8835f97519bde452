"""maskface eval end to end: metric planning, the runner, the markdown report and the CLI (both forms)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

import typer  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from maskface_rt.cli.eval import eval_app  # noqa: E402
from maskface_rt.errors import MaskfaceError  # noqa: E402
from maskface_rt.evaluation.diversity import mean_pairwise, pixel_l1  # noqa: E402
from maskface_rt.evaluation.runner import Comparison, EvalOptions, evaluate, plan_metrics  # noqa: E402
from maskface_rt.evaluation.weights import WeightStore, read_manifest  # noqa: E402
from maskface_rt.synth import render_looks  # noqa: E402

# The main CLI mounts the sub-app exactly like this.
app = typer.Typer()
app.add_typer(eval_app, name="eval")


@app.callback()
def _root() -> None:
    """A root with a callback, as in maskface_rt.cli, so 'eval' stays a subcommand."""


@pytest.fixture(scope="module")
def parser_file(synth64, tmp_path_factory):
    from maskface_rt.datasets import open_dataset
    from maskface_rt.evaluation.unet_parser import train_parser

    out = tmp_path_factory.mktemp("parser") / "parser.safetensors"
    train_parser(open_dataset(synth64, size=64), out, steps=5, batch_size=4, width=8)
    return out


@pytest.fixture(scope="module")
def store(eval_weights):
    folder, manifest = eval_weights
    return WeightStore(folder, read_manifest(manifest))


def test_default_metrics_are_those_that_can_run(tmp_path, synth64, eval_weights, store):
    empty = WeightStore(tmp_path)
    selected, skipped = plan_metrics(EvalOptions(data=synth64), empty)
    assert selected == ["diversity"]
    assert set(skipped) == {"consistency", "lpips", "fid", "kid", "parity"}
    assert skipped["fid"].startswith(f"{tmp_path / 'pt_inception-2015-12-05-6726825d.pth'}: missing; expected sha256")
    assert "--parser FILE" in skipped["consistency"] and "79999_iter.pth" in skipped["consistency"]
    assert skipped["parity"] == "no --compare BACKEND:MODEL given"
    selected, skipped = plan_metrics(EvalOptions(data=synth64), store)
    assert selected == ["consistency", "diversity", "lpips", "fid", "kid"] and list(skipped) == ["parity"]


def test_named_metrics_that_cannot_run_are_errors(tmp_path, synth64):
    empty = WeightStore(tmp_path)
    with pytest.raises(MaskfaceError, match=r"alexnet-owt-7be5be79\.pth: missing; expected sha256 7be5be79"):
        plan_metrics(EvalOptions(data=synth64, metrics=("lpips",)), empty)
    with pytest.raises(MaskfaceError, match="parity needs at least one --compare"):
        plan_metrics(EvalOptions(data=synth64, metrics=("parity",)), empty)
    with pytest.raises(MaskfaceError, match="unknown metric 'is'"):
        plan_metrics(EvalOptions(data=synth64, metrics=("is",)), empty)
    selected, _ = plan_metrics(EvalOptions(data=synth64, metrics=("consistency",), parser="p.safetensors"), empty)
    assert selected == ["consistency"]  # a package parser needs no downloaded weights
    for text in ("runs/model.safetensors", "openvino@fp16:runs/onnx", "tvm:runs/onnx", "openvino@fp32:"):
        with pytest.raises(MaskfaceError, match=r"BACKEND\[@PRECISION\]:MODEL .* got '"):
            Comparison.parse(text)
    assert Comparison.parse("openvino@fp32:runs/onnx") == Comparison("openvino", Path("runs/onnx"), "fp32")
    assert Comparison.parse("onnxruntime:C:/runs/onnx") == Comparison("onnxruntime", Path("C:/runs/onnx"), "auto")


@pytest.mark.slow
def test_identical_backends_are_exact_and_every_metric_runs(tiny_model, synth64, store, parser_file, tmp_path):
    options = EvalOptions(
        data=synth64,
        limit=2,
        styles=3,
        batch_size=6,
        parser=str(parser_file),
        real_limit=6,
        compare=(Comparison("torch", tiny_model),),
        stats_cache=tmp_path / "cache",
        kid_subset_size=6,
        device="cpu",
    )
    stages = []
    result = evaluate(
        tiny_model,
        options,
        backend="torch",
        store=store,
        progress=lambda stage, total: stages.append((stage, total)) or (lambda n: None),
    )
    assert stages == [("real images", 6), ("evaluate", 2)]
    m = result.metrics
    assert set(m) == {"consistency", "diversity", "lpips", "fid", "kid"} and not result.skipped
    assert m["consistency"]["generated"]["pixels"] == 2 * 3 * 64 * 64
    assert m["consistency"]["real"]["pixels"] == 2 * 64 * 64
    assert m["diversity"]["pairs_per_mask"] == 3 and m["diversity"]["pixel_l1"]["mean"] > 0
    # The synthetic set's own figure: masks 00000 and 00001 of seed 7, each in 3 appearances.
    expected = np.mean([mean_pairwise(render_looks(7, i, 64, 3)[0][None], pixel_l1)[0] for i in (0, 1)])
    assert m["diversity"]["real_pixel_l1"]["mean"] == pytest.approx(expected)
    assert m["fid"]["generated_images"] == 6 and m["fid"]["real_images"] == 6 and not m["fid"]["cache_hit"]
    (parity,) = result.parity
    assert parity["psnr_db"] == float("inf") and parity["max_abs_error"] == 0 and parity["identical_images"] == 6
    assert parity["lpips"]["mean"] == 0.0 and parity["fid_change"] == 0.0
    assert set(result.weights) == {"alexnet", "lpips-alex", "inception"}
    again = evaluate(
        tiny_model, dataclasses.replace(options, metrics=("fid",), compare=()), backend="torch", store=store
    )
    assert again.metrics["fid"]["cache_hit"] and again.metrics["fid"]["value"] == m["fid"]["value"]


def test_cli_routes_to_run_writes_report_and_json(tiny_model, synth64, eval_weights, parser_file, tmp_path):
    folder, manifest = eval_weights
    report = tmp_path / "out" / "report.md"
    args = [
        "eval",
        str(tiny_model),
        "--data",
        str(synth64),
        "--limit",
        "2",
        "--styles",
        "2",
        "--device",
        "cpu",
        "--weights-dir",
        str(folder),
        "--weights-manifest",
        str(manifest),
        "--parser",
        str(parser_file),
        "--metrics",
        "consistency,diversity,parity",
        "--compare",
        f"torch:{tiny_model}",
        "--report",
        str(report),
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["masks"] == 2 and data["images"] == 4 and data["skipped"] == {}
    assert data["parity"][0]["psnr_db"] == "inf" and data["parity"][0]["max_abs_error"] == 0
    text = report.read_text()
    assert text.startswith("# maskface eval report") and "## Mask consistency" in text
    assert "| torch cpu fp32 |" in text and "| inf |" in text
    assert not list(report.parent.glob(".*.tmp"))
    again = CliRunner().invoke(app, args)
    assert isinstance(again.exception, MaskfaceError) and "already exists" in str(again.exception)
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_cli_missing_weights_error(tiny_model, synth64, tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--data",
            str(synth64),
            str(tiny_model),
            "--metrics",
            "fid",
            "--weights-dir",
            str(tmp_path),
            "--device",
            "cpu",
        ],
    )
    assert isinstance(result.exception, MaskfaceError)
    assert str(result.exception) == (
        f"{tmp_path / 'pt_inception-2015-12-05-6726825d.pth'}: missing; expected sha256 "
        "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2; get it from "
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth "
        "and put it in --weights-dir (needed for FID and KID)"
    )


@pytest.mark.parametrize(
    ("compare", "message"),
    [
        ("openvino@fp16:{model}", "PRECISION one of auto, fp32, bf16, got 'openvino@fp16:"),
        ("{model}", "Invalid value for --compare: takes BACKEND[@PRECISION]:MODEL"),
        ("onnxruntime@bf16:{export}", "bf16 applies to the openvino backend only"),
    ],
)
def test_cli_bad_compare_exits_2_naming_the_flag_before_any_work(
    tiny_model, tiny_export, synth64, tmp_path, compare, message
):
    report = tmp_path / "report.md"
    compare = compare.format(model=tiny_model, export=tiny_export)
    args = ["eval", str(tiny_model), "--data", str(synth64), "--compare", compare, "--report", str(report)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.replace("│", " ").split())
    assert "--compare" in output and message in output, output
    assert not report.exists()


def test_cli_train_parser_subcommand_and_help(synth64, tmp_path):
    out = tmp_path / "p.safetensors"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "train-parser",
            str(synth64),
            "--out",
            str(out),
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--width",
            "4",
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["steps"] == 2 and out.is_file()
    help_text = CliRunner().invoke(app, ["eval", "--help"]).output
    assert "train-parser" in help_text and "run" in help_text
    assert "--weights-dir" in CliRunner().invoke(app, ["eval", "run", "--help"]).output
