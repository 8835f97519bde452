"""The benchmark's outputs: a table on stderr, JSON, CSV and a PNG plot of images/s against batch size.

Every file is written atomically (maskface_rt.fileio); an existing file is replaced only with ``overwrite``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskface_rt.benchmarking.timing import STATS
from maskface_rt.fileio import atomic_path, json_safe, write_bytes_atomic

#: Every row of every report has these keys, in this order (None where a value does not apply).
COLUMNS: tuple[str, ...] = (
    "backend",
    "family",
    "precision",
    "device",
    "batch",
    "status",
    "reason",
    "iterations",
    "rounds",
    "warmup_iterations",
    "warmup_s",
    "measured_s",
    "build_s",
    "load_s",
    "prepare_s",
    *(f"latency_{s}_ms" for s in STATS),
    "images_per_s",
    "images_per_s_min",
    "images_per_s_max",
    *(f"gpu_compute_{s}_ms" for s in STATS),
    "gpu_compute_note",
    "peak_memory_mb",
    "max_abs_error",
    "mean_abs_error",
    "psnr_db",
    "identical_images",
    "accuracy_note",
    "gflops_per_image",
    "achieved_tflops",
    "compute_tflops",
    "peak_tflops",
    "peak_kind",
    "peak_source",
    "peak_fraction",
    "compute_peak_fraction",
)

#: (column, header, format) of the stderr table.
TABLE = (
    ("backend", "backend", "{}"),
    ("device", "device", "{}"),
    ("batch", "batch", "{}"),
    ("latency_median_ms", "median ms", "{:.2f}"),
    ("latency_p99_ms", "p99 ms", "{:.2f}"),
    ("images_per_s", "img/s", "{:.1f}"),
    ("gpu_compute_median_ms", "GPU ms", "{:.2f}"),
    ("achieved_tflops", "TFLOPS", "{:.3f}"),
    ("peak_fraction", "% peak", "{:.1%}"),
    ("compute_peak_fraction", "% peak GPU", "{:.1%}"),
    ("peak_memory_mb", "mem MB", "{:.0f}"),
    ("psnr_db", "PSNR dB", "{:.1f}"),
    ("max_abs_error", "max err", "{}"),
)
GPU_ONLY = ("gpu_compute_median_ms", "compute_peak_fraction")


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return fmt.format(value)


def environment_line(env: dict[str, Any]) -> str:
    """The machine and versions in one line (the table's and the plot's header)."""
    gpus = "; ".join(f"{g.get('name')} (driver {g.get('driver_version')})" for g in env.get("gpus") or []) or "none"
    cuda = (
        f", CUDA {env.get('torch_cuda') or '-'} (driver supports {env.get('cuda_driver') or '-'})"
        if env.get("gpus")
        else ""
    )
    versions = ", ".join(
        f"{name} {env.get(key) or '-'}"
        for key, name in (
            ("torch", "torch"),
            ("onnxruntime", "onnxruntime"),
            ("openvino", "OpenVINO"),
            ("tensorrt", "TensorRT"),
            ("triton", "triton"),
            ("maskface_rt", "maskface-rt"),
        )
    )
    isa = f" [{' '.join(env['cpu_isa'])}]" if env.get("cpu_isa") else ""
    return (
        f"CPU {env.get('cpu')}{isa} ({env.get('cpu_threads')} threads); GPU {gpus}{cuda}; {versions}; "
        f"commit {env.get('git_commit') or '-'}"
    )


def print_table(rows: Sequence[dict[str, Any]], console: Any, env: dict[str, Any] | None = None) -> None:
    """The environment, the measured rows as a rich table (GPU columns only when some row has them, never
    squeezed below its content's width), then one line per backend or batch that did not run, with the reason."""
    from rich.table import Table

    if env is not None:
        console.print(environment_line(env), markup=False, highlight=False)
    measured = [row for row in rows if row["status"] == "ok"]
    columns = [c for c in TABLE if c[0] not in GPU_ONLY or any(row[c[0]] is not None for row in measured)]
    cells = [[_cell(row[key], fmt) for key, _, fmt in columns] for row in measured]
    widths = [max([len(header), *(len(line[i]) for line in cells)]) for i, (_, header, _) in enumerate(columns)]
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for (key, header, _), width in zip(columns, widths, strict=True):
        table.add_column(
            header, justify="left" if key in ("backend", "device") else "right", min_width=width, no_wrap=True
        )
    for line in cells:
        table.add_row(*line)
    console.print(table, width=max(console.width, sum(widths) + 3 * len(widths)))
    for row in rows:
        if row["status"] != "ok":
            batch = f" batch {row['batch']}" if row["batch"] is not None else ""
            console.print(f"{row['status']}: {row['backend']}{batch}: {row['reason']}", markup=False, highlight=False)


def to_json(rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    return json_safe({**meta, "columns": list(COLUMNS), "rows": [{c: row.get(c) for c in COLUMNS} for row in rows]})


def write_json(
    path: str | Path, rows: Sequence[dict[str, Any]], meta: dict[str, Any], *, overwrite: bool = False
) -> None:
    text = json.dumps(to_json(rows, meta), indent=2) + "\n"
    write_bytes_atomic(path, text.encode(), overwrite=overwrite)


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]], *, overwrite: bool = False) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else json_safe(row.get(c)) for c in COLUMNS})
    write_bytes_atomic(path, buffer.getvalue().encode(), overwrite=overwrite)


