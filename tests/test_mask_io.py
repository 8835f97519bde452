"""mask_io: every mask format decodes to the same canonical label map; every bad input fails clearly."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskface_rt.errors import MaskfaceError
from maskface_rt.labels import CELEBAMASK_TO_FACEPARSING, CLASS_NAMES, NUM_CLASSES, PALETTE
from maskface_rt.mask_io import MaskSource, discover_masks, mask_to_png, merge_parts, read_mask, write_label_png


def make_labels(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """A label map of 8x8 blocks holding every class at least once."""
    rng = np.random.default_rng(seed)
    blocks = np.arange((h // 8) * (w // 8)) % NUM_CLASSES
    rng.shuffle(blocks)
    return np.kron(blocks.reshape(h // 8, w // 8), np.ones((8, 8), dtype=int)).astype(np.uint8)


def write_parts(folder: Path, index: int, labels: np.ndarray) -> list[Path]:
    """CelebAMask-HQ part files whose merge in canonical order gives ``labels``.

    Part L covers every pixel whose label is >= L, so each part overlaps the later
    ones and only the canonical order reproduces the map. Skin is saved as 1-bit and
    hair as RGB, as in the wild.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for label, part in enumerate(CLASS_NAMES[1:], start=1):
        present = labels >= label
        if not present.any():
            continue
        binary = np.where(present, 255, 0).astype(np.uint8)
        img = Image.fromarray(binary)
        if part == "skin":
            img = img.convert("1")
        elif part == "hair":
            img = img.convert("RGB")
        path = folder / f"{index:05d}_{part}.png"
        img.save(path)
        paths.append(path)
    return paths


def palette_image(labels: np.ndarray) -> Image.Image:
    img = Image.frombytes("P", (labels.shape[1], labels.shape[0]), labels.tobytes())
    img.putpalette(PALETTE.flatten().tolist())
    return img


def nearest(labels: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(labels).resize((size, size), Image.Resampling.NEAREST))


FORMATS = {
    "L.png": lambda lab: Image.fromarray(lab),
    "L.bmp": lambda lab: Image.fromarray(lab),
    "L.tif": lambda lab: Image.fromarray(lab),
    "P.png": palette_image,
    "I16.png": lambda lab: Image.fromarray(lab.astype(np.uint16)),
    "rgb_palette.png": lambda lab: Image.fromarray(PALETTE[lab]),
    "rgba_opaque.png": lambda lab: Image.fromarray(np.dstack([PALETTE[lab], np.full(lab.shape, 255, np.uint8)])),
    "rgb_grey.png": lambda lab: Image.fromarray(np.dstack([lab, lab, lab])),
}


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    return make_labels()


@pytest.fixture
def sources(tmp_path: Path, labels: np.ndarray) -> dict[str, tuple[MaskSource, str]]:
    """One source per supported format, all holding ``labels``, with the label order to read it in."""
    out = {}
    for name, encode in FORMATS.items():
        path = tmp_path / name
        encode(labels).save(path)
        out[name] = (MaskSource(name=path.stem, path=path), "celebamask")
    fp = tmp_path / "faceparsing.png"
    Image.fromarray(CELEBAMASK_TO_FACEPARSING[labels]).save(fp)
    out["faceparsing"] = (MaskSource(name="faceparsing", path=fp), "faceparsing")
    parts = write_parts(tmp_path / "anno" / "0", 3, labels)
    out["parts"] = (MaskSource(name="00003", path=parts[0].parent, parts=tuple(parts)), "celebamask")
    return out


def test_palette_colours_are_distinct() -> None:
    assert len({tuple(c) for c in PALETTE}) == NUM_CLASSES


def test_fixture_uses_every_class(labels: np.ndarray) -> None:
    assert set(np.unique(labels)) == set(range(NUM_CLASSES))


@pytest.mark.parametrize("fmt", [*FORMATS, "faceparsing", "parts"])
def test_every_format_reads_the_same_labels(sources, labels: np.ndarray, fmt: str) -> None:
    source, order = sources[fmt]
    got = source.read(label_order=order)
    assert got.dtype == np.uint8 and got.shape == labels.shape
    np.testing.assert_array_equal(got, labels)


@pytest.mark.parametrize("fmt", [*FORMATS, "faceparsing", "parts"])
@pytest.mark.parametrize("size", [40, 64, 100])
def test_every_format_resizes_with_nearest(sources, labels: np.ndarray, fmt: str, size: int) -> None:
    source, order = sources[fmt]
    np.testing.assert_array_equal(source.read(size=size, label_order=order), nearest(labels, size))


