"""Rendering pairs (image, label map) and writing them as a data set, in worker processes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from maskface_rt import __version__
from maskface_rt.errors import MaskfaceError
from maskface_rt.fileio import write_json_atomic
from maskface_rt.image_io import save_png
from maskface_rt.labels import CLASS_NAMES, NUM_CLASSES
from maskface_rt.synth.appearance import Look, sample_look
from maskface_rt.synth.geometry import Geometry, paint, sample_geometry
from maskface_rt.synth.shading import Shader, shade_labels

GENERATOR_VERSION = f"maskface_rt.synth/1 (maskface-rt {__version__})"
MIN_SIZE, MAX_SIZE = 32, 1024
_SUPERSAMPLE = 2
_CHUNK = 16  # pairs per worker task


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> None:
    ok = (
        isinstance(value, (int, np.integer))
        and not isinstance(value, bool)
        and value >= lo
        and (hi is None or value <= hi)
    )
    if not ok:
        bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise MaskfaceError(name, f"must be an integer {bounds}, got {value!r}")


def render_pair(seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 [size,size,3], labels uint8 [size,size]) for pair `index` of the set with `seed`."""
    _check_int("seed", seed, 0)
    _check_int("index", index, 0)
    _check_int("size", size, MIN_SIZE, MAX_SIZE)
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    geo = sample_geometry(rng)
    return _render(geo, sample_look(rng), rng, size), paint(geo, size)


def _render(geo: Geometry, look: Look, rng: np.random.Generator, size: int) -> np.ndarray:
    fine = shade_labels(paint(geo, size * _SUPERSAMPLE), Shader(geo, look))
    rgb = np.asarray(Image.fromarray(np.ascontiguousarray(fine)).reduce(_SUPERSAMPLE), np.float32)
    rgb += rng.standard_normal((size, size, 1), np.float32) * look.noise  # drawn last: the same pair at every size
    return np.clip(rgb, 0, 255).astype(np.uint8)


def render_looks(seed: int, index: int, size: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The mask of pair ``index`` painted with ``count`` other appearances (the "real" styles of one mask).

    Returns (rgb uint8 [count, size, size, 3], labels uint8 [size, size]); appearance k is drawn from its
    own random state (seed, index, k), so it does not depend on ``count``.
    """
    _check_int("count", count, 1)
    _check_int("size", size, MIN_SIZE, MAX_SIZE)
    geo = sample_geometry(np.random.default_rng(np.random.SeedSequence([seed, index])))
    faces = []
    for k in range(count):
        rng = np.random.default_rng(np.random.SeedSequence([seed, index, k]))
        faces.append(_render(geo, sample_look(rng), rng, size))
    return np.stack(faces), paint(geo, size)


@dataclass
class SynthSummary:
    """What ``write_dataset`` wrote."""

    out: Path
    count: int
    size: int
    seed: int
    seconds: float
    class_pixel_counts: list[int]  # per class, summed over the set


def _write_pairs(out: Path, size: int, seed: int, indices: range, overwrite: bool) -> np.ndarray:
    """Render and save some pairs; their class pixel counts."""
    counts = np.zeros(NUM_CLASSES, np.int64)
    for i in indices:
        rgb, labels = render_pair(seed, i, size)
        save_png(out / "images" / f"{i:05d}.png", rgb, overwrite=overwrite)
        save_png(out / "masks" / f"{i:05d}.png", labels, overwrite=overwrite)
        counts += np.bincount(labels.ravel(), minlength=NUM_CLASSES)
    return counts


def _write_chunk(out: Path, size: int, seed: int, indices: range, overwrite: bool) -> np.ndarray | tuple:
    """``_write_pairs`` in a worker process; a MaskfaceError (which does not pickle) comes back as (where, problem)."""
    try:
        return _write_pairs(out, size, seed, indices, overwrite)
    except MaskfaceError as e:
        return e.where, e.problem


def _run_chunks(
    out: Path, size: int, seed: int, chunks: list[range], overwrite: bool, workers: int
) -> Iterator[tuple[range, np.ndarray]]:
    """(chunk, class pixel counts) for each chunk written, in order of completion."""
    if workers == 1 or len(chunks) == 1:
        for chunk in chunks:
            yield chunk, _write_pairs(out, size, seed, chunk, overwrite)
        return
    # processes, not threads: rendering is many small numpy calls that hold the GIL
    pool = ProcessPoolExecutor(min(workers, len(chunks)))
    try:
        futures = {pool.submit(_write_chunk, out, size, seed, chunk, overwrite): chunk for chunk in chunks}
        for future in as_completed(futures):
            result = future.result()
            if isinstance(result, tuple):
                raise MaskfaceError(*result)
            yield futures[future], result
    finally:
        pool.shutdown(cancel_futures=True)


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise MaskfaceError(out, "exists and is not a folder")
    if overwrite:
        return
    held = any((out / sub).is_dir() and any((out / sub).glob("*.png")) for sub in ("images", "masks"))
    if held or (out / "synth.json").exists():
        raise MaskfaceError(out, "already holds a data set (pass --overwrite to replace it)")


def _default_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, 8))


def write_dataset(
    out: str | Path,
    count: int,
    size: int,
    seed: int,
    *,
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write ``count`` pairs as out/images/00000.png (RGB), out/masks/00000.png (labels, mode L), out/synth.json.

    Refuses a folder that already holds a data set unless ``overwrite``; ``progress(n)``
    is called after every n pairs written.
    """
    out = Path(out)
    _check_int("count", count, 1)
    _check_int("size", size, MIN_SIZE, MAX_SIZE)
    _check_int("seed", seed, 0)
    if workers is not None:
        _check_int("workers", workers, 1)
    _check_target(out, overwrite)
    for sub in (out / "images", out / "masks"):
        try:
            sub.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MaskfaceError(sub, f"cannot create the folder ({e.strerror or e})") from None
    start = time.perf_counter()
    chunks = [range(i, min(i + _CHUNK, count)) for i in range(0, count, _CHUNK)]
    counts = np.zeros(NUM_CLASSES, np.int64)
    for chunk, chunk_counts in _run_chunks(out, size, seed, chunks, overwrite, workers or _default_workers()):
        counts += chunk_counts
        if progress:
            progress(len(chunk))
    pixel_counts = [int(c) for c in counts]
    write_json_atomic(
        out / "synth.json",
        {
            "generator": GENERATOR_VERSION,
            "layout": "paired",
            "count": count,
            "size": size,
            "seed": seed,
            "class_names": list(CLASS_NAMES),
            "class_pixel_counts": pixel_counts,
        },
        overwrite=overwrite,
    )
    return SynthSummary(out, count, size, seed, time.perf_counter() - start, pixel_counts)
