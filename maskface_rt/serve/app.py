"""The HTTP API and the editor page, on one opened backend.

Every problem with a request is a 4xx whose JSON body ``{"detail": "<one line>"}`` names the field and the
problem; the backend runs only on the batcher's thread; uploads are decoded by mask_io / image_io, the same
code (and decompression-bomb guard) as ``maskface generate``, so a (mask, seed, k) gives the same PNG bytes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import re
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from maskface_rt import __version__
from maskface_rt.backends.base import GeneratorBackend, latent_for_style
from maskface_rt.errors import MaskfaceError
from maskface_rt.image_io import encode_png, read_rgb, resize_rgb
from maskface_rt.labels import CLASS_NAMES, LABEL_ORDERS, PALETTE
from maskface_rt.mask_io import mask_to_png, read_mask
from maskface_rt.serve.batcher import Batcher, Overloaded
from maskface_rt.serve.metrics import Metrics

STATIC = Path(__file__).parent / "static"
EXAMPLES = STATIC / "examples"
#: Most style indices one request may ask for.
MAX_STYLES = 16
#: Largest label map /v1/labels returns (the editor paints at the examples' 256).
MAX_LABEL_SIZE = 1024
_ROUTES = (
    "/",
    "/v1/faces",
    "/v1/labels",
    "/v1/model",
    "/v1/examples",
    "/healthz",
    "/metrics",
    "/docs",
    "/redoc",
    "/openapi.json",
)
T = TypeVar("T")


#: Largest side of an uploaded mask or reference photo: the service makes one image size, so it takes no more
#: than a 4096 px photo (16 Mpx, 64 MB decoded) and refuses a larger header in milliseconds, before decoding.
MAX_UPLOAD_SIDE = 4096

#: The names of this machine's loopback addresses, answered by default.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class ServeSettings:
    """The service's limits (one field per ``maskface serve`` option)."""

    max_batch: int = 8
    max_delay_ms: float = 5.0
    max_queue: int = 64
    max_body_bytes: int = 8 * 2**20
    retry_after_s: int = 1
    #: Host header names answered (without the port; "*": any). A browser page elsewhere can reach a local service
    #: through a name it controls (DNS rebinding): only these names get an answer.
    allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES
    #: Seconds a client has to send a request's whole body; a slower one gets 408 (it holds a connection).
    body_timeout_s: float = 30.0
    #: Uploads decoded at once (each up to MAX_UPLOAD_SIDE^2 pixels): bounds the memory a burst of them takes.
    max_decodes: int = 2
    #: FastAPI's interactive pages /docs and /redoc: they load their scripts from a CDN (jsDelivr) and a favicon
    #: from fastapi.tiangolo.com, so they are off unless asked for; /openapi.json is always served.
    api_docs: bool = False