def test_read_mask_non_square(tmp_path: Path) -> None:
    labels = make_labels(32, 64)
    path = tmp_path / "wide.png"
    Image.fromarray(labels).save(path)
    np.testing.assert_array_equal(read_mask(path), labels)
    np.testing.assert_array_equal(read_mask(path, size=16), nearest(labels, 16))


def test_read_mask_exact_at_1024(tmp_path: Path) -> None:
    labels = np.kron(make_labels(), np.ones((16, 16), dtype=np.uint8))
    path = tmp_path / "big.png"
    Image.fromarray(PALETTE[labels]).save(path, compress_level=1)
    np.testing.assert_array_equal(read_mask(path), labels)


def test_merge_parts_later_part_wins(tmp_path: Path) -> None:
    skin = np.full((8, 8), 255, np.uint8)
    hair = np.zeros((8, 8), np.uint8)
    hair[:4] = 255
    Image.fromarray(hair).save(tmp_path / "00007_hair.png")
    Image.fromarray(skin).save(tmp_path / "00007_skin.png")
    # Given in any order, parts are applied in canonical order: hair (13) over skin (1).
    got = merge_parts([tmp_path / "00007_hair.png", tmp_path / "00007_skin.png"])
    assert (got[:4] == CLASS_NAMES.index("hair")).all() and (got[4:] == CLASS_NAMES.index("skin")).all()


def test_merge_parts_background_where_no_part(tmp_path: Path) -> None:
    nose = np.zeros((8, 8), np.uint8)
    nose[2:4, 2:4] = 255
    Image.fromarray(nose).save(tmp_path / "00001_nose.png")
    got = merge_parts([tmp_path / "00001_nose.png"])
    assert int(got.sum()) == 4 * CLASS_NAMES.index("nose")


def test_write_label_png_round_trip(tmp_path: Path, labels: np.ndarray) -> None:
    path = tmp_path / "out" / "m.png"
    write_label_png(path, labels)
    assert Image.open(path).mode == "L"
    np.testing.assert_array_equal(read_mask(path), labels)
    with pytest.raises(MaskfaceError, match="already exists"):
        write_label_png(path, labels)
    write_label_png(path, np.zeros_like(labels), overwrite=True)
    assert read_mask(path).max() == 0


@pytest.mark.parametrize("bad", [np.full((4, 4), 19), np.full((4, 4), -1), np.zeros((4, 4, 3), int), np.zeros((4, 4))])
def test_mask_to_png_refuses_non_labels(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        mask_to_png(bad)


# --- bad inputs: one MaskfaceError that starts with the file and names the problem ---


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims a huge 8-bit grey image, with one tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + png_chunk(b"IEND", b"")
    )


