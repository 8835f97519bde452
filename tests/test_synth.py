"""The procedural face data set: determinism, label sanity, variety and the paired layout on disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_support import maskface_here
from PIL import Image

from maskface_rt.errors import MaskfaceError
from maskface_rt.labels import CLASS_NAMES, NUM_CLASSES
from maskface_rt.synth import GENERATOR_VERSION, render_looks, render_pair, write_dataset

SKIN, HAIR = CLASS_NAMES.index("skin"), CLASS_NAMES.index("hair")


def read_png(path: Path) -> tuple[np.ndarray, str]:
    with Image.open(path) as img:
        return np.asarray(img), img.mode


def mean_colour(rgb: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    return rgb[labels == k].astype(np.float64).mean(axis=0)


def test_render_pair_is_deterministic() -> None:
    rgb, labels = render_pair(3, 7, 64)
    rgb2, labels2 = render_pair(3, 7, 64)
    assert np.array_equal(rgb, rgb2) and np.array_equal(labels, labels2)
    other_rgb, other_labels = render_pair(3, 8, 64)
    assert not np.array_equal(rgb, other_rgb)
    assert not np.array_equal(labels, other_labels)


@pytest.mark.parametrize("size", [32, 64, 100, 128])
def test_shapes_dtypes_and_label_range(size: int) -> None:
    rgb, labels = render_pair(0, 1, size)
    assert rgb.shape == (size, size, 3) and rgb.dtype == np.uint8
    assert labels.shape == (size, size) and labels.dtype == np.uint8
    assert labels.max() < NUM_CLASSES


def test_geometry_does_not_depend_on_size() -> None:
    small = render_pair(4, 2, 64)[1]
    large = render_pair(4, 2, 256)[1]
    downsampled = np.asarray(Image.fromarray(large).resize((64, 64), Image.Resampling.NEAREST))
    assert (downsampled == small).mean() > 0.95


def test_label_maps_are_plausible_and_classes_look_different() -> None:
    distinct = 0
    for i in range(20):
        rgb, labels = render_pair(11, i, 64)
        area = np.bincount(labels.ravel(), minlength=NUM_CLASSES) / labels.size
        assert 0.05 < area[SKIN] < 0.5, f"pair {i}: skin covers {area[SKIN]:.2f}"
        assert area[0] > 0.02, f"pair {i}: no background"
        assert area[CLASS_NAMES.index("neck")] + area[CLASS_NAMES.index("cloth")] > 0.02, f"pair {i}: no body"
        if area[HAIR] > 0.02:
            distinct += np.abs(mean_colour(rgb, labels, SKIN) - mean_colour(rgb, labels, HAIR)).sum() > 30
        else:
            distinct += 1  # bald
    assert distinct >= 16


def test_eyes_have_white_sclera_and_dark_pupil() -> None:
    rgb, labels = render_pair(0, 0, 256)
    eye = rgb[labels == CLASS_NAMES.index("l_eye")].astype(int).sum(axis=1)
    assert eye.size > 0
    assert eye.max() > 500 and eye.min() < 150


def test_geometry_and_appearance_vary_with_the_seed() -> None:
    rgb_a, labels_a = render_pair(1, 0, 64)
    rgb_b, labels_b = render_pair(2, 0, 64)
    assert (labels_a != labels_b).mean() > 0.05
    assert np.abs(mean_colour(rgb_a, labels_a, SKIN) - mean_colour(rgb_b, labels_b, SKIN)).sum() > 10


def test_skin_tones_span_light_to_dark() -> None:
    brightness = [mean_colour(*render_pair(5, i, 32), SKIN).mean() for i in range(30)]
    assert min(brightness) < 90 and max(brightness) > 170


def test_every_class_appears_in_200_pairs(tmp_path: Path) -> None:
    summary = write_dataset(tmp_path / "set", 200, 64, seed=0, workers=2)
    assert len(summary.class_pixel_counts) == NUM_CLASSES
    missing = [name for name, n in zip(CLASS_NAMES, summary.class_pixel_counts) if n == 0]
    assert not missing
    assert sum(summary.class_pixel_counts) == 200 * 64 * 64
    meta = json.loads((tmp_path / "set" / "synth.json").read_text())
    assert meta["class_pixel_counts"] == summary.class_pixel_counts


def test_pair_is_the_same_whatever_the_count(tmp_path: Path) -> None:
    write_dataset(tmp_path / "three", 3, 48, seed=9)
    write_dataset(tmp_path / "many", 40, 48, seed=9, workers=2)
    for i in range(3):
        name = f"{i:05d}.png"
        for sub in ("images", "masks"):
            few, many = read_png(tmp_path / "three" / sub / name)[0], read_png(tmp_path / "many" / sub / name)[0]
            assert np.array_equal(few, many)
        rgb, labels = render_pair(9, i, 48)
        assert np.array_equal(read_png(tmp_path / "many" / "images" / name)[0], rgb)
        assert np.array_equal(read_png(tmp_path / "many" / "masks" / name)[0], labels)


def test_write_dataset_layout(tmp_path: Path) -> None:
    out = tmp_path / "set"
    done: list[int] = []
    summary = write_dataset(out, 5, 40, seed=3, progress=done.append)
    assert sum(done) == 5
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{i:05d}.png" for i in range(5)]
    assert sorted(p.name for p in (out / "masks").iterdir()) == [f"{i:05d}.png" for i in range(5)]
    image, mode = read_png(out / "images" / "00004.png")
    assert mode == "RGB" and image.shape == (40, 40, 3)
    mask, mode = read_png(out / "masks" / "00004.png")
    assert mode == "L" and mask.shape == (40, 40) and mask.max() < NUM_CLASSES
    meta = json.loads((out / "synth.json").read_text())
    assert meta["count"] == 5 and meta["size"] == 40 and meta["seed"] == 3
    assert meta["generator"] == GENERATOR_VERSION
    assert meta["class_pixel_counts"] == summary.class_pixel_counts
    assert summary.out == out and summary.count == 5 and summary.size == 40 and summary.seconds > 0
    assert not list(out.rglob(".*.tmp"))


def test_refuses_a_target_that_holds_a_data_set(tmp_path: Path) -> None:
    out = tmp_path / "set"
    write_dataset(out, 2, 32, seed=1)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(MaskfaceError, match="already holds a data set"):
        write_dataset(out, 2, 32, seed=2)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    write_dataset(out, 2, 32, seed=2, overwrite=True)
    assert read_png(out / "masks" / "00000.png")[0].tolist() == render_pair(2, 0, 32)[1].tolist()


def test_refuses_masks_alone(tmp_path: Path) -> None:
    (tmp_path / "set" / "masks").mkdir(parents=True)
    Image.new("L", (32, 32)).save(tmp_path / "set" / "masks" / "x.png")
    with pytest.raises(MaskfaceError, match="already holds a data set"):
        write_dataset(tmp_path / "set", 1, 32, seed=0)
    assert not (tmp_path / "set" / "images").exists()


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"count": 0}, "count"),
        ({"count": 2.0}, "count"),
        ({"size": 31}, "size"),
        ({"size": 1025}, "size"),
        ({"seed": -1}, "seed"),
        ({"workers": 0}, "workers"),
        ({"count": True}, "count"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, named: str) -> None:
    args = {"count": 2, "size": 32, "seed": 0} | kwargs
    with pytest.raises(MaskfaceError, match=named):
        write_dataset(tmp_path / "set", **args)
    assert not (tmp_path / "set").exists()


def test_render_pair_rejects_bad_arguments() -> None:
    with pytest.raises(MaskfaceError, match="size"):
        render_pair(0, 0, 2048)
    with pytest.raises(MaskfaceError, match="index"):
        render_pair(0, -1, 64)


def test_render_looks_repaints_one_mask() -> None:
    faces, labels = render_looks(5, 2, 64, 4)
    _, pair_labels = render_pair(5, 2, 64)
    np.testing.assert_array_equal(labels, pair_labels)
    assert faces.shape == (4, 64, 64, 3) and faces.dtype == np.uint8
    fewer, _ = render_looks(5, 2, 64, 2)
    np.testing.assert_array_equal(fewer, faces[:2])
    assert np.abs(faces[0].astype(int) - faces[1].astype(int)).mean() > 5


def test_the_cli_draws_with_the_processes_asked_for_and_the_same_pairs(tmp_path: Path, monkeypatch) -> None:
    """``maskface synth --workers N`` (make gpu-session uses every core): N reaches the writer, and the pairs do not
    depend on it."""
    import maskface_rt.synth

    asked = []

    def spy(*args, **kwargs):
        asked.append(kwargs.get("workers"))
        return write_dataset(*args, **kwargs)

    monkeypatch.setattr(maskface_rt.synth, "write_dataset", spy)
    for workers in ("1", "2"):
        done = maskface_here("synth", str(tmp_path / workers), "--count", "70", "--size", "64", "--workers", workers)
        assert done.returncode == 0, done.stderr
    assert asked == [1, 2]
    for sub in ("images", "masks"):
        names = sorted(p.name for p in (tmp_path / "1" / sub).iterdir())
        assert names == sorted(p.name for p in (tmp_path / "2" / sub).iterdir()) and len(names) == 70
        assert all((tmp_path / "1" / sub / n).read_bytes() == (tmp_path / "2" / sub / n).read_bytes() for n in names)
    refused = maskface_here("synth", str(tmp_path / "0"), "--workers", "0")
    assert refused.returncode == 2 and "--workers" in refused.stderr and not (tmp_path / "0").exists()
