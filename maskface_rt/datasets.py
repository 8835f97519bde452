"""Paired (photo, mask) training data as numpy arrays; no torch here.

Two layouts are recognised by ``open_dataset``:

* paired: ``root/images/`` and ``root/masks/`` whose files match by stem (masks are
  found with ``mask_io.discover_masks``, so a folder of CelebAMask-HQ part files
  pairs with images named by index, e.g. ``00012.jpg``);
* CelebAMask-HQ: ``root/CelebA-HQ-img/<index>.jpg`` with per-part masks in
  ``root/CelebAMask-HQ-mask-anno/<index // 2000>/``; the official train/val/test
  split comes from ``root/CelebA-HQ-to-CelebA-mapping.txt``.

Both are strict: a mask without its image, or an image without its mask, is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskface_rt.errors import MaskfaceError
from maskface_rt.image_io import read_rgb, resize_labels, resize_rgb
from maskface_rt.mask_io import MaskSource, check_label_order, discover_masks

#: Suffixes of photos in the paired layout.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
SPLITS: tuple[str, ...] = ("all", "train", "val", "test")

CELEBA_IMAGES = "CelebA-HQ-img"
CELEBA_MASKS = "CelebAMask-HQ-mask-anno"
CELEBA_MAPPING = "CelebA-HQ-to-CelebA-mapping.txt"
#: CelebA's official split: original index below 162771 is train, below 182638 val, else test.
_CELEBA_TRAIN_END = 162771
_CELEBA_VAL_END = 182638
_CELEBA_IMAGE = re.compile(r"^(0|[1-9]\d*)\.jpg$")


@dataclass(frozen=True)
class Pair:
    """One training sample: a photo and its mask."""

    name: str
    image: Path
    mask: MaskSource


class PairedDataset:
    """(photo, label map) pairs read as uint8 arrays of ``size`` x ``size``."""

    def __init__(self, pairs: list[Pair], *, size: int, label_order: str = "celebamask") -> None:
        if size < 1:
            raise MaskfaceError(None, f"dataset image size must be positive, got {size}")
        check_label_order(label_order)
        self.pairs = list(pairs)
        self.size = size
        self.label_order = label_order

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(RGB uint8 [S, S, 3], canonical labels uint8 [S, S]) of pair ``i``."""
        pair = self.pairs[i]
        rgb = read_rgb(pair.image)
        labels = pair.mask.read(label_order=self.label_order)
        _check_same_aspect(pair, rgb.shape[:2], labels.shape)
        return resize_rgb(rgb, self.size), resize_labels(labels, self.size)


def resolve_split(data: Path, split: str) -> str:
    """'auto': the official train split where CelebAMask-HQ's mapping file gives it, else everything."""
    if split != "auto":
        return split
    return "train" if (data / CELEBA_MAPPING).is_file() else "all"


