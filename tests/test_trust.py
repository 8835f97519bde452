"""Issue 17: hostile model folders, checkpoints, option values and outputs, made by the tests themselves.

Every case must end in one named line and the documented exit code, never a traceback, and
nothing written when the problem is found before any work.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import maskface, maskface_here

from maskface_rt.bundled import default_model
from maskface_rt.errors import MaskfaceError
from maskface_rt.export_format import MANIFEST, read_manifest, sha256_file
from maskface_rt.synth import write_dataset


def _cli(*args: str) -> subprocess.CompletedProcess:
    """``maskface ARGS`` through its entry point, in this process (see cli_support.maskface_here)."""
    return maskface_here(*args, env={"COLUMNS": "300"})  # a usage error's box keeps its message on one line


def _one_line_error(done: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:") or "Invalid value" in line]
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], done.stderr
    return lines[0]


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(default_model(), folder)
    return folder


@pytest.fixture(scope="module")
def masks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("masks")
    write_dataset(root / "data", 2, 64, seed=3)
    return root / "data" / "masks"


def _edit_manifest(folder: Path, edit) -> None:
    path = folder / MANIFEST
    data = json.loads(path.read_text())
    data = edit(data)
    path.write_text(json.dumps(data))


# ----------------------------------------------------------------------------- (a) model folders


@pytest.mark.parametrize("name", ["/etc/hostname", "../outside.onnx", "/proc/self/mem", "sub/generator.onnx", ".."])
def test_graph_file_must_be_a_plain_name_inside_the_folder(model_copy, tmp_path, name):
    outside = tmp_path / "outside.onnx"
    shutil.copy(model_copy / "generator.onnx", outside)
    (model_copy / "sub").mkdir()
    shutil.copy(model_copy / "generator.onnx", model_copy / "sub" / "generator.onnx")

    def edit(data):
        data["graphs"]["generator"]["file"] = name
        data["graphs"]["generator"]["sha256"] = sha256_file(outside)
        return data

    _edit_manifest(model_copy, edit)
    with pytest.raises(MaskfaceError, match="plain file name|outside the export folder"):
        read_manifest(model_copy)


def test_symlink_out_of_the_folder_is_refused(model_copy, tmp_path):
    outside = tmp_path / "elsewhere.onnx"
    shutil.move(model_copy / "generator.onnx", outside)
    (model_copy / "generator.onnx").symlink_to(outside)
    with pytest.raises(MaskfaceError, match="outside the export folder"):
        read_manifest(model_copy)


def test_external_data_is_refused(model_copy):
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    path = model_copy / "style_encoder.onnx"
    model = onnx.load(str(path))
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    onnx.save(model, str(path))
    assert (model_copy / "weights.bin").is_file()
    _edit_manifest(model_copy, lambda d: (d["graphs"]["style_encoder"].update(sha256=sha256_file(path)), d)[1])
    with pytest.raises(MaskfaceError, match="external data"):
        read_manifest(model_copy)


BAD_MANIFESTS = {
    "list": lambda d: [1, 2, 3],
    "string": lambda d: "maskface",
    "graph-is-string": lambda d: {**d, "graphs": {**d["graphs"], "generator": "generator.onnx"}},
    "graph-lacks-file": lambda d: {**d, "graphs": {**d["graphs"], "generator": {"sha256": "0" * 64}}},
    "graphs-list": lambda d: {**d, "graphs": ["generator.onnx"]},
    "graphs-list-of-pairs": lambda d: {**d, "graphs": ["ge"]},
    "config-list": lambda d: {**d, "config": [64]},
    "sha-number": lambda d: {**d, "graphs": {**d["graphs"], "generator": {"file": "generator.onnx", "sha256": 1}}},
    # Fields of the right shape but values no export holds: each would reach a backend (a negative batch, a model
    # for 3 mask classes) without the manifest's own checks.
    "max-batch-negative": lambda d: {**d, "max_batch": -5},
    "max-batch-zero": lambda d: {**d, "max_batch": 0},
    "max-batch-string": lambda d: {**d, "max_batch": "8"},
    "max-batch-true": lambda d: {**d, "max_batch": True},
    "num-classes-3": lambda d: {**d, "config": {**d["config"], "num_classes": 3}},
    "eps-nan": lambda d: {**d, "config": {**d["config"], "eps": float("nan")}},
    "precision-int8": lambda d: {**d, "precision": "int8"},
    "plugin-string": lambda d: {**d, "plugin": "no"},
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_malformed_manifest_is_one_line_in_generate_and_info(model_copy, masks, tmp_path, case):
    _edit_manifest(model_copy, BAD_MANIFESTS[case])
    with pytest.raises(MaskfaceError):
        read_manifest(model_copy, verify=False)
    out = tmp_path / "out"
    _one_line_error(_cli("generate", str(masks), "--out", str(out), "--model", str(model_copy)), 1, MANIFEST)
    assert not out.exists()
    _one_line_error(_cli("info", str(model_copy)), 1, MANIFEST)


def test_a_deeply_nested_manifest_or_sidecar_is_one_line(model_copy, masks, tmp_path):
    """'[' x 100000 exhausts the JSON parser's recursion: a RecursionError traceback before."""
    (model_copy / MANIFEST).write_text("[" * 100_000)
    out = tmp_path / "out"
    _one_line_error(_cli("generate", str(masks), "--out", str(out), "--model", str(model_copy)), 1, "nested too deeply")
    _one_line_error(_cli("info", str(model_copy)), 1, "nested too deeply")
    engine = tmp_path / "faces.engine"
    engine.write_bytes(b"plan")
    (tmp_path / "faces.engine.json").write_text('{"a":' * 100_000)
    _one_line_error(_cli("info", str(engine)), 1, "nested too deeply")
    assert not out.exists()