def expect_error(path: Path, *fragments: str, **kwargs) -> MaskfaceError:
    with pytest.raises(MaskfaceError) as info:
        read_mask(path, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.png", "no such file")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    expect_error(tmp_path, "is a folder, not an image file")


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_text("hello, I am not a mask\n")
    expect_error(path, "not an image")


#: Formats Pillow decodes that maskface must never hand to a decoder: (Pillow's name, suffix, mode to write).
_NEVER_DECODED = [
    ("PPM", ".ppm", "L"),
    ("TGA", ".tga", "L"),
    ("PCX", ".pcx", "L"),
    ("SGI", ".sgi", "L"),
    ("IM", ".im", "L"),
    ("ICO", ".ico", "RGBA"),
    ("QOI", ".qoi", "RGB"),
    ("DDS", ".dds", "RGB"),
    ("GIF", ".gif", "L"),
    ("JPEG2000", ".jp2", "L"),
]


@pytest.mark.parametrize(("name", "suffix", "mode"), _NEVER_DECODED, ids=[n for n, _, _ in _NEVER_DECODED])
@pytest.mark.parametrize("named", ["own suffix", "named .png"])
def test_formats_outside_the_documented_list_are_never_decoded(tmp_path: Path, name, suffix, mode, named) -> None:
    """Masks and reference photos come from anywhere: only PNG, BMP, TIFF, WebP (and JPEG, for photos) reach a
    decoder, recognised by their bytes, not by the file's suffix."""
    from maskface_rt.image_io import read_rgb

    labels = np.random.default_rng(0).integers(0, 19, (32, 32), dtype=np.uint8)
    path = tmp_path / f"mask{suffix if named == 'own suffix' else '.png'}"
    image = Image.fromarray(labels).convert(mode)
    try:
        image.save(path, format=name)
    except (OSError, KeyError, ValueError) as e:  # an encoder this Pillow build lacks: nothing to refuse
        pytest.skip(f"this Pillow cannot write {name} ({e})")
    with Image.open(path) as check:  # Pillow itself reads it: refusing it is maskface's choice
        assert check.format == name
    expect_error(path, "not an image file maskface reads (PNG, BMP, TIFF or WebP; JPEG for reference photos)")
    with pytest.raises(MaskfaceError, match="not an image file maskface reads"):
        read_rgb(path)


def test_an_eps_file_never_reaches_ghostscript(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow hands EPS to the gs program: a mask or photo would run PostScript. A stand-in gs on PATH records
    any call."""
    from maskface_rt.image_io import read_rgb

    called = tmp_path / "gs-was-called"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gs").write_text(f"#!/bin/sh\ntouch {called}\nexit 1\n")
    (bin_dir / "gs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ.get('PATH', '')}")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n%%EndComments\nnewpath 0 0 moveto 8 8 lineto stroke\n"
    for path in (tmp_path / "mask.eps", tmp_path / "mask.png"):
        path.write_bytes(eps)
        expect_error(path, "not an image file maskface reads")
        with pytest.raises(MaskfaceError, match="not an image file maskface reads"):
            read_rgb(path)
    assert not called.exists()


def test_truncated_png(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 19, (128, 128), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "truncated")


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (20_000, 8)])
def test_absurd_header_refused_before_decoding(tmp_path: Path, width: int, height: int) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(huge_png_header(width, height))
    expect_error(path, "decompression bomb")


def test_label_out_of_range(tmp_path: Path) -> None:
    labels = make_labels()
    labels[:2, :3] = 40
    path = tmp_path / "m.png"
    Image.fromarray(labels).save(path)
    expect_error(path, "largest label value is 40", "6 pixels above 18")


def test_faceparsing_raw_values_checked(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    Image.fromarray(np.full((4, 4), 19, np.uint8)).save(path)
    expect_error(path, "largest label value is 19", "faceparsing", label_order="faceparsing")


def test_16bit_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    Image.fromarray(np.full((4, 4), 300, np.uint16)).save(path)
    expect_error(path, "largest label value is 300", "16 pixels")


def test_unknown_rgb_colour(tmp_path: Path) -> None:
    rgb = PALETTE[make_labels()].copy()
    rgb[7, 3] = (12, 34, 56)
    rgb[9, 9] = (1, 2, 3)
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    expect_error(
        path, "colour (12, 34, 56) at (x=3, y=7) is not in the CelebAMask-HQ palette", "(2 pixels have unknown colours)"
    )


def test_translucent_rgba(tmp_path: Path) -> None:
    rgba = np.dstack([PALETTE[make_labels()], np.full((64, 64), 255, np.uint8)])
    rgba[0, 0, 3] = 128
    path = tmp_path / "a.png"
    Image.fromarray(rgba).save(path)
    expect_error(path, "1 pixels that are not fully opaque")


@pytest.mark.parametrize("mode", ["LA", "1", "F", "CMYK"])
def test_unsupported_modes(tmp_path: Path, mode: str) -> None:
    path = tmp_path / ("a.tif" if mode in ("F", "CMYK") else "a.png")
    Image.new(mode, (8, 8)).save(path)
    expect_error(path, f"mode {mode}", "accepted")


def test_binary_mask_as_label_map(tmp_path: Path) -> None:
    path = tmp_path / "00003_skin.png"
    Image.fromarray(np.where(make_labels() > 0, 255, 0).astype(np.uint8)).save(path)
    expect_error(path, "values 0/255 look like a binary part mask")


def test_jpeg_mask_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    Image.fromarray(PALETTE[make_labels()]).save(path)
    expect_error(path, "JPEG is lossy")


def test_unknown_label_order(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.fromarray(make_labels()).save(path)
    with pytest.raises(MaskfaceError, match="unknown label order 'bisenet'; valid: celebamask, faceparsing"):
        read_mask(path, label_order="bisenet")
    with pytest.raises(MaskfaceError, match="unknown label order"):
        MaskSource(name="x", path=tmp_path, parts=(path,)).read(label_order="bisenet")


def merge_error(parts: list[Path], bad: Path, *fragments: str) -> None:
    with pytest.raises(MaskfaceError) as info:
        merge_parts(parts)
    message = str(info.value)
    assert message.startswith(f"{bad}: "), message
    for fragment in fragments:
        assert fragment in message, message


def test_wrong_part_name(tmp_path: Path) -> None:
    parts = write_parts(tmp_path, 3, make_labels())
    bad = tmp_path / "00003_eyes.png"
    Image.new("L", (64, 64)).save(bad)
    merge_error([*parts, bad], bad, "part mask name", "l_eye")


def test_part_size_mismatch(tmp_path: Path) -> None:
    parts = write_parts(tmp_path, 3, make_labels())
    Image.new("L", (32, 32)).save(parts[4])
    merge_error(parts, parts[4], "32x32", "64x64", "same size")


def test_parts_of_two_indices(tmp_path: Path) -> None:
    skin, hair = tmp_path / "00003_skin.png", tmp_path / "00004_hair.png"
    for path in (skin, hair):
        Image.new("L", (8, 8)).save(path)
    merge_error([skin, hair], hair, "index 00004", "index 00003")


def test_part_with_colour(tmp_path: Path) -> None:
    path = tmp_path / "00003_skin.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(path)
    merge_error([path], path, "differing channels")


def test_part_missing(tmp_path: Path) -> None:
    merge_error([tmp_path / "00003_skin.png"], tmp_path / "00003_skin.png", "no such file")


# --- discover_masks ---


def test_discover_groups_parts_and_skips_others(tmp_path: Path) -> None:
    labels = make_labels()
    for name in ("b.png", "a.bmp", ".hidden.png"):
        Image.fromarray(labels).save(tmp_path / name)
    Image.fromarray(PALETTE[labels]).save(tmp_path / "c.jpg")
    (tmp_path / "notes.txt").write_text("not a mask")
    parts = write_parts(tmp_path, 12, labels)
    sub = tmp_path / "sub"
    sub.mkdir()
    Image.fromarray(labels).save(sub / "d.png")

    sources = discover_masks(tmp_path)
    assert [s.name for s in sources] == ["00012", "a", "b", "c"]
    grouped = sources[0]
    assert grouped.path == tmp_path and set(grouped.parts) == set(parts)
    assert [p.name for p in grouped.parts] == [f"00012_{n}.png" for n in CLASS_NAMES[1:]]  # canonical order
    np.testing.assert_array_equal(grouped.read(), labels)
    assert all(not s.parts for s in sources[1:])
    with pytest.raises(MaskfaceError, match="JPEG is lossy"):
        sources[3].read()


def test_discover_recursive_names(tmp_path: Path) -> None:
    labels = make_labels(16, 16)
    for rel in ("top.png", "sub/face01.png", "sub/deeper/face01.png", ".cache/x.png", "sub/.git/y.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(labels).save(tmp_path / rel)
    assert [s.name for s in discover_masks(tmp_path)] == ["top"]
    sources = discover_masks(tmp_path, recursive=True)
    assert [s.name for s in sources] == ["sub__deeper__face01", "sub__face01", "top"]
    assert sources[0].path == tmp_path / "sub" / "deeper" / "face01.png"


def test_discover_celebamask_anno_root(tmp_path: Path) -> None:
    labels = make_labels(16, 16)
    for index in (2001, 3, 12):
        write_parts(tmp_path / str(index // 2000), index, labels)
    sources = discover_masks(tmp_path, recursive=True)
    assert [s.name for s in sources] == ["00003", "00012", "02001"]
    assert sources[2].path == tmp_path / "1"
    assert discover_masks(tmp_path) == []


def test_discover_refuses_duplicate_names(tmp_path: Path) -> None:
    Image.new("L", (4, 4)).save(tmp_path / "a.png")
    Image.new("L", (4, 4)).save(tmp_path / "a.bmp")
    with pytest.raises(MaskfaceError, match="same mask name 'a'"):
        discover_masks(tmp_path)


def test_discover_refuses_flattened_name_clash(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "sub" / "x.png")
    Image.new("L", (4, 4)).save(tmp_path / "sub__x.png")
    with pytest.raises(MaskfaceError, match="same mask name 'sub__x'"):
        discover_masks(tmp_path, recursive=True)


def test_discover_root_file_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "face.png"
    Image.new("L", (4, 4)).save(path)
    assert discover_masks(path) == [MaskSource(name="face", path=path)]
    with pytest.raises(MaskfaceError, match="no such file or folder") as info:
        discover_masks(tmp_path / "missing")
    assert str(info.value).startswith(str(tmp_path / "missing"))
