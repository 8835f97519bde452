"""Face geometry: the shapes of one face (oval, features, hair, accessories, body), how they are drawn at random,
and the label map they paint, back to front, at the pixel centres of a grid.

Shapes are tested in normalised image coordinates, in a frame's local units.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np

from maskface_rt.labels import CLASS_INDEX

Box = tuple[float, float, float, float]  # x0, x1, y0, y1 in a frame's local units
Mask = Callable[[np.ndarray, np.ndarray], np.ndarray]
T = TypeVar("T")


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
        return (
            self.x - self.w,
            self.x + self.w,
            self.y - max(self.smile, 0.0) - self.gap / 2 - self.upper,
            self.y + self.gap / 2 + self.lower,
        )


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
        line = (
            self.hairline
            + self.hairline_curve * X * X
            + self.parting * X
            + self.fringe * np.abs(np.sin(9.0 * X + self.phase))
        )
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
class Geometry:
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
            yield CLASS_INDEX["hair"], head, self.hair.box, self.hair.back
        yield CLASS_INDEX["neck"], body, self.body.box, self.body.neck
        yield CLASS_INDEX["cloth"], body, self.body.box, self.body.cloth
        if self.necklace:
            yield CLASS_INDEX["neck_l"], body, self.necklace.box, self.necklace.mask
        yield CLASS_INDEX["l_ear"], head, self.ears[0].box, self.ears[0].mask
        yield CLASS_INDEX["r_ear"], head, self.ears[1].box, self.ears[1].mask
        yield CLASS_INDEX["skin"], head, self.face.box, self.face.mask
        yield CLASS_INDEX["nose"], head, self.nose.box, self.nose.mask
        eyes_and_brows: tuple[_Eye | _Brow, ...] = self.eyes + self.brows
        for name, part in zip(("l_eye", "r_eye", "l_brow", "r_brow"), eyes_and_brows):
            yield CLASS_INDEX[name], head, part.box, part.mask
        for k, name in enumerate(("u_lip", "mouth", "l_lip")):
            yield CLASS_INDEX[name], head, self.mouth.box, self.mouth.part(k)
        if self.glasses:
            yield CLASS_INDEX["eye_g"], head, self.glasses.box, self.glasses.mask
        if self.hair:
            yield CLASS_INDEX["hair"], head, self.hair.box, self.hair.front
        if self.earrings:
            for ring in self.earrings:
                yield CLASS_INDEX["ear_r"], head, ring.box, ring.mask
        if self.hat:
            yield CLASS_INDEX["hat"], head, self.hat.box, self.hat.mask


def _pair(items: Iterable[T]) -> tuple[T, T]:
    """The two of a left-right pair, image left first."""
    left, right = items
    return left, right


def sample_geometry(rng: np.random.Generator) -> Geometry:
    u = rng.uniform
    angle = math.radians(float(np.clip(rng.normal(0.0, 4.0), -9.0, 9.0)))
    frame = _Frame(0.5 + u(-0.035, 0.035), 0.48 + u(-0.03, 0.03), u(0.205, 0.255), angle)
    face = _Face(frame, ar=u(1.22, 1.42), jaw=u(0.15, 0.35), mx=u(-0.12, 0.12), my=u(-0.05, 0.05))
    eyes = _sample_eyes(rng, face)
    lift, width, arch, thick = u(0.2, 0.3), u(1.15, 1.4), u(0.02, 0.07), u(0.05, 0.09)
    brows = _pair(
        _Brow(e.x + side * 0.03, e.y - lift, e.w * width, arch, thick, side) for e, side in zip(eyes, (-1, 1))
    )
    nose = _Nose(face.mx * 1.2, eyes[0].y + 0.02, face.my + u(0.28, 0.4), u(0.15, 0.22), u(0.07, 0.1))
    gap = 0.0 if u() < 0.6 else u(0.03, 0.16)
    mouth = _Mouth(
        face.mx * 1.1,
        nose.tip + u(0.22, 0.32),
        u(0.3, 0.42),
        u(-0.03, 0.09),
        gap,
        u(0.06, 0.1),
        u(0.08, 0.13),
        u(0.1, 0.4),
    )
    ear_y, ear_rx, ear_ry = face.my + u(-0.15, 0.05), u(0.14, 0.2), u(0.28, 0.36)
    # the ear on the side the face turns away from looks narrower
    ears = _pair(
        _Ellipse(side * u(0.93, 0.99) + face.mx * 0.3, ear_y, ear_rx * (1 - side * 1.5 * face.mx), ear_ry, lobe=0.3)
        for side in (-1, 1)
    )
    body = _sample_body(rng, face)
    hair = None if u() < 0.06 else _sample_hair(rng, face)
    return Geometry(
        face=face,
        eyes=eyes,
        brows=brows,
        nose=nose,
        mouth=mouth,
        ears=ears,
        body=body,
        hair=hair,
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
    return _pair(
        _Eye(face.mx + side * spacing, y, w * (1 - side * face.mx), up, low, -side * tilt, gaze) for side in (-1, 1)
    )


def _sample_hair(rng: np.random.Generator, face: _Face) -> _Hair:
    u = rng.uniform
    cy = u(-0.35, -0.15)
    ry = cy + face.ar + u(0.05, 0.4)  # the top of the hair is above the top of the face
    curly = u() < 0.2
    curl, waves = (u(0.03, 0.08), int(rng.integers(9, 18))) if curly else (u(0.0, 0.015), int(rng.integers(4, 8)))
    rx = u(1.06, 1.3) + (u(0.0, 0.3) if curly else 0.0)
    bangs = u() < 0.3
    hairline, fringe = (u(-0.55, -0.42), u(0.03, 0.08)) if bangs else (u(-1.0, -0.75), u(0.0, 0.02))
    style = partial(
        _Hair,
        cy=cy,
        rx=rx,
        ry=ry,
        curl=curl,
        waves=waves,
        phase=u(0, 2 * math.pi),
        hairline=hairline,
        hairline_curve=u(0.2, 0.5),
        parting=u(-0.15, 0.15),
        fringe=fringe,
    )
    if u() < 0.5:  # long hair, sometimes falling in front of the shoulders
        length = face.ar + u(0.3, 1.8)
        return style(
            cut=cy + ry,
            length=length,
            flare=u(0.0, 0.5),
            frame_x=u(0.78, 0.92),
            frame_bottom=length if u() < 0.4 else u(0.2, face.ar),
        )
    return style(cut=u(-0.35, 0.25), length=0.0, flare=0.0, frame_x=u(0.88, 0.97), frame_bottom=u(-0.6, -0.2))


def _sample_hat(rng: np.random.Generator, face: _Face, hair: _Hair | None) -> _Hat:
    u = rng.uniform
    rx, top = u(1.05, 1.25), -face.ar - u(0.1, 0.4)
    if hair:  # cover the top of the hair
        rx = max(rx, hair.rx * (1 + hair.curl) + 0.03)
        top = min(top, hair.cy - hair.ry * (1 + hair.curl) - u(0.03, 0.2))
    brim = u() < 0.5
    return _Hat(
        line=face.my + u(-1.0, -0.72), top=top, rx=rx, brim_w=rx * u(1.2, 1.6) if brim else 0.0, brim_h=u(0.06, 0.12)
    )


def _sample_glasses(rng: np.random.Generator, eyes: tuple[_Eye, _Eye]) -> _Glasses:
    u = rng.uniform
    rx = max(e.w for e in eyes) * u(1.25, 1.45)
    return _Glasses(
        xs=(eyes[0].x, eyes[1].x),
        y=eyes[0].y + u(-0.02, 0.04),
        rx=rx,
        ry=rx * u(0.65, 0.85),
        power=float(rng.choice([2.0, 2.5, 4.0])),
        thick=u(0.05, 0.1),
        sun=bool(u() < 0.3),
    )


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
    return _Body(
        _Frame((f.cx + chin_x) / 2, f.cy, f.unit),
        neck_w=neck_w,
        shoulder_y=face.ar + u(0.25, 0.55),
        shoulder_w=u(2.2, 2.9),
        shoulder_h=u(0.5, 0.9),
        neckline=neckline,
        neckline_w=neck_w * u(1.1, 1.3) if crew else u(0.7, 1.3),
        neckline_depth=u(0.1, 0.25) if crew else u(0.3, 1.1),
        chin=face.ar,
    )


def _sample_necklace(rng: np.random.Generator, body: _Body) -> _Necklace:
    u = rng.uniform
    return _Necklace(
        w=body.neck_w * u(0.9, 1.1),
        y=body.shoulder_y - u(0.1, 0.3),
        depth=u(0.15, 0.7),
        thick=u(0.025, 0.045),
        pendant=u(0.06, 0.12) if u() < 0.5 else 0.0,
    )


def paint(geo: Geometry, n: int) -> np.ndarray:
    """The label map sampled at the pixel centres of an n x n grid."""
    labels = np.zeros((n, n), np.uint8)
    centres = (np.arange(n, dtype=np.float32) + 0.5) / n
    for k, frame, box, mask in geo.layers():
        rows, cols = frame.window(box, n)
        X, Y = frame.local(centres[cols][None, :], centres[rows][:, None])
        labels[rows, cols][mask(X, Y)] = k
    return labels