def test_image_size_disagreeing_with_the_graph_is_found_before_any_work(model_copy, masks, tmp_path):
    _edit_manifest(model_copy, lambda d: {**d, "img_size": 128, "config": {**d["config"], "img_size": 128}})
    out = tmp_path / "out"
    line = _one_line_error(
        _cli("generate", str(masks), "--out", str(out), "--model", str(model_copy)), 1, "img_size 128"
    )
    assert "generator.onnx" in line or "style_" in line
    assert not out.exists()


# ----------------------------------------------------------------------------- (c) options and memory


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--styles", "0"),
        ("--batch-size", "0"),
        ("--seed", "-1"),
        ("--workers", "0"),
        ("--styles", "1001"),
        ("--batch-size", "1000000000"),
    ],
)
def test_bad_option_values_exit_2_naming_the_flag_before_the_model_is_loaded(masks, tmp_path, flag, value):
    out = tmp_path / "out"
    # A model that does not exist: the option must be refused before anyone looks at it.
    done = _cli("generate", str(masks), "--out", str(out), "--model", str(tmp_path / "no-model"), flag, value)
    line = _one_line_error(done, 2, flag)
    assert "no-model" not in done.stderr and "Traceback" not in done.stderr, line
    assert not out.exists()


def test_batch_size_is_split_by_the_models_max_batch(masks, tmp_path):
    from maskface_rt.backends.onnxruntime_backend import OnnxRuntimeBackend
    from maskface_rt.generation.pipeline import run_generate
    from maskface_rt.generation.plan import GenerateOptions

    class Recording(OnnxRuntimeBackend):
        def generate(self, labels, styles):
            self.batches.append(len(labels))
            return super().generate(labels, styles)

    backend = Recording(default_model(), device="cpu")
    backend.batches = []
    declared = read_manifest(default_model()).max_batch
    report = run_generate(backend, masks, GenerateOptions(out=tmp_path / "out", styles=declared + 5, batch_size=1024))
    assert report.images_written == 2 * (declared + 5)
    assert max(backend.batches) == declared


