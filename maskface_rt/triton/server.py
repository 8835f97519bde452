"""A local ``tritonserver`` on a model repository: the binary, python backend and stubs that the nvidia-pytriton
wheel ships (Triton 2.51), started on 127.0.0.1 with free ports (the tests and ``benchmarks/triton_load.py``).

What it takes (the wheel is made for PyTriton, which does the same): a backend directory holding the wheel's
python backend with the stub for this Python copied in; ``LD_LIBRARY_PATH`` naming the wheel's bundled libraries
(``nvidia_pytriton.libs``: the stub links its libcudart); and this environment's ``bin/`` first on ``PATH``, since
the stub's embedded Python takes its environment (numpy, maskface_rt) from the ``python3`` it finds there and does
not read ``PYTHONPATH``. Metrics, SageMaker and Vertex endpoints stay off: only the two ports listen, on loopback.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from maskface_rt.errors import MaskfaceError

INSTALL_HINT = "pip install --no-deps nvidia-pytriton==0.7.0 (its tritonserver binary; glibc 2.35 or newer)"


@dataclass(frozen=True)
class ServerFiles:
    """Where the wheel's pieces are."""

    binary: Path
    python_backend: Path
    stub: Path
    libs: Path


def server_files() -> ServerFiles:
    """The nvidia-pytriton wheel's tritonserver, python backend, stub for this Python and libraries."""
    spec = importlib.util.find_spec("pytriton")  # found, not imported: the package's own dependencies are not needed
    if spec is None or not spec.submodule_search_locations:
        raise MaskfaceError(None, f"no tritonserver here: {INSTALL_HINT}")
    root = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    files = ServerFiles(
        root / "bin" / "tritonserver",
        root / "backends" / "python",
        root / "python_backend_stubs" / version / "triton_python_backend_stub",
        root.parent.parent / "nvidia_pytriton.libs",
    )
    for path in (files.binary, files.python_backend, files.stub, files.libs):
        if not path.exists():
            raise MaskfaceError(path, f"missing from the nvidia-pytriton install (Python {version}); {INSTALL_HINT}")
    return files


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalServer:
    """A running tritonserver: its URLs (host:port, as tritonclient takes them), process and log."""

    http: str
    grpc: str
    process: subprocess.Popen
    log: Path

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http}/v2/health/ready", timeout=2) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (Triton finishes what is in flight, unloads the models), then wait; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


#: Attempts at starting, each on new free ports: another process may take a port between its choice and the bind.
START_ATTEMPTS = 3


@contextlib.contextmanager
def local_server(repository: Path, *, timeout: float = 120, log: Path | None = None) -> Iterator[LocalServer]:
    """``tritonserver`` on ``repository`` until the block ends (stopped with SIGTERM); ready when yielded.
    A server that exits or is not ready within ``timeout`` seconds is a MaskfaceError with its log's tail (one that
    could not bind its ports is started again on others, up to ``START_ATTEMPTS`` times)."""
    files = server_files()
    with tempfile.TemporaryDirectory(prefix="maskface-tritonserver-") as scratch:
        backends = Path(scratch) / "backends"
        shutil.copytree(files.python_backend, backends / "python")
        shutil.copy2(files.stub, backends / "python" / "triton_python_backend_stub")
        log = log or Path(scratch) / "tritonserver.log"
        for attempt in range(1, START_ATTEMPTS + 1):
            server = _start(files, repository, backends, log)
            try:
                _wait_ready(server, timeout)
                break
            except MaskfaceError:
                server.stop()
                if attempt == START_ATTEMPTS or "already in use" not in log.read_text(errors="replace"):
                    raise
        try:
            yield server
        finally:
            server.stop()


def _start(files: ServerFiles, repository: Path, backends: Path, log: Path) -> LocalServer:
    """tritonserver on two free loopback ports, its output in ``log``; not waited for."""
    http, grpc = free_port(), free_port()
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(files.libs), env.get("LD_LIBRARY_PATH")]))
    command = [
        str(files.binary),
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        "--http-address=127.0.0.1",
        f"--http-port={http}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc}",
        "--allow-metrics=false",
        "--exit-timeout-secs=10",
        "--strict-readiness=true",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    return LocalServer(f"127.0.0.1:{http}", f"127.0.0.1:{grpc}", process, log)


def _wait_ready(server: LocalServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not server.ready():
        if server.process.poll() is not None:
            raise MaskfaceError(None, f"tritonserver exited ({server.process.returncode}):\n{server.log_tail()}")
        if time.monotonic() > deadline:
            raise MaskfaceError(None, f"tritonserver not ready after {timeout:.0f} s:\n{server.log_tail()}")
        time.sleep(0.2)
