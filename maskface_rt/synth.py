"""Procedural synthetic faces and their CelebAMask-HQ label maps, for training without real data.

Pair ``i`` of the set with seed ``K`` is drawn from ``default_rng(SeedSequence([K, i]))``
alone: first its geometry (face oval, features, hair, accessories, body), then
its appearance (colours, lighting, patterns), so either varies without the other.
Shapes are tested in normalised image coordinates, painted back to front; the
label map samples them at pixel centres, the RGB image at twice the resolution
(shaded class by class from that finer label map, then box-filtered down).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from maskface_rt import __version__
from maskface_rt.errors import MaskfaceError
from maskface_rt.fileio import write_json_atomic
from maskface_rt.image_io import save_png
from maskface_rt.labels import CLASS_NAMES, NUM_CLASSES

GENERATOR_VERSION = f"maskface_rt.synth/1 (maskface-rt {__version__})"
MIN_SIZE, MAX_SIZE = 32, 1024
_SUPERSAMPLE = 2
_CHUNK = 16  # pairs per worker task

_K = {name: k for k, name in enumerate(CLASS_NAMES)}

Box = tuple[float, float, float, float]  # x0, x1, y0, y1 in a frame's local units
Mask = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class _Frame:
    """Local coordinates: origin (cx, cy) of the unit image, rotated by ``angle``, in units of ``unit``."""

    cx: float
    cy: float
    unit: float
    angle: float = 0.0

    def local(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, s = math.cos(self.angle), math.sin(self.angle)
        dx, dy = x - self.cx, y - self.cy
        return (dx * c + dy * s) / self.unit, (dy * c - dx * s) / self.unit

    def window(self, box: Box, n: int) -> tuple[slice, slice]:
        """Rows and columns of an n x n grid whose pixel centres may fall inside ``box``."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        xs = [self.cx + (bx * c - by * s) * self.unit for bx in box[:2] for by in box[2:]]
        ys = [self.cy + (bx * s + by * c) * self.unit for bx in box[:2] for by in box[2:]]
        return _span(min(ys), max(ys), n), _span(min(xs), max(xs), n)


def _span(lo: float, hi: float, n: int) -> slice:
    return slice(max(0, math.ceil(lo * n - 0.5)), min(n, math.floor(hi * n - 0.5) + 1))


def _arc(X: np.ndarray, x: float, w: float) -> tuple[np.ndarray, np.ndarray]:
    """t in -1..1 across [x - w, x + w] and the arch 1 - t**2 (0 outside)."""
    t = (X - x) / w
    return t, np.clip(1.0 - t * t, 0.0, None)