def test_colour_mask_decodes_within_a_fixed_budget_per_pixel(tmp_path):
    import numpy as np
    from PIL import Image

    from maskface_rt.labels import PALETTE

    side = 4096
    labels = np.random.default_rng(0).integers(0, len(PALETTE), (side, side), dtype=np.uint8)
    path = tmp_path / "big.png"
    Image.fromarray(PALETTE[labels].astype(np.uint8)).save(path, compress_level=1)
    script = (
        "import resource, sys\nfrom maskface_rt.mask_io import read_mask\nbefore = resource.getrusage("
        "resource.RUSAGE_SELF).ru_maxrss\nassert read_mask(sys.argv[1], size=64).shape == (64, 64)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300)
    per_pixel = int(done.stdout) * 1024 / side**2
    # PIL's image (4 bytes a pixel), its numpy copy (3) and temporaries, the label map (1) and fixed-size
    # lookup steps: ~11 bytes a pixel measured (27 when the lookup ran on the whole image at once).
    assert per_pixel < 14, per_pixel


# ----------------------------------------------------------------------------- (b) checkpoints


def _safetensors(path: Path, header: object, data: bytes = b"") -> Path:
    import struct

    text = header if isinstance(header, str) else json.dumps(header)
    raw = text.encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _model_meta(**config) -> dict:
    from maskface_rt.config import ModelConfig

    return {"format": "maskface-model/1", "config": json.dumps({**ModelConfig(img_size=64).to_dict(), **config})}


def test_small_checkpoint_asking_for_wide_networks_allocates_nothing(tmp_path):
    tensor = {"generator.x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
    narrow = _safetensors(tmp_path / "narrow.safetensors", {"__metadata__": _model_meta(), **tensor}, bytes(16))
    path = _safetensors(
        tmp_path / "wide.safetensors",
        {"__metadata__": _model_meta(max_conv_dim=1024, base_dim=1024), **tensor},
        bytes(16),
    )
    assert path.stat().st_size < 1024
    # The narrow file first, so that lazy imports are not counted against the wide one.
    script = (
        "import resource, sys\nfrom maskface_rt.checkpoint import load_model\nfrom maskface_rt.errors import "
        "MaskfaceError\nfor i, p in enumerate(sys.argv[1:]):\n    before = resource.getrusage("
        "resource.RUSAGE_SELF).ru_maxrss\n    try:\n        load_model(p)\n    except MaskfaceError as e:\n"
        "        print(e)\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(narrow), str(path)], capture_output=True, text=True, timeout=300
    )
    message, grown_kb = done.stdout.splitlines()[1:]
    assert "does not match its config" in message and str(path) in message
    assert int(grown_kb) < 50 * 1024, f"{int(grown_kb) >> 10} MB for a {path.stat().st_size}-byte file"


def test_config_widths_beyond_sane_limits_are_refused(tmp_path):
    from maskface_rt.checkpoint import load_model

    path = _safetensors(tmp_path / "huge.safetensors", {"__metadata__": _model_meta(max_conv_dim=100000)})
    with pytest.raises(MaskfaceError, match=r"max_conv_dim must be an integer in 1\.\.4096"):
        load_model(path)


BAD_HEADERS = {
    "nested": "[" * 100000 + "]" * 100000,
    "nested-object": {"a": json.loads("[" * 200 + "]" * 200)},
    "shapeless": {"generator.w": {"dtype": "F32", "data_offsets": [0, 0]}},
    "bad-shape": {"generator.w": {"dtype": "F32", "shape": ["x"], "data_offsets": [0, 0]}},
    "offsets-past-end": {"generator.w": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}},
    "bad-config-json": {"__metadata__": {"format": "maskface-model/1", "config": "{not json"}},
    "bad-config-value": {"__metadata__": {"format": "maskface-model/1", "config": "[1, 2]"}},
    "metadata-list": {"__metadata__": [1]},
}


@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
def test_info_on_hostile_safetensors_is_one_line(tmp_path, case):
    path = _safetensors(tmp_path / f"{case}.safetensors", BAD_HEADERS[case])
    _one_line_error(_cli("info", str(path)), 1, str(path))


# ----------------------------------------------------------------------------- (d) outputs


class _Counting:
    """The bundled model on onnxruntime, counting generator calls."""

    def __new__(cls):
        from maskface_rt.backends.onnxruntime_backend import OnnxRuntimeBackend

        class Counting(OnnxRuntimeBackend):
            calls = 0

            def generate(self, labels, styles):
                self.calls += 1
                return super().generate(labels, styles)

        return Counting(default_model(), device="cpu")


def test_unwritable_output_folder_is_found_before_inference(masks):
    from maskface_rt.generation.pipeline import run_generate
    from maskface_rt.generation.plan import GenerateOptions

    out = Path("/sys/kernel")  # exists, and refuses new files even to root
    try:
        (out / "probe").touch()
    except OSError:
        pass
    else:
        pytest.skip(f"{out} is writable here")
    backend = _Counting()
    with pytest.raises(MaskfaceError, match="cannot write in this folder") as info:
        run_generate(backend, masks, GenerateOptions(out=out, styles=1))
    assert info.value.where == str(out) and backend.calls == 0


def test_resume_remakes_outputs_that_are_not_complete_pngs(masks, tmp_path):
    from maskface_rt.generation.pipeline import run_generate
    from maskface_rt.generation.plan import GenerateOptions

    out = tmp_path / "out"
    opts = GenerateOptions(out=out, styles=2)
    first = run_generate(_Counting(), masks, opts)
    assert first.images_written == 4
    files = sorted(out.glob("*.png"))
    good = {p.name: p.read_bytes() for p in files}
    files[0].write_bytes(b"")  # zero bytes
    files[1].write_bytes(good[files[1].name][:-20])  # truncated
    files[2].write_bytes(good[files[2].name][:-12] + b"\x00" * 12)  # same size, no IEND
    again = run_generate(_Counting(), masks, opts)
    assert again.images_written == 3 and again.images_existing == 1 and again.exit_code == 0
    assert {p.name: p.read_bytes() for p in files} == good


def test_atomic_write_fsyncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    from maskface_rt import fileio

    events = []
    real_fsync, real_link, real_replace = os.fsync, os.link, os.replace
    monkeypatch.setattr(
        os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))), real_fsync(fd))[1]
    )
    monkeypatch.setattr(os, "link", lambda a, b: (events.append(("publish", str(b))), real_link(a, b))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("publish", str(b))), real_replace(a, b))[1])
    target = tmp_path / "a.png"
    fileio.write_bytes_atomic(target, b"data")
    fileio.write_bytes_atomic(target, b"more", overwrite=True)
    for write in (events[:3], events[3:]):
        (kind0, tmp), (kind1, published), (kind2, folder) = write
        assert (kind0, kind1, kind2) == ("fsync", "publish", "fsync")
        assert Path(tmp).parent == tmp_path and tmp.endswith(".tmp") and published == str(target)
        assert folder == str(tmp_path)


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
def test_a_folder_is_replaced_whole_and_the_old_one_kept(tmp_path, monkeypatch, exchange):
    from maskface_rt import fileio

    if not exchange:
        monkeypatch.setattr(fileio, "_exchange", lambda a, b: False)  # systems without renameat2
    new, target, kept = tmp_path / "new", tmp_path / "model", tmp_path / "work" / "kept"
    for folder, text in ((new, "new"), (target, "old")):
        folder.mkdir()
        (folder / "graph.onnx").write_text(text)
    (target / "only-old.txt").write_text("old")
    kept.parent.mkdir()
    fileio.replace_folder(new, target, keep_old=kept)
    assert sorted(p.name for p in target.iterdir()) == ["graph.onnx"] and (target / "graph.onnx").read_text() == "new"
    assert sorted(p.name for p in kept.iterdir()) == ["graph.onnx", "only-old.txt"]
    assert (kept / "graph.onnx").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "work"]  # nothing left beside it


