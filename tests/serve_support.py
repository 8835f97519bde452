"""An in-process uvicorn server on 127.0.0.1 and a free port, for the serve tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np


def free_port() -> int:
    """A port free a moment ago, for a server in another process (which may lose it in between: its start then
    fails and says so); a server in this process gets a socket already bound instead (``running``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(app: object) -> Iterator[str]:
    """Serve ``app`` on a thread, on a socket bound here before the server starts (no port can be taken in
    between); yields its base URL and stops it afterwards."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
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
        sock.close()


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


class GatedBackend:
    """The real backend, recording the size of every generate call; with ``hold``, the first call waits until
    ``release()`` (so that requests can pile up behind it: what happens next is decided by events, not time)."""

    def __init__(self, backend: object, hold: bool = False) -> None:
        self._backend, self.sizes = backend, []
        self.entered, self._gate = threading.Event(), threading.Event()
        if not hold:
            self._gate.set()

    def __getattr__(self, name: str) -> object:
        return getattr(self._backend, name)

    def release(self) -> None:
        self._gate.set()

    def generate(self, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
        self.sizes.append(len(labels))
        self.entered.set()
        if not self._gate.wait(60):
            raise TimeoutError("the test never released the backend")
        return self._backend.generate(labels, styles)