# --- the plot ------------------------------------------------------------------------------------------

WIDTH, HEIGHT = 1040, 620
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 90, 290, 60, 70
#: The plot area (x0, y0, x1, y1); PAD: space between its sides and the smallest and largest batch size.
FRAME = (MARGIN_LEFT, MARGIN_TOP, WIDTH - MARGIN_RIGHT, HEIGHT - MARGIN_BOTTOM)
PAD = 20
BACKGROUND = (255, 255, 255)
PALETTE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (0, 0, 128),
    (128, 0, 0),
    (0, 96, 0),
)


def _nice_ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        return [10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
    raw = hi / 5
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if raw <= m * step)
    return [i * step for i in range(int(hi / step) + 2)]


def _tick_label(value: float) -> str:
    return f"{value:g}" if value < 1e5 else f"{value:.0e}"


def plot_throughput(rows: Sequence[dict[str, Any]], title: str, subtitle: str = "") -> Any:
    """images/s against batch size (log2 axis), one line per backend; log10 y axis when the values span
    more than 20x. Returns a Pillow image."""
    from PIL import Image, ImageDraw, ImageFont

    series = _series(rows)
    values = [v for points in series.values() for _, v in points]
    log_y = bool(values) and max(values) / min(values) > 20
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    small = ImageFont.load_default(size=12)
    _draw_titles(image, title, subtitle, "images/s (log scale)" if log_y else "images/s", font, small)
    x0, y0, _, y1 = FRAME
    if not series:
        draw.rectangle(FRAME, outline=(0, 0, 0))
        draw.text((x0 + 20, (y0 + y1) // 2), "no backend ran", fill=(0, 0, 0), font=font)
        return image
    axes = _Axes.fit(series, values, log_y)
    _draw_grid(draw, axes, small)
    _draw_series(draw, axes, series, small)
    draw.rectangle(FRAME, outline=(0, 0, 0))
    return image


def _series(rows: Sequence[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """The measured (batch, images/s) points of each 'backend (device)', in the rows' order."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        if row["status"] == "ok" and row["images_per_s"]:
            series.setdefault(f"{row['backend']} ({row['device']})", []).append((row["batch"], row["images_per_s"]))
    return series


def _draw_titles(image: Any, title: str, subtitle: str, y_label: str, font: Any, small: Any) -> None:
    """The title and subtitle above the frame, the x axis label below it and the y axis label (turned) left of it."""
    from PIL import Image, ImageDraw

    x0, y0, x1, y1 = FRAME
    draw = ImageDraw.Draw(image)
    draw.text((x0, 10), title, fill=(0, 0, 0), font=font)
    draw.text((x0, 30), subtitle, fill=(90, 90, 90), font=small)
    draw.text(((x0 + x1) // 2 - 60, y1 + 40), "batch size (log2 scale)", fill=(0, 0, 0), font=font)
    label = Image.new("RGB", (200, 20), BACKGROUND)
    ImageDraw.Draw(label).text((0, 0), y_label, fill=(0, 0, 0), font=font)
    image.paste(label.rotate(90, expand=True), (10, (y0 + y1) // 2 - 100))


@dataclass(frozen=True)
class _Axes:
    """Where a (batch, images/s) point lands in FRAME: log2 x axis over the batch sizes, PAD inside the frame;
    y axis from 0 (or the lowest tick, log10 scale) to the highest tick."""

    batches: list[int]
    ticks: list[float]
    log_y: bool
    lo_b: float
    hi_b: float
    lo_y: float
    hi_y: float

    @classmethod
    def fit(cls, series: dict[str, list[tuple[int, float]]], values: list[float], log_y: bool) -> _Axes:
        batches = sorted({b for points in series.values() for b, _ in points})
        lo_b, hi_b = math.log2(batches[0]), math.log2(batches[-1])
        if hi_b == lo_b:
            lo_b, hi_b = lo_b - 1, hi_b + 1
        ticks = _nice_ticks(min(values), max(values), log_y)
        lo_y, hi_y = (ticks[0], ticks[-1]) if log_y else (0.0, max(ticks[-1], max(values)))
        return cls(batches, ticks, log_y, lo_b, hi_b, lo_y, hi_y)

    def x(self, batch: float) -> float:
        x0, _, x1, _ = FRAME
        return x0 + PAD + (math.log2(batch) - self.lo_b) / (self.hi_b - self.lo_b) * (x1 - x0 - 2 * PAD)

    def y(self, value: float) -> float:
        _, y0, _, y1 = FRAME
        if self.log_y:
            frac = (math.log10(value) - math.log10(self.lo_y)) / (math.log10(self.hi_y) - math.log10(self.lo_y))
        else:
            frac = (value - self.lo_y) / (self.hi_y - self.lo_y)
        return y1 - frac * (y1 - y0)


def _draw_grid(draw: Any, axes: _Axes, font: Any) -> None:
    """A labelled line at each y tick inside the frame and at each measured batch size."""
    x0, y0, x1, y1 = FRAME
    for tick in axes.ticks:
        y = axes.y(tick)
        if y0 <= y <= y1:
            draw.line((x0, y, x1, y), fill=(225, 225, 225))
            draw.text((x0 - 8, y), _tick_label(tick), fill=(0, 0, 0), font=font, anchor="rm")
    for batch in axes.batches:
        x = axes.x(batch)
        draw.line((x, y0, x, y1), fill=(235, 235, 235))
        draw.text((x, y1 + 8), str(batch), fill=(0, 0, 0), font=font, anchor="mt")


def _draw_series(draw: Any, axes: _Axes, series: dict[str, list[tuple[int, float]]], font: Any) -> None:
    """Each backend's points joined by a line, in its palette colour, and its legend entry right of the frame."""
    _, y0, x1, _ = FRAME
    for i, (name, points) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        xy = [(axes.x(b), axes.y(v)) for b, v in sorted(points)]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=3)
        for x, y in xy:
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour)
        ly = y0 + 8 + 20 * i
        draw.line((x1 + 15, ly + 7, x1 + 40, ly + 7), fill=colour, width=3)
        draw.text((x1 + 46, ly), name, fill=(0, 0, 0), font=font)


def write_plot(
    path: str | Path, rows: Sequence[dict[str, Any]], title: str, subtitle: str = "", *, overwrite: bool = False
) -> None:
    image = plot_throughput(rows, title, subtitle)
    with atomic_path(path, overwrite=overwrite) as tmp:
        image.save(tmp, format="PNG")