def test_stale_temp_files_of_dead_runs_are_removed_at_start(masks, tmp_path):
    from maskface_rt.generation.pipeline import run_generate
    from maskface_rt.generation.plan import GenerateOptions

    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = out / f".mf{dead_pid}-abcd_123.tmp"
    alive = out / f".mf{os.getppid()}-abcd_123.tmp"  # a running process's write in progress
    other = out / f".mf{dead_pid}-abcd_123.tmp.keep"  # not exactly the pattern
    for path in (stale, alive, other):
        path.write_bytes(b"")
    run_generate(_Counting(), masks, GenerateOptions(out=out, styles=1))
    assert not stale.exists() and alive.exists() and other.exists()


def test_a_240_character_mask_name_works(tmp_path):
    import numpy as np
    from PIL import Image

    from maskface_rt.generation.pipeline import run_generate
    from maskface_rt.generation.plan import GenerateOptions

    folder = tmp_path / "long"
    folder.mkdir()
    name = "m" * 240
    Image.fromarray(np.ones((64, 64), np.uint8)).save(folder / f"{name}.png")
    report = run_generate(_Counting(), folder, GenerateOptions(out=tmp_path / "out", styles=2))
    assert report.exit_code == 0 and report.images_written == 2
    assert (tmp_path / "out" / f"{name}_s1.png").is_file()


