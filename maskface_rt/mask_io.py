"""Reading face masks from every supported format into canonical label maps.

A mask is read from one of:

* a label map: a single-channel image (8-bit L, palette P, 16-bit) whose pixel
  values (for P, the palette indices) are labels, in the canonical order or in
  face-parsing.PyTorch's order (``label_order="faceparsing"``);
* a label map saved as RGB with three equal channels;
* a colour mask in the CelebAMask-HQ palette (RGB, or fully opaque RGBA); the
  colours name the classes, so ``label_order`` does not apply to it;
* the per-part binary masks of one CelebAMask-HQ index
  (``<index:05d>_<part>.png``), merged in canonical order, later over earlier.

Masks must be lossless: a JPEG mask is refused when read (its compression
changes labels and colours at every part edge). ``discover_masks`` still lists
``.jpg``/``.jpeg`` files so that such a folder fails loudly instead of silently
losing masks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from maskface_rt.errors import MaskfaceError
from maskface_rt.fileio import SPECIAL_FILES, what_is_there, write_bytes_atomic
from maskface_rt.image_io import MAX_SIDE, encode_png, open_image, resize_labels
from maskface_rt.labels import CLASS_NAMES, LABEL_ORDERS, NUM_CLASSES, PALETTE, to_canonical

#: Suffixes of lossless mask files.
MASK_SUFFIXES: tuple[str, ...] = (".png", ".bmp", ".tif", ".tiff", ".webp")
#: Lossy suffixes that are still listed, so that reading them explains why they are refused.
LOSSY_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg")
#: Names of the CelebAMask-HQ part files (every class but background).
PART_NAMES: tuple[str, ...] = CLASS_NAMES[1:]

_LABEL_MODES = ("L", "P", "I;16", "I;16L", "I;16B", "I")
_PART_MODES = ("L", "1", "RGB")
_PART_FILE = re.compile(r"^(?P<index>\d{5})_(?P<part>.+)\.png$")
_KNOWN_PART_FILE = re.compile(r"^(?P<index>\d{5})_(?:" + "|".join(PART_NAMES) + r")\.png$")
_MAX_LABEL = NUM_CLASSES - 1

# Packed 0xRRGGBB palette colours, sorted for np.searchsorted, and the label of each.
_PACKED_PALETTE = (PALETTE[:, 0].astype(np.uint32) << 16) | (PALETTE[:, 1].astype(np.uint32) << 8) | PALETTE[:, 2]
_PALETTE_ORDER = np.argsort(_PACKED_PALETTE).astype(np.uint8)
_SORTED_PALETTE = _PACKED_PALETTE[_PALETTE_ORDER]


@dataclass(frozen=True)
class MaskSource:
    """One mask to read: a single file, or the per-part files of one CelebAMask-HQ index."""

    name: str  # output stem, e.g. "face01" or "00012"
    path: Path  # the file, or for parts the folder holding them
    parts: tuple[Path, ...] = ()  # non-empty for CelebAMask-HQ per-part masks

    def read(self, *, size: int | None = None, label_order: str = "celebamask") -> np.ndarray:
        """The mask as a canonical uint8 label map [H, W] (size x size when ``size`` is given).

        ``label_order`` does not apply to part masks (their file names name the classes) but is still checked.
        """
        if self.parts:
            check_label_order(label_order)
            return merge_parts(self.parts, size=size)
        return read_mask(self.path, size=size, label_order=label_order)


def check_label_order(label_order: str) -> None:
    """Refuse a label order that ``labels.LABEL_ORDERS`` does not know."""
    if label_order not in LABEL_ORDERS:
        raise MaskfaceError(None, f"unknown label order {label_order!r}; valid: {', '.join(LABEL_ORDERS)}")


def read_mask(
    path: str | Path, *, size: int | None = None, label_order: str = "celebamask", max_side: int = MAX_SIDE
) -> np.ndarray:
    """Read a label map or colour mask file (at most ``max_side`` pixels a side) as a canonical uint8 label map
    [H, W]."""
    path = Path(path)
    check_label_order(label_order)
    img = _open_lossless(path, max_side)
    if img.mode in ("RGB", "RGBA"):
        rgb = _opaque_rgb(img, path)
        if _equal_channels(rgb):
            labels = to_canonical(_checked_labels(rgb[..., 0], path, label_order), label_order)
        else:
            labels = _palette_labels(rgb, path)
    elif img.mode in _LABEL_MODES:
        labels = to_canonical(_checked_labels(np.asarray(img), path, label_order), label_order)
    else:
        raise MaskfaceError(
            path,
            f"unsupported mask image mode {img.mode}; accepted: label maps in "
            f"{', '.join(_LABEL_MODES)}, or RGB / opaque RGBA in the CelebAMask-HQ palette "
            "(1-bit images only as CelebAMask-HQ part masks)",
        )
    return _resized(labels, size)


def merge_parts(parts: Sequence[Path], *, size: int | None = None) -> np.ndarray:
    """Merge the binary part masks of one CelebAMask-HQ index into a canonical uint8 label map."""
    labelled = _parse_parts(parts)
    present = [_read_part(path) for _, path in labelled]
    first, shape = labelled[0][1], present[0].shape
    labels = np.zeros(shape, dtype=np.uint8)
    for (label, path), mask in zip(labelled, present):
        if mask.shape != shape:
            raise MaskfaceError(
                path,
                f"part mask is {mask.shape[1]}x{mask.shape[0]} but {first.name} is "
                f"{shape[1]}x{shape[0]}; all parts of one index must have the same size",
            )
        labels[mask] = label
    return _resized(labels, size)


def check_input(path: Path) -> None:
    """A mask path must be a folder or a regular file (one line naming it: missing, a symlink loop, a FIFO...)."""
    found = what_is_there(path)
    if found in SPECIAL_FILES:
        raise MaskfaceError(path, f"is a {found}, not a mask file or a folder of masks")
    if found not in ("file", "folder"):
        raise MaskfaceError(path, found)


def discover_masks(root: str | Path, *, recursive: bool = False) -> list[MaskSource]:
    """List the masks under ``root`` (a folder, or one file), sorted by name.

    CelebAMask-HQ part files (``<index:05d>_<part>.png``) are grouped per folder and
    index into one source named by the index, whatever subfolder holds them (so a
    ``CelebAMask-HQ-mask-anno`` root yields ``00012``). Any other mask file is named
    by its path relative to ``root`` without the suffix, with ``/`` replaced by
    ``__`` (``sub/face01.png`` -> ``sub__face01``). Hidden files and folders are
    skipped. Two sources with the same name are an error.
    """
    root = Path(root)
    check_input(root)
    if root.is_file():
        return [MaskSource(name=root.stem, path=root)]
    singles: list[MaskSource] = []
    groups: dict[tuple[Path, str], list[Path]] = {}
    for path in _mask_files(root, recursive=recursive):
        part = _KNOWN_PART_FILE.match(path.name)
        if part:
            groups.setdefault((path.parent, part["index"]), []).append(path)
        else:
            rel = path.relative_to(root).with_suffix("").as_posix()
            singles.append(MaskSource(name=rel.replace("/", "__"), path=path))
    grouped = [
        MaskSource(name=index, path=folder, parts=tuple(p for _, p in _parse_parts(files)))
        for (folder, index), files in groups.items()
    ]
    return _unique_sorted(singles + grouped)


def mask_to_png(labels: np.ndarray) -> bytes:
    """A canonical label map [H, W] as the bytes of a single-channel (L) PNG."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 2-D integer array, got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > _MAX_LABEL):
        raise ValueError(f"labels must be in 0..{_MAX_LABEL}, got {labels.min()}..{labels.max()}")
    return encode_png(labels.astype(np.uint8))


