"""The 19 CelebAMask-HQ face classes: canonical order, colour palette, and other orders."""

from __future__ import annotations

import numpy as np

#: Canonical CelebAMask-HQ order; the label value is the index. Merging per-part
#: masks writes parts in this order, later ones over earlier ones.
CLASS_NAMES: tuple[str, ...] = (
    "background",
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "l_ear",
    "r_ear",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
    "hat",
    "ear_r",
    "neck_l",
    "neck",
    "cloth",
)
NUM_CLASSES = len(CLASS_NAMES)
#: A class's label value by its name.
CLASS_INDEX = {name: k for k, name in enumerate(CLASS_NAMES)}

#: RGB colour of each class in CelebAMask-HQ's colour masks (index = label).
PALETTE = np.array(
    [
        (0, 0, 0),
        (204, 0, 0),
        (76, 153, 0),
        (204, 204, 0),
        (51, 51, 255),
        (204, 0, 204),
        (0, 255, 255),
        (255, 204, 204),
        (102, 51, 0),
        (255, 0, 0),
        (102, 204, 0),
        (255, 255, 0),
        (0, 0, 153),
        (0, 0, 204),
        (255, 51, 153),
        (0, 204, 204),
        (0, 51, 0),
        (255, 153, 51),
        (0, 204, 0),
    ],
    dtype=np.uint8,
)

#: face-parsing.PyTorch (BiSeNet) order, common for masks found in the wild.
FACEPARSING_NAMES: tuple[str, ...] = (
    "background",
    "skin",
    "l_brow",
    "r_brow",
    "l_eye",
    "r_eye",
    "eye_g",
    "l_ear",
    "r_ear",
    "ear_r",
    "nose",
    "mouth",
    "u_lip",
    "l_lip",
    "neck",
    "neck_l",
    "cloth",
    "hair",
    "hat",
)

#: ``FACEPARSING_TO_CELEBAMASK[fp_label]`` is the canonical label of that class.
FACEPARSING_TO_CELEBAMASK = np.array([CLASS_NAMES.index(n) for n in FACEPARSING_NAMES], dtype=np.uint8)
#: The inverse remap, canonical -> face-parsing.
CELEBAMASK_TO_FACEPARSING = np.argsort(FACEPARSING_TO_CELEBAMASK).astype(np.uint8)

#: Label orders a mask file may be written in.
LABEL_ORDERS: dict[str, np.ndarray] = {
    "celebamask": np.arange(NUM_CLASSES, dtype=np.uint8),
    "faceparsing": FACEPARSING_TO_CELEBAMASK,
}

#: Label permutation that a horizontal flip of the face implies (left <-> right parts).
HFLIP_SWAP = np.arange(NUM_CLASSES, dtype=np.uint8)
for _left, _right in (("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear")):
    _a, _b = CLASS_NAMES.index(_left), CLASS_NAMES.index(_right)
    HFLIP_SWAP[_a], HFLIP_SWAP[_b] = _b, _a


def to_canonical(labels: np.ndarray, order: str) -> np.ndarray:
    """Map a label map written in ``order`` to the canonical order."""
    try:
        lut = LABEL_ORDERS[order]
    except KeyError:
        raise ValueError(f"unknown label order {order!r}; valid: {', '.join(LABEL_ORDERS)}") from None
    return lut[labels]


def colorize(labels: np.ndarray) -> np.ndarray:
    """Canonical label map [H, W] -> RGB image [H, W, 3] in the CelebAMask-HQ palette."""
    return PALETTE[labels]
