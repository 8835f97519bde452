"""Judge a demo-model candidate against the bundled model on the demo-quality benchmark, side by side, and replace
the bundled model only if the candidate is better (``make demo-candidate CKPT=...``).

    python benchmarks/demo_candidate.py CANDIDATE [--target maskface_rt/data/demo-model] [--work out/demo-candidate]
        [--report benchmarks/results/demo-candidate.md] [--no-replace] [--parser-steps 3000] [--limit 200] ...

CANDIDATE is a model file (``maskface train``'s model.safetensors, e.g. the demo-candidate/model.safetensors that
``make gpu-session`` brings back), exported here to fp32 ONNX as the bundled model was, or an export folder.
Both models are measured alike: the demo-quality benchmark of benchmarks/results/demo-model-quality.md (the
package's U-Net parser trained --parser-steps steps on --train-pairs procedural pairs of seed 0, the first --limit
of --held-out-pairs held-out pairs of seed 1, --styles styles each), both on onnxruntime fp32, and each one's
contact sheet of examples/masks (``maskface generate --grid``) side by side in one image.

The rule: the candidate is better when its generated mIoU as a fraction of the real images' is higher than the
target's, and its diversity as a fraction of the real images' is at least DIVERSITY_FLOOR (a model that paints nearly
one face whatever the style must not win on consistency alone; the bundled tiny-64 model has 86.8%). Only then, and without --no-replace, the target
folder is exchanged for the candidate's export whole (never a partial folder), and the old one is moved to
WORK/replaced-<target>-<time>: nothing is lost.

Writes the report (--report, markdown, with a JSON of the same next to it and the contact sheets as a PNG), both
models' full quality reports in WORK. Exit status: 0 judged (the report and the last line say whether the target
was replaced); 1 a problem (one line: a model that cannot be read, of another size than the target, ...);
2 bad usage; 130 interrupted (Ctrl-C), 143 terminated (SIGTERM): the target is then as it was.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import quality  # the sibling script: the demo-quality benchmark's data, parser and evaluation

from maskface_rt.benchmarking.environment import environment
from maskface_rt.errors import MaskfaceError, Termination

REPO = Path(__file__).resolve().parent.parent
LABEL = "demo-candidate"
#: The least diversity, as a fraction of the real images', that a better candidate has.
DIVERSITY_FLOOR = 0.75


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidate", type=Path, help="A model file (.safetensors) or an export folder.")
    parser.add_argument("--target", type=Path, default=REPO / "maskface_rt" / "data" / "demo-model")
    parser.add_argument("--work", type=Path, default=REPO / "out" / "demo-candidate", help="Data, parser, exports.")
    parser.add_argument("--report", type=Path, default=REPO / "benchmarks" / "results" / "demo-candidate.md")
    parser.add_argument("--no-replace", action="store_true", help="Judge only; leave the target as it is.")
    parser.add_argument("--train-pairs", type=int, default=3000, help="The parser's training pairs (seed 0).")
    parser.add_argument("--held-out-pairs", type=int, default=300, help="Held-out pairs made (seed 1).")
    parser.add_argument("--parser-steps", type=int, default=3000)
    parser.add_argument("--limit", type=int, default=200, help="Held-out masks measured.")
    parser.add_argument("--styles", type=int, default=10, help="Styles per mask.")
    parser.add_argument("--masks", type=Path, default=REPO / "examples" / "masks", help="The contact sheets' masks.")
    parser.add_argument("--sheet-styles", type=int, default=6)
    args = parser.parse_args(argv)
    for name in ("train_pairs", "held_out_pairs", "parser_steps", "limit", "sheet_styles"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.styles < 2:
        parser.error(f"--styles must be at least 2 (diversity compares styles), got {args.styles}")
    return args


def candidate_export(candidate: Path, target: Path, work: Path) -> Path:
    """The candidate as an export folder like the target's (fp32, its opset and largest batch); one line on a
    candidate of another size than the target."""
    from maskface_rt.checkpoint import read_config
    from maskface_rt.export_format import read_manifest, sha256_file

    wanted = read_manifest(target)
    if candidate.is_dir():
        size = read_manifest(candidate).config.img_size
    else:
        size = read_config(candidate).img_size
    if size != wanted.config.img_size:
        raise MaskfaceError(
            candidate,
            f"makes {size} px faces, the target {target} makes {wanted.config.img_size} px: "
            "the benchmark compares models of one size",
        )
    if candidate.is_dir():
        return candidate
    from maskface_rt.export.onnx_export import export_onnx

    out = work / f"candidate-{sha256_file(candidate)[:12]}-onnx"
    if not out.is_dir():
        work.mkdir(parents=True, exist_ok=True)
        export_onnx(candidate, out, opset=wanted.opset, max_batch=wanted.max_batch)
    return out


def judge(candidate: dict[str, Any], target: dict[str, Any]) -> tuple[bool, str]:
    """Whether the candidate is better on the benchmark, and why (figures from ``quality.headline``)."""
    c_miou, t_miou = candidate.get("miou_fraction"), target.get("miou_fraction")
    c_div, t_div = candidate.get("diversity_fraction"), target.get("diversity_fraction")
    if None in (c_miou, t_miou, c_div, t_div):
        return False, "a figure is missing"
    if c_miou <= t_miou:
        return False, f"generated mIoU {c_miou:.1%} of real, not above the target's {t_miou:.1%}"
    if c_div < DIVERSITY_FLOOR:
        return False, (
            f"generated mIoU {c_miou:.1%} of real is above the target's {t_miou:.1%}, but diversity {c_div:.1%} of "
            f"real is under the floor of {DIVERSITY_FLOOR:.0%}"
        )
    return True, (
        f"generated mIoU {c_miou:.1%} of real, above the target's {t_miou:.1%}; diversity {c_div:.1%} of real "
        f"(target {t_div:.1%})"
    )


def contact_sheet(model: Path, masks: Path, out: Path, styles: int) -> Path:
    """``maskface generate MASKS --grid`` of ``model`` on onnxruntime: its contact sheet."""
    command = [sys.executable, "-m", "maskface_rt", "generate", str(masks), "--model", str(model), "--out", str(out)]
    command += ["--styles", str(styles), "--grid", "--backend", "onnxruntime", "--overwrite"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise MaskfaceError(model, f"maskface generate failed: {lines[-1] if lines else done.returncode}")
    return out / "grid.png"


def side_by_side(left: Path, right: Path, out: Path) -> None:
    """Two images next to each other, on white, 16 px apart, written whole."""
    import numpy as np

    from maskface_rt.image_io import read_rgb, save_png

    a, b = read_rgb(left), read_rgb(right)
    height = max(a.shape[0], b.shape[0])
    canvas = np.full((height, a.shape[1] + 16 + b.shape[1], 3), 255, np.uint8)
    canvas[: a.shape[0], : a.shape[1]] = a
    canvas[: b.shape[0], a.shape[1] + 16 :] = b
    save_png(out, canvas, overwrite=True)


def measure(args: argparse.Namespace, models: dict[str, Path], size: int) -> dict[str, Any]:
    """The benchmark and the contact sheet of each model; the figures and the reports' paths."""
    from maskface_rt.evaluation.report import write_report

    work = args.work
    train_data, held_out = quality.data_sets(
        work, size=size, train_pairs=args.train_pairs, held_out_pairs=args.held_out_pairs
    )
    parser_file = quality.parser_for(work, train_data, args.parser_steps, size)
    measured: dict[str, Any] = {}
    for name, model in models.items():
        print(f"{LABEL}: measuring the {name} ({model})", file=sys.stderr, flush=True)
        result = quality.evaluate_model(
            model, held_out, parser_file, work, limit=args.limit, styles=args.styles, parity=False
        )
        report = work / f"quality-{name}.md"
        write_report(report, result, overwrite=True, title=f"Demo-model benchmark: the {name} ({model})")
        sheet = contact_sheet(model, args.masks, work / f"sheet-{name}", args.sheet_styles)
        measured[name] = {"model": str(model), "figures": quality.headline(result), "report": str(report)}
        measured[name]["sheet"] = str(sheet)
        measured[name]["result"] = result.to_json()
    measured["setup"] = {
        "train_data": str(train_data),
        "held_out": str(held_out),
        "parser": str(parser_file),
        "parser_steps": args.parser_steps,
        "limit": args.limit,
        "styles": args.styles,
    }
    return measured