def write_label_png(path: str | Path, labels: np.ndarray, *, overwrite: bool = False) -> None:
    """Write a canonical label map as a single-channel (L) PNG, atomically."""
    write_bytes_atomic(path, mask_to_png(labels), overwrite=overwrite)


def _open_lossless(path: Path, max_side: int = MAX_SIDE) -> Image.Image:
    """Open a mask image, refusing JPEG whatever the file's suffix."""
    img = open_image(path, max_side=max_side)
    if img.format == "JPEG":
        raise MaskfaceError(
            path, "JPEG is lossy: its compression changes labels and colours at part edges; save masks as PNG"
        )
    return img


def _opaque_rgb(img: Image.Image, path: Path) -> np.ndarray:
    """RGB pixels of an RGB or fully opaque RGBA image [H, W, 3]."""
    arr = np.asarray(img)
    if img.mode == "RGBA":
        translucent = int(np.count_nonzero(arr[..., 3] != 255))
        if translucent:
            raise MaskfaceError(
                path,
                f"RGBA mask has {translucent} pixels that are not fully opaque; "
                "a colour mask needs exact, opaque CelebAMask-HQ palette colours",
            )
        arr = arr[..., :3]
    return arr


def _equal_channels(rgb: np.ndarray) -> bool:
    """Whether an RGB image is grey everywhere (a label map saved as RGB)."""
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))


def _checked_labels(values: np.ndarray, path: Path, label_order: str) -> np.ndarray:
    """Raw label values as uint8, refusing values outside 0..18 (with a hint for binary masks)."""
    if values.size == 0:
        return values.astype(np.uint8)
    low, high = int(values.min()), int(values.max())
    if high == 255 and low >= 0 and not np.any((values != 0) & (values != 255)):
        raise MaskfaceError(
            path,
            "values 0/255 look like a binary part mask, not a label map of classes "
            f"0..{_MAX_LABEL}; pass the folder of CelebAMask-HQ part files "
            "(<index:05d>_<part>.png) instead",
        )
    if low < 0:
        raise MaskfaceError(
            path,
            f"smallest label value is {low} ({int(np.count_nonzero(values < 0))} pixels "
            f"below 0); labels must be 0..{_MAX_LABEL}",
        )
    if high > _MAX_LABEL:
        raise MaskfaceError(
            path,
            f"largest label value is {high} ({int(np.count_nonzero(values > _MAX_LABEL))} "
            f"pixels above {_MAX_LABEL}); {label_order} labels must be 0..{_MAX_LABEL}",
        )
    return values.astype(np.uint8)


