"""The synthetic quality benchmark: mask consistency, diversity and fp32/fp16 ONNX parity against torch.

    python benchmarks/quality.py --work out/quality --out benchmarks/results/quality.md

Makes a procedural training set (256 pairs, seed 0) and a held-out set (64 pairs, seed 1) at 64 px
unless --train-data / --held-out name existing `maskface synth` folders, trains a tiny-64 model for
--steps unless --model is given, exports it to fp32 and fp16 ONNX, trains the package's face parser
on the training set, then runs the evaluation of
``maskface eval MODEL --data HELD_OUT --parser PARSER --compare onnxruntime:FP32 --compare
onnxruntime:FP16`` and writes its report (plus a JSON of the same results next to it). LPIPS, FID
and KID run too when their weights are in --weights-dir; otherwise the report lists them as skipped.

--model may also be an export folder (``maskface export``'s, e.g. the bundled demo model, which has no
checkpoint): it is then evaluated on onnxruntime fp32, without the parity comparisons. The functions below are
what ``benchmarks/demo_candidate.py`` runs on a candidate and on the bundled model, side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maskface_rt.benchmarking.environment import environment
from maskface_rt.benchmarking.scripts import write_result

if TYPE_CHECKING:
    from maskface_rt.evaluation.runner import EvalResult

#: The procedural sets made where none are given: (pairs, seed) of the training and the held-out set.
TRAIN_SET, HELD_OUT_SET = (256, 0), (64, 1)


def data_sets(
    work: Path,
    train_data: Path | None = None,
    held_out: Path | None = None,
    size: int = 64,
    train_pairs: int = TRAIN_SET[0],
    held_out_pairs: int = HELD_OUT_SET[0],
) -> tuple[Path, Path]:
    """The training and held-out sets: those given, else made in ``work`` (seeds 0 and 1) unless already there."""
    from maskface_rt.synth import write_dataset

    train_data = train_data or work / f"synth-train-{size}-{train_pairs}"
    held_out = held_out or work / f"synth-heldout-{size}-{held_out_pairs}"
    for folder, count, seed in ((train_data, train_pairs, TRAIN_SET[1]), (held_out, held_out_pairs, HELD_OUT_SET[1])):
        if not (folder / "synth.json").is_file():
            write_dataset(folder, count, size, seed)
    return train_data, held_out


def parser_for(work: Path, train_data: Path, steps: int, size: int = 64) -> Path:
    """The package's U-Net parser trained ``steps`` steps on ``train_data`` (kept in ``work`` and reused)."""
    from maskface_rt.datasets import open_dataset
    from maskface_rt.evaluation.unet_parser import train_parser

    parser_file = work / f"parser-{train_data.name}-{steps}.safetensors"
    if not parser_file.is_file():
        train_parser(open_dataset(train_data, size=size), parser_file, steps=steps, data_description=str(train_data))
    return parser_file


def exports_of(model: Path, work: Path) -> dict[str, Path]:
    """The fp32 and fp16 ONNX exports of a model file (kept in ``work`` under the file's digest and reused)."""
    from maskface_rt.export.onnx_export import export_onnx

    from maskface_rt.export_format import sha256_file

    exports = {}
    digest = sha256_file(model)[:12]  # a retrained model never reuses an old export
    for precision in ("fp32", "fp16"):
        exports[precision] = work / f"{model.stem}-{digest}-onnx-{precision}"
        if not exports[precision].is_dir():
            export_onnx(model, exports[precision], fp16=precision == "fp16", max_batch=16)
    return exports


def evaluate_model(
    model: Path,
    held_out: Path,
    parser_file: Path,
    work: Path,
    *,
    limit: int,
    styles: int = 10,
    weights_dir: Path | None = None,
    parity: bool = True,
) -> EvalResult:
    """``maskface eval``'s consistency and diversity (LPIPS, FID, KID where their weights are) of ``model`` on the
    held-out masks: a model file on torch (with fp32/fp16 ONNX parity when ``parity``), an export folder on
    onnxruntime fp32."""
    from maskface_rt.evaluation.runner import Comparison, EvalOptions, evaluate
    from maskface_rt.evaluation.weights import WeightStore

    is_file = model.is_file()
    compare = ()
    if is_file and parity:
        compare = tuple(Comparison("onnxruntime", path) for path in exports_of(model, work).values())
    options = EvalOptions(
        data=held_out,
        limit=limit,
        styles=styles,
        parser=str(parser_file),
        device="cpu",
        compare=compare,
        stats_cache=work / "fid-cache",
    )
    backend = "torch" if is_file else "onnxruntime"  # an export runs at its own precision (fp32 for the demo's)
    return evaluate(model, options, backend=backend, store=WeightStore(weights_dir))


