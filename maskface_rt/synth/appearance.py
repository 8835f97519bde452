"""Face appearance: palettes and the random look (colours, lighting, patterns, noise) of one face."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SKIN_TONES = np.array(
    [(255, 226, 208), (241, 196, 168), (224, 172, 138), (198, 140, 100), (160, 108, 72), (120, 78, 52), (82, 54, 38)],
    np.float32,
)
_HAIR_COLOURS = np.array(
    [
        (28, 24, 24),
        (60, 42, 32),
        (105, 72, 48),
        (150, 112, 75),
        (214, 184, 130),
        (160, 72, 40),
        (165, 165, 162),
        (228, 226, 220),
    ],
    np.float32,
)
_HAIR_WEIGHTS = np.array([0.27, 0.2, 0.15, 0.1, 0.12, 0.07, 0.06, 0.03])
_LIPSTICKS = np.array([(170, 30, 40), (210, 100, 130), (120, 30, 60), (190, 130, 115), (225, 110, 90)], np.float32)
_IRISES = np.array(
    [(95, 60, 35), (55, 35, 25), (125, 100, 55), (85, 120, 70), (85, 125, 170), (120, 130, 140)], np.float32
)
_FRAMES = np.array(
    [(20, 20, 22), (90, 55, 30), (200, 165, 80), (190, 190, 195), (150, 30, 40), (40, 60, 130)], np.float32
)
_METALS = np.array([(212, 175, 55), (200, 200, 205), (215, 150, 130), (236, 230, 218)], np.float32)


@dataclass(frozen=True)
class Look:
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


def sample_look(rng: np.random.Generator) -> Look:
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
    return Look(
        skin=skin,
        hair=hair,
        brow=np.minimum(0.7 * brow_base + 0.3 * 0.45 * skin, 0.65 * skin),
        lips=_jitter(rng, lips, 0.05),
        iris=_jitter(rng, _IRISES[rng.integers(len(_IRISES))], 0.08),
        cloth=cloth,
        cloth2=_hsv(rng, (0.0, 0.6), (0.2, 1.0)) if u() < 0.7 else 255 - cloth,
        pattern=str(rng.choice(["plain", "hstripes", "vstripes", "dots", "check"], p=[0.55, 0.12, 0.08, 0.12, 0.13])),
        pattern_freq=u(2.0, 6.0),
        hat=_hsv(rng, (0.0, 0.8), (0.15, 0.9)),
        frame=_FRAMES[rng.integers(len(_FRAMES))],
        metal=_METALS[rng.integers(len(_METALS))],
        bg=_hsv(rng, (0.0, 0.5), (0.3, 0.95)),
        bg2=_hsv(rng, (0.0, 0.5), (0.3, 0.95)),
        bg_kind=str(rng.choice(["flat", "vertical", "horizontal", "radial"], p=[0.3, 0.3, 0.15, 0.25])),
        light=light / np.linalg.norm(light),
        ambient=u(0.45, 0.7),
        diffuse=u(0.35, 0.7),
        blush=u(0.0, 0.6),
        sheen=u(0.1, 0.4),
        strands=u(50, 110),
        noise=u(1.0, 4.0),
    )
