"""Write examples/masks: held-out synthetic masks in every supported format, and hand-drawn ones.

    python examples/make_masks.py [--out examples/masks] [--overwrite]

The synthetic masks come from `maskface synth`'s generator with a seed the bundled model never saw in
training (it trained on seed 0). The hand-drawn masks are drawn here shape by shape, with proportions and
poses the synthetic generator does not produce (a tilted head, a wide open smile, a hat over long hair).
"""

from __future__ import annotations

import argparse
import io
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from maskface_rt.fileio import write_bytes_atomic
from maskface_rt.labels import CLASS_NAMES, PALETTE, colorize
from maskface_rt.synth import render_pair

SIZE = 256
SYNTH_SEED = 2026
L = {name: i for i, name in enumerate(CLASS_NAMES)}


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def _palette_image(labels: np.ndarray) -> Image.Image:
    img = Image.frombytes("P", labels.shape[::-1], np.ascontiguousarray(labels).tobytes())
    img.putpalette(PALETTE.flatten().tolist())
    return img


# One writer per supported single-file format: name suffix -> labels -> file bytes.
FORMATS: list[tuple[str, Callable[[np.ndarray], bytes]]] = [
    ("label.png", lambda m: _encode(Image.fromarray(m), "PNG")),
    ("palette.png", lambda m: _encode(_palette_image(m), "PNG")),
    ("label16.png", lambda m: _encode(Image.fromarray(m.astype(np.uint16)), "PNG")),
    ("color.png", lambda m: _encode(Image.fromarray(colorize(m)), "PNG")),
    (
        "color-rgba.png",
        lambda m: _encode(Image.fromarray(np.dstack([colorize(m), np.full(m.shape, 255, np.uint8)])), "PNG"),
    ),
    ("label.bmp", lambda m: _encode(Image.fromarray(m), "BMP")),
    ("label.tif", lambda m: _encode(Image.fromarray(m), "TIFF", compression="tiff_lzw")),
    ("color.webp", lambda m: _encode(Image.fromarray(colorize(m)), "WEBP", lossless=True)),
    ("label-rgb.png", lambda m: _encode(Image.fromarray(np.dstack([m, m, m])), "PNG")),
]


def _ellipse_points(
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    angle_deg: float = 0.0,
    start: float = 0.0,
    end: float = 360.0,
    n: int = 96,
) -> list[tuple[float, float]]:
    a = math.radians(angle_deg)
    pts = []
    for k in range(n + 1):
        t = math.radians(start + (end - start) * k / n)
        x, y = rx * math.cos(t), ry * math.sin(t)
        pts.append((cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a)))
    return pts


class _Canvas:
    def __init__(self) -> None:
        self.img = Image.new("L", (SIZE, SIZE), L["background"])
        self.draw = ImageDraw.Draw(self.img)

    def ellipse(self, cls: str, cx: float, cy: float, rx: float, ry: float, angle: float = 0.0) -> None:
        self.draw.polygon(_ellipse_points(cx, cy, rx, ry, angle), fill=L[cls])

    def poly(self, cls: str, pts: list[tuple[float, float]]) -> None:
        self.draw.polygon(pts, fill=L[cls])

    def labels(self) -> np.ndarray:
        return np.asarray(self.img, dtype=np.uint8).copy()


def hand_smile() -> np.ndarray:
    """Short hair, frontal, a wide open smile showing the mouth cavity."""
    c = _Canvas()
    c.poly("cloth", [(40, 256), (70, 212), (186, 212), (216, 256)])
    c.poly("neck", [(104, 170), (152, 170), (158, 222), (98, 222)])
    c.ellipse("hair", 128, 100, 78, 76)
    c.ellipse("l_ear", 58, 122, 11, 20)
    c.ellipse("r_ear", 198, 122, 11, 20)
    c.ellipse("skin", 128, 124, 68, 84)
    c.poly("hair", _ellipse_points(128, 104, 74, 60, 0, 180, 360) + [(200, 96), (56, 96)])
    for side, x in (("l", 100), ("r", 156)):
        c.poly(f"{side}_brow", [(x - 20, 100), (x + 18, 97), (x + 18, 103), (x - 20, 106)])
        c.ellipse(f"{side}_eye", x, 118, 13, 6)
    c.poly("nose", [(128, 118), (140, 152), (116, 152)])
    c.poly("u_lip", _ellipse_points(128, 172, 30, 12, 0, 180, 360))
    c.poly("l_lip", _ellipse_points(128, 174, 28, 16, 0, 0, 180))
    c.poly("mouth", _ellipse_points(128, 172, 24, 11, 0, 0, 180))
    return c.labels()