@dataclass(frozen=True)
class _Face:
    frame: _Frame  # unit: half the face width
    ar: float  # half height / half width
    jaw: float  # how much the oval narrows towards the chin
    mx: float  # feature midline (turns with the head)
    my: float  # vertical feature offset (nods with the head)

    def mask(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        w = 1.0 - self.jaw * np.clip(Y / self.ar, 0.0, 1.0) ** 2
        return (X / w) ** 2 + (Y / self.ar) ** 2 < 1.0

    @property
    def box(self) -> Box:
        return -1.0, 1.0, -self.ar, self.ar


@dataclass(frozen=True)
class _Eye:
    x: float
    y: float
    w: float
    up: float
    low: float
    tilt: float  # signed so that the outer corner is higher
    gaze: float

    def lids(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t, s = _arc(X, self.x, self.w)
        base = self.y + self.tilt * t
        return base - self.up * s**0.8, base + self.low * s**0.9

    def mask(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        upper, lower = self.lids(X)
        return (Y > upper) & (Y < lower)

    @property
    def box(self) -> Box:
        t = abs(self.tilt)
        return self.x - self.w, self.x + self.w, self.y - self.up - t, self.y + self.low + t


@dataclass(frozen=True)
class _Brow:
    x: float
    y: float
    w: float
    arch: float
    thick: float
    side: int  # -1 on the image's left, +1 on its right

    def mask(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        u = (X - self.x) / self.w * self.side  # -1 at the inner end, +1 at the outer end
        centre = self.y - self.arch * (1.0 - ((u - 0.2) / 1.2) ** 2)
        return (np.abs(u) < 1.0) & (np.abs(Y - centre) < self.thick * (0.6 - 0.3 * u))

    @property
    def box(self) -> Box:
        return self.x - self.w, self.x + self.w, self.y - self.arch - self.thick, self.y + self.thick


@dataclass(frozen=True)
class _Nose:
    x: float
    top: float
    tip: float
    w: float
    bulb: float  # height of the rounded tip

    def mask(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        f = np.clip((Y - self.top) / (self.tip - self.top), 0.0, 1.0)
        body = (Y > self.top) & (Y < self.tip - self.bulb) & (np.abs(X - self.x) < self.w * (0.3 + 0.7 * f**1.6))
        tip = ((X - self.x) / self.w) ** 2 + ((Y - self.tip + self.bulb) / self.bulb) ** 2 < 1.0
        return body | tip

    @property
    def box(self) -> Box:
        return self.x - self.w, self.x + self.w, self.top, self.tip


@dataclass(frozen=True)
class _Mouth:
    x: float
    y: float
    w: float
    smile: float  # corners this much higher than the centre
    gap: float  # open mouth: height between the lips
    upper: float
    lower: float
    bow: float  # depth of the cupid's bow

    def curves(self, X: np.ndarray) -> tuple[np.ndarray, ...]:
        """Upper lip top, upper lip bottom, lower lip top, lower lip bottom."""
        t, s = _arc(X, self.x, self.w)
        line = self.y - self.smile * t * t
        ub, lt = line - 0.5 * self.gap * s, line + 0.5 * self.gap * s
        ut = ub - self.upper * s**0.6 * (1.0 - self.bow * np.exp(-((t / 0.18) ** 2)))
        return ut, ub, lt, lt + self.lower * s**0.7

    def part(self, k: int) -> Mask:
        """Mask of the upper lip (0), the mouth between the lips (1) or the lower lip (2)."""

        def mask(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
            bounds = self.curves(X)
            return (np.abs(X - self.x) < self.w) & (Y >= bounds[k]) & (Y < bounds[k + 1])

        return mask

    @property
    def box(self) -> Box:
        return (self.x - self.w, self.x + self.w, self.y - max(self.smile, 0.0) - self.gap / 2 - self.upper,
                self.y + self.gap / 2 + self.lower)


@dataclass(frozen=True)
class _Ellipse:
    x: float
    y: float
    rx: float
    ry: float
    lobe: float = 0.0  # narrowing of the lower half (ears)

    def mask(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        dy = (Y - self.y) / self.ry
        rx = self.rx * (1.0 - self.lobe * np.clip(dy, 0.0, 1.0))
        return ((X - self.x) / rx) ** 2 + dy * dy < 1.0

    @property
    def box(self) -> Box:
        return self.x - self.rx, self.x + self.rx, self.y - self.ry, self.y + self.ry


@dataclass(frozen=True)
class _Ring:
    """An earring hoop: an annulus."""

    x: float
    y: float
    r: float
    thick: float

    def mask(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return np.abs(np.hypot(X - self.x, Y - self.y) - self.r) < self.thick

    @property
    def box(self) -> Box:
        m = self.r + self.thick
        return self.x - m, self.x + m, self.y - m, self.y + m


@dataclass(frozen=True)
class _Glasses:
    xs: tuple[float, float]
    y: float
    rx: float
    ry: float
    power: float  # superellipse exponent: 2 round, 4 rectangular
    thick: float
    sun: bool  # tinted lenses, which hide the eyes

    def lens(self, X: np.ndarray, Y: np.ndarray, shrink: float = 0.0) -> np.ndarray:
        dx = np.minimum(np.abs(X - self.xs[0]), np.abs(X - self.xs[1])) / (self.rx - shrink)
        dy = np.abs(Y - self.y) / (self.ry - shrink)
        return dx**self.power + dy**self.power < 1.0

    def mask(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        lens = self.lens(X, Y)
        frame = lens if self.sun else lens & ~self.lens(X, Y, self.thick)
        mid, half = (self.xs[0] + self.xs[1]) / 2, (self.xs[1] - self.xs[0]) / 2
        dx = np.abs(X - mid)
        bridge = (dx < half - self.rx + self.thick) & (np.abs(Y - self.y + 0.3 * self.ry) < self.thick / 2)
        temple = (dx > half) & (np.abs(X) < 1.0) & (np.abs(Y - self.y + 0.5 * self.ry) < self.thick / 2)
        return frame | bridge | (temple & ~lens)

    @property
    def box(self) -> Box:
        return -1.0, 1.0, self.y - self.ry, self.y + self.ry


@dataclass(frozen=True)
class _Hair:
    cy: float  # centre of the skull cap
    rx: float
    ry: float
    curl: float  # amplitude of the outline's waves
    waves: int
    phase: float
    cut: float  # the cap ends at this height (short hair)
    length: float  # long hair falls to this height (0 for short hair)
    flare: float
    hairline: float  # height of the hairline at the midline
    hairline_curve: float
    parting: float
    fringe: float  # jaggedness of the hairline (bangs)
    frame_x: float  # hair hides the face beyond |X| > frame_x ...
    frame_bottom: float  # ... above this height

    def back(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        dx, dy = X / self.rx, (Y - self.cy) / self.ry
        wave = 1.0 + self.curl * np.sin(self.waves * np.arctan2(dy, dx) + self.phase)
        hair = (dx * dx + dy * dy < wave * wave) & (Y < self.cut)
        if self.length > self.cy:
            f = np.clip((Y - self.cy) / (self.length - self.cy), 0.0, 1.0)
            bottom = self.length - 0.08 * np.abs(np.sin(6.0 * X + self.phase))
            hair |= (Y >= self.cy) & (Y < bottom) & (np.abs(X) < self.rx * (1.0 + self.flare * f))
        return hair

    def front(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        line = self.hairline + self.hairline_curve * X * X + self.parting * X \
            + self.fringe * np.abs(np.sin(9.0 * X + self.phase))
        return self.back(X, Y) & ((Y < line) | ((np.abs(X) > self.frame_x + 0.08 * Y) & (Y < self.frame_bottom)))

    @property
    def box(self) -> Box:
        m = self.rx * (1.0 + max(self.curl, self.flare))
        return -m, m, self.cy - self.ry * (1.0 + self.curl), max(self.cut, self.length)


@dataclass(frozen=True)
class _Hat:
    line: float  # height of the lower edge
    top: float
    rx: float
    brim_w: float  # 0: a beanie
    brim_h: float

    def mask(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        dome = ((X / self.rx) ** 2 + ((Y - self.line) / (self.line - self.top)) ** 2 < 1.0) & (Y < self.line)
        if self.brim_w == 0.0:
            return dome
        return dome | ((X / self.brim_w) ** 2 + ((Y - self.line) / self.brim_h) ** 2 < 1.0)

    @property
    def box(self) -> Box:
        w = max(self.rx, self.brim_w)
        return -w, w, self.top, self.line + self.brim_h


@dataclass(frozen=True)
class _Body:
    frame: _Frame  # upright, same unit as the face, origin at the face centre
    neck_w: float
    shoulder_y: float  # top of the shoulders at the midline
    shoulder_w: float
    shoulder_h: float
    neckline: str  # "v", "round", "crew" or "turtle"
    neckline_w: float
    neckline_depth: float
    chin: float

    def torso(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        centre = self.shoulder_y + self.shoulder_h
        dome = (np.abs(X) / self.shoulder_w) ** 4 + ((Y - centre) / self.shoulder_h) ** 2 < 1.0
        return dome | ((Y >= centre) & (np.abs(X) < self.shoulder_w))

    def neckline_cut(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        if self.neckline == "turtle":
            return np.zeros(X.shape, bool)
        u = np.clip(np.abs(X) / self.neckline_w, 0.0, 1.0)
        depth = 1.0 - u if self.neckline == "v" else np.sqrt(1.0 - u * u)
        return (np.abs(X) < self.neckline_w) & (Y < self.shoulder_y + self.neckline_depth * depth)

    def neck(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        flare = 1.0 + 0.35 * np.clip((Y - self.shoulder_y + 0.25) / 0.3, 0.0, 1.0) ** 2
        column = (Y > 0.0) & (np.abs(X) < self.neck_w * flare)
        return column | (self.torso(X, Y) & self.neckline_cut(X, Y))

    def cloth(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        cloth = self.torso(X, Y) & ~self.neckline_cut(X, Y)
        if self.neckline == "turtle":
            cloth |= (Y > self.chin + 0.15) & (np.abs(X) < self.neck_w * 1.12)
        return cloth

    @property
    def box(self) -> Box:
        return -self.shoulder_w, self.shoulder_w, 0.0, 10.0


@dataclass(frozen=True)
class _Necklace:
    w: float
    y: float
    depth: float
    thick: float
    pendant: float  # radius, 0 for none

    def centre(self, X: np.ndarray) -> np.ndarray:
        return self.y + self.depth * np.sqrt(np.clip(1.0 - (X / self.w) ** 2, 0.0, None))

    def mask(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        chain = (np.abs(X) < self.w) & (np.abs(Y - self.centre(X)) < self.thick)
        drop = np.hypot(X, Y - self.y - self.depth - self.pendant) < self.pendant
        return chain | drop

    @property
    def box(self) -> Box:
        return -self.w, self.w, self.y - self.thick, self.y + self.depth + 2 * self.pendant + self.thick


@dataclass(frozen=True)
class _Geometry:
    face: _Face
    eyes: tuple[_Eye, _Eye]  # image left, image right
    brows: tuple[_Brow, _Brow]
    nose: _Nose
    mouth: _Mouth
    ears: tuple[_Ellipse, _Ellipse]
    hair: _Hair | None
    hat: _Hat | None
    glasses: _Glasses | None
    earrings: tuple[_Ring | _Ellipse, ...] | None
    necklace: _Necklace | None
    body: _Body

    def layers(self) -> Iterator[tuple[int, _Frame, Box, Mask]]:
        """(class, frame, box, mask) back to front."""
        head, body = self.face.frame, self.body.frame
        if self.hair:
            yield _K["hair"], head, self.hair.box, self.hair.back
        yield _K["neck"], body, self.body.box, self.body.neck
        yield _K["cloth"], body, self.body.box, self.body.cloth
        if self.necklace:
            yield _K["neck_l"], body, self.necklace.box, self.necklace.mask
        yield _K["l_ear"], head, self.ears[0].box, self.ears[0].mask
        yield _K["r_ear"], head, self.ears[1].box, self.ears[1].mask
        yield _K["skin"], head, self.face.box, self.face.mask
        yield _K["nose"], head, self.nose.box, self.nose.mask
        for name, part in zip(("l_eye", "r_eye", "l_brow", "r_brow"), self.eyes + self.brows):
            yield _K[name], head, part.box, part.mask
        for k, name in enumerate(("u_lip", "mouth", "l_lip")):
            yield _K[name], head, self.mouth.box, self.mouth.part(k)
        if self.glasses:
            yield _K["eye_g"], head, self.glasses.box, self.glasses.mask
        if self.hair:
            yield _K["hair"], head, self.hair.box, self.hair.front
        if self.earrings:
            for ring in self.earrings:
                yield _K["ear_r"], head, ring.box, ring.mask
        if self.hat:
            yield _K["hat"], head, self.hat.box, self.hat.mask


def _sample_geometry(rng: np.random.Generator) -> _Geometry:
    u = rng.uniform
    angle = math.radians(float(np.clip(rng.normal(0.0, 4.0), -9.0, 9.0)))
    frame = _Frame(0.5 + u(-0.035, 0.035), 0.48 + u(-0.03, 0.03), u(0.205, 0.255), angle)
    face = _Face(frame, ar=u(1.22, 1.42), jaw=u(0.15, 0.35), mx=u(-0.12, 0.12), my=u(-0.05, 0.05))
    eyes = _sample_eyes(rng, face)
    lift, width, arch, thick = u(0.2, 0.3), u(1.15, 1.4), u(0.02, 0.07), u(0.05, 0.09)
    brows = tuple(_Brow(e.x + side * 0.03, e.y - lift, e.w * width, arch, thick, side)
                  for e, side in zip(eyes, (-1, 1)))
    nose = _Nose(face.mx * 1.2, eyes[0].y + 0.02, face.my + u(0.28, 0.4), u(0.15, 0.22), u(0.07, 0.1))
    gap = 0.0 if u() < 0.6 else u(0.03, 0.16)
    mouth = _Mouth(face.mx * 1.1, nose.tip + u(0.22, 0.32), u(0.3, 0.42), u(-0.03, 0.09), gap,
                   u(0.06, 0.1), u(0.08, 0.13), u(0.1, 0.4))
    ear_y, ear_rx, ear_ry = face.my + u(-0.15, 0.05), u(0.14, 0.2), u(0.28, 0.36)
    # the ear on the side the face turns away from looks narrower
    ears = tuple(_Ellipse(side * u(0.93, 0.99) + face.mx * 0.3, ear_y, ear_rx * (1 - side * 1.5 * face.mx),
                          ear_ry, lobe=0.3) for side in (-1, 1))
    body = _sample_body(rng, face)
    hair = None if u() < 0.06 else _sample_hair(rng, face)
    return _Geometry(
        face=face, eyes=eyes, brows=brows, nose=nose, mouth=mouth, ears=ears, body=body, hair=hair,
        hat=_sample_hat(rng, face, hair) if u() < 0.14 else None,
        glasses=_sample_glasses(rng, eyes) if u() < 0.22 else None,
        earrings=_sample_earrings(rng, ears) if u() < 0.2 else None,
        necklace=_sample_necklace(rng, body) if u() < 0.18 else None,
    )


def _sample_eyes(rng: np.random.Generator, face: _Face) -> tuple[_Eye, _Eye]:
    u = rng.uniform
    y, spacing, w = face.my + u(-0.2, -0.08), u(0.36, 0.44), u(0.17, 0.23)
    openness = 0.15 if u() < 0.06 else u(0.6, 1.0)
    up, low, tilt, gaze = w * u(0.38, 0.55) * openness, w * u(0.25, 0.38) * openness, u(0.0, 0.04), u(-1, 1)
    return tuple(_Eye(face.mx + side * spacing, y, w * (1 - side * face.mx), up, low, -side * tilt, gaze)
                 for side in (-1, 1))


def _sample_hair(rng: np.random.Generator, face: _Face) -> _Hair:
    u = rng.uniform
    cy = u(-0.35, -0.15)
    ry = cy + face.ar + u(0.05, 0.4)  # the top of the hair is above the top of the face
    curly = u() < 0.2
    curl, waves = (u(0.03, 0.08), int(rng.integers(9, 18))) if curly else (u(0.0, 0.015), int(rng.integers(4, 8)))
    rx = u(1.06, 1.3) + (u(0.0, 0.3) if curly else 0.0)
    bangs = u() < 0.3
    hairline, fringe = (u(-0.55, -0.42), u(0.03, 0.08)) if bangs else (u(-1.0, -0.75), u(0.0, 0.02))
    style = dict(cy=cy, rx=rx, ry=ry, curl=curl, waves=waves, phase=u(0, 2 * math.pi), hairline=hairline,
                 hairline_curve=u(0.2, 0.5), parting=u(-0.15, 0.15), fringe=fringe)
    if u() < 0.5:  # long hair, sometimes falling in front of the shoulders
        length = face.ar + u(0.3, 1.8)
        return _Hair(**style, cut=cy + ry, length=length, flare=u(0.0, 0.5), frame_x=u(0.78, 0.92),
                     frame_bottom=length if u() < 0.4 else u(0.2, face.ar))
    return _Hair(**style, cut=u(-0.35, 0.25), length=0.0, flare=0.0, frame_x=u(0.88, 0.97),
                 frame_bottom=u(-0.6, -0.2))


def _sample_hat(rng: np.random.Generator, face: _Face, hair: _Hair | None) -> _Hat:
    u = rng.uniform
    rx, top = u(1.05, 1.25), -face.ar - u(0.1, 0.4)
    if hair:  # cover the top of the hair
        rx = max(rx, hair.rx * (1 + hair.curl) + 0.03)
        top = min(top, hair.cy - hair.ry * (1 + hair.curl) - u(0.03, 0.2))
    brim = u() < 0.5
    return _Hat(line=face.my + u(-1.0, -0.72), top=top, rx=rx, brim_w=rx * u(1.2, 1.6) if brim else 0.0,
                brim_h=u(0.06, 0.12))


def _sample_glasses(rng: np.random.Generator, eyes: tuple[_Eye, _Eye]) -> _Glasses:
    u = rng.uniform
    rx = max(e.w for e in eyes) * u(1.25, 1.45)
    return _Glasses(xs=(eyes[0].x, eyes[1].x), y=eyes[0].y + u(-0.02, 0.04), rx=rx, ry=rx * u(0.65, 0.85),
                    power=float(rng.choice([2.0, 2.5, 4.0])), thick=u(0.05, 0.1), sun=bool(u() < 0.3))


def _sample_earrings(rng: np.random.Generator, ears: tuple[_Ellipse, _Ellipse]) -> tuple[_Ring | _Ellipse, ...]:
    u = rng.uniform
    hoop, r, thick, stretch = u() < 0.5, u(0.06, 0.12), u(0.025, 0.045), u(1.0, 2.5)
    rings = []
    for ear, side in zip(ears, (-1, 1)):
        x, y = ear.x + side * 0.03, ear.y + 0.85 * ear.ry
        rings.append(_Ring(x, y + r, r, thick) if hoop else _Ellipse(x, y + r * stretch / 2, r / 2, r * stretch / 2))
    return tuple(rings)


def _sample_body(rng: np.random.Generator, face: _Face) -> _Body:
    u = rng.uniform
    f = face.frame
    chin_x = f.cx - face.ar * f.unit * math.sin(f.angle)  # the neck follows the rolled chin
    neck_w = u(0.5, 0.65)
    neckline = str(rng.choice(["v", "round", "crew", "turtle"], p=[0.3, 0.35, 0.25, 0.1]))
    crew = neckline in ("crew", "turtle")
    return _Body(_Frame((f.cx + chin_x) / 2, f.cy, f.unit), neck_w=neck_w, shoulder_y=face.ar + u(0.25, 0.55),
                 shoulder_w=u(2.2, 2.9), shoulder_h=u(0.5, 0.9), neckline=neckline,
                 neckline_w=neck_w * u(1.1, 1.3) if crew else u(0.7, 1.3),
                 neckline_depth=u(0.1, 0.25) if crew else u(0.3, 1.1), chin=face.ar)


def _sample_necklace(rng: np.random.Generator, body: _Body) -> _Necklace:
    u = rng.uniform
    return _Necklace(w=body.neck_w * u(0.9, 1.1), y=body.shoulder_y - u(0.1, 0.3), depth=u(0.15, 0.7),
                     thick=u(0.025, 0.045), pendant=u(0.06, 0.12) if u() < 0.5 else 0.0)


# ----------------------------------------------------------------------------- appearance

_SKIN_TONES = np.array([(255, 226, 208), (241, 196, 168), (224, 172, 138), (198, 140, 100),
                        (160, 108, 72), (120, 78, 52), (82, 54, 38)], np.float32)
_HAIR_COLOURS = np.array([(28, 24, 24), (60, 42, 32), (105, 72, 48), (150, 112, 75), (214, 184, 130),
                          (160, 72, 40), (165, 165, 162), (228, 226, 220)], np.float32)
_HAIR_WEIGHTS = np.array([0.27, 0.2, 0.15, 0.1, 0.12, 0.07, 0.06, 0.03])
_LIPSTICKS = np.array([(170, 30, 40), (210, 100, 130), (120, 30, 60), (190, 130, 115), (225, 110, 90)], np.float32)
_IRISES = np.array([(95, 60, 35), (55, 35, 25), (125, 100, 55), (85, 120, 70), (85, 125, 170), (120, 130, 140)],
                   np.float32)
_FRAMES = np.array([(20, 20, 22), (90, 55, 30), (200, 165, 80), (190, 190, 195), (150, 30, 40), (40, 60, 130)],
                   np.float32)
_METALS = np.array([(212, 175, 55), (200, 200, 205), (215, 150, 130), (236, 230, 218)], np.float32)


@dataclass(frozen=True)
class _Look:
    skin: np.ndarray  # RGB float32, 0..255
    hair: np.ndarray
    brow: np.ndarray
    lips: np.ndarray
    iris: np.ndarray
    cloth: np.ndarray
    cloth2: np.ndarray
    pattern: str  # "plain", "hstripes", "vstripes", "dots" or "check"
    pattern_freq: float  # per face unit
    hat: np.ndarray
    frame: np.ndarray  # glasses
    metal: np.ndarray
    bg: np.ndarray
    bg2: np.ndarray
    bg_kind: str  # "flat", "vertical", "horizontal" or "radial"
    light: np.ndarray  # unit vector towards the light; y points down the image
    ambient: float
    diffuse: float
    blush: float
    sheen: float
    strands: float  # hair strand frequency
    noise: float


def _hsv(rng: np.random.Generator, s: tuple[float, float], v: tuple[float, float]) -> np.ndarray:
    h, s_, v_ = rng.uniform(), rng.uniform(*s), rng.uniform(*v)
    i, f = int(h * 6) % 6, h * 6 - int(h * 6)
    p, q, t = v_ * (1 - s_), v_ * (1 - s_ * f), v_ * (1 - s_ * (1 - f))
    rgb = [(v_, t, p), (q, v_, p), (p, v_, t), (p, q, v_), (t, p, v_), (v_, p, q)][i]
    return np.array(rgb, np.float32) * 255


def _jitter(rng: np.random.Generator, colour: np.ndarray, amount: float) -> np.ndarray:
    return np.clip(colour * (1 + rng.normal(0, amount, 3)), 0, 255).astype(np.float32)


def _sample_look(rng: np.random.Generator) -> _Look:
    u = rng.uniform
    t = u(0, len(_SKIN_TONES) - 1)
    i = min(int(t), len(_SKIN_TONES) - 2)
    skin = _jitter(rng, _SKIN_TONES[i] + (t - i) * (_SKIN_TONES[i + 1] - _SKIN_TONES[i]), 0.03)
    dyed = u() < 0.06
    natural = _HAIR_COLOURS[rng.choice(len(_HAIR_COLOURS), p=_HAIR_WEIGHTS)]
    hair = _hsv(rng, (0.5, 0.9), (0.35, 0.85)) if dyed else _jitter(rng, natural, 0.06)
    brow_base = np.array((65, 50, 40), np.float32) if dyed or natural.min() > 160 else hair
    natural_lips = skin * np.array((0.8, 0.55, 0.55), np.float32) + np.array((25, 0, 5), np.float32)
    lips = _LIPSTICKS[rng.integers(len(_LIPSTICKS))] if u() < 0.3 else natural_lips
    cloth = _hsv(rng, (0.0, 0.8), (0.15, 0.95))
    light = np.array((u(-1, 1), u(-1, 0.3), u(0.6, 1.4)), np.float32)
    return _Look(
        skin=skin, hair=hair, brow=np.minimum(0.7 * brow_base + 0.3 * 0.45 * skin, 0.65 * skin),
        lips=_jitter(rng, lips, 0.05), iris=_jitter(rng, _IRISES[rng.integers(len(_IRISES))], 0.08),
        cloth=cloth, cloth2=_hsv(rng, (0.0, 0.6), (0.2, 1.0)) if u() < 0.7 else 255 - cloth,
        pattern=str(rng.choice(["plain", "hstripes", "vstripes", "dots", "check"], p=[0.55, 0.12, 0.08, 0.12, 0.13])),
        pattern_freq=u(2.0, 6.0), hat=_hsv(rng, (0.0, 0.8), (0.15, 0.9)),
        frame=_FRAMES[rng.integers(len(_FRAMES))], metal=_METALS[rng.integers(len(_METALS))],
        bg=_hsv(rng, (0.0, 0.5), (0.3, 0.95)), bg2=_hsv(rng, (0.0, 0.5), (0.3, 0.95)),
        bg_kind=str(rng.choice(["flat", "vertical", "horizontal", "radial"], p=[0.3, 0.3, 0.15, 0.25])),
        light=light / np.linalg.norm(light), ambient=u(0.45, 0.7), diffuse=u(0.35, 0.7),
        blush=u(0.0, 0.6), sheen=u(0.1, 0.4), strands=u(50, 110), noise=u(1.0, 4.0),
    )


# ----------------------------------------------------------------------------- rendering


def _paint(geo: _Geometry, n: int) -> np.ndarray:
    """The label map sampled at the pixel centres of an n x n grid."""
    labels = np.zeros((n, n), np.uint8)
    centres = (np.arange(n, dtype=np.float32) + 0.5) / n
    for k, frame, box, mask in geo.layers():
        rows, cols = frame.window(box, n)
        X, Y = frame.local(centres[cols][None, :], centres[rows][:, None])
        labels[rows, cols][mask(X, Y)] = k
    return labels


# Colours of N pixels are [3, N] arrays: channel-first keeps numpy's inner loops long.


def _by(colour: np.ndarray, factor: np.ndarray | float) -> np.ndarray:
    """[3, N] colours: one RGB colour scaled per pixel."""
    return colour[:, None] * np.asarray(factor, np.float32).reshape(1, -1)


def _mix(a: np.ndarray, b: np.ndarray, choose_b: np.ndarray) -> np.ndarray:
    return np.where(choose_b, b[:, None], a[:, None])


class _Shader:
    """Colours of the pixels of one class, given their image coordinates."""

    def __init__(self, geo: _Geometry, look: _Look) -> None:
        self.geo, self.look = geo, look
        self.by_class: dict[int, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
            _K["skin"]: self.skin, _K["nose"]: self.nose,
            _K["eye_g"]: self.glasses, _K["l_eye"]: lambda x, y: self.eye(0, x, y),
            _K["r_eye"]: lambda x, y: self.eye(1, x, y), _K["l_brow"]: self.brow, _K["r_brow"]: self.brow,
            _K["l_ear"]: lambda x, y: self.ear(0, x, y), _K["r_ear"]: lambda x, y: self.ear(1, x, y),
            _K["mouth"]: self.mouth, _K["u_lip"]: lambda x, y: self.lip(0, x, y),
            _K["l_lip"]: lambda x, y: self.lip(1, x, y), _K["hair"]: self.hair, _K["hat"]: self.hat,
            _K["ear_r"]: self.jewel, _K["neck_l"]: self.jewel, _K["neck"]: self.neck, _K["cloth"]: self.cloth,
        }

    def head(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.geo.face.frame.local(x, y)

    def lit(self, nx: np.ndarray, ny: np.ndarray, nz: np.ndarray | None = None) -> np.ndarray:
        """Lambert shading of a pseudo-normal (nz completes a unit vector when omitted)."""
        if nz is None:
            nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.02, 1.0))
        lx, ly, lz = self.look.light
        return self.look.ambient + self.look.diffuse * np.clip(nx * lx + ny * ly + nz * lz, 0.0, 1.0)

    def head_lit(self, X: np.ndarray, Y: np.ndarray, bulge: np.ndarray | float = 0.0) -> np.ndarray:
        return self.lit(np.clip(X / 1.15 + bulge, -1, 1), np.clip(Y / (self.geo.face.ar * 1.15), -1, 1))

    def background(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """[3, n, n] for a row of x and a column of y: the background is drawn everywhere first."""
        x, y = np.broadcast_arrays(x, y)
        t = {"flat": np.zeros(x.shape, np.float32), "vertical": y, "horizontal": x,
             "radial": np.clip(np.hypot(x - 0.5, y - 0.45) / 0.7, 0, 1)}[self.look.bg_kind]
        return self.look.bg[:, None, None] + t * (self.look.bg2 - self.look.bg)[:, None, None]

    def skin(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, Y = self.head(x, y)
        cheeks = np.exp(-((np.abs(X) - 0.5) ** 2 + (Y - 0.35) ** 2) / 0.04) * self.look.blush
        tint = 1 + cheeks * np.array((0.08, -0.1, -0.08), np.float32)[:, None]
        return _by(self.look.skin, self.head_lit(X, Y)) * tint

    def nose(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, Y = self.head(x, y)
        n = self.geo.nose
        shade = self.head_lit(X, Y, 0.7 * np.clip((X - n.x) / n.w, -1, 1))
        for side in (-1, 1):
            dx, dy = (X - n.x - side * 0.45 * n.w) / (0.25 * n.w), (Y - n.tip + 0.35 * n.bulb) / (0.35 * n.bulb)
            shade = np.where(dx * dx + dy * dy < 1, shade * 0.45, shade)  # nostril
        return _by(self.look.skin, shade)

    def eye(self, i: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, Y = self.head(x, y)
        e = self.geo.eyes[i]
        ix, iy = e.x + e.gaze * e.w * 0.3, e.y + (e.low - e.up) / 2
        ri = min(0.55 * (e.up + e.low), 0.45 * e.w)
        r = np.hypot(X - ix, Y - iy) / ri
        col = _by(np.array((240, 236, 228), np.float32), np.ones_like(X))
        col = np.where(r < 1, _by(self.look.iris, 1.15 - 0.45 * r * r), col)
        col[:, r < 0.45] = ((12,), (10,), (10,))
        col[:, np.hypot(X - ix + 0.35 * ri, Y - iy + 0.35 * ri) < 0.18 * ri] = 250
        upper, lower = e.lids(X)
        lash = 0.45 + 0.55 * np.clip((Y - upper) / (0.3 * (lower - upper) + 1e-6), 0, 1)
        return col * (lash * (0.5 + 0.5 * self.head_lit(X, Y)))

    def brow(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, Y = self.head(x, y)
        return _by(self.look.brow, (0.85 + 0.15 * np.sin(X * 70 + Y * 25)) * self.head_lit(X, Y))

    def ear(self, i: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, Y = self.head(x, y)
        e, side = self.geo.ears[i], (-1, 1)[i]
        inner = ((X - e.x + side * 0.1 * e.rx) / (0.5 * e.rx)) ** 2 + ((Y - e.y + 0.1 * e.ry) / (0.6 * e.ry)) ** 2 < 1
        return _by(self.look.skin, self.lit(side * 0.7, Y / 2) * 0.95 * np.where(inner, 0.78, 1.0))

    def mouth(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, Y = self.head(x, y)
        _, ub, lt, _ = self.geo.mouth.curves(X)
        f = (Y - ub) / (lt - ub + 1e-6)
        col = _mix(np.array((65, 22, 28), np.float32), np.array((232, 226, 212), np.float32), f < 0.35)
        col[:, f > 0.75] = ((150,), (60,), (65,))
        return col * (0.6 + 0.4 * self.head_lit(X, Y))

    def lip(self, i: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, Y = self.head(x, y)
        m = self.geo.mouth
        shade = self.head_lit(X, Y)
        if i == 0:
            return _by(self.look.lips, 0.85 * shade)
        _, _, lt, lb = m.curves(X)
        gloss = np.exp(-(((X - m.x) / (0.45 * m.w)) ** 2 + ((Y - (lt + lb) / 2) / (0.3 * m.lower)) ** 2))
        return _by(self.look.lips, shade * (1 + 0.3 * gloss))

    def hair(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, Y = self.head(x, y)
        h = self.geo.hair
        dx, dy = X / h.rx, (Y - h.cy) / h.ry
        angle = np.arctan2(X - h.parting, Y - h.cy + 0.6 * h.ry) * self.look.strands + 0.8 * np.sin(3 * X + 2 * Y)
        strands = 0.84 + 0.08 * np.sin(angle) + 0.08 * np.sin(1.73 * angle + 1.0)
        band = np.exp(-(((np.hypot(dx, dy) - 0.8) / 0.12) ** 2)) * np.clip(-2 * dy, 0, 1)
        shade = self.lit(np.clip(dx, -1, 1) * 0.9, np.clip(dy, -1, 1) * 0.6) * strands
        return _by(self.look.hair, shade) + band * self.look.sheen * 90

    def hat(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, Y = self.head(x, y)
        h = self.geo.hat
        shade = self.lit(np.clip(X / h.rx, -1, 1), np.clip((Y - h.line) / (h.line - h.top), -1, 1))
        ribs = 0.9 + 0.1 * np.sin(X * 40) if h.brim_w == 0.0 else np.where(Y > h.line - 0.5 * h.brim_h, 0.8, 1.0)
        return _by(self.look.hat, shade * ribs)

    def glasses(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, Y = self.head(x, y)
        g = self.geo.glasses
        col = _by(self.look.frame, self.head_lit(X, Y) * (1 + 0.2 * (Y < g.y)))
        if g.sun:
            glint = np.clip(-(Y - g.y) / g.ry, 0, 1) * 60
            tinted = np.array((30, 32, 38), np.float32)[:, None] + glint
            col = np.where(g.lens(X, Y, g.thick), tinted, col)
        return col

    def jewel(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, Y = self.head(x, y)
        return _by(self.look.metal, 0.8 + 0.3 * np.sin(12 * (X - Y)))

    def neck(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        b = self.geo.body
        X, _ = b.frame.local(x, y)
        _, Yh = self.head(x, y)
        under_chin = 0.62 + 0.38 * np.clip((Yh - self.geo.face.ar * 0.95) / 0.45, 0, 1)
        return _by(self.look.skin, 0.93 * under_chin * self.lit(np.clip(X / (b.neck_w * 1.3), -1, 1), 0.1))

    def cloth(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        b = self.geo.body
        X, Y = b.frame.local(x, y)
        shade = self.lit(np.clip(X / b.shoulder_w, -1, 1) * 0.8,
                         np.clip((Y - b.shoulder_y - b.shoulder_h) / b.shoulder_h, -1, 0) * 0.8)
        fx, fy = X * self.look.pattern_freq, Y * self.look.pattern_freq
        second = {
            "plain": lambda: np.zeros(X.shape, bool),
            "hstripes": lambda: np.sin(fy * 2 * np.pi) > 0.3,
            "vstripes": lambda: np.sin(fx * 2 * np.pi) > 0.3,
            "dots": lambda: (fx % 1 - 0.5) ** 2 + (fy % 1 - 0.5) ** 2 < 0.05,
            "check": lambda: (np.floor(fx) + np.floor(fy)) % 2 == 1,
        }[self.look.pattern]()
        return _mix(self.look.cloth, self.look.cloth2, second) * shade


def _shade(labels: np.ndarray, shader: _Shader) -> np.ndarray:
    """[n, n, 3] uint8 RGB: the background, then each class's pixels coloured by that class's shader."""
    n = labels.shape[0]
    centres = (np.arange(n, dtype=np.float32) + 0.5) / n
    rgb = shader.background(centres[None, :], centres[:, None]).reshape(3, n * n)
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    ends = np.cumsum(np.bincount(flat, minlength=NUM_CLASSES))
    for k in range(1, NUM_CLASSES):
        idx = order[ends[k - 1]:ends[k]]
        if idx.size:
            rgb[:, idx] = shader.by_class[k](centres[idx % n], centres[idx // n])
    return np.clip(rgb, 0, 255).astype(np.uint8).reshape(3, n, n).transpose(1, 2, 0)


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> None:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= lo
    if not ok or (hi is not None and value > hi):
        bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise MaskfaceError(name, f"must be an integer {bounds}, got {value!r}")


def render_pair(seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 [size,size,3], labels uint8 [size,size]) for pair `index` of the set with `seed`."""
    _check_int("seed", seed, 0)
    _check_int("index", index, 0)
    _check_int("size", size, MIN_SIZE, MAX_SIZE)
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    geo = _sample_geometry(rng)
    return _render(geo, _sample_look(rng), rng, size), _paint(geo, size)


def _render(geo: _Geometry, look: _Look, rng: np.random.Generator, size: int) -> np.ndarray:
    fine = _shade(_paint(geo, size * _SUPERSAMPLE), _Shader(geo, look))
    rgb = np.asarray(Image.fromarray(np.ascontiguousarray(fine)).reduce(_SUPERSAMPLE), np.float32)
    rgb += rng.standard_normal((size, size, 1), np.float32) * look.noise  # drawn last: the same pair at every size
    return np.clip(rgb, 0, 255).astype(np.uint8)


def render_looks(seed: int, index: int, size: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The mask of pair ``index`` painted with ``count`` other appearances (the "real" styles of one mask).

    Returns (rgb uint8 [count, size, size, 3], labels uint8 [size, size]); appearance k is drawn from its
    own random state (seed, index, k), so it does not depend on ``count``.
    """
    _check_int("count", count, 1)
    _check_int("size", size, MIN_SIZE, MAX_SIZE)
    geo = _sample_geometry(np.random.default_rng(np.random.SeedSequence([seed, index])))
    faces = []
    for k in range(count):
        rng = np.random.default_rng(np.random.SeedSequence([seed, index, k]))
        faces.append(_render(geo, _sample_look(rng), rng, size))
    return np.stack(faces), _paint(geo, size)


# ----------------------------------------------------------------------------- data sets


@dataclass
class SynthSummary:
    """What ``write_dataset`` wrote."""

    out: Path
    count: int
    size: int
    seed: int
    seconds: float
    class_pixel_counts: list[int]  # per class, summed over the set


def _write_pairs(out: Path, size: int, seed: int, indices: range, overwrite: bool) -> np.ndarray:
    """Render and save some pairs; their class pixel counts."""
    counts = np.zeros(NUM_CLASSES, np.int64)
    for i in indices:
        rgb, labels = render_pair(seed, i, size)
        save_png(out / "images" / f"{i:05d}.png", rgb, overwrite=overwrite)
        save_png(out / "masks" / f"{i:05d}.png", labels, overwrite=overwrite)
        counts += np.bincount(labels.ravel(), minlength=NUM_CLASSES)
    return counts


def _write_chunk(out: Path, size: int, seed: int, indices: range, overwrite: bool) -> np.ndarray | tuple:
    """``_write_pairs`` in a worker process; a MaskfaceError (which does not pickle) comes back as (where, problem)."""
    try:
        return _write_pairs(out, size, seed, indices, overwrite)
    except MaskfaceError as e:
        return e.where, e.problem


def _run_chunks(out: Path, size: int, seed: int, chunks: list[range], overwrite: bool,
                workers: int) -> Iterator[tuple[range, np.ndarray]]:
    """(chunk, class pixel counts) for each chunk written, in order of completion."""
    if workers == 1 or len(chunks) == 1:
        for chunk in chunks:
            yield chunk, _write_pairs(out, size, seed, chunk, overwrite)
        return
    # processes, not threads: rendering is many small numpy calls that hold the GIL
    pool = ProcessPoolExecutor(min(workers, len(chunks)))
    try:
        futures = {pool.submit(_write_chunk, out, size, seed, chunk, overwrite): chunk for chunk in chunks}
        for future in as_completed(futures):
            result = future.result()
            if isinstance(result, tuple):
                raise MaskfaceError(*result)
            yield futures[future], result
    finally:
        pool.shutdown(cancel_futures=True)


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise MaskfaceError(out, "exists and is not a folder")
    if overwrite:
        return
    held = any((out / sub).is_dir() and any((out / sub).glob("*.png")) for sub in ("images", "masks"))
    if held or (out / "synth.json").exists():
        raise MaskfaceError(out, "already holds a data set (pass --overwrite to replace it)")


def _default_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, 8))


def write_dataset(out: str | Path, count: int, size: int, seed: int, *, overwrite: bool = False,
                  workers: int | None = None, progress: Callable[[int], None] | None = None) -> SynthSummary:
    """Write ``count`` pairs as out/images/00000.png (RGB), out/masks/00000.png (labels, mode L), out/synth.json.

    Refuses a folder that already holds a data set unless ``overwrite``; ``progress(n)``
    is called after every n pairs written.
    """
    out = Path(out)
    _check_int("count", count, 1)
    _check_int("size", size, MIN_SIZE, MAX_SIZE)
    _check_int("seed", seed, 0)
    if workers is not None:
        _check_int("workers", workers, 1)
    _check_target(out, overwrite)
    for sub in (out / "images", out / "masks"):
        try:
            sub.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MaskfaceError(sub, f"cannot create the folder ({e.strerror or e})") from None
    start = time.perf_counter()
    chunks = [range(i, min(i + _CHUNK, count)) for i in range(0, count, _CHUNK)]
    counts = np.zeros(NUM_CLASSES, np.int64)
    for chunk, chunk_counts in _run_chunks(out, size, seed, chunks, overwrite, workers or _default_workers()):
        counts += chunk_counts
        if progress:
            progress(len(chunk))
    pixel_counts = [int(c) for c in counts]
    write_json_atomic(out / "synth.json", {
        "generator": GENERATOR_VERSION, "layout": "paired", "count": count, "size": size, "seed": seed,
        "class_names": list(CLASS_NAMES), "class_pixel_counts": pixel_counts,
    }, overwrite=overwrite)
    return SynthSummary(out, count, size, seed, time.perf_counter() - start, pixel_counts)
