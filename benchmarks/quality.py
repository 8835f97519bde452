"""The synthetic quality benchmark: mask consistency, diversity and fp32/fp16 ONNX parity against torch.

    python benchmarks/quality.py --work out/quality --out benchmarks/results/quality.md

Makes a procedural training set (256 pairs, seed 0) and a held-out set (64 pairs, seed 1) at 64 px
unless --train-data / --held-out name existing `maskface synth` folders, trains a tiny-64 model for
--steps unless --model is given, exports it to fp32 and fp16 ONNX, trains the package's face parser
on the training set, then runs the evaluation of
``maskface eval MODEL --data HELD_OUT --parser PARSER --compare onnxruntime:FP32 --compare
onnxruntime:FP16`` and writes its report (plus a JSON of the same results next to it). LPIPS, FID
and KID run too when their weights are in --weights-dir; otherwise the report lists them as skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from maskface_rt.benchmarking.environment import environment
from maskface_rt.benchmarking.scripts import write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("out/quality"), help="Scratch folder (data, runs).")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quality.md"))
    parser.add_argument("--model", type=Path, default=None, help="A 64 px .safetensors model (default: train one).")
    parser.add_argument("--steps", type=int, default=100, help="Training steps of the model made here.")
    parser.add_argument("--parser-steps", type=int, default=300)
    parser.add_argument("--limit", type=int, default=64, help="Held-out masks.")
    parser.add_argument("--weights-dir", type=Path, default=None)
    parser.add_argument("--train-data", type=Path, default=None, help="Existing synthetic training set.")
    parser.add_argument("--held-out", type=Path, default=None, help="Existing synthetic held-out set.")
    parser.add_argument("--title", default="Synthetic quality benchmark")
    args = parser.parse_args()

    from maskface_rt.export.onnx_export import export_onnx

    from maskface_rt.config import TrainConfig, preset
    from maskface_rt.datasets import open_dataset
    from maskface_rt.evaluation.report import summary, write_report
    from maskface_rt.evaluation.runner import Comparison, EvalOptions, evaluate
    from maskface_rt.evaluation.unet_parser import train_parser
    from maskface_rt.evaluation.weights import WeightStore
    from maskface_rt.export_format import sha256_file
    from maskface_rt.synth import write_dataset
    from maskface_rt.trainer import train

    work = args.work
    train_data, held_out = args.train_data or work / "synth-train", args.held_out or work / "synth-heldout"
    for folder, count, seed in ((train_data, 256, 0), (held_out, 64, 1)):
        if not (folder / "synth.json").is_file():
            write_dataset(folder, count, 64, seed)
    sets = {
        name: json.loads((folder / "synth.json").read_text())
        for name, folder in (("train", train_data), ("held-out", held_out))
    }
    model = args.model
    if model is None:
        run = work / f"tiny-64-{args.steps}"
        model = run / "model.safetensors"
        if not model.is_file():
            train(
                open_dataset(train_data, size=64),
                run,
                cfg=preset("tiny-64"),
                tcfg=TrainConfig(num_workers=0),
                steps=args.steps,
                data_description=str(train_data),
            )
    exports = {}
    digest = sha256_file(model)[:12]  # a retrained model never reuses an old export
    for precision in ("fp32", "fp16"):
        exports[precision] = work / f"{model.stem}-{digest}-onnx-{precision}"
        if not exports[precision].is_dir():
            export_onnx(model, exports[precision], fp16=precision == "fp16", max_batch=16)
    parser_file = work / f"parser-{train_data.name}-{args.parser_steps}.safetensors"
    if not parser_file.is_file():
        train_parser(
            open_dataset(train_data, size=64), parser_file, steps=args.parser_steps, data_description=str(train_data)
        )

    options = EvalOptions(
        data=held_out,
        limit=args.limit,
        parser=str(parser_file),
        device="cpu",
        compare=tuple(Comparison("onnxruntime", exports[p]) for p in ("fp32", "fp16")),
        stats_cache=work / "fid-cache",
    )
    result = evaluate(model, options, backend="torch", store=WeightStore(args.weights_dir))
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
        f"package's U-Net trained {args.parser_steps} steps on the training pairs. Parity: the same masks "
        "and seeds through onnxruntime (fp32 and fp16 exports of the model) against torch."
    ]
    consistency = result.metrics.get("consistency")
    if consistency:
        ratio = consistency["generated"]["miou"] / consistency["real"]["miou"]
        notes.append(
            f"Generated faces reach **{ratio:.1%}** of the real images' mIoU "
            f"({consistency['generated']['miou']:.4f} vs {consistency['real']['miou']:.4f})."
        )
        print(f"mIoU ratio generated/real: {ratio:.3f}")
    write_report(args.out, result, overwrite=True, title=args.title, notes=notes)
    write_result(args.out.with_suffix(".json"), {**result.to_json(), "environment": environment()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