class BadRequest(Exception):
    """A request the service refuses: status code and one line."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, " ".join(detail.split()), headers


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


def create_app(backend: GeneratorBackend, settings: ServeSettings = ServeSettings()) -> FastAPI:
    """The FastAPI app serving ``backend``; the batcher runs for the app's lifespan."""
    metrics = Metrics()
    batcher = Batcher(
        backend,
        max_batch=settings.max_batch,
        max_delay_s=settings.max_delay_ms / 1000,
        max_queue=settings.max_queue,
        metrics=metrics,
    )
    app = FastAPI(
        title="maskface",
        version=__version__,
        lifespan=_lifespan(batcher),
        docs_url="/docs" if settings.api_docs else None,
        redoc_url="/redoc" if settings.api_docs else None,
        description="Mask-guided face synthesis: POST a face mask, get faces for style indices or "
        "a reference photo. The editor is at /.",
    )
    app.state.metrics, app.state.batcher = metrics, batcher
    app.add_middleware(_Guard, metrics=metrics, settings=settings)
    _add_error_handlers(app, metrics)
    decoded = functools.partial(_decoded, slots=asyncio.Semaphore(settings.max_decodes))
    _add_faces_route(app, backend, batcher, settings, metrics, decoded)
    _add_labels_route(app, decoded)
    _add_info_routes(app, backend, batcher, settings, metrics)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _lifespan(batcher: Batcher) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """The batcher's task runs while the app does; the batcher is closed after it."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(batcher.run(), name="maskface-batcher")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            batcher.close()

    return lifespan


#: decoded(upload, field, read): ``_decoded`` with the app's decode slots.
Decode = Callable[[UploadFile, str, Callable[[Path], Any]], Awaitable[Any]]


def _add_faces_route(
    app: FastAPI,
    backend: GeneratorBackend,
    batcher: Batcher,
    settings: ServeSettings,
    metrics: Metrics,
    decoded: Decode,
) -> None:
    """POST /v1/faces: the faces of one mask for seeded style indices or a reference photo's style."""
    size = backend.config.img_size

    async def photo_style(photo_upload: UploadFile) -> tuple[np.ndarray, list[int | str]]:
        """The style code of a reference photo (encoded on the batcher's thread)."""
        photo = await decoded(
            photo_upload, "reference", lambda p: resize_rgb(read_rgb(p, max_side=MAX_UPLOAD_SIDE), size)
        )
        return np.asarray(await batcher.call(backend.encode_style, photo[None]), np.float32), ["reference"]

    @app.post(
        "/v1/faces",
        summary="Faces of one mask",
        response_class=Response,
        responses={
            200: {
                "content": {"image/png": {}, "application/json": {}},
                "description": "One face: PNG bytes; several (or Accept: application/json): JSON, base64 PNGs.",
            },
            400: {"description": "Bad input (one line)"},
            413: {"description": "Request too large"},
            503: {"description": "Queue full; retry after Retry-After seconds"},
        },
    )
    async def faces(
        request: Request,
        mask: Annotated[UploadFile, File(description="A mask in any format maskface generate reads")],
        styles: Annotated[
            str | None, Form(description=f"Comma-separated style indices (at most {MAX_STYLES}; default 0)")
        ] = None,
        seed: Annotated[
            int | None, Form(ge=0, lt=2**63, description="Style k depends only on (seed, k) (default 0)")
        ] = None,
        label_order: Annotated[str, Form(description=", ".join(LABEL_ORDERS))] = "celebamask",
        reference: Annotated[
            UploadFile | None, File(description="A photo: its style instead of seeded ones (not with styles or seed)")
        ] = None,
    ) -> Response:
        start = time.perf_counter()
        indices = _style_indices("0" if styles is None else styles)
        _check_label_order(label_order)
        photo = _photo(reference)
        from_photo = photo is not None
        _check_style_source(from_photo, styles, seed)
        try:
            batcher.check_room(len(indices))  # refused before decoding anything; checked again when queued
            labels = await decoded(
                mask, "mask", lambda p: read_mask(p, size=size, label_order=label_order, max_side=MAX_UPLOAD_SIDE)
            )
            if photo is not None:
                codes, names = await photo_style(photo)
            else:
                codes, names = _latents(seed or 0, indices, backend.config.latent_dim), list(indices)
            images = await _unless_gone(request, batcher.generate(labels, codes, latents=not from_photo))
        except Overloaded as e:
            raise BadRequest(503, str(e), {"Retry-After": str(settings.retry_after_s)}) from None
        pngs = await asyncio.to_thread(lambda: [encode_png(image) for image in images])
        metrics.latency.observe(time.perf_counter() - start)
        return _faces_response(request, seed or 0, names, pngs)


def _add_labels_route(app: FastAPI, decoded: Decode) -> None:
    """POST /v1/labels: a mask in any format as a canonical label PNG (the editor loads and saves masks with it)."""

    @app.post(
        "/v1/labels",
        summary="A mask as a canonical label PNG",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}, "description": "Single-channel PNG, value = label"}},
    )
    async def labels_png(
        mask: Annotated[UploadFile, File(description="A mask in any format maskface generate reads")],
        label_order: Annotated[str, Form(description=", ".join(LABEL_ORDERS))] = "celebamask",
        size: Annotated[
            int | None, Form(ge=1, le=MAX_LABEL_SIZE, description="Resize (nearest) to size x size")
        ] = None,
    ) -> Response:
        _check_label_order(label_order)
        labels = await decoded(
            mask, "mask", lambda p: read_mask(p, size=size, label_order=label_order, max_side=MAX_UPLOAD_SIDE)
        )
        return Response(mask_to_png(labels), media_type="image/png")


