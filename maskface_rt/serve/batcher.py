"""Dynamic batching: concurrent requests' faces share one backend call.

Requests put one job per face on an asyncio queue; one task takes the first job, waits at most
``max_delay_s`` for more (up to ``max_batch``), and runs the backend on a single worker thread, so
the event loop never blocks and the backend is never called from two threads. A job whose request
was cancelled (its client went away) is dropped before it reaches the backend.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from maskface_rt.backends.base import GeneratorBackend
from maskface_rt.serve.metrics import Metrics

T = TypeVar("T")


class Overloaded(Exception):
    """The queue is full: the request is refused (503 with Retry-After)."""


@dataclass
class _Job:
    labels: np.ndarray  # uint8 [H, W], canonical
    style: np.ndarray  # float32 [style_dim]
    result: asyncio.Future[np.ndarray]


class Batcher:
    """Queues faces, batches them into backend calls; ``run()`` is the one consumer task."""

    def __init__(self, backend: GeneratorBackend, *, max_batch: int, max_delay_s: float, max_queue: int,
                 metrics: Metrics) -> None:
        self.backend, self.metrics = backend, metrics
        self.max_batch = min(max_batch, backend.max_batch or max_batch)
        self.max_delay_s, self.max_queue = max_delay_s, max_queue
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="maskface-backend")

    @property
    def queued(self) -> int:
        """Faces waiting for the backend."""
        return self._queue.qsize()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the backend thread (style mapping and encoding share it with generation)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def generate(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        """Faces uint8 [n, H, W, 3] of one mask [H, W] with n styles [n, style_dim].

        Raises Overloaded when the queue cannot take n more faces (a request larger than the whole queue is
        still taken when the queue is empty). Cancelling the caller drops its faces that are still queued.
        """
        n = len(styles)
        if self.queued and self.queued + n > self.max_queue:
            raise Overloaded(f"the queue is full ({self.queued} faces waiting, limit {self.max_queue})")
        loop = asyncio.get_running_loop()
        jobs = [_Job(labels, styles[i], loop.create_future()) for i in range(n)]
        for job in jobs:
            self._queue.put_nowait(job)
        self.metrics.queue_length.set(self.queued)
        try:
            return np.stack(await asyncio.gather(*(job.result for job in jobs)))
        except asyncio.CancelledError:
            for job in jobs:
                job.result.cancel()
            raise

    async def run(self) -> None:
        """Take batches off the queue forever (until cancelled)."""
        while True:
            batch = await self._next_batch()
            if batch:
                await self._run_batch(batch)

    async def _next_batch(self) -> list[_Job]:
        jobs = [await self._queue.get()]
        deadline = time.monotonic() + self.max_delay_s
        while len(jobs) < self.max_batch:
            if self._queue.empty():
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    jobs.append(await asyncio.wait_for(self._queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            else:
                jobs.append(self._queue.get_nowait())
        self.metrics.queue_length.set(self.queued)
        live = [job for job in jobs if not job.result.done()]  # done here = cancelled: the client has gone
        self.metrics.dropped_images.inc(len(jobs) - len(live))
        return live

    async def _run_batch(self, jobs: list[_Job]) -> None:
        labels = np.stack([job.labels for job in jobs])
        styles = np.stack([job.style for job in jobs]).astype(np.float32, copy=False)
        self.metrics.batch_size.observe(len(jobs))
        try:
            images = await self.call(self._generate, labels, styles)
        except Exception as e:  # noqa: BLE001 - every waiting request gets the backend's failure
            for job in jobs:
                if not job.result.done():
                    job.result.set_exception(e)
            return
        self.metrics.images.inc(len(jobs))
        for job, image in zip(jobs, images):
            if not job.result.done():
                job.result.set_result(image)

    def _generate(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        # A copy: a backend may reuse its output buffer on the next call while faces are still being encoded.
        return np.array(self.backend.generate(labels, styles), dtype=np.uint8, copy=True)

    def close(self) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)
