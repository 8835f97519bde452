"""OpenVINO int8 (NNCF post-training quantisation of the generator) against the CPU paths we ship.

    pip install nncf==3.4.0      # not a project dependency: only this measurement needs it
    python benchmarks/openvino_int8.py --json benchmarks/results/cpu_openvino_int8_tiny-64.json
    python benchmarks/openvino_int8.py --nncf-preset mixed --accuracy-control \
        --json benchmarks/results/cpu_openvino_int8_tiny-64_accuracy-control.json
    python benchmarks/openvino_int8.py --preset paper-256 --seconds 10 --rounds 3 \
        --json benchmarks/results/cpu_openvino_int8_paper-256.json

The generator of an export folder (default: the bundled demo model; ``--preset``: a random init, which
needs torch to export) is quantised by ``nncf.quantize`` on calibration inputs the project makes itself:
procedural masks of synth seed 7 and styles F(z) of seed 7, never the evaluation inputs. Then, on the same
inputs, host to host (numpy in, uint8 images out), in alternating rounds so that machine noise hits every
row alike: onnxruntime fp32, OpenVINO fp32, OpenVINO bf16 (only where the CPU runs it natively) and
OpenVINO int8, all with the same threads, one stream, latency hint.

Quality of int8 against onnxruntime fp32 on 16 held-out masks (synth seed 99, styles of seed 0): PSNR and
the colour parser's mask consistency (mIoU) of both.

The adoption rule was fixed before the first measurement (issue 18's stretch: int8 only if it is faster
than bf16 and stays within stated bounds), and the script prints its verdict from it: on a trained model
(the bundled one) int8 must keep PSNR >= 40 dB against onnxruntime fp32 and the mIoU within 0.01 of fp32's
(the bounds bf16 is held to), and at batch 8 it must reach >= 1.1x the fastest other row, native bf16
among them: on a CPU without native bf16 the verdict is "undecided here". A random init (``--preset``) is
judged on speed only: its images are noise, so their PSNR says little. ``--accuracy-control`` makes the
int8 model that meets the PSNR bound, if one exists: NNCF puts layers back into fp32, most harmful first,
until a validation set's PSNR reaches the bound.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from maskface_rt.backends import open_backend
from maskface_rt.backends.openvino_backend import compile_config
from maskface_rt.backends.probes import native_bf16
from maskface_rt.benchmarking.environment import environment
from maskface_rt.benchmarking.scripts import scratch, write_result
from maskface_rt.benchmarking.timing import measure
from maskface_rt.evaluation.consistency import colour_parser_consistency
from maskface_rt.export_format import graph_file
from maskface_rt.graph_contract import graph_feeds
from maskface_rt.parity import ParityAccumulator
from maskface_rt.synth import render_pair

PSNR_MIN_DB = 40.0
MIOU_DELTA_MAX = 0.01
SPEEDUP_MIN = 1.1
EVAL_COUNT = 16
PSNR_CAP_DB = 60.0
CALIBRATION_SEED, VALIDATION_SEED, EVAL_MASK_SEED, EVAL_STYLE_SEED = 7, 11, 99, 0


def export_folder(preset: str | None, tmp: Path, max_batch: int) -> tuple[Path, str]:
    if preset is None:
        from maskface_rt.bundled import default_model

        return default_model(), "bundled demo model (tiny-64, trained)"
    from maskface_rt.benchmarking.models import ModelSource

    source = ModelSource.open(None, preset, tmp, max_batch)
    return source.export("fp32"), source.description


def inputs(folder: Path, mask_seed: int, style_seed: int, count: int) -> dict[str, np.ndarray]:
    """Generator feeds: ``count`` procedural masks of ``mask_seed`` and the styles of ``style_seed``."""

    with open_backend(folder, "onnxruntime", device="cpu") as ort:
        styles = ort.styles_for_seed(style_seed, count)
        labels = np.stack([render_pair(mask_seed, i, ort.config.img_size)[1] for i in range(count)])
    return graph_feeds("generator", labels, styles)


def quantize(
    folder: Path, calibration: dict[str, np.ndarray], preset: str, accuracy_control: bool
) -> tuple[object, float]:
    """The generator quantised by NNCF; with ``accuracy_control``, layers go back to fp32 one group at a time
    until the PSNR against onnxruntime fp32 on a validation set (synth seed 11, not the evaluation's) reaches
    PSNR_MIN_DB (``nncf.quantize_with_accuracy_control``; the metric is capped at 60 dB, fp32's score)."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(folder / graph_file("generator")))
    count = len(next(iter(calibration.values())))
    samples = nncf.Dataset([{name: array[i : i + 1] for name, array in calibration.items()} for i in range(count)])
    options = {"preset": nncf.QuantizationPreset(preset), "subset_size": count}
    started = time.perf_counter()
    if not accuracy_control:
        return nncf.quantize(model, samples, **options), time.perf_counter() - started
    validation = inputs(folder, VALIDATION_SEED, VALIDATION_SEED, 32)
    with open_backend(folder, "onnxruntime", device="cpu") as ort:
        expected = ort.generate(*validation.values())
    chunks = [({name: a[i : i + 4] for name, a in validation.items()}, expected[i : i + 4]) for i in range(0, 32, 4)]

    def capped_psnr(compiled: object, data: list) -> float:
        accumulator = ParityAccumulator()
        for feeds, reference in data:
            accumulator.update(reference, compiled(feeds)[0])
        return min(accumulator.result().psnr_db, PSNR_CAP_DB)

    quantized = nncf.quantize_with_accuracy_control(
        model,
        samples,
        nncf.Dataset(chunks, lambda chunk: chunk[0]),
        capped_psnr,
        max_drop=PSNR_CAP_DB - PSNR_MIN_DB,
        drop_type=nncf.DropType.ABSOLUTE,
        **options,
    )
    return quantized, time.perf_counter() - started


def runners(folder: Path, quantized: object) -> dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]]:
    import openvino as ov

    ort = open_backend(folder, "onnxruntime", device="cpu")
    table = {"onnxruntime-fp32": lambda feeds: ort.generate(*feeds.values())}
    precisions = ["fp32", "bf16"] if native_bf16() else ["fp32"]
    for precision in precisions:
        backend = open_backend(folder, "openvino", device="cpu", precision=precision)
        table[f"openvino-{precision}"] = lambda feeds, b=backend: b.generate(*feeds.values())
    request = ov.Core().compile_model(quantized, "CPU", compile_config("fp32")).create_infer_request()
    table["openvino-int8"] = lambda feeds: request.infer(feeds)[0]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default=None, help="a random init of this preset (default: the bundled model)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per row and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calibration", type=int, default=128, help="calibration samples")
    parser.add_argument("--nncf-preset", choices=["performance", "mixed"], default="performance")
    parser.add_argument(
        "--accuracy-control", action="store_true", help="revert layers to fp32 until PSNR >= the bound (validation)"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import nncf

    with scratch() as tmp:
        folder, description = export_folder(args.preset, Path(tmp), args.batch)
        calibration = inputs(folder, CALIBRATION_SEED, CALIBRATION_SEED, args.calibration)
        quantized, quantize_s = quantize(folder, calibration, args.nncf_preset, args.accuracy_control)
        table = runners(folder, quantized)
        held_out = inputs(folder, EVAL_MASK_SEED, EVAL_STYLE_SEED, EVAL_COUNT)
        faces = {name: run(held_out) for name, run in table.items()}
        reference = faces["onnxruntime-fp32"]
        masks = next(iter(held_out.values()))
        quality = {}
        for name, images in faces.items():
            accumulator = ParityAccumulator()
            accumulator.update(reference, images)
            parity = accumulator.result()
            quality[name] = {
                "psnr_db_vs_onnxruntime_fp32": parity.psnr_db,
                "max_abs_error": parity.max_abs_error,
                "miou_colour_parser": colour_parser_consistency(images, masks).miou,
            }
            print(f"{name}: PSNR {parity.psnr_db:.1f} dB, mIoU {quality[name]['miou_colour_parser']:.4f}", flush=True)

        batch = {name: array[: args.batch] for name, array in inputs(folder, 0, 0, args.batch).items()}
        for run in table.values():
            measure(lambda run=run: run(batch), warmup_s=2.0, duration_s=0)
        rounds = [
            {
                name: args.batch
                * measure(lambda run=run: run(batch), warmup_s=0, duration_s=args.seconds, min_iterations=2).calls_per_s
                for name, run in table.items()
            }
            for _ in range(args.rounds)
        ]
    speed = {name: statistics.median(r[name] for r in rounds) for name in table}
    others = [name for name in table if name != "openvino-int8"]
    fastest = max(others, key=lambda name: speed[name])
    speedup = statistics.median(r["openvino-int8"] / r[fastest] for r in rounds)
    for name in table:
        print(f"{name}: {speed[name]:.2f} img/s (batch {args.batch}, median of {args.rounds} rounds)", flush=True)

    int8, fp32 = quality["openvino-int8"], quality["onnxruntime-fp32"]
    checks: dict[str, bool | None] = {f"int8 >= {SPEEDUP_MIN}x {fastest}": speedup >= SPEEDUP_MIN}
    # The rule is "faster than bf16": where the CPU has no native bf16 that row cannot be had here.
    checks["a native bf16 row to compare with"] = True if "openvino-bf16" in table else None
    if args.preset is None:
        checks[f"PSNR >= {PSNR_MIN_DB} dB"] = int8["psnr_db_vs_onnxruntime_fp32"] >= PSNR_MIN_DB
        miou_delta = abs(int8["miou_colour_parser"] - fp32["miou_colour_parser"])
        checks[f"|mIoU - fp32's| <= {MIOU_DELTA_MAX}"] = miou_delta <= MIOU_DELTA_MAX
    if False in checks.values():
        verdict = "leave out"
    elif None in checks.values():
        verdict = "undecided here: no native bf16 on this CPU (run again on one with AVX512-BF16 or AMX)"
    else:
        verdict = "adopt"
    words = {True: "yes", False: "NO", None: "not measurable here"}
    print(f"int8 / {fastest}: {speedup:.2f}x; " + "; ".join(f"{k}: {words[v]}" for k, v in checks.items()))
    print(f"verdict: {verdict}")
    write_result(
        args.json,
        {
            "benchmark": "openvino_int8",
            "model": description,
            "batch": args.batch,
            "seconds_per_round": args.seconds,
            "quantization": {
                "tool": f"nncf {nncf.__version__}",
                "preset": args.nncf_preset,
                "accuracy_control": (
                    f"layers reverted to fp32 until PSNR >= {PSNR_MIN_DB} dB on 32 masks of seed {VALIDATION_SEED}"
                    if args.accuracy_control
                    else None
                ),
                "calibration": f"{args.calibration} procedural masks and styles of seed {CALIBRATION_SEED}",
                "seconds": quantize_s,
            },
            "evaluation_inputs": f"{EVAL_COUNT} procedural masks of seed {EVAL_MASK_SEED}, styles of seed {EVAL_STYLE_SEED}",
            "bounds": {"psnr_min_db": PSNR_MIN_DB, "miou_delta_max": MIOU_DELTA_MAX, "speedup_min": SPEEDUP_MIN},
            "quality": quality,
            "images_per_s": speed,
            "int8_over_fastest_other": {"fastest_other": fastest, "ratio": speedup},
            "rounds": rounds,
            "checks": checks,
            "verdict": verdict,
            "command": " ".join(sys.argv),
            "environment": environment(),
        },
    )


if __name__ == "__main__":
    main()
