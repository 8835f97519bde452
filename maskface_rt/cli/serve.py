"""``maskface serve``: the HTTP service and the mask editor (maskface_rt/serve/).

Options are checked before any work; the [serve] extra (FastAPI, uvicorn) is imported only once they pass.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import socket
from pathlib import Path
from typing import Annotated, Optional

import typer

from maskface_rt.cli.options import backend_option, device_option, model_option, precision_option, usage_error
from maskface_rt.console import stderr
from maskface_rt.errors import MaskfaceError

#: Modules of the [serve] extra (import name -> distribution).
SERVE_MODULES = {
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "multipart": "python-multipart",
    "prometheus_client": "prometheus-client",
}


def missing_serve_modules() -> list[str]:
    """Distributions of the [serve] extra that are not installed."""
    return [dist for module, dist in SERVE_MODULES.items() if importlib.util.find_spec(module) is None]


def serve(
    model: Annotated[Path | None, model_option()] = None,
    backend: Annotated[str, backend_option()] = "auto",
    device: Annotated[str, device_option("auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, precision_option()] = "auto",
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on; anything but loopback needs a reverse proxy for TLS and auth (README).",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    max_batch: Annotated[int, typer.Option("--max-batch", min=1, max=128, help="Most faces in one backend call.")] = 8,
    max_delay_ms: Annotated[
        float, typer.Option("--max-delay-ms", min=0.0, max=1000.0, help="Longest wait for a batch to fill.")
    ] = 5.0,
    max_queue: Annotated[
        int, typer.Option("--max-queue", min=1, help="Faces waiting at most; more get 503 + Retry-After.")
    ] = 64,
    max_body_mb: Annotated[
        float, typer.Option("--max-body-mb", min=0.001, max=1024.0, help="Largest request body (MiB); larger get 413.")
    ] = 8.0,
    body_timeout_s: Annotated[
        float,
        typer.Option("--body-timeout-s", min=0.1, max=3600.0, help="Seconds to send a request body; slower get 408."),
    ] = 30.0,
    max_connections: Annotated[
        int, typer.Option("--max-connections", min=1, max=100_000, help="Open connections at most; more get 503.")
    ] = 256,
    shutdown_timeout_s: Annotated[
        float,
        typer.Option(
            "--shutdown-timeout-s",
            min=0.0,
            max=3600.0,
            help="On Ctrl-C or SIGTERM, seconds that requests under way may take to finish.",
        ),
    ] = 10.0,
    api_docs: Annotated[
        bool,
        typer.Option(
            "--api-docs",
            help="Also serve FastAPI's interactive /docs and /redoc pages, which load scripts from a CDN "
            "(jsDelivr) and a favicon from fastapi.tiangolo.com; /openapi.json is always there.",
        ),
    ] = False,
    allowed_hosts: Annotated[
        Optional[str],
        typer.Option(
            "--allowed-hosts",
            help="Comma-separated Host names answered ('*': any; behind a proxy, its public name); others get 400 "
            "(default: localhost, 127.0.0.1, ::1 and --host).",
        ),
    ] = None,
) -> None:
    """Serve faces over HTTP (POST /v1/faces, dynamic batching) and the mask editor at /."""
    from maskface_rt.backends import backend_problem, open_backend
    from maskface_rt.bundled import default_model

    try:
        if host != "localhost":
            ipaddress.ip_address(host)
    except ValueError:
        raise typer.BadParameter(
            f"{host!r} is not an IP address (e.g. 127.0.0.1, 0.0.0.0 or ::1)", param_hint="--host"
        ) from None
    names = tuple(n.strip() for n in allowed_hosts.split(",") if n.strip()) if allowed_hosts is not None else ()
    if allowed_hosts is not None and not names:
        raise typer.BadParameter("give at least one host name, or '*' for any", param_hint="--allowed-hosts")
    model = model if model is not None else default_model()
    if problem := backend_problem(model, backend, device=device, precision=precision):
        raise usage_error(problem)
    if missing := missing_serve_modules():
        raise MaskfaceError(None, f"maskface serve needs {', '.join(missing)}: pip install 'maskface-rt[serve]'")

    _check_bind(host, port)
    import uvicorn

    from maskface_rt.serve.app import LOOPBACK_NAMES, ServeSettings, create_app

    settings = ServeSettings(
        max_batch=max_batch,
        max_delay_ms=max_delay_ms,
        max_queue=max_queue,
        max_body_bytes=int(max_body_mb * 2**20),
        allowed_hosts=names or tuple(dict.fromkeys((*LOOPBACK_NAMES, host))),
        body_timeout_s=body_timeout_s,
        api_docs=api_docs,
    )
    with open_backend(model, backend, device=device, precision=precision) as runtime:
        if host not in ("127.0.0.1", "::1", "localhost"):
            stderr.print(f"listening on {host}: put a reverse proxy with TLS and auth in front (README: serve)")
        stderr.print(
            f"maskface serve: {runtime.description}, editor and API at http://{'[' + host + ']' if ':' in host else host}"
            f":{port}/ (API: /openapi.json{', /docs' if api_docs else ''})",
            markup=False,
        )
        config = uvicorn.Config(
            create_app(runtime, settings),
            host=host,
            port=port,
            log_level="warning",
            limit_concurrency=max_connections,
            # uvicorn's annotation says int; it hands the value to asyncio.wait_for, which takes any seconds
            timeout_graceful_shutdown=shutdown_timeout_s,  # type: ignore[arg-type]
        )
        try:
            # Not uvicorn.run, which swallows the KeyboardInterrupt that uvicorn raises again after a graceful
            # shutdown on Ctrl-C or SIGTERM: maskface then exits 130 or 143, as every command does.
            uvicorn.Server(config).run()
        except SystemExit as e:  # uvicorn's startup failure (3) is not the README's "some inputs skipped"
            if e.code:
                raise MaskfaceError(f"{host}:{port}", "the server could not start (see the line above)") from None


def _check_bind(host: str, port: int) -> None:
    """Refuse an address that cannot be listened on before the model is loaded."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise MaskfaceError(
                f"{host}:{port}", f"cannot listen there ({e.strerror or e}); pick another --port or --host"
            ) from None


command = serve
