"""Shading: the RGB colour of every pixel of each class, from a face's geometry and look."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from maskface_rt.labels import CLASS_INDEX, NUM_CLASSES
from maskface_rt.synth.appearance import Look
from maskface_rt.synth.geometry import Geometry

# Colours of N pixels are [3, N] arrays: channel-first keeps numpy's inner loops long.


def _by(colour: np.ndarray, factor: np.ndarray | float) -> np.ndarray:
    """[3, N] colours: one RGB colour scaled per pixel."""
    return colour[:, None] * np.asarray(factor, np.float32).reshape(1, -1)


def _mix(a: np.ndarray, b: np.ndarray, choose_b: np.ndarray) -> np.ndarray:
    return np.where(choose_b, b[:, None], a[:, None])


class Shader:
    """Colours of the pixels of one class, given their image coordinates."""

    def __init__(self, geo: Geometry, look: Look) -> None:
        self.geo, self.look = geo, look
        self.by_class: dict[int, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
            CLASS_INDEX["skin"]: self.skin,
            CLASS_INDEX["nose"]: self.nose,
            CLASS_INDEX["eye_g"]: self.glasses,
            CLASS_INDEX["l_eye"]: lambda x, y: self.eye(0, x, y),
            CLASS_INDEX["r_eye"]: lambda x, y: self.eye(1, x, y),
            CLASS_INDEX["l_brow"]: self.brow,
            CLASS_INDEX["r_brow"]: self.brow,
            CLASS_INDEX["l_ear"]: lambda x, y: self.ear(0, x, y),
            CLASS_INDEX["r_ear"]: lambda x, y: self.ear(1, x, y),
            CLASS_INDEX["mouth"]: self.mouth,
            CLASS_INDEX["u_lip"]: lambda x, y: self.lip(0, x, y),
            CLASS_INDEX["l_lip"]: lambda x, y: self.lip(1, x, y),
            CLASS_INDEX["hair"]: self.hair,
            CLASS_INDEX["hat"]: self.hat,
            CLASS_INDEX["ear_r"]: self.jewel,
            CLASS_INDEX["neck_l"]: self.jewel,
            CLASS_INDEX["neck"]: self.neck,
            CLASS_INDEX["cloth"]: self.cloth,
        }

    def head(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.geo.face.frame.local(x, y)

    def lit(self, nx: np.ndarray | float, ny: np.ndarray | float, nz: np.ndarray | None = None) -> np.ndarray:
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
        t = {
            "flat": np.zeros(x.shape, np.float32),
            "vertical": y,
            "horizontal": x,
            "radial": np.clip(np.hypot(x - 0.5, y - 0.45) / 0.7, 0, 1),
        }[self.look.bg_kind]
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
        assert h is not None  # hair pixels come from the face's hair
        dx, dy = X / h.rx, (Y - h.cy) / h.ry
        angle = np.arctan2(X - h.parting, Y - h.cy + 0.6 * h.ry) * self.look.strands + 0.8 * np.sin(3 * X + 2 * Y)
        strands = 0.84 + 0.08 * np.sin(angle) + 0.08 * np.sin(1.73 * angle + 1.0)
        band = np.exp(-(((np.hypot(dx, dy) - 0.8) / 0.12) ** 2)) * np.clip(-2 * dy, 0, 1)
        shade = self.lit(np.clip(dx, -1, 1) * 0.9, np.clip(dy, -1, 1) * 0.6) * strands
        return _by(self.look.hair, shade) + band * self.look.sheen * 90

    def hat(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, Y = self.head(x, y)
        h = self.geo.hat
        assert h is not None  # hat pixels come from the face's hat
        shade = self.lit(np.clip(X / h.rx, -1, 1), np.clip((Y - h.line) / (h.line - h.top), -1, 1))
        ribs = 0.9 + 0.1 * np.sin(X * 40) if h.brim_w == 0.0 else np.where(Y > h.line - 0.5 * h.brim_h, 0.8, 1.0)
        return _by(self.look.hat, shade * ribs)

    def glasses(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, Y = self.head(x, y)
        g = self.geo.glasses
        assert g is not None  # glasses pixels come from the face's glasses
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
        shade = self.lit(
            np.clip(X / b.shoulder_w, -1, 1) * 0.8,
            np.clip((Y - b.shoulder_y - b.shoulder_h) / b.shoulder_h, -1, 0) * 0.8,
        )
        fx, fy = X * self.look.pattern_freq, Y * self.look.pattern_freq
        second = {
            "plain": lambda: np.zeros(X.shape, bool),
            "hstripes": lambda: np.sin(fy * 2 * np.pi) > 0.3,
            "vstripes": lambda: np.sin(fx * 2 * np.pi) > 0.3,
            "dots": lambda: (fx % 1 - 0.5) ** 2 + (fy % 1 - 0.5) ** 2 < 0.05,
            "check": lambda: (np.floor(fx) + np.floor(fy)) % 2 == 1,
        }[self.look.pattern]()
        return _mix(self.look.cloth, self.look.cloth2, second) * shade


def shade_labels(labels: np.ndarray, shader: Shader) -> np.ndarray:
    """[n, n, 3] uint8 RGB: the background, then each class's pixels coloured by that class's shader."""
    n = labels.shape[0]
    centres = (np.arange(n, dtype=np.float32) + 0.5) / n
    rgb = shader.background(centres[None, :], centres[:, None]).reshape(3, n * n)
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    ends = np.cumsum(np.bincount(flat, minlength=NUM_CLASSES))
    for k in range(1, NUM_CLASSES):
        idx = order[ends[k - 1] : ends[k]]
        if idx.size:
            rgb[:, idx] = shader.by_class[k](centres[idx % n], centres[idx // n])
    return np.clip(rgb, 0, 255).astype(np.uint8).reshape(3, n, n).transpose(1, 2, 0)