# ----------------------------------------------------------------------------- (e) messages


def test_a_newline_in_a_file_name_stays_on_one_line(masks, tmp_path):
    folder = tmp_path / "masks"
    shutil.copytree(masks, folder)
    (folder / "bad\nname.png").write_bytes(b"not a png")
    done = _cli("generate", str(folder), "--out", str(tmp_path / "out"), "--styles", "1")
    assert done.returncode == 3, done.stderr
    skipped = [line for line in done.stderr.splitlines() if "bad" in line]
    assert skipped == [
        f"skipped {folder}/bad\\nname.png: not an image file maskface reads (PNG, BMP, TIFF or WebP; JPEG for reference photos)"
    ]
    assert MaskfaceError(folder / "a\nb\tc.png", "x").__str__() == f"{folder}/a\\nb\\tc.png: x"


def test_a_fifo_as_mask_dir_is_one_named_line(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    _one_line_error(_cli("generate", str(fifo), "--out", str(tmp_path / "out")), 1, f"{fifo}: is a FIFO")
    assert not (tmp_path / "out").exists()


def test_a_symlink_loop_is_not_called_missing(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    _one_line_error(
        _cli("generate", str(tmp_path / "a"), "--out", str(tmp_path / "out")), 1, f"{tmp_path / 'a'}: symlink loop"
    )


def test_onnxruntime_writes_no_usage_events_under_home(masks, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    # a fresh process: what onnxruntime does at start-up with this HOME
    done = maskface("generate", str(masks), "--out", str(tmp_path / "out"), "--styles", "1", env={"HOME": str(home)})
    assert done.returncode == 0, done.stderr
    assert not (home / ".cache" / "Microsoft").exists(), sorted(home.rglob("*"))


# ----------------------------------------------------------------------------- issue 27: paths, options, messages


def test_a_symlink_loop_or_a_dangling_link_in_a_mask_folder_is_named_not_missing(masks, tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    shutil.copy(next(masks.glob("*.png")), folder / "good.png")
    (folder / "loop.png").symlink_to("loop2.png")
    (folder / "loop2.png").symlink_to("loop.png")
    (folder / "gone.png").symlink_to("nothing-here.png")
    done = _cli("generate", str(folder), "--out", str(tmp_path / "out"), "--styles", "1")
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr
    assert f"skipped {folder / 'gone.png'}: dangling symlink (to nothing-here.png)" in done.stderr
    assert f"skipped {folder / 'loop.png'}: symlink loop" in done.stderr
    assert (tmp_path / "out" / "good_s0.png").is_file()


def test_info_names_a_fifo_a_plain_folder_and_a_dangling_link(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "plain").mkdir()
    (tmp_path / "gone.engine").symlink_to("nowhere.engine")
    _one_line_error(_cli("info", str(tmp_path / "fifo")), 1, "fifo: is a FIFO, not a model file")
    _one_line_error(_cli("info", str(tmp_path / "plain")), 1, f"plain: is a folder without {MANIFEST}")
    _one_line_error(_cli("info", str(tmp_path / "gone.engine")), 1, "gone.engine: dangling symlink (to nowhere.engine)")
    _one_line_error(_cli("generate", str(tmp_path), "--out", "x", "--model", str(tmp_path / "fifo")), 1, "is a FIFO")


def test_an_output_path_that_cannot_be_a_folder_is_refused_before_any_work(masks, tmp_path):
    (tmp_path / "dangling").symlink_to("nowhere")
    (tmp_path / "file").write_text("keep me")
    done = _cli("generate", str(masks), "--out", str(tmp_path / "dangling"))
    _one_line_error(done, 1, "dangling: cannot be the output folder: dangling symlink (to nowhere)")
    assert "File exists" not in done.stderr and not (tmp_path / "nowhere").exists()
    _one_line_error(_cli("generate", str(masks), "--out", str(tmp_path / "file")), 1, "is a file, not a folder")
    assert (tmp_path / "file").read_text() == "keep me"


@pytest.mark.parametrize(
    "args, flag",
    [
        (["generate", "MASKS", "--out", ""], "--out"),
        (["generate", "", "--out", "OUT"], "MASK_DIR"),
        (["generate", "MASKS", "--out", "OUT", "--reference", ""], "--reference"),
        (["generate", "MASKS", "--out", "OUT", "--model", " "], "--model"),
        (["info", ""], "MODEL"),
        (["export", "", "--out", "OUT"], "MODEL"),
    ],
)
def test_an_empty_path_is_a_usage_error_not_the_current_folder(masks, tmp_path, monkeypatch, args, flag):
    """Path("") is ".": '--out ""' wrote the faces into the current folder."""
    monkeypatch.chdir(tmp_path)
    args = [str(masks) if a == "MASKS" else str(tmp_path / "out") if a == "OUT" else a for a in args]
    line = _one_line_error(_cli(*args), 2, flag, "is empty")
    assert "--out" not in line or flag == "--out"
    assert sorted(tmp_path.iterdir()) == []


def test_a_numbered_gpu_where_the_backend_takes_none_is_a_usage_error_before_any_work(masks, tmp_path):
    out = tmp_path / "out"
    line = _one_line_error(_cli("generate", str(masks), "--out", str(out), "--device", "cuda:99"), 2, "--device")
    assert "cuda:99" in line and "CUDA_VISIBLE_DEVICES=99" in line
    line = _one_line_error(
        _cli("generate", str(masks), "--out", str(out), "--device", "cuda:1", "--backend", "openvino"), 2, "--device"
    )
    assert "CPU only" in line
    assert not out.exists()


def test_styles_or_seed_beside_a_reference_is_a_usage_error(masks, tmp_path):
    photo = next(masks.glob("*.png"))  # any image file: it is refused before it is read
    out = tmp_path / "out"
    for given in (["--styles", "2"], ["--seed", "5"], ["--styles", "4", "--seed", "0"]):
        done = _cli("generate", str(masks), "--out", str(out), "--reference", str(photo), *given)
        line = _one_line_error(done, 2, "--reference", *given[::2])
        assert "seeded styles" in line
    assert not out.exists()


def test_generate_json_still_reports_a_run_stopped_by_a_full_disk(masks, tmp_path, monkeypatch):
    import errno

    from maskface_rt.generation import pipeline as gen

    def full(path, data, *, overwrite=False):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(gen, "write_bytes_atomic", full)
    done = _cli("generate", str(masks), "--out", str(tmp_path / "out"), "--json")
    line = _one_line_error(done, 1, "No space left on device", "run the same command again")
    report = json.loads(done.stdout)
    assert report["exit_code"] == 1 and report["error"] in line and report["images_written"] == 0
    assert report["masks"] == 2 and report["outputs"] == []