def headline(result: EvalResult) -> dict[str, Any]:
    """The benchmark's figures: generated mIoU and diversity, each also as a fraction of the real images'."""
    out: dict[str, Any] = {}
    consistency = result.metrics.get("consistency")
    if consistency:
        generated, real = consistency["generated"]["miou"], consistency["real"]["miou"]
        out.update(miou=generated, real_miou=real, miou_fraction=generated / real if real else None)
    diversity = result.metrics.get("diversity")
    if diversity:
        generated, real = diversity["pixel_l1"]["mean"], diversity["real_pixel_l1"]["mean"]
        out.update(diversity=generated, real_diversity=real, diversity_fraction=generated / real if real else None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("out/quality"), help="Scratch folder (data, runs).")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quality.md"))
    parser.add_argument(
        "--model", type=Path, default=None, help="A 64 px .safetensors model or export folder (default: train one)."
    )
    parser.add_argument("--steps", type=int, default=100, help="Training steps of the model made here.")
    parser.add_argument("--parser-steps", type=int, default=300)
    parser.add_argument("--limit", type=int, default=64, help="Held-out masks.")
    parser.add_argument("--weights-dir", type=Path, default=None)
    parser.add_argument("--train-data", type=Path, default=None, help="Existing synthetic training set.")
    parser.add_argument("--held-out", type=Path, default=None, help="Existing synthetic held-out set.")
    parser.add_argument("--title", default="Synthetic quality benchmark")
    args = parser.parse_args()

    from maskface_rt.evaluation.report import summary, write_report

    work = args.work
    train_data, held_out = data_sets(work, args.train_data, args.held_out)
    sets = {
        name: json.loads((folder / "synth.json").read_text())
        for name, folder in (("train", train_data), ("held-out", held_out))
    }
    model = args.model or _trained_here(work, train_data, args.steps)
    parser_file = parser_for(work, train_data, args.parser_steps)
    result = evaluate_model(model, held_out, parser_file, work, limit=args.limit, weights_dir=args.weights_dir)
    for line in summary(result):
        print(line)
    source = (
        f"`--model {args.model}`"
        if args.model
        else (
            f"a tiny-64 model trained here for {args.steps} steps on 256 procedural pairs (seed 0), not a bundled "
            "or fully trained model"
        )
    )
    tr, ho = sets["train"], sets["held-out"]
    notes = [
        f"Made by `python {' '.join(sys.argv)}`: {source}. Masks: {result.masks} held-out procedural pairs "
        f"(seed {ho['seed']}; the training set has {tr['count']} pairs of seed {tr['seed']}); parser: the "
        f"package's U-Net trained {args.parser_steps} steps on the training pairs. "
        + (
            "Parity: the same masks and seeds through onnxruntime (fp32 and fp16 exports of the model) against torch."
            if model.is_file()
            else "The export folder ran on onnxruntime fp32 (no checkpoint: no parity comparison)."
        )
    ]
    figures = headline(result)
    if figures.get("miou_fraction") is not None:
        notes.append(
            f"Generated faces reach **{figures['miou_fraction']:.1%}** of the real images' mIoU "
            f"({figures['miou']:.4f} vs {figures['real_miou']:.4f})."
        )
        print(f"mIoU ratio generated/real: {figures['miou_fraction']:.3f}")
    write_report(args.out, result, overwrite=True, title=args.title, notes=notes)
    write_result(args.out.with_suffix(".json"), {**result.to_json(), "environment": environment()})
    print(f"wrote {args.out}")


def _trained_here(work: Path, train_data: Path, steps: int) -> Path:
    """A tiny-64 model trained ``steps`` steps on ``train_data`` (kept in ``work`` and reused)."""
    from maskface_rt.config import TrainConfig, preset
    from maskface_rt.datasets import open_dataset
    from maskface_rt.trainer import train

    run = work / f"tiny-64-{steps}"
    model = run / "model.safetensors"
    if not model.is_file():
        train(
            open_dataset(train_data, size=64),
            run,
            cfg=preset("tiny-64"),
            tcfg=TrainConfig(num_workers=0),
            steps=steps,
            data_description=str(train_data),
        )
    return model


if __name__ == "__main__":
    main()