def replace_target(export: Path, target: Path, work: Path) -> Path:
    """The target folder exchanged for a copy of ``export``, whole; where the old one was kept."""
    from maskface_rt.fileio import replace_folder

    kept = work / f"replaced-{target.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        shutil.copytree(export, staged, dirs_exist_ok=True)
        replace_folder(staged, target, keep_old=kept)
    finally:
        shutil.rmtree(staged, ignore_errors=True)  # gone already, unless the exchange failed
    return kept


def markdown(record: dict[str, Any], sheet: str) -> str:
    rows = (
        ("generated mIoU", "miou"),
        ("real images' mIoU", "real_miou"),
        ("**generated / real mIoU**", "miou_fraction"),
        ("diversity (mean pairwise pixel L1)", "diversity"),
        ("real images' diversity", "real_diversity"),
        ("**generated / real diversity**", "diversity_fraction"),
    )
    t, c = record["target"]["figures"], record["candidate"]["figures"]
    setup = record["setup"]
    lines = [
        f"# Demo-model candidate {record['started']}",
        "",
        f"Made by `{record['command']}`. Candidate: `{record['candidate']['model']}` (from "
        f"`{record['candidate_source']}`); target: `{record['target']['model']}`. Both on onnxruntime fp32: "
        f"{setup['limit']} held-out procedural masks (seed 1) x {setup['styles']} styles; parser: the package's "
        f"U-Net trained {setup['parser_steps']} steps on the training pairs (seed 0).",
        "",
        "| | target (bundled) | candidate |",
        "|---|---|---|",
    ]
    for label, key in rows:
        lines.append(f"| {label} | {_figure(t.get(key), key)} | {_figure(c.get(key), key)} |")
    lines += [
        "",
        f"**Verdict:** {'better' if record['better'] else 'not better'}: {record['reason']}. "
        + (
            f"The target was replaced; the old model is in `{record['kept']}`."
            if record["replaced"]
            else "The target was not replaced" + (" (--no-replace)." if record["better"] else ".")
        ),
        "",
        f"Contact sheets (examples/masks, mask then styles; target left, candidate right): ![contact sheets]({sheet})",
        "",
        f"Full reports: `{record['target']['report']}`, `{record['candidate']['report']}`.",
    ]
    return "\n".join(lines) + "\n"