#: Pixels looked up per step of a colour mask: the lookup's temporaries (~25 bytes a pixel) stay
#: within ~25 MB whatever the mask's size, so decoding costs the image plus one byte a pixel.
_PALETTE_CHUNK = 1 << 20


def _palette_labels(rgb: np.ndarray, path: Path) -> np.ndarray:
    """Canonical labels of an RGB colour mask, by exact lookup in the CelebAMask-HQ palette."""
    labels = np.empty(rgb.shape[:2], np.uint8)
    rows = max(1, _PALETTE_CHUNK // max(1, rgb.shape[1]))
    first, count = None, 0
    for top in range(0, rgb.shape[0], rows):
        block = rgb[top : top + rows]
        packed = (block[..., 0].astype(np.uint32) << 16) | (block[..., 1].astype(np.uint32) << 8) | block[..., 2]
        pos = np.minimum(np.searchsorted(_SORTED_PALETTE, packed), len(_SORTED_PALETTE) - 1)
        unknown = _SORTED_PALETTE[pos] != packed
        if unknown.any():
            count += int(np.count_nonzero(unknown))
            if first is None:
                y, x = (int(v) for v in np.argwhere(unknown)[0])
                first = (x, top + y)
        labels[top : top + rows] = _PALETTE_ORDER[pos]
    if first is not None:
        x, y = first
        colour = tuple(int(c) for c in rgb[y, x])
        raise MaskfaceError(
            path,
            f"colour {colour} at (x={x}, y={y}) is not in the CelebAMask-HQ palette "
            f"({count} pixels have unknown colours)",
        )
    return labels


def _parse_parts(parts: Sequence[Path]) -> list[tuple[int, Path]]:
    """(label, path) of each part file of one index, in canonical order."""
    if not parts:
        raise MaskfaceError(None, "no part masks to merge")
    labelled: dict[int, Path] = {}
    index = None
    for path in map(Path, parts):
        match = _PART_FILE.match(path.name)
        if not match or match["part"] not in PART_NAMES:
            raise MaskfaceError(
                path,
                f"not a CelebAMask-HQ part mask name <index:05d>_<part>.png with part one of {', '.join(PART_NAMES)}",
            )
        if index is None:
            index = match["index"]
        elif match["index"] != index:
            raise MaskfaceError(path, f"part of index {match['index']} among parts of index {index}")
        label = CLASS_NAMES.index(match["part"])
        if label in labelled:
            raise MaskfaceError(path, f"part {match['part']} is given twice (also {labelled[label]})")
        labelled[label] = path
    return sorted(labelled.items())


def _read_part(path: Path) -> np.ndarray:
    """A binary part mask as a bool array [H, W] (True where the part is present)."""
    img = _open_lossless(path)
    if img.mode not in _PART_MODES:
        raise MaskfaceError(
            path,
            f"unsupported part mask mode {img.mode}; accepted: binary masks in "
            f"{', '.join(_PART_MODES)} (RGB with equal channels)",
        )
    arr = np.asarray(img)
    if img.mode == "1":
        return arr
    if img.mode == "RGB":
        if not _equal_channels(arr):
            raise MaskfaceError(path, "RGB part mask has differing channels; expected a grey binary (0/255) mask")
        arr = arr[..., 0]
    return arr > 127


def _resized(labels: np.ndarray, size: int | None) -> np.ndarray:
    """The label map resized to size x size with NEAREST, or unchanged when size is None."""
    if size is None:
        return labels
    if size < 1:
        raise MaskfaceError(None, f"mask size must be positive, got {size}")
    return resize_labels(labels, size)


def _mask_files(root: Path, *, recursive: bool) -> Iterable[Path]:
    """Non-hidden files with a mask (or lossy image) suffix in ``root``, optionally in its subfolders."""
    suffixes = MASK_SUFFIXES + LOSSY_SUFFIXES
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in suffixes:
                yield Path(folder) / name


def _unique_sorted(sources: list[MaskSource]) -> list[MaskSource]:
    """Sources sorted by name, refusing two sources with the same name."""
    sources = sorted(sources, key=lambda s: (s.name, str(s.path)))
    for before, after in zip(sources, sources[1:]):
        if before.name == after.name:
            raise MaskfaceError(
                after.path, f"gives the same mask name {after.name!r} as {before.path}; rename one of them"
            )
    return sources
