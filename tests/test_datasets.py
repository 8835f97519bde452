"""datasets: the paired and CelebAMask-HQ layouts, splits, strict pairing and resizing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskface_rt.datasets import CELEBA_IMAGES, CELEBA_MAPPING, CELEBA_MASKS, PairedDataset, open_dataset
from maskface_rt.errors import MaskfaceError
from maskface_rt.labels import CELEBAMASK_TO_FACEPARSING, CLASS_NAMES, NUM_CLASSES

#: CelebA-HQ index -> original CelebA index: 0 train, 1 and 2001 val (1 on the boundary), 2002 test.
CELEBA_ORIG = {0: 100, 1: 162771, 2001: 182637, 2002: 182638}


def make_labels(h: int, w: int, seed: int) -> np.ndarray:
    """A label map of 4x4 blocks of random classes."""
    blocks = np.random.default_rng(seed).integers(0, NUM_CLASSES, (h // 4, w // 4))
    return np.kron(blocks, np.ones((4, 4), dtype=int)).astype(np.uint8)


def make_photo(h: int, w: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def write_parts(folder: Path, index: int, labels: np.ndarray) -> None:
    """CelebAMask-HQ part files (part L covers labels >= L) that merge back to ``labels``."""
    folder.mkdir(parents=True, exist_ok=True)
    for label, part in enumerate(CLASS_NAMES[1:], start=1):
        if (labels >= label).any():
            Image.fromarray(np.where(labels >= label, 255, 0).astype(np.uint8)).save(folder / f"{index:05d}_{part}.png")


def nearest(labels: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(labels).resize((size, size), Image.Resampling.NEAREST))


@pytest.fixture
def paired(tmp_path: Path) -> Path:
    """images/{a.png, b.jpg} with masks/{a.png, b.png}, masks at half the photo resolution."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for seed, (stem, suffix) in enumerate([("a", ".png"), ("b", ".jpg")]):
        make_photo(64, 64, seed).save(tmp_path / "images" / f"{stem}{suffix}")
        Image.fromarray(make_labels(32, 32, seed)).save(tmp_path / "masks" / f"{stem}.png")
    return tmp_path