def open_dataset(root: str | Path, *, size: int, split: str = "all", label_order: str = "celebamask") -> PairedDataset:
    """The paired or CelebAMask-HQ dataset under ``root`` (layout detected), restricted to ``split``."""
    root = Path(root)
    if not root.is_dir():
        raise MaskfaceError(root, "no such folder" if not root.exists() else "not a folder")
    if split not in SPLITS:
        raise MaskfaceError(None, f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if (root / CELEBA_IMAGES).is_dir() and (root / CELEBA_MASKS).is_dir():
        pairs = _celebamask_pairs(root, split)
    elif (root / "images").is_dir() and (root / "masks").is_dir():
        pairs = _paired_folder_pairs(root, split)
    else:
        raise MaskfaceError(
            root,
            f"not a dataset folder: expected images/ and masks/ (paired layout) or "
            f"{CELEBA_IMAGES}/ and {CELEBA_MASKS}/ (CelebAMask-HQ layout)",
        )
    if not pairs:
        raise MaskfaceError(root, "no image/mask pairs found" + ("" if split == "all" else f" in split {split!r}"))
    return PairedDataset(pairs, size=size, label_order=label_order)


def _check_same_aspect(pair: Pair, image_hw: tuple[int, ...], mask_hw: tuple[int, ...]) -> None:
    """Refuse a photo and mask whose aspect ratios differ by more than one pixel of rounding."""
    (ih, iw), (mh, mw) = image_hw[:2], mask_hw[:2]
    # |ih/iw - mh/mw| <= 1/min(iw, mw), multiplied through by iw * mw.
    if abs(ih * mw - mh * iw) > max(iw, mw):
        raise MaskfaceError(
            pair.image, f"photo is {iw}x{ih} but its mask {pair.mask.path} is {mw}x{mh}: their aspect ratios differ"
        )


def _paired_folder_pairs(root: Path, split: str) -> list[Pair]:
    """Pairs of ``root/images`` and ``root/masks`` matched by stem."""
    if split != "all":
        raise MaskfaceError(
            root,
            f"split {split!r} needs the CelebAMask-HQ mapping file {CELEBA_MAPPING}; "
            "the images/ + masks/ layout only has split 'all'",
        )
    images = _images_by_stem(root / "images")
    masks = {m.name: m for m in discover_masks(root / "masks")}
    return _match(images, masks, root / "images")


def _images_by_stem(folder: Path) -> dict[str, Path]:
    """Non-hidden photo files of ``folder`` by stem, refusing two photos with the same stem."""
    images: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        if path.stem in images:
            raise MaskfaceError(path, f"has the same stem as {images[path.stem]}; keep one photo per mask")
        images[path.stem] = path
    return images


def _celebamask_pairs(root: Path, split: str) -> list[Pair]:
    """CelebAMask-HQ pairs by index, restricted to ``split`` with the official mapping file."""
    splits = None if split == "all" else _read_celeba_splits(root / CELEBA_MAPPING, split)
    pairs = _match(_celeba_images(root / CELEBA_IMAGES), _celeba_masks(root / CELEBA_MASKS), root / CELEBA_IMAGES)
    if splits is None:
        return pairs
    for pair in pairs:
        if int(pair.name) not in splits:
            raise MaskfaceError(root / CELEBA_MAPPING, f"has no row for index {int(pair.name)} ({pair.image})")
    return [pair for pair in pairs if splits[int(pair.name)] == split]


def _celeba_images(folder: Path) -> dict[str, Path]:
    """CelebA-HQ photos ``<index>.jpg`` by zero-padded index (``00012``), the name of their part masks."""
    images = {}
    for path in sorted(folder.iterdir()):
        match = _CELEBA_IMAGE.match(path.name)
        if match and path.is_file():
            images[f"{int(match[1]):05d}"] = path
    return images


def _celeba_masks(folder: Path) -> dict[str, MaskSource]:
    """CelebAMask-HQ part-mask sources by index, refusing any other mask file in the tree."""
    masks = {}
    for source in discover_masks(folder, recursive=True):
        if not source.parts:
            raise MaskfaceError(source.path, "not a CelebAMask-HQ part mask (<index:05d>_<part>.png)")
        masks[source.name] = source
    return masks


def _match(images: dict[str, Path], masks: dict[str, MaskSource], image_dir: Path) -> list[Pair]:
    """Pairs of the photo and mask with the same name, refusing any unmatched one."""
    lone_masks = sorted(set(masks) - set(images))
    lone_images = sorted(set(images) - set(masks))
    counts = f"{len(lone_masks)} masks without a photo, {len(lone_images)} photos without a mask"
    if lone_masks:
        mask = masks[lone_masks[0]]
        where = mask.parts[0] if mask.parts else mask.path
        raise MaskfaceError(where, f"mask {mask.name!r} has no photo in {image_dir} ({counts})")
    if lone_images:
        raise MaskfaceError(images[lone_images[0]], f"photo has no mask named {lone_images[0]!r} ({counts})")
    return [Pair(name=name, image=images[name], mask=masks[name]) for name in sorted(images)]


def _read_celeba_splits(mapping: Path, split: str) -> dict[int, str]:
    """CelebA-HQ index -> official split, from ``CelebA-HQ-to-CelebA-mapping.txt``."""
    if not mapping.is_file():
        raise MaskfaceError(
            mapping, f"split {split!r} needs this CelebAMask-HQ mapping file; add it or use split 'all'"
        )
    splits: dict[int, str] = {}
    for lineno, line in enumerate(mapping.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        fields = line.split()
        if not fields or (lineno == 1 and fields[0] == "idx"):
            continue
        if len(fields) != 3 or not (fields[0].isdigit() and fields[1].isdigit()):
            raise MaskfaceError(f"{mapping}:{lineno}", f"expected 'idx orig_idx orig_file', got {line.strip()!r}")
        splits[int(fields[0])] = _celeba_split(int(fields[1]))
    return splits


def _celeba_split(orig_idx: int) -> str:
    """CelebA's official split of an original CelebA index."""
    if orig_idx < _CELEBA_TRAIN_END:
        return "train"
    return "val" if orig_idx < _CELEBA_VAL_END else "test"
