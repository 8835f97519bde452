"""The markdown report of ``maskface eval`` (written atomically with ``write_report``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maskface_rt.evaluation.runner import EvalResult
from maskface_rt.fileio import write_bytes_atomic
from maskface_rt.labels import CLASS_NAMES

DEFAULT_TITLE = "maskface eval report"


def _num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _consistency(c: dict[str, Any]) -> list[str]:
    generated, real = c["generated"], c["real"]
    lines = [
        f"## Mask consistency ({c['parser']})",
        "",
        "The parser's labels on the generated faces against the input masks; the real photos of the same "
        "masks give the parser's own ceiling.",
        "",
    ]
    lines += _table(
        ["faces", "pixel accuracy", "mean class accuracy", "mIoU"],
        [
            [name, _num(s["pixel_accuracy"]), _num(s["mean_accuracy"]), _num(s["miou"])]
            for name, s in (("generated", generated), ("real photos", real))
        ],
    )
    rows = [
        [
            name,
            _num(generated["class_accuracy"][name]),
            _num(generated["class_iou"][name]),
            _num(real["class_accuracy"][name]),
            _num(real["class_iou"][name]),
        ]
        for name in CLASS_NAMES
        if generated["class_iou"][name] is not None or real["class_iou"][name] is not None
    ]
    return (
        lines
        + ["", "Per class (- : class absent from masks and predictions):", ""]
        + _table(["class", "accuracy", "IoU", "accuracy (real)", "IoU (real)"], rows)
        + [""]
    )


def markdown(result: EvalResult, *, title: str = DEFAULT_TITLE, notes: Sequence[str] = ()) -> str:
    """The report of one evaluation as markdown; ``notes``: paragraphs placed under the title."""
    m = result.metrics
    lines = _overview(result, title, notes)
    if "consistency" in m:
        lines += _consistency(m["consistency"])
    if "diversity" in m or "lpips" in m:
        lines += _diversity(m, result.styles)
    if "fid" in m or "kid" in m:
        lines += _quality(m)
    if result.parity:
        lines += _parity(result.parity, result.backend)
    if result.skipped:
        lines += ["## Skipped", ""] + [f"- **{name}**: {reason}" for name, reason in result.skipped.items()] + [""]
    return "\n".join(lines)


def _overview(result: EvalResult, title: str, notes: Sequence[str]) -> list[str]:
    """The title, the notes, and what was evaluated on which data."""
    lines = [f"# {title}", ""]
    for note in notes:
        lines += [note, ""]
    return (
        lines
        + _table(
            ["", ""],
            [
                ["model", f"`{result.model}` ({result.backend})"],
                ["data", f"`{result.data}`, split {result.split}, {result.img_size} px"],
                [
                    "faces",
                    f"{result.masks} masks x {result.styles} styles (seed {result.seed}) = "
                    f"{result.masks * result.styles} images",
                ],
                ["weights", ", ".join(f"`{Path(p).name}`" for p in result.weights.values()) or "none"],
                ["time", f"{result.seconds:.1f} s"],
            ],
        )
        + [""]
    )


def _diversity(m: dict[str, Any], styles: int) -> list[str]:
    """The distances between the styles of a mask: LPIPS and pixel L1, and pixel L1 of real images of a mask."""
    pairs = (m.get("diversity") or m["lpips"])["pairs_per_mask"]
    lines = [f"## Diversity ({styles} styles per mask, mean over the {pairs} pairs, then over masks)", ""]
    rows = []
    if "lpips" in m:
        d = m["lpips"]["diversity"]
        rows.append(["LPIPS (AlexNet, v0.1)", _num(d["mean"]), _num(d["std"])])
    if "diversity" in m:
        d = m["diversity"]["pixel_l1"]
        rows.append(["pixel L1 ([0, 1] scale)", _num(d["mean"]), _num(d["std"])])
        if "real_pixel_l1" in m["diversity"]:
            d = m["diversity"]["real_pixel_l1"]
            rows.append(
                [
                    f"pixel L1, real: each mask painted in {styles} synthetic appearances",
                    _num(d["mean"]),
                    _num(d["std"]),
                ]
            )
    return lines + _table(["distance", "mean", "std over masks"], rows) + [""]


def _quality(m: dict[str, Any]) -> list[str]:
    """FID and KID of the generated against the real images."""
    info = m.get("fid") or m["kid"]
    lines = [f"## Quality ({info['generated_images']} generated vs {info['real_images']} real images)", ""]
    rows = []
    if "fid" in m:
        rows.append(["FID", _num(m["fid"]["value"], 3)])
    if "kid" in m:
        k = m["kid"]
        rows.append(
            [
                f"KID x 1000 ({k['subsets']} subsets of {k['subset_size']})",
                f"{k['mean'] * 1000:.3f} ± {k['std'] * 1000:.3f}",
            ]
        )
    return lines + _table(["metric", "value"], rows) + [""]


def _parity(parity: list[dict[str, Any]], reference: str) -> list[str]:
    """Each --compare backend's faces against the reference backend's."""
    lines = [
        f"## Backend parity (reference: {reference})",
        "",
        "Same masks and seeds; errors in uint8 levels over all pixels.",
        "",
    ]
    rows = [
        [
            p["backend"],
            f"`{p['model']}`",
            _num(p["psnr_db"], 2),
            str(p["max_abs_error"]),
            _num(p["mean_abs_error"], 3),
            f"{p['identical_images']}/{p['images']}",
            _num(p["lpips"]["mean"]) if "lpips" in p else "-",
            _num(p["fid"], 3) if "fid" in p else "-",
            f"{p['fid_change']:+.3f}" if "fid_change" in p else "-",
        ]
        for p in parity
    ]
    return (
        lines
        + _table(
            ["backend", "model", "PSNR dB", "max abs err", "mean abs err", "identical", "LPIPS", "FID", "FID change"],
            rows,
        )
        + [""]
    )


def write_report(
    path: str | Path,
    result: EvalResult,
    *,
    overwrite: bool = False,
    title: str = DEFAULT_TITLE,
    notes: Sequence[str] = (),
) -> None:
    """Write the markdown report atomically (an existing file only with ``overwrite``)."""
    write_bytes_atomic(path, markdown(result, title=title, notes=notes).encode("utf-8"), overwrite=overwrite)


def summary(result: EvalResult) -> list[str]:
    """A few lines for the terminal: the headline number of every metric, then what was skipped."""
    m = result.metrics
    lines = [
        f"{result.model} ({result.backend}): {result.masks} masks x {result.styles} styles of {result.data} "
        f"in {result.seconds:.1f} s"
    ]
    if "consistency" in m:
        g, r = m["consistency"]["generated"], m["consistency"]["real"]
        lines.append(
            f"consistency: mIoU {g['miou']:.4f}, pixel accuracy {g['pixel_accuracy']:.4f} "
            f"(real photos: mIoU {r['miou']:.4f})"
        )
    if "lpips" in m:
        lines.append(f"diversity: LPIPS {m['lpips']['diversity']['mean']:.4f}")
    if "diversity" in m:
        real = m["diversity"].get("real_pixel_l1")
        lines.append(
            f"diversity: pixel L1 {m['diversity']['pixel_l1']['mean']:.4f}"
            + (f" (real images of the same masks: {real['mean']:.4f})" if real else "")
        )
    if "fid" in m:
        lines.append(f"FID {m['fid']['value']:.3f}")
    if "kid" in m:
        lines.append(f"KID {m['kid']['mean'] * 1000:.3f} ± {m['kid']['std'] * 1000:.3f} (x 1000)")
    for p in result.parity:
        extra = f", LPIPS {p['lpips']['mean']:.4f}" if "lpips" in p else ""
        extra += f", FID change {p['fid_change']:+.3f}" if "fid_change" in p else ""
        lines.append(
            f"parity {p['backend']} ({p['model']}): PSNR {_num(p['psnr_db'], 2)} dB, max abs error "
            f"{p['max_abs_error']}{extra}"
        )
    lines += [f"skipped {name}: {reason}" for name, reason in result.skipped.items()]
    return lines