@pytest.fixture
def celeba(tmp_path: Path) -> Path:
    """A CelebAMask-HQ tree with indices 0, 1 (folder 0) and 2001, 2002 (folder 1), and the mapping file."""
    (tmp_path / CELEBA_IMAGES).mkdir()
    for index in CELEBA_ORIG:
        make_photo(64, 64, index).save(tmp_path / CELEBA_IMAGES / f"{index}.jpg")
        write_parts(tmp_path / CELEBA_MASKS / str(index // 2000), index, make_labels(32, 32, index))
    rows = [f"{idx} {orig} {orig + 1:06d}.jpg" for idx, orig in CELEBA_ORIG.items()]
    (tmp_path / CELEBA_MAPPING).write_text("idx orig_idx orig_file\n" + "\n".join(rows) + "\n")
    return tmp_path


def expect_error(fn, where: Path | None, *fragments: str) -> None:
    with pytest.raises(MaskfaceError) as info:
        fn()
    message = str(info.value)
    if where is not None:
        assert message.startswith(f"{where}: "), message
    for fragment in fragments:
        assert fragment in message, message


# --- paired layout ---


def test_paired_layout(paired: Path) -> None:
    ds = open_dataset(paired, size=48)
    assert isinstance(ds, PairedDataset) and len(ds) == 2
    assert [p.name for p in ds.pairs] == ["a", "b"]
    assert ds.pairs[1].image == paired / "images" / "b.jpg"
    rgb, labels = ds[0]
    assert rgb.shape == (48, 48, 3) and rgb.dtype == np.uint8
    assert labels.shape == (48, 48) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, nearest(make_labels(32, 32, 0), 48))
    with pytest.raises(IndexError):
        ds[2]


def test_paired_mask_without_photo(paired: Path) -> None:
    Image.fromarray(make_labels(32, 32, 5)).save(paired / "masks" / "c.png")
    Image.fromarray(make_labels(32, 32, 6)).save(paired / "masks" / "d.png")
    expect_error(
        lambda: open_dataset(paired, size=32),
        paired / "masks" / "c.png",
        "no photo",
        "2 masks without a photo, 0 photos without a mask",
    )


def test_paired_photo_without_mask(paired: Path) -> None:
    make_photo(64, 64, 9).save(paired / "images" / "z.webp")
    expect_error(
        lambda: open_dataset(paired, size=32),
        paired / "images" / "z.webp",
        "no mask named 'z'",
        "0 masks without a photo, 1 photos without a mask",
    )


def test_paired_ignores_hidden_and_non_images(paired: Path) -> None:
    (paired / "images" / "notes.txt").write_text("x")
    make_photo(8, 8, 0).save(paired / "images" / ".thumb.png")
    assert len(open_dataset(paired, size=32)) == 2


def test_paired_two_photos_one_stem(paired: Path) -> None:
    make_photo(64, 64, 3).save(paired / "images" / "a.jpg")
    expect_error(lambda: open_dataset(paired, size=32), paired / "images" / "a.png", "same stem")


def test_paired_empty(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    expect_error(lambda: open_dataset(tmp_path, size=32), tmp_path, "no image/mask pairs")


def test_paired_split_needs_mapping(paired: Path) -> None:
    expect_error(lambda: open_dataset(paired, size=32, split="train"), paired, CELEBA_MAPPING, "split 'all'")


def test_paired_with_part_masks(tmp_path: Path) -> None:
    """A masks/ folder of CelebAMask-HQ part files pairs with photos named by index."""
    labels = make_labels(32, 32, 1)
    write_parts(tmp_path / "masks", 12, labels)
    (tmp_path / "images").mkdir()
    make_photo(32, 32, 1).save(tmp_path / "images" / "00012.png")
    ds = open_dataset(tmp_path, size=32)
    np.testing.assert_array_equal(ds[0][1], labels)


def test_faceparsing_order(tmp_path: Path) -> None:
    labels = make_labels(32, 32, 2)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    make_photo(32, 32, 2).save(tmp_path / "images" / "f.png")
    Image.fromarray(CELEBAMASK_TO_FACEPARSING[labels]).save(tmp_path / "masks" / "f.png")
    np.testing.assert_array_equal(open_dataset(tmp_path, size=32, label_order="faceparsing")[0][1], labels)


# --- CelebAMask-HQ layout ---


def test_celeba_all(celeba: Path) -> None:
    ds = open_dataset(celeba, size=32)
    assert [p.name for p in ds.pairs] == ["00000", "00001", "02001", "02002"]
    assert ds.pairs[2].image == celeba / CELEBA_IMAGES / "2001.jpg"
    assert ds.pairs[2].mask.path == celeba / CELEBA_MASKS / "1"
    rgb, labels = ds[2]
    assert rgb.shape == (32, 32, 3)
    np.testing.assert_array_equal(labels, make_labels(32, 32, 2001))


@pytest.mark.parametrize("split, names", [("train", ["00000"]), ("val", ["00001", "02001"]), ("test", ["02002"])])
def test_celeba_splits(celeba: Path, split: str, names: list[str]) -> None:
    assert [p.name for p in open_dataset(celeba, size=32, split=split).pairs] == names


def test_celeba_split_without_mapping(celeba: Path) -> None:
    (celeba / CELEBA_MAPPING).unlink()
    assert len(open_dataset(celeba, size=32)) == 4
    expect_error(
        lambda: open_dataset(celeba, size=32, split="train"),
        celeba / CELEBA_MAPPING,
        "split 'train' needs this CelebAMask-HQ mapping file",
    )


def test_celeba_mapping_missing_row(celeba: Path) -> None:
    lines = (celeba / CELEBA_MAPPING).read_text().splitlines()
    (celeba / CELEBA_MAPPING).write_text("\n".join(lines[:-1]) + "\n")
    expect_error(lambda: open_dataset(celeba, size=32, split="val"), celeba / CELEBA_MAPPING, "no row for index 2002")


def test_celeba_mapping_malformed(celeba: Path) -> None:
    with (celeba / CELEBA_MAPPING).open("a") as f:
        f.write("7 oops\n")
    expect_error(
        lambda: open_dataset(celeba, size=32, split="val"),
        f"{celeba / CELEBA_MAPPING}:6",
        "expected 'idx orig_idx orig_file'",
    )


def test_celeba_missing_photo(celeba: Path) -> None:
    (celeba / CELEBA_IMAGES / "2001.jpg").unlink()
    expect_error(
        lambda: open_dataset(celeba, size=32),
        celeba / CELEBA_MASKS / "1" / "02001_skin.png",
        "mask '02001' has no photo",
        "1 masks without a photo",
    )


def test_celeba_missing_parts(celeba: Path) -> None:
    for path in (celeba / CELEBA_MASKS / "0").glob("00001_*.png"):
        path.unlink()
    expect_error(
        lambda: open_dataset(celeba, size=32),
        celeba / CELEBA_IMAGES / "1.jpg",
        "no mask named '00001'",
        "1 photos without a mask",
    )


def test_celeba_stray_mask_file(celeba: Path) -> None:
    stray = celeba / CELEBA_MASKS / "0" / "merged.png"
    Image.fromarray(make_labels(32, 32, 0)).save(stray)
    expect_error(lambda: open_dataset(celeba, size=32), stray, "not a CelebAMask-HQ part mask")


# --- layout, options and reading ---


def test_unknown_layout(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    expect_error(lambda: open_dataset(tmp_path, size=32), tmp_path, "images/ and masks/", CELEBA_IMAGES)
    expect_error(lambda: open_dataset(tmp_path / "missing", size=32), tmp_path / "missing", "no such folder")


def test_bad_options(paired: Path) -> None:
    expect_error(lambda: open_dataset(paired, size=32, split="training"), None, "unknown split 'training'")
    expect_error(lambda: open_dataset(paired, size=32, label_order="x"), None, "unknown label order 'x'")
    expect_error(lambda: open_dataset(paired, size=0), None, "size must be positive")


@pytest.mark.parametrize("size", [20, 37, 64, 100])
def test_resize_keeps_labels_nearest(celeba: Path, size: int) -> None:
    ds = open_dataset(celeba, size=size)
    for i, pair in enumerate(ds.pairs):
        original = pair.mask.read()
        rgb, labels = ds[i]
        assert rgb.shape == (size, size, 3)
        assert set(np.unique(labels)) <= set(np.unique(original))
        np.testing.assert_array_equal(labels, nearest(original, size))


def test_aspect_mismatch(paired: Path) -> None:
    make_photo(32, 64, 0).save(paired / "images" / "a.png")
    ds = open_dataset(paired, size=32)
    expect_error(
        lambda: ds[0], paired / "images" / "a.png", "64x32", str(paired / "masks" / "a.png"), "aspect ratios differ"
    )


def test_same_aspect_other_resolution(paired: Path) -> None:
    make_photo(40, 80, 0).save(paired / "images" / "a.png")
    Image.fromarray(make_labels(20, 40, 0)).save(paired / "masks" / "a.png")
    rgb, labels = open_dataset(paired, size=24)[0]
    assert rgb.shape == (24, 24, 3) and labels.shape == (24, 24)


def test_bad_mask_file_surfaces_when_read(paired: Path) -> None:
    (paired / "masks" / "b.png").write_text("not a png")
    ds = open_dataset(paired, size=32)
    expect_error(lambda: ds[1], paired / "masks" / "b.png", "not an image")
