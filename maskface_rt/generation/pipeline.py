"""The generate pipeline: every mask of a folder x every style -> one PNG face each (``maskface generate``).

The pipeline keeps the backend busy on the main thread while a small thread pool
decodes masks ahead of it and encodes and writes the faces behind it:

    plan (which outputs are missing) -> decode (pool) -> batches across files (main: backend)
    -> encode + atomic write (pool) -> optional contact sheets

Output ``OUT/<mask>_s<k>.png`` depends only on the mask, the model and (seed, k) (or the
reference photo), never on the batch it was generated in, so a run can be interrupted
and resumed: existing outputs are kept and only the missing ones are made.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from maskface_rt.backends.base import GeneratorBackend
from maskface_rt.errors import MaskfaceError
from maskface_rt.fileio import write_bytes_atomic
from maskface_rt.generation.plan import GenerateOptions, MaskPlan, Skipped, plan_run
from maskface_rt.generation.report import GenerateReport, RunStopped, build_report
from maskface_rt.image_io import encode_png, read_rgb, resize_rgb
from maskface_rt.labels import colorize

#: Mask rows per contact sheet.
GRID_ROWS = 16
#: Write errors after which no other output can succeed either: stop instead of skipping every mask.
_FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def run_generate(
    backend: GeneratorBackend,
    mask_dir: Path,
    opts: GenerateOptions,
    on_total: Callable[[int], None] | None = None,
    on_advance: Callable[[int], None] | None = None,
) -> GenerateReport:
    """Generate ``OUT/<mask>_s<k>.png`` (or ``_ref-<photo>.png``) for every mask under ``mask_dir``.

    Options, references and the mask list are checked first (MaskfaceError; nothing is
    written then). ``on_total(n)`` is called once with the number of images to make,
    ``on_advance(n)`` on the calling thread as n more of them are done (written, or
    given up with their mask). Bad masks and unwritable outputs are reported in
    ``skipped``; an exception (KeyboardInterrupt included) stops the run after the
    writes in progress finish, leaving only complete files.
    """
    start = time.perf_counter()
    planned = plan_run(mask_dir, opts)
    if on_total:
        on_total(planned.todo)
    planned.prepare_output(opts.grid)

    run: _Run | None = None

    def report(error: str | None = None) -> GenerateReport:
        grids: dict[str, Any] = (
            {}
            if run is None
            else dict(
                grid_problems=run.grid_problems,
                grid_outputs=run.grid_outputs,
                grids_written=run.grids_written,
                grids_existing=run.grids_existing,
            )
        )
        seconds = time.perf_counter() - start
        return build_report(
            GenerateReport, planned, seconds, backend.description, str(backend.model_path), error=error, **grids
        )

    try:
        with _pipeline(backend, opts, on_advance) as run:
            if planned.to_make:
                run.styles = style_codes(backend, opts, planned.references)
                run.generate(planned.to_make)
            if opts.grid:
                run.write_grids([p for p in planned.plans if not p.problem], planned.out)
    except MaskfaceError as e:
        raise RunStopped(e, report(str(e))) from None
    return report()


def generate_plans(
    backend: GeneratorBackend, opts: GenerateOptions, styles: np.ndarray, plans: Sequence[MaskPlan]
) -> None:
    """Make the missing outputs of ``plans`` with ``styles`` (from ``style_codes``); each plan records what it
    wrote, found written by another process, or why it was skipped (``maskface generate --ray``'s workers)."""
    with _pipeline(backend, opts) as run:
        run.styles = styles
        run.generate(plans)


@contextlib.contextmanager
def _pipeline(
    backend: GeneratorBackend, opts: GenerateOptions, on_advance: Callable[[int], None] | None = None
) -> Iterator[_Run]:
    """A run with its thread pool; on the way out (an exception too) the writes in progress finish."""
    with ThreadPoolExecutor(opts.workers, thread_name_prefix="maskface-io") as pool:
        try:
            yield _Run(backend, opts, pool, on_advance)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # no half-written files


def style_codes(
    backend: GeneratorBackend, opts: GenerateOptions, references: Sequence[tuple[str, np.ndarray]]
) -> np.ndarray:
    """float32 [styles, style_dim], computed once: style k depends only on (seed, k) or reference k."""
    if not references:
        return np.ascontiguousarray(backend.styles_for_seed(opts.seed, opts.styles), dtype=np.float32)
    size = backend.config.img_size
    photos = np.stack([resize_rgb(rgb, size) for _, rgb in references])
    step = backend.max_batch or len(photos)
    styles = [backend.encode_style(photos[i : i + step]) for i in range(0, len(photos), step)]
    return np.ascontiguousarray(np.concatenate(styles), dtype=np.float32)


# ----------------------------------------------------------------------------- the pipeline


class _WriteFailed(Exception):
    """An output that could not be written; its mask is skipped, the run goes on."""


class _Run:
    """State of one run: the pool, pending work, counters and the skipped masks."""

    def __init__(
        self,
        backend: GeneratorBackend,
        opts: GenerateOptions,
        pool: ThreadPoolExecutor,
        on_advance: Callable[[int], None] | None,
    ) -> None:
        self.backend, self.opts, self.pool, self.on_advance = backend, opts, pool, on_advance
        self.size = backend.config.img_size
        self.batch = min(opts.batch_size, backend.max_batch or opts.batch_size)
        # Masks decoded ahead: at least one full batch even at one image per mask, so the
        # backend never waits on decoding; bounded so memory does not grow with the folder.
        self.prefetch = self.batch + 2 * opts.workers
        self.max_pending_writes = 2 * self.batch + 2 * opts.workers
        self.styles = np.empty((0, 0), np.float32)
        self.grids_written = self.grids_existing = 0
        self.grid_outputs: list[str] = []
        self.grid_problems: list[Skipped] = []  # rows left out of contact sheets
        self._pending_writes: deque[tuple[MaskPlan, int, Future[bool]]] = deque()

    def advance(self, n: int) -> None:
        if n and self.on_advance:
            self.on_advance(n)

    # -- generation

    def generate(self, plans: Sequence[MaskPlan]) -> None:
        """Run every missing (mask, style) through the backend in full batches and write the faces."""
        for jobs, labels, styles in self._batches(plans):
            images = self.backend.generate(labels, styles)
            _check_images(images, len(jobs), self.size)
            # One memcpy per batch (negligible next to the network) so that a backend may reuse
            # its output buffer while the pool is still encoding this batch.
            images = np.array(images, dtype=np.uint8, order="C", copy=True)
            for i, (plan, k) in enumerate(jobs):
                path = plan.outputs[k]
                overwrite = self.opts.overwrite or k in plan.replace
                self._pending_writes.append((plan, k, self.pool.submit(_write_png, images[i], path, overwrite)))
            self._collect_writes(block_above=self.max_pending_writes)
        self._collect_writes(block_above=0)

    def _batches(
        self, plans: Sequence[MaskPlan]
    ) -> Iterator[tuple[list[tuple[MaskPlan, int]], np.ndarray, np.ndarray]]:
        """Jobs (mask, style index) packed across files into batches of self.batch (the last may be smaller).

        Yields views of two reused buffers, valid until the next batch is requested.
        """
        labels = np.empty((self.batch, self.size, self.size), np.uint8)
        styles = np.empty((self.batch, self.styles.shape[1]), np.float32)
        jobs: list[tuple[MaskPlan, int]] = []
        for plan, mask in self._decoded(plans):
            for k in plan.missing:
                labels[len(jobs)], styles[len(jobs)] = mask, self.styles[k]
                jobs.append((plan, k))
                if len(jobs) == self.batch:
                    yield jobs, labels, styles
                    jobs = []
        if jobs:
            yield jobs, labels[: len(jobs)], styles[: len(jobs)]

    def _decoded(self, plans: Sequence[MaskPlan]) -> Iterator[tuple[MaskPlan, np.ndarray]]:
        """(plan, label map) in order, decoded on the pool at most self.prefetch masks ahead; bad masks skipped."""
        upcoming = iter(plans)
        pending: deque[tuple[MaskPlan, Future[np.ndarray]]] = deque()

        def refill() -> None:
            while len(pending) < self.prefetch and (plan := next(upcoming, None)) is not None:
                pending.append(
                    (plan, self.pool.submit(plan.source.read, size=self.size, label_order=self.opts.label_order))
                )

        refill()
        while pending:
            plan, future = pending.popleft()
            refill()
            try:
                mask = future.result()
            except MaskfaceError as e:
                plan.skip(e.problem, e.where)
                self.advance(len(plan.missing))
                continue
            except OSError as e:
                plan.skip(f"cannot read the mask ({e.strerror or e})")
                self.advance(len(plan.missing))
                continue
            yield plan, mask

    def _collect_writes(self, block_above: int) -> None:
        """Account for finished writes, in order; wait for the oldest while more than ``block_above`` are pending."""
        done = 0
        while self._pending_writes and (len(self._pending_writes) > block_above or self._pending_writes[0][2].done()):
            plan, k, future = self._pending_writes.popleft()
            try:
                written = future.result()
            except _WriteFailed as e:
                plan.skip(str(e))
            else:
                if written:
                    plan.written.append(k)
                else:
                    plan.raced += 1
            done += 1
        self.advance(done)

    # -- contact sheets

    def write_grids(self, plans: Sequence[MaskPlan], out: Path) -> None:
        """Contact sheets of at most GRID_ROWS masks: colourised mask | its faces, one row per mask."""
        plans = [p for p in plans if all(path.is_file() for path in p.outputs)]
        chunks = [plans[i : i + GRID_ROWS] for i in range(0, len(plans), GRID_ROWS)]
        digits = max(3, len(str(len(chunks) - 1)))
        names = ["grid.png"] if len(chunks) == 1 else [f"grid_{i:0{digits}d}.png" for i in range(len(chunks))]
        pending: deque[tuple[Path, Future[tuple[bool | None, list[Skipped]]]]] = deque()
        for chunk, name in zip(chunks, names):
            path = out / name
            if not self.opts.overwrite and os.path.lexists(path):
                self.grids_existing += 1
                continue
            pending.append((path, self.pool.submit(self._write_grid, chunk, path)))
            while len(pending) > self.opts.workers:
                self._collect_grid(*pending.popleft())
        while pending:
            self._collect_grid(*pending.popleft())

    def _collect_grid(self, path: Path, future: Future[tuple[bool | None, list[Skipped]]]) -> None:
        try:
            written, problems = future.result()
        except _WriteFailed as e:
            written, problems = None, [Skipped(str(path), str(e))]
        self.grid_problems.extend(problems)
        if written:
            self.grids_written += 1
            self.grid_outputs.append(str(path))
        elif written is False:
            self.grids_existing += 1

    def _write_grid(self, plans: Sequence[MaskPlan], path: Path) -> tuple[bool | None, list[Skipped]]:
        """Build and write one sheet (on the pool): (written, or None when no row was readable; the problems).

        Rows whose files cannot be read are left out and reported.
        """
        rows, problems = [], []
        for plan in plans:
            try:
                cells = [colorize(plan.source.read(size=self.size, label_order=self.opts.label_order))]
                cells += [resize_rgb(read_rgb(p), self.size) for p in plan.outputs]
            except MaskfaceError as e:
                problems.append(Skipped(e.where or str(plan.source.path), f"left out of {path.name}: {e.problem}"))
                continue
            rows.append(np.concatenate(cells, axis=1))
        if not rows:
            return None, problems
        return _write_png(np.concatenate(rows, axis=0), path, self.opts.overwrite), problems


def _check_images(images: np.ndarray, count: int, size: int) -> None:
    """The backend's output must be uint8 [count, size, size, 3]; anything else is a backend bug."""
    shape = getattr(images, "shape", None)
    if shape != (count, size, size, 3) or images.dtype != np.uint8:
        raise RuntimeError(
            f"backend returned {getattr(images, 'dtype', type(images))} {shape} for {count} "
            f"masks; expected uint8 ({count}, {size}, {size}, 3)"
        )


def _write_png(image: np.ndarray, path: Path, overwrite: bool) -> bool:
    """Encode and write one PNG atomically (on the pool). False: another process wrote it first.

    A problem with this one file raises _WriteFailed; a full or read-only disk, where no
    other output could be written either, raises MaskfaceError and stops the run.
    """
    data = encode_png(image)
    try:
        write_bytes_atomic(path, data, overwrite=overwrite)
    except MaskfaceError as e:
        if not overwrite and path.is_file():
            return False
        raise _WriteFailed(f"cannot write {path}: {e.problem}") from None
    except OSError as e:
        if e.errno in _FATAL_ERRNOS:
            raise MaskfaceError(
                path,
                f"cannot write ({e.strerror}); stopping. The files written so far are "
                "complete: run the same command again to resume",
            ) from None
        raise _WriteFailed(f"cannot write {path} ({e.strerror or e})") from None
    return True