def _figure(value: Any, key: str) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:.1%}" if key.endswith("fraction") else f"{value:.4f}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    from maskface_rt.export_format import read_manifest
    from maskface_rt.fileio import write_bytes_atomic, write_json_atomic

    target = args.target.resolve()
    size = read_manifest(target).config.img_size
    export = candidate_export(args.candidate, target, args.work)
    measured = measure(args, {"target": target, "candidate": export}, size)
    better, reason = judge(measured["candidate"]["figures"], measured["target"]["figures"])
    record = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["python", "benchmarks/demo_candidate.py", *sys.argv[1:]]),
        "candidate_source": str(args.candidate),
        **measured,
        "better": better,
        "reason": reason,
        "rule": f"generated/real mIoU above the target's, and generated/real diversity at least {DIVERSITY_FLOOR:.0%}",
        "replaced": False,
        "kept": None,
        "environment": environment(),
    }
    sheet = args.report.with_suffix(".png")
    side_by_side(Path(measured["target"]["sheet"]), Path(measured["candidate"]["sheet"]), sheet)
    if better and not args.no_replace:
        record["kept"] = str(replace_target(export, target, args.work))
        record["replaced"] = True
    write_json_atomic(args.report.with_suffix(".json"), record, overwrite=True)
    write_bytes_atomic(args.report, markdown(record, sheet.name).encode(), overwrite=True)
    return record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Termination.install()
    try:
        record = run(args)
    except MaskfaceError as e:
        print(f"{LABEL}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{LABEL}: {Termination.word()}; the target is as it was", file=sys.stderr)
        return Termination.exit_code()
    verdict = "replaced the target" if record["replaced"] else "kept the target"
    print(f"{LABEL}: {verdict}: {record['reason']}; report: {args.report}", file=sys.stderr)
    print(json.dumps({k: record[k] for k in ("better", "replaced", "reason", "kept")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
