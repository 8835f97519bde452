"""generate: the batch pipeline behind ``maskface generate`` (names, bytes, resumability, bad inputs, grids)."""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import maskface_rt.generation.pipeline as gen
from maskface_rt.backends.base import GeneratorBackend
from maskface_rt.config import ModelConfig
from maskface_rt.errors import ExitCode, MaskfaceError
from maskface_rt.generation.pipeline import run_generate
from maskface_rt.generation.plan import GenerateOptions
from maskface_rt.generation.report import GenerateReport
from maskface_rt.image_io import encode_png, read_rgb, resize_rgb
from maskface_rt.labels import NUM_CLASSES, PALETTE, colorize
from maskface_rt.mask_io import MaskSource, discover_masks
from maskface_rt.synth import write_dataset

SIZE = 64


class ToyBackend(GeneratorBackend):
    """A deterministic numpy 'generator': a colour per label, tinted per sample by the style vector.

    Every output pixel depends only on its own label and its sample's style (elementwise
    maths, no reductions across the batch), so a sample's image never depends on the batch.
    """

    name = "toy"

    def __init__(self, max_batch: int | None = None) -> None:
        super().__init__(ModelConfig(img_size=SIZE, style_dim=6, latent_dim=4), "models/toy.onnx")
        rng = np.random.default_rng(1234)
        self.colours = rng.uniform(40.0, 215.0, (NUM_CLASSES, 3))
        self.mapping = rng.standard_normal((4, 6))  # latent -> style
        self.projection = rng.standard_normal((3, 6))  # mean colour -> style
        self._max_batch = max_batch
        self.batches: list[int] = []  # size of every generate() call
        self.threads: set[str] = set()

    @property
    def max_batch(self) -> int | None:
        return self._max_batch

    def generate(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        self.batches.append(len(labels))
        self.threads.add(threading.current_thread().name)
        assert labels.dtype == np.uint8 and labels.shape[1:] == (SIZE, SIZE)
        assert styles.dtype == np.float32 and styles.shape == (len(labels), 6)
        s = styles.astype(np.float64)[:, None, None, :]
        ramp = np.linspace(0.0, 1.0, SIZE)[None, None, :, None]  # a horizontal gradient whose slope is style 5
        faces = (
            self.colours[labels] * (1.0 + 0.3 * np.tanh(s[..., :3]))
            + 30.0 * np.tanh(s[..., 3:4])
            + 40.0 * np.tanh(s[..., 4:5]) * ramp
        )
        return np.clip(faces, 0, 255).round().astype(np.uint8)

    def map_latent(self, latents: np.ndarray) -> np.ndarray:
        return np.stack([z.astype(np.float64) @ self.mapping for z in latents]).astype(np.float32)

    def encode_style(self, images: np.ndarray) -> np.ndarray:
        assert images.dtype == np.uint8 and images.shape[1:] == (SIZE, SIZE, 3)
        means = images.reshape(len(images), -1, 3).mean(axis=1) / 255.0 - 0.5
        return np.stack([m @ self.projection for m in means]).astype(np.float32)


# ----------------------------------------------------------------------------- helpers


def label_map(h: int = SIZE, w: int = SIZE, seed: int = 0) -> np.ndarray:
    """8x8 blocks of every class, shuffled by seed."""
    blocks = np.arange((h // 8) * (w // 8)) % NUM_CLASSES
    np.random.default_rng(seed).shuffle(blocks)
    return np.kron(blocks.reshape(h // 8, w // 8), np.ones((8, 8), dtype=int)).astype(np.uint8)


def write_masks(folder: Path, count: int, prefix: str = "m") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}{i:03d}.png"
        Image.fromarray(label_map(seed=i)).save(path)
        paths.append(path)
    return paths


def expected_face(backend: ToyBackend, source: MaskSource, style: np.ndarray) -> np.ndarray:
    labels = source.read(size=SIZE)
    return backend.generate(labels[None], np.asarray(style, np.float32)[None])[0]


def pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png")) if p.is_file()}


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def run(mask_dir: Path, out: Path, backend: ToyBackend | None = None, **options: object) -> GenerateReport:
    return run_generate(backend or ToyBackend(), mask_dir, GenerateOptions(out=out, **options))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 procedural (image, mask) pairs; masks in dataset/masks, photos in dataset/images."""
    root = tmp_path_factory.mktemp("gen_data")
    write_dataset(root, 6, SIZE, seed=3)
    return root


# ----------------------------------------------------------------------------- names, content, batching


def test_names_counts_and_content(dataset: Path, tmp_path: Path) -> None:
    backend = ToyBackend()
    out = tmp_path / "out"
    report = run(dataset / "masks", out, backend, styles=3, seed=5, batch_size=4)

    stems = sorted(p.stem for p in (dataset / "masks").glob("*.png"))
    names = sorted(f"{stem}_s{k}.png" for stem in stems for k in range(3))
    assert sorted(pngs(out)) == names
    assert (report.masks, report.images_written, report.images_existing) == (6, 18, 0)
    assert report.exit_code == ExitCode.OK and report.skipped == []
    assert sorted(report.outputs) == sorted(str(out / n) for n in names)
    assert report.backend == "toy" and report.model == "models/toy.onnx"
    assert report.seconds > 0 and report.images_per_s == pytest.approx(18 / report.seconds)
    assert backend.threads == {threading.main_thread().name}  # the backend runs on the calling thread only

    styles = ToyBackend().styles_for_seed(5, 3)
    for source in discover_masks(dataset / "masks"):
        for k in range(3):
            with Image.open(out / f"{source.name}_s{k}.png") as img:
                assert img.mode == "RGB" and img.size == (SIZE, SIZE)
                np.testing.assert_array_equal(np.asarray(img), expected_face(ToyBackend(), source, styles[k]))

    data = report.to_json()
    assert json.loads(json.dumps(data))["exit_code"] == 0
    assert data["images_written"] == 18 and data["skipped"] == []


def test_style_k_depends_only_on_seed_and_k(dataset: Path, tmp_path: Path) -> None:
    run(dataset / "masks", tmp_path / "two", styles=2, seed=9)
    run(dataset / "masks", tmp_path / "four", styles=4, seed=9)
    four = pngs(tmp_path / "four")
    assert all(four[name] == data for name, data in pngs(tmp_path / "two").items())
    run(dataset / "masks", tmp_path / "other", styles=2, seed=10)
    assert pngs(tmp_path / "other")["00000_s0.png"] != four["00000_s0.png"]


def test_same_bytes_whatever_the_batch(dataset: Path, tmp_path: Path) -> None:
    results = {}
    for batch in (1, 3, 7, 8, 64):
        backend = ToyBackend()
        run(dataset / "masks", tmp_path / f"b{batch}", backend, styles=3, batch_size=batch, workers=3)
        results[batch] = pngs(tmp_path / f"b{batch}")
        # 18 jobs packed across files: full batches, only the last one smaller.
        assert backend.batches == [batch] * (18 // batch) + ([18 % batch] if 18 % batch else [])
    assert all(r == results[1] for r in results.values()) and len(results[1]) == 18


def test_max_batch_of_the_backend_is_respected(dataset: Path, tmp_path: Path) -> None:
    run(dataset / "masks", tmp_path / "free", styles=3, batch_size=8)
    backend = ToyBackend(max_batch=2)
    run(dataset / "masks", tmp_path / "capped", backend, styles=3, batch_size=8)
    assert set(backend.batches) == {2} and sum(backend.batches) == 18
    assert pngs(tmp_path / "capped") == pngs(tmp_path / "free")


def test_references(dataset: Path, tmp_path: Path) -> None:
    refs = tmp_path / "refs"
    refs.mkdir()
    photo = read_rgb(dataset / "images" / "00001.png")
    Image.fromarray(photo).save(refs / "alice.png")
    Image.fromarray(photo).resize((100, 80)).save(refs / "bob.jpg", quality=95)  # resized to the model size
    references = (refs / "alice.png", refs / "bob.jpg")
    out = tmp_path / "out"
    report = run(dataset / "masks", out, styles=3, references=references, batch_size=5)

    stems = sorted(p.stem for p in (dataset / "masks").glob("*.png"))
    assert sorted(pngs(out)) == sorted(f"{s}_ref-{r}.png" for s in stems for r in ("alice", "bob"))
    assert report.images_written == 12 and report.exit_code == ExitCode.OK
    backend = ToyBackend()
    for ref in references:
        style = backend.encode_style(resize_rgb(read_rgb(ref), SIZE)[None])[0]
        for source in discover_masks(dataset / "masks"):
            face = read_rgb(out / f"{source.name}_ref-{ref.stem}.png")
            np.testing.assert_array_equal(face, expected_face(backend, source, style))


def test_single_mask_file_and_recursive_names(tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    write_masks(masks, 2)
    write_masks(masks / "sub", 1, prefix="deep")
    report = run(masks / "m001.png", tmp_path / "one", styles=2)
    assert sorted(pngs(tmp_path / "one")) == ["m001_s0.png", "m001_s1.png"] and report.masks == 1

    run(masks, tmp_path / "flat", styles=1)
    assert sorted(pngs(tmp_path / "flat")) == ["m000_s0.png", "m001_s0.png"]
    run(masks, tmp_path / "deep", styles=1, recursive=True)
    assert sorted(pngs(tmp_path / "deep")) == ["m000_s0.png", "m001_s0.png", "sub__deep000_s0.png"]


# ----------------------------------------------------------------------------- bad inputs


def write_mixed(folder: Path) -> dict[str, str]:
    """Good masks of several formats plus bad files; returns {bad file name: expected words of its reason}."""
    folder.mkdir(parents=True)
    labels = label_map(seed=1)
    Image.fromarray(labels).save(folder / "label_l.png")
    Image.fromarray(PALETTE[labels]).save(folder / "palette_rgb.png")
    Image.fromarray(label_map(48, 96, seed=2)).save(folder / "wide.png")  # non-square: NEAREST to 64x64
    for part, value in (("skin", 1), ("nose", 2), ("hair", 13)):
        Image.fromarray(np.where(labels >= value, 255, 0).astype(np.uint8)).save(folder / f"00003_{part}.png")

    (folder / "text.png").write_text("this is not an image\n")
    whole = (folder / "label_l.png").read_bytes()
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    Image.fromarray(np.full((SIZE, SIZE), 25, np.uint8)).save(folder / "range.png")
    Image.fromarray(labels).save(folder / "lossy.jpg", quality=95)
    return {
        "text.png": "not an image",
        "truncated.png": "truncated",
        "range.png": "largest label value is 25",
        "lossy.jpg": "JPEG is lossy",
    }


def test_bad_masks_are_skipped_and_the_others_complete(tmp_path: Path) -> None:
    masks, out = tmp_path / "masks", tmp_path / "out"
    bad = write_mixed(masks)
    totals, advances = [], []
    report = run_generate(
        ToyBackend(),
        masks,
        GenerateOptions(out=out, styles=2, batch_size=3),
        on_total=totals.append,
        on_advance=advances.append,
    )

    assert sorted(pngs(out)) == sorted(
        f"{n}_s{k}.png" for n in ("00003", "label_l", "palette_rgb", "wide") for k in range(2)
    )
    assert report.masks == 8 and report.masks_skipped == 4 and report.images_written == 8
    assert report.exit_code == ExitCode.PARTIAL
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(reasons) == set(bad)
    for name, words in bad.items():
        assert words in reasons[name], reasons[name]
    assert totals == [16] and sum(advances) == 16  # skipped masks' images advance the bar too

    styles = ToyBackend().styles_for_seed(0, 2)
    sources = {s.name: s for s in discover_masks(masks)}
    np.testing.assert_array_equal(read_rgb(out / "label_l_s1.png"), read_rgb(out / "palette_rgb_s1.png"))
    for name in ("00003", "wide"):
        np.testing.assert_array_equal(
            read_rgb(out / f"{name}_s1.png"), expected_face(ToyBackend(), sources[name], styles[1])
        )
    data = json.loads(json.dumps(report.to_json()))  # the --json report: plain JSON, every figure kept
    assert (data["masks"], data["masks_skipped"], data["images_written"], data["exit_code"]) == (8, 4, 8, 3)
    assert {Path(s["path"]).name: s["reason"] for s in data["skipped"]} == reasons


def test_all_bad_or_empty_is_nothing_ran(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_text("nope")
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(bad / "b.png")
    report = run(bad, tmp_path / "out1")
    assert report.exit_code == ExitCode.NOTHING_RAN and len(report.skipped) == 2 and report.images_written == 0

    empty = tmp_path / "empty"
    empty.mkdir()
    report = run(empty, tmp_path / "out2", grid=True)
    assert report.exit_code == ExitCode.NOTHING_RAN and report.masks == 0 and report.skipped == []
    assert not (tmp_path / "out2").exists()


def test_an_unwritable_output_skips_its_mask_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    masks, out = tmp_path / "masks", tmp_path / "out"
    write_masks(masks, 4)
    (out / "m001_s1.png").mkdir(parents=True)  # a folder in the way
    real_write = gen.write_bytes_atomic

    def write(path: Path, data: bytes, *, overwrite: bool = False) -> None:
        if Path(path).name == "m002_s0.png":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real_write(path, data, overwrite=overwrite)

    monkeypatch.setattr(gen, "write_bytes_atomic", write)
    report = run(masks, out, styles=2, batch_size=3)
    assert report.exit_code == ExitCode.PARTIAL and report.masks_skipped == 2
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert "in the way" in reasons["m001.png"] and "Permission denied" in reasons["m002.png"]
    assert {"m000_s0.png", "m000_s1.png", "m002_s1.png", "m003_s0.png", "m003_s1.png"} <= set(pngs(out))
    assert (out / "m001_s1.png").is_dir() and no_temp_files(out)


def test_a_full_disk_stops_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    masks, out = tmp_path / "masks", tmp_path / "out"
    write_masks(masks, 3)

    def full(path: Path, data: bytes, *, overwrite: bool = False) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(gen, "write_bytes_atomic", full)
    with pytest.raises(MaskfaceError, match="No space left on device"):
        run(masks, out, styles=2)


def test_a_run_stopped_by_a_full_disk_reports_what_it_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    masks, out = tmp_path / "masks", tmp_path / "out"
    write_masks(masks, 3)
    real_write, room = gen.write_bytes_atomic, [2]

    def filling(path: Path, data: bytes, *, overwrite: bool = False) -> None:
        if not room[0]:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        room[0] -= 1
        real_write(path, data, overwrite=overwrite)

    monkeypatch.setattr(gen, "write_bytes_atomic", filling)
    with pytest.raises(gen.RunStopped, match="No space left on device") as stopped:
        run(masks, out, styles=2, batch_size=1, workers=1)
    report = stopped.value.report
    assert report.error == str(stopped.value) and report.exit_code == ExitCode.FAILED
    assert report.images_written == 2 and sorted(Path(p).name for p in report.outputs) == sorted(pngs(out))
    assert no_temp_files(out)


# ----------------------------------------------------------------------------- existing outputs and resuming


def test_existing_outputs_are_kept_unless_overwrite(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    old = encode_png(np.zeros((2, 2, 3), np.uint8))  # a complete PNG (resume does not trust anything less)
    (out / "00002_s1.png").write_bytes(old)
    report = run(dataset / "masks", out, styles=2)
    assert (out / "00002_s1.png").read_bytes() == old
    assert (report.images_written, report.images_existing) == (11, 1) and report.exit_code == ExitCode.OK
    assert str(out / "00002_s1.png") not in report.outputs

    backend = ToyBackend()
    report = run(dataset / "masks", out, backend, styles=2)  # everything exists: nothing is decoded or run
    assert (report.images_written, report.images_existing) == (0, 12) and backend.batches == []

    report = run(dataset / "masks", out, styles=2, overwrite=True)
    assert (report.images_written, report.images_existing) == (12, 0)
    run(dataset / "masks", tmp_path / "fresh", styles=2)
    assert pngs(out) == pngs(tmp_path / "fresh")


def test_a_complete_mask_is_not_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    masks, out = tmp_path / "masks", tmp_path / "out"
    write_masks(masks, 3)
    run(masks, out, styles=2)
    (out / "m001_s0.png").unlink()
    read = []
    real_read = MaskSource.read
    monkeypatch.setattr(MaskSource, "read", lambda self, **kw: read.append(self.name) or real_read(self, **kw))
    report = run(masks, out, styles=2)
    assert read == ["m001"] and report.images_written == 1 and report.images_existing == 5


def test_resume_after_an_interruption(tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    write_masks(masks, 12)
    run(masks, tmp_path / "complete", styles=2, batch_size=3)
    complete = pngs(tmp_path / "complete")

    out = tmp_path / "out"

    def interrupt(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_generate(
            ToyBackend(), masks, GenerateOptions(out=out, styles=2, batch_size=2, workers=1), on_advance=interrupt
        )
    first = pngs(out)
    assert 0 < len(first) < 24 and no_temp_files(out)
    assert all(complete[name] == data for name, data in first.items())  # what exists is complete

    report = run(masks, out, styles=2, batch_size=5)
    assert (report.images_written, report.images_existing) == (24 - len(first), len(first))
    assert sorted(report.outputs) == sorted(str(out / n) for n in complete if n not in first)
    assert pngs(out) == complete and no_temp_files(out)


def test_decoding_runs_a_bounded_distance_ahead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    masks = tmp_path / "masks"
    write_masks(masks, 40)
    reads = []
    real_read = MaskSource.read
    monkeypatch.setattr(MaskSource, "read", lambda self, **kw: reads.append(1) or real_read(self, **kw))

    class Watching(ToyBackend):
        def generate(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
            self.reads_at_first = getattr(self, "reads_at_first", len(reads))
            return super().generate(labels, styles)

    backend = Watching()
    report = run(masks, tmp_path / "out", backend, styles=2, batch_size=2, workers=2)
    assert report.images_written == 80 and len(reads) == 40
    assert backend.reads_at_first <= 2 + 2 * 2 + 1  # one batch + 2 per worker, not the whole folder


# ----------------------------------------------------------------------------- contact sheets


def test_grid(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = run(dataset / "masks", out, styles=3, grid=True)
    with Image.open(out / "grid.png") as img:
        assert img.size == ((1 + 3) * SIZE, 6 * SIZE)
        sheet = np.asarray(img.convert("RGB"))
    assert report.grids_written == 1 and str(out / "grid.png") in report.outputs
    first = discover_masks(dataset / "masks")[0]
    np.testing.assert_array_equal(sheet[:SIZE, :SIZE], colorize(first.read(size=SIZE)))
    np.testing.assert_array_equal(sheet[:SIZE, 3 * SIZE :], read_rgb(out / f"{first.name}_s2.png"))

    (out / "00000_s0.png").unlink()
    report = run(dataset / "masks", out, styles=3, grid=True)  # an existing sheet is kept, like any output
    assert (report.images_written, report.grids_written, report.grids_existing) == (1, 0, 1)


def test_an_unreadable_existing_output_leaves_its_row_out(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # Starts and ends like a PNG, so resume keeps it (no overwrite), but it cannot go on the sheet.
    (out / "00001_s1.png").write_bytes(b"\x89PNG\r\n\x1a\njunk\x00\x00\x00\x00IEND\xaeB`\x82")
    report = run(dataset / "masks", out, styles=2, grid=True)
    with Image.open(out / "grid.png") as img:
        assert img.size == (3 * SIZE, 5 * SIZE)
    assert report.exit_code == ExitCode.PARTIAL and report.masks_skipped == 0
    assert [Path(s.path).name for s in report.skipped] == ["00001_s1.png"]
    assert "left out of grid.png" in report.skipped[0].reason and "not an image" in report.skipped[0].reason


def test_several_grid_sheets(tmp_path: Path) -> None:
    masks, out = tmp_path / "masks", tmp_path / "out"
    write_masks(masks, 20)
    (out / "m000_s0.png").parent.mkdir()
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(out / "m000_s0.png")  # read back, not regenerated
    report = run(masks, out, styles=1, grid=True, workers=3)
    assert sorted(p.name for p in out.glob("grid*.png")) == ["grid_000.png", "grid_001.png"]
    with Image.open(out / "grid_000.png") as a, Image.open(out / "grid_001.png") as b:
        assert a.size == (2 * SIZE, 16 * SIZE) and b.size == (2 * SIZE, 4 * SIZE)
        assert not np.asarray(a.convert("RGB"))[:SIZE, SIZE:].any()
    assert report.grids_written == 2 and report.exit_code == ExitCode.OK

    report = run(masks, out, styles=1, grid=True, overwrite=True)
    assert report.grids_written == 2 and report.images_written == 20


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "options, words",
    [
        ({"styles": 0}, r"^styles: must be an integer in 1\.\.1000, got 0$"),  # the library names the field
        ({"batch_size": 0}, "^batch_size: must be an integer"),
        ({"workers": 0}, "^workers: must be an integer"),
        ({"seed": -1}, "^seed: must be an integer"),
        ({"label_order": "bisenet"}, "label order"),
        ({"references": (Path("missing.png"),)}, "missing.png"),
    ],
)
def test_bad_options_create_nothing(options: dict, words: str, dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(MaskfaceError, match=words):
        run(dataset / "masks", tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_bad_paths_create_nothing(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(MaskfaceError, match="no such file"):
        run(tmp_path / "nowhere", out)
    not_image = tmp_path / "ref.png"
    not_image.write_text("text")
    with pytest.raises(MaskfaceError, match="ref.png: not an image"):
        run(dataset / "masks", out, references=(not_image,))
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(folder / "face.png")
    with pytest.raises(MaskfaceError, match="same name 'face'"):
        run(dataset / "masks", out, references=(a / "face.png", b / "face.png"))
    assert not out.exists()

    with pytest.raises(MaskfaceError, match="inside the mask folder"):
        run(dataset / "masks", dataset / "masks")
    with pytest.raises(MaskfaceError, match="inside the mask folder"):
        run(dataset, dataset / "masks" / "out", recursive=True)
    assert not (dataset / "masks" / "out").exists()
    with pytest.raises(MaskfaceError, match="not a folder"):
        run(dataset / "masks", not_image)
