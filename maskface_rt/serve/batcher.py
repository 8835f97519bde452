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
    code: np.ndarray  # float32: a style [style_dim], or a latent [latent_dim] when is_latent
    is_latent: bool
    result: asyncio.Future[np.ndarray]
    taken: bool = False  # off the queue, into a batch


class Batcher:
    """Queues faces, batches them into backend calls; ``run()`` is the one consumer task."""

    def __init__(
        self, backend: GeneratorBackend, *, max_batch: int, max_delay_s: float, max_queue: int, metrics: Metrics
    ) -> None:
        self.backend, self.metrics = backend, metrics
        self.max_batch = min(max_batch, backend.max_batch or max_batch)
        self.max_delay_s, self.max_queue = max_delay_s, max_queue
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._waiting = 0  # queued faces whose client is still there (the queue also holds dropped ones)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="maskface-backend")

    @property
    def queued(self) -> int:
        """Faces waiting for the backend."""
        return self._waiting

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the backend thread (a reference photo's style encoding shares it with generation)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def check_room(self, n: int) -> None:
        """Overloaded unless the queue can take n more faces (any number when it is empty)."""
        if self.queued and self.queued + n > self.max_queue:
            raise Overloaded(f"the queue is full ({self.queued} faces waiting, limit {self.max_queue})")

    async def generate(self, labels: np.ndarray, codes: np.ndarray, *, latents: bool = False) -> np.ndarray:
        """Faces uint8 [n, H, W, 3] of one mask [H, W] with n styles [n, style_dim], or with the styles of n
        latents [n, latent_dim] (``latents=True``: mapped in the batch's own backend call, one mapping per batch
        instead of one trip to the backend thread per request).

        Raises Overloaded when the queue cannot take n more faces (a request larger than the whole queue is
        still taken when the queue is empty). Cancelling the caller drops its faces that are still queued.
        """
        n = len(codes)
        self.check_room(n)
        loop = asyncio.get_running_loop()
        jobs = [_Job(labels, codes[i], latents, loop.create_future()) for i in range(n)]
        for job in jobs:
            self._queue.put_nowait(job)
        self._waiting += n
        self.metrics.queue_length.set(self._waiting)
        try:
            return np.stack(await asyncio.gather(*(job.result for job in jobs)))
        except asyncio.CancelledError:
            for job in jobs:
                job.result.cancel()
            self._take(jobs)
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
        self._take(jobs)
        live = [job for job in jobs if not job.result.done()]  # done here = cancelled: the client has gone
        self.metrics.dropped_images.inc(len(jobs) - len(live))
        return live

    def _take(self, jobs: list[_Job]) -> None:
        """Stop counting jobs as waiting: taken into a batch, or dropped with their request."""
        for job in jobs:
            if not job.taken:
                job.taken = True
                self._waiting -= 1
        self.metrics.queue_length.set(self._waiting)

    async def _run_batch(self, jobs: list[_Job]) -> None:
        self.metrics.batch_size.observe(len(jobs))
        try:
            images = await self.call(self._generate, jobs)
        except Exception as e:  # noqa: BLE001 - every waiting request gets the backend's failure
            for job in jobs:
                if not job.result.done():
                    job.result.set_exception(e)
            return
        self.metrics.images.inc(len(jobs))
        for job, image in zip(jobs, images):
            if not job.result.done():
                job.result.set_result(image)

    def _generate(self, jobs: list[_Job]) -> np.ndarray:
        """On the backend thread: map the batch's latents (one call), then generate."""
        styles = [job.code for job in jobs]
        if mapped := [i for i, job in enumerate(jobs) if job.is_latent]:
            for i, style in zip(mapped, self.backend.map_latent(np.stack([styles[i] for i in mapped]))):
                styles[i] = style
        labels = np.stack([job.labels for job in jobs])
        images = self.backend.generate(labels, np.stack(styles).astype(np.float32, copy=False))
        # A copy: a backend may reuse its output buffer on the next call while faces are still being encoded.
        return np.array(images, dtype=np.uint8, copy=True)

    def close(self) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)
