"""An in-process uvicorn server on 127.0.0.1 and a free port, for the serve tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(app: object) -> Iterator[str]:
    """Serve ``app`` on a thread; yields its base URL and stops it afterwards."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


class SlowBackend:
    """The real backend with a delay before each generate call (to fill the queue), counting the faces made."""

    def __init__(self, backend: object, delay_s: float) -> None:
        self._backend, self.delay_s, self.generated = backend, delay_s, 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._backend, name)

    def generate(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        time.sleep(self.delay_s)
        self.generated += len(labels)
        return self._backend.generate(labels, styles)