def hand_glasses_long_hair() -> np.ndarray:
    """Long hair over the shoulders, glasses, a closed small mouth, an earring."""
    c = _Canvas()
    c.poly("hair", [(44, 120), (212, 120), (230, 256), (26, 256)])
    c.poly("cloth", [(60, 256), (84, 222), (172, 222), (196, 256)])
    c.poly("neck", [(108, 176), (148, 176), (152, 230), (104, 230)])
    c.ellipse("hair", 128, 104, 84, 86)
    c.ellipse("skin", 128, 128, 60, 80)
    c.poly("hair", _ellipse_points(128, 112, 66, 64, 0, 180, 360) + [(194, 100), (62, 100)])
    for side, x in (("l", 104), ("r", 152)):
        c.poly(f"{side}_brow", [(x - 16, 112), (x + 14, 108), (x + 14, 114), (x - 16, 117)])
    c.poly("eye_g", [(78, 121), (126, 121), (126, 140), (78, 140)])
    c.poly("eye_g", [(130, 121), (178, 121), (178, 140), (130, 140)])
    c.poly("eye_g", [(124, 126), (132, 126), (132, 129), (124, 129)])
    for side, x in (("l", 104), ("r", 152)):
        c.ellipse(f"{side}_eye", x, 130, 10, 5)
    c.poly("nose", [(128, 132), (137, 162), (119, 162)])
    c.poly("u_lip", _ellipse_points(128, 180, 20, 6, 0, 180, 360))
    c.poly("l_lip", _ellipse_points(128, 180, 18, 8, 0, 0, 180))
    c.ellipse("ear_r", 70, 172, 4, 6)
    return c.labels()


def hand_tilted_hat() -> np.ndarray:
    """A head tilted by 12 degrees under a wide-brimmed hat."""
    c = _Canvas()
    tilt = 12.0

    def rot(x: float, y: float) -> tuple[float, float]:
        a = math.radians(tilt)
        dx, dy = x - 128, y - 130
        return 128 + dx * math.cos(a) - dy * math.sin(a), 130 + dx * math.sin(a) + dy * math.cos(a)

    c.poly("cloth", [(30, 256), (66, 214), (190, 214), (226, 256)])
    c.poly("neck", [(106, 180), (150, 180), (156, 224), (100, 224)])
    c.poly("hair", [rot(*p) for p in [(58, 110), (198, 110), (206, 190), (50, 190)]])
    c.ellipse("l_ear", *rot(60, 132), 10, 18, tilt)
    c.ellipse("r_ear", *rot(196, 132), 10, 18, tilt)
    c.ellipse("skin", 128, 130, 64, 82, tilt)
    c.ellipse("hat", *rot(128, 66), 104, 20, tilt)
    c.poly("hat", [rot(*p) for p in [(76, 70), (84, 22), (172, 22), (180, 70)]])
    for side, x in (("l", 102), ("r", 154)):
        c.poly(f"{side}_brow", [rot(*p) for p in [(x - 18, 104), (x + 16, 101), (x + 16, 107), (x - 18, 110)]])
        c.ellipse(f"{side}_eye", *rot(x, 122), 12, 6, tilt)
    c.poly("nose", [rot(*p) for p in [(128, 122), (139, 156), (117, 156)]])
    c.poly("u_lip", _ellipse_points(*rot(128, 176), 24, 7, tilt, 180, 360))
    c.poly("l_lip", _ellipse_points(*rot(128, 176), 22, 9, tilt, 0, 180))
    return c.labels()


HAND_DRAWN: list[tuple[str, Callable[[], np.ndarray], str]] = [
    ("hand01_smile", hand_smile, "color.png"),
    ("hand02_glasses", hand_glasses_long_hair, "palette.png"),
    ("hand03_hat", hand_tilted_hat, "color.png"),
]
PARTS_INDEX = 10


def write_examples(out: Path, *, overwrite: bool = False) -> list[Path]:
    writers = dict(FORMATS)
    written = []
    for i, (suffix, encode) in enumerate(FORMATS, start=1):
        _, labels = render_pair(SYNTH_SEED, i, SIZE)
        path = out / f"synth{i:02d}_{suffix}"
        write_bytes_atomic(path, encode(labels), overwrite=overwrite)
        written.append(path)
    _, labels = render_pair(SYNTH_SEED, PARTS_INDEX, SIZE)
    for label in np.unique(labels):
        if label == 0:
            continue
        path = out / f"{PARTS_INDEX:05d}_{CLASS_NAMES[label]}.png"
        write_bytes_atomic(
            path,
            _encode(Image.fromarray(np.where(labels == label, 255, 0).astype(np.uint8)), "PNG"),
            overwrite=overwrite,
        )
        written.append(path)
    for name, draw, suffix in HAND_DRAWN:
        path = out / f"{name}_{suffix}"
        write_bytes_atomic(path, writers[suffix](draw()), overwrite=overwrite)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "masks")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    written = write_examples(args.out, overwrite=args.overwrite)
    print(f"wrote {len(written)} files to {args.out}")


if __name__ == "__main__":
    main()