def _add_info_routes(
    app: FastAPI, backend: GeneratorBackend, batcher: Batcher, settings: ServeSettings, metrics: Metrics
) -> None:
    """The model and limits, the example masks, liveness, Prometheus metrics and the editor page."""

    @app.get("/v1/model", summary="The model and the service's limits")
    async def model() -> dict[str, Any]:
        config = backend.config
        return {
            "backend": backend.description,
            "model": Path(backend.model_path).name,
            "img_size": config.img_size,
            "style_dim": config.style_dim,
            "latent_dim": config.latent_dim,
            "classes": [{"label": i, "name": n, "color": PALETTE[i].tolist()} for i, n in enumerate(CLASS_NAMES)],
            "label_orders": list(LABEL_ORDERS),
            "max_styles": MAX_STYLES,
            "max_batch": batcher.max_batch,
            "max_delay_ms": settings.max_delay_ms,
            "max_queue": settings.max_queue,
            "max_body_bytes": settings.max_body_bytes,
            "max_upload_side": MAX_UPLOAD_SIDE,
            "allowed_hosts": list(settings.allowed_hosts),
            "version": __version__,
        }

    @app.get("/v1/examples", summary="Names of the example masks under /static/examples/")
    async def examples() -> list[str]:
        return sorted(p.name for p in EXAMPLES.glob("*.png"))

    @app.head("/healthz", include_in_schema=False)  # as GET (one route of two methods repeats its OpenAPI id)
    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "queued": batcher.queued}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        return Response(metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def editor() -> FileResponse:
        return FileResponse(STATIC / "index.html")


def _photo(reference: UploadFile | None) -> UploadFile | None:
    """The reference photo, or None. An HTML form's file input with no file chosen sends an empty part without a
    name: no reference. A part with bytes is a reference, named or not."""
    if reference is not None and (reference.filename or reference.size):
        return reference
    return None


def _check_style_source(from_photo: bool, styles: str | None, seed: int | None) -> None:
    """Seeded styles or a reference photo's, not both."""
    seeded = [name for name, value in (("styles", styles), ("seed", seed)) if value is not None]
    if from_photo and seeded:
        raise BadRequest(
            400, f"{' and '.join(seeded)}: seeded styles; a reference photo gives its own style: send one or the other"
        )


def _faces_response(request: Request, seed: int, names: list[int | str], pngs: list[bytes]) -> Response:
    """One face as PNG bytes, unless the client accepts JSON; several as JSON, base64 PNGs with their styles."""
    if len(pngs) == 1 and "application/json" not in request.headers.get("accept", ""):
        return Response(pngs[0], media_type="image/png", headers={"X-Maskface-Style": str(names[0])})
    return JSONResponse(
        {
            "seed": seed,
            "faces": [{"style": k, "png_base64": base64.b64encode(png).decode()} for k, png in zip(names, pngs)],
        }
    )


def _style_indices(text: str) -> list[int]:
    # ASCII digits only: int() would also take '1_000', '+3', ' 7' and other scripts' digits.
    indices = [int(v) for v in text.split(",")] if re.fullmatch(r"[0-9]{1,10}(,[0-9]{1,10})*", text) else []
    if not indices or min(indices) < 0 or max(indices) >= 2**31:
        raise BadRequest(400, f"styles: {text[:40]!r} is not a comma-separated list of style indices >= 0 (e.g. 0,1,2)")
    if len(indices) > MAX_STYLES:
        raise BadRequest(400, f"styles: {len(indices)} styles asked, at most {MAX_STYLES} per request")
    return indices


def _latents(seed: int, indices: list[int], latent_dim: int) -> np.ndarray:
    """Latents of style indices k for ``seed``: the same as generate's (the batcher maps them to styles)."""
    return np.stack([latent_for_style(seed, k, latent_dim) for k in indices])


async def _decoded(upload: UploadFile, field: str, read: Callable[[Path], T], slots: asyncio.Semaphore) -> T:
    """Decode an upload with ``read(path)`` off the event loop, holding one of ``slots`` (a bound on the decodes
    running at once); its problems name the form field."""
    data = await upload.read()

    def decode() -> T:
        with tempfile.TemporaryDirectory(prefix="maskface-serve-") as tmp:
            path = Path(tmp) / "upload"
            path.write_bytes(data)
            return read(path)

    try:
        async with slots:
            return await asyncio.to_thread(decode)
    except MaskfaceError as e:
        raise BadRequest(400, f"{field} ({upload.filename or 'upload'}): {e.problem}") from None


def _check_label_order(label_order: str) -> None:
    if label_order not in LABEL_ORDERS:
        raise BadRequest(
            400, f"label_order: unknown label order {label_order[:40]!r}; valid: {', '.join(LABEL_ORDERS)}"
        )


async def _unless_gone(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result, or ClientGone (and ``work`` cancelled) as soon as the client disconnects."""
    task, gone = asyncio.ensure_future(work), asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if task.done():
        return task.result()
    task.cancel()
    raise ClientGone


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _one_line(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": " ".join(str(detail).split())}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, e: BadRequest) -> JSONResponse:
        return _one_line(e.status, e.detail, e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return _one_line(400, f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return _one_line(e.status_code, e.detail, getattr(e, "headers", None))

    @app.exception_handler(ClientGone)
    async def gone(_: Request, e: ClientGone) -> Response:
        return Response(status_code=499)  # nginx's "client closed request": nobody reads it


class _SlowBody(BaseException):
    """The client did not send its request body in time (a BaseException: the form parser turns any Exception
    from reading the body into its own 400)."""


def _host_name(host: str) -> str:
    """A Host header's name without its port: 'a.example:8000' -> 'a.example', '[::1]:8000' -> '::1'."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.split(":", 1)[0] if host.count(":") == 1 else host


class _Guard:
    """ASGI middleware: the request-size limit, and request / error / status counts per route."""

    def __init__(self, app: Callable[..., Awaitable[None]], metrics: Metrics, settings: ServeSettings) -> None:
        self.app, self.metrics, self.max_body_bytes = app, metrics, settings.max_body_bytes
        self.body_timeout_s = settings.body_timeout_s
        hosts = settings.allowed_hosts
        self.allowed_hosts = None if "*" in hosts else {h.lower().strip("[]") for h in hosts}

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Awaitable[Any]], send: Callable[..., Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal:
                await refusal(scope, receive, send_status)
            else:
                await self.app(scope, self._body_deadline(receive), send_status)
        except _SlowBody:
            if status == 500:  # nothing answered yet
                await _one_line(408, f"the request body took longer than {self.body_timeout_s:g} s to arrive")(
                    scope, receive, send_status
                )
        except asyncio.CancelledError:
            # uvicorn cancels the requests still under way when its graceful shutdown time is up: the request
            # ends here (its client gets a 503 if nothing was sent yet), not as a traceback in the server's log.
            status = 503
            with contextlib.suppress(Exception):
                await _one_line(503, "the service is shutting down")(scope, receive, send)
        finally:
            path = scope["path"] if scope["path"] in _ROUTES else "other"
            self.metrics.requests.labels(path, str(status)).inc()
            if status >= 400:
                self.metrics.errors.labels(str(status)).inc()

    def _body_deadline(self, receive: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """``receive`` that gives up (_SlowBody) when the body has not all arrived within the time allowed; once
        it has, later receives (the wait for a disconnect while a face is made) are not timed."""
        deadline, done = time.monotonic() + self.body_timeout_s, False

        async def timed() -> Any:
            nonlocal done
            if done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                raise _SlowBody from None
            done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        return timed

    def _refusal(self, scope: dict[str, Any]) -> JSONResponse | None:
        """A 400 for a Host this service does not answer to; a 411/413 answer for a body that is too large or of
        unknown length (read before any of it)."""
        headers = dict(scope["headers"])
        if self.allowed_hosts is not None:
            host = headers.get(b"host", b"").decode("latin-1")
            if _host_name(host).lower() not in self.allowed_hosts:
                return _one_line(
                    400,
                    f"Host {host[:80]!r} is not one this service answers to ({', '.join(sorted(self.allowed_hosts))})",
                )
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return None
        length = headers.get(b"content-length")
        if length is None:
            return _one_line(411, "a Content-Length header is required (bodies of unknown length are refused)")
        if not length.isdigit():
            return _one_line(400, f"Content-Length {length[:20].decode(errors='replace')!r} is not a number")
        if int(length) > self.max_body_bytes:
            return _one_line(
                413, f"request body of {int(length)} bytes is larger than the limit of {self.max_body_bytes} bytes"
            )
        return None
