"""maskface serve's API on a real server (uvicorn on 127.0.0.1) and the bundled model."""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from serve_support import GatedBackend, SlowBackend, free_port, running

from maskface_rt.backends import open_backend
from maskface_rt.bundled import default_model
from maskface_rt.labels import CLASS_NAMES, PALETTE
from maskface_rt.mask_io import read_mask
from maskface_rt.serve.app import MAX_STYLES, ServeSettings, create_app

EXAMPLES = Path(__file__).parent.parent / "examples" / "masks"
MASK = EXAMPLES / "hand01_smile_color.png"
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nnewpath 0 0 moveto 8 8 lineto stroke\n"


@pytest.fixture(scope="module")
def backend() -> Iterator[object]:
    with open_backend(default_model(), "onnxruntime") as b:
        yield b


@pytest.fixture(scope="module")
def url(backend: object) -> Iterator[str]:
    with running(create_app(backend, ServeSettings(max_batch=8, max_delay_ms=20, max_body_bytes=2**20))) as u:
        yield u


def post_faces(url: str, mask: Path | bytes = MASK, name: str = "mask.png", **fields: object) -> httpx.Response:
    data = mask.read_bytes() if isinstance(mask, Path) else mask
    files = {"mask": (name, data)}
    if "reference" in fields:
        files["reference"] = ("photo.png", fields.pop("reference"))
    headers = fields.pop("headers", None)
    return httpx.post(
        f"{url}/v1/faces", files=files, data={k: str(v) for k, v in fields.items()}, headers=headers, timeout=60
    )


def metric(url: str, name: str) -> float:
    """The value of one sample (name with labels, as printed) of /metrics, 0 when absent."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture(params=["onnxruntime", "openvino"])
def served(request: pytest.FixtureRequest, url: str) -> Iterator[tuple[str, str]]:
    """(backend name, server URL): the module's onnxruntime server, or one on OpenVINO where it is installed."""
    if request.param == "onnxruntime":
        yield request.param, url
        return
    pytest.importorskip("openvino")
    with open_backend(default_model(), request.param) as backend:
        with running(create_app(backend, ServeSettings(max_batch=8, max_delay_ms=20))) as openvino_url:
            yield request.param, openvino_url


def test_faces_are_byte_identical_to_generate(served: tuple[str, str], tmp_path: Path) -> None:
    """Whatever batches the server forms (1 to 8 faces of different masks and styles), each face is the one
    generate writes in its batches of 8: for OpenVINO too, whose kernels for one item round differently."""
    backend_name, url = served
    masks = tmp_path / "masks"
    masks.mkdir()
    for name in ("hand01_smile_color.png", "synth02_palette.png", "synth03_label16.png"):
        (masks / name).write_bytes((EXAMPLES / name).read_bytes())
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "maskface_rt",
            "generate",
            str(masks),
            "--out",
            str(out),
            "--styles",
            "4",
            "--seed",
            "7",
            "--backend",
            backend_name,
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    # Concurrent requests, so the server batches faces of different masks and styles together.
    answers: dict[tuple[str, str], httpx.Response] = {}

    def ask(name: str, styles: str) -> None:
        answers[name, styles] = post_faces(url, masks / name, styles=styles, seed=7)

    asks = [(n, s) for n in sorted(p.name for p in masks.iterdir()) for s in ("2", "0,1,2,3", "3,1")]
    with ThreadPoolExecutor(len(asks)) as pool:
        list(pool.map(lambda a: ask(*a), asks))  # a request that raised fails the test here
    for name in sorted(p.name for p in masks.iterdir()):  # one at a time: batches of one face
        ask(name, "1")
    assert len(answers) == len(asks) + len(list(masks.iterdir()))
    for (name, styles), answer in answers.items():
        stem = Path(name).stem
        assert answer.status_code == 200, answer.text
        if styles in ("1", "2"):
            assert answer.headers["content-type"] == "image/png"
            assert answer.content == (out / f"{stem}_s{styles}.png").read_bytes(), (name, styles)
            continue
        faces = answer.json()["faces"]
        assert [f["style"] for f in faces] == [int(k) for k in styles.split(",")]
        for face in faces:
            assert base64.b64decode(face["png_base64"]) == (out / f"{stem}_s{face['style']}.png").read_bytes()


def test_one_face_as_json_on_accept(url: str) -> None:
    answer = post_faces(url, styles=1, headers={"Accept": "application/json"})
    assert answer.status_code == 200 and answer.json()["faces"][0]["style"] == 1
    png = base64.b64decode(answer.json()["faces"][0]["png_base64"])
    assert png == post_faces(url, styles=1).content


def test_reference_photo_sets_the_style(url: str, backend: object) -> None:
    from PIL import Image

    photo = post_faces(url, styles=3, seed=11).content  # any photo; a generated face is one
    with_ref = post_faces(url, reference=photo)
    assert with_ref.status_code == 200 and with_ref.headers["x-maskface-style"] == "reference"
    rgb = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    style = backend.encode_style(rgb[None])
    labels = read_mask(MASK, size=backend.config.img_size)
    expected = backend.generate(labels[None], style)[0]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(with_ref.content))), expected)
    assert with_ref.content != post_faces(url, styles=0).content


def test_a_reference_is_taken_named_or_not_and_never_beside_styles_or_seed(url: str) -> None:
    photo = post_faces(url, styles=3, seed=11).content
    named = post_faces(url, reference=photo)
    mask = MASK.read_bytes()

    def post(reference: tuple[str, bytes], **fields: str) -> httpx.Response:
        """The request as a browser or curl sends it: a file part keeps its filename parameter, even an empty one
        (httpx would drop an empty one, making the part a plain field)."""
        parts = [(f'name="{k}"', v.encode()) for k, v in fields.items()]
        parts += [
            ('name="mask"; filename="mask.png"', mask),
            (f'name="reference"; filename="{reference[0]}"', reference[1]),
        ]
        body = b"".join(
            b"--B\r\nContent-Disposition: form-data; " + h.encode() + b"\r\n\r\n" + v + b"\r\n" for h, v in parts
        )
        headers = {"Content-Type": "multipart/form-data; boundary=B"}
        return httpx.post(f"{url}/v1/faces", content=body + b"--B--\r\n", headers=headers, timeout=60)

    unnamed = post(("", photo))
    assert unnamed.status_code == 200 and unnamed.headers["x-maskface-style"] == "reference"
    assert unnamed.content == named.content  # its bytes are the reference, whatever the part's name
    # an HTML form's file input with no file chosen: an empty part without a name, no reference
    no_file = post(("", b""))
    assert no_file.status_code == 200 and no_file.content == post_faces(url).content
    for fields in ({"styles": "0,1"}, {"seed": "3"}, {"styles": "0", "seed": "0"}):
        refused = post(("photo.png", photo), **fields)
        assert refused.status_code == 400, fields
        detail = refused.json()["detail"]
        assert all(name in detail for name in fields) and "reference" in detail and "\n" not in detail


@pytest.mark.parametrize(
    "files, fields, status, words",
    [
        ({"mask": ("notes.txt", b"hello")}, {}, 400, "not an image"),
        ({"mask": ("m.png", None)}, {"styles": "a,b"}, 400, "styles"),
        ({"mask": ("m.png", None)}, {"styles": ",".join(["0"] * (MAX_STYLES + 1))}, 400, f"at most {MAX_STYLES}"),
        ({"mask": ("m.png", None)}, {"styles": "-1"}, 400, "styles"),
        ({"mask": ("m.png", None)}, {"seed": "-3"}, 400, "seed"),
        ({"mask": ("m.png", None)}, {"seed": "x"}, 400, "seed"),
        ({"mask": ("m.png", None)}, {"label_order": "bisenet"}, 400, "label order"),
        ({}, {}, 400, "mask"),
        ({"mask": ("m.png", None), "reference": ("r.png", b"\x89PNG junk")}, {}, 400, "reference"),
        # Formats Pillow knows but maskface never decodes (EPS would run Ghostscript), whatever the name says.
        ({"mask": ("m.png", b"P5\n2 2\n255\n\x00\x01\x02\x03")}, {}, 400, "not an image file maskface reads"),
        ({"mask": ("m.png", None), "reference": ("r.eps", EPS)}, {}, 400, "not an image file maskface reads"),
    ],
)
def test_bad_input_is_one_line_4xx(url: str, files: dict, fields: dict, status: int, words: str) -> None:
    files = {k: (name, MASK.read_bytes() if data is None else data) for k, (name, data) in files.items()}
    answer = httpx.post(f"{url}/v1/faces", files=files or {"other": ("x", b"1")}, data=fields, timeout=60)
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert words in detail and "\n" not in detail


def _png(array: np.ndarray) -> bytes:
    from maskface_rt.image_io import encode_png

    return encode_png(array)


def test_bad_masks_are_one_line_400(url: str) -> None:
    colours = PALETTE[np.zeros((16, 16), np.uint8)].copy()
    colours[3, 5] = (1, 2, 3)
    answer = post_faces(url, _png(colours))
    assert answer.status_code == 400 and "colour (1, 2, 3) at (x=5, y=3)" in answer.json()["detail"]
    answer = post_faces(url, _png(np.full((8, 8), 42, np.uint8)))
    assert answer.status_code == 400 and "largest label value is 42" in answer.json()["detail"]
    jpeg = io.BytesIO()
    from PIL import Image

    Image.fromarray(colours).save(jpeg, format="JPEG")
    answer = post_faces(url, jpeg.getvalue())
    assert answer.status_code == 400 and "JPEG is lossy" in answer.json()["detail"]


def test_decompression_bomb_is_refused(url: str) -> None:
    from PIL import Image

    bomb = io.BytesIO()  # 20000 x 20000 grey: a few KiB compressed, 400 MB decoded
    Image.new("L", (20000, 20000)).save(bomb, format="PNG")
    assert len(bomb.getvalue()) < 2**20
    answer = post_faces(url, bomb.getvalue())
    assert answer.status_code == 400 and "decompression bomb" in answer.json()["detail"]


def test_request_size_limit(url: str) -> None:
    answer = post_faces(url, b"\0" * (2**20 + 1))
    assert answer.status_code == 413 and "limit of 1048576 bytes" in answer.json()["detail"]

    def chunks() -> Iterator[bytes]:
        yield b"x" * 100

    answer = httpx.post(f"{url}/v1/faces", content=chunks(), headers={"content-type": "multipart/form-data"})
    assert answer.status_code == 411


def test_model_healthz_examples_docs_editor(url: str, backend: object) -> None:
    model = httpx.get(f"{url}/v1/model").json()
    assert model["img_size"] == backend.config.img_size and model["backend"] == backend.description
    assert [c["name"] for c in model["classes"]] == list(CLASS_NAMES)
    assert model["classes"][13]["color"] == PALETTE[13].tolist()
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    examples = httpx.get(f"{url}/v1/examples").json()
    assert "hand03_hat_color.png" in examples
    example = httpx.get(f"{url}/static/examples/{examples[0]}")
    assert example.status_code == 200 and example.content.startswith(b"\x89PNG")
    assert "/v1/faces" in httpx.get(f"{url}/openapi.json").json()["paths"]
    # FastAPI's interactive pages load scripts from a CDN: off unless asked for (ServeSettings.api_docs, --api-docs)
    assert httpx.get(f"{url}/docs").status_code == 404 and httpx.get(f"{url}/redoc").status_code == 404
    with running(create_app(backend, ServeSettings(api_docs=True))) as with_docs:
        for page in ("docs", "redoc"):
            answer = httpx.get(f"{with_docs}/{page}")
            assert answer.status_code == 200 and "https://cdn.jsdelivr.net/" in answer.text  # why it is off
    page = httpx.get(f"{url}/").text
    assert "<canvas" in page and "http://" not in page and "https://" not in page
    assert httpx.get(f"{url}/nothing-here").status_code == 404


def test_labels_endpoint_returns_canonical_label_png(url: str) -> None:
    from PIL import Image

    answer = httpx.post(f"{url}/v1/labels", files={"mask": ("m.png", MASK.read_bytes())}, data={"size": "64"})
    assert answer.status_code == 200
    image = Image.open(io.BytesIO(answer.content))
    assert image.mode == "L" and image.size == (64, 64)
    assert np.array_equal(np.asarray(image), read_mask(MASK, size=64))


def test_metrics_count_requests_errors_and_batches(url: str) -> None:
    before = {
        n: metric(url, n)
        for n in (
            'maskface_requests_total{route="/v1/faces",status="200"}',
            'maskface_errors_total{status="400"}',
            "maskface_images_total",
            "maskface_batch_size_count",
            "maskface_request_latency_seconds_count",
        )
    }
    post_faces(url, styles="0,1,2")
    post_faces(url, b"junk")
    after = {n: metric(url, n) for n in before}
    deltas = [after[n] - before[n] for n in before]
    assert deltas[0] == 1 and deltas[1] == 1 and deltas[2] == 3 and deltas[3] >= 1 and deltas[4] == 1
    text = httpx.get(f"{url}/metrics").text
    assert "maskface_queue_images" in text and 'maskface_batch_size_bucket{le="4.0"}' in text


def test_overload_gets_503_with_retry_after_and_disconnects_cost_nothing(backend: object) -> None:
    slow = SlowBackend(backend, delay_s=0.5)
    with running(create_app(slow, ServeSettings(max_batch=1, max_delay_ms=0, max_queue=2))) as url:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: post_faces(url), range(8)))  # one that raised fails the test
        codes = sorted(r.status_code for r in results)
        assert 200 in codes and 503 in codes, codes
        refused = next(r for r in results if r.status_code == 503)
        assert refused.headers["retry-after"] == "1" and "queue is full" in refused.json()["detail"]
        assert metric(url, 'maskface_errors_total{status="503"}') == codes.count(503)
        made = slow.generated
        # Three clients that give up while the first face is being generated: their queued faces are dropped.
        with ThreadPoolExecutor(3) as pool:
            outcomes = list(pool.map(lambda _: _give_up(url), range(3)))
        assert outcomes == ["gave up"] * 3  # each waited 0.2 s; the backend sleeps 0.5 s before any face
        # The dropped faces hold no queue places once the server has seen the disconnects (an event it
        # reaches in its own time: polled, with a generous deadline, never a fixed wait).
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/healthz").json()["queued"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(f"{url}/healthz").json()["queued"] == 0
        assert post_faces(url).status_code == 200  # waits for everything queued before it
        assert metric(url, "maskface_dropped_images_total") >= 1
        assert slow.generated - made < 4  # the last request, and at most the faces already running


def _wait_for_queue(url: str, faces: int, unless: threading.Event | None = None) -> None:
    """Until /healthz says ``faces`` are queued (it answers while the backend thread is busy: the event loop is
    never blocked by a batch), or ``unless`` is set."""
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/healthz", timeout=10).json()["queued"] != faces:
        if unless is not None and unless.is_set():
            return
        assert time.monotonic() < deadline, f"never saw {faces} faces queued"
        time.sleep(0.02)


def test_queued_faces_share_backend_calls_of_at_most_max_batch(backend: object) -> None:
    gated = GatedBackend(backend, hold=True)
    with running(create_app(gated, ServeSettings(max_batch=4, max_delay_ms=0, max_queue=64))) as url:
        with ThreadPoolExecutor(10) as pool:
            first = pool.submit(post_faces, url, styles="0")
            assert gated.entered.wait(60)  # the first face is in the backend, which now holds
            rest = [pool.submit(post_faces, url, styles=str(k)) for k in range(1, 10)]
            _wait_for_queue(url, 9)
            gated.release()
            answers = [first.result(), *(f.result() for f in rest)]
    assert [a.status_code for a in answers] == [200] * 10
    assert gated.sizes == [1, 4, 4, 1]  # nine queued faces: batches of --max-batch, then the rest


def test_max_delay_waits_for_company_but_a_lone_face_is_still_served(backend: object) -> None:
    gated = GatedBackend(backend)
    # A long delay and room for two: the first face waits for the second, and both share one call.
    with running(create_app(gated, ServeSettings(max_batch=2, max_delay_ms=60_000))) as url:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(post_faces, url, styles="0")
            _wait_for_queue(url, 1, unless=gated.entered)  # queued and waiting (or, if it did not wait, gone)
            second = pool.submit(post_faces, url, styles="1")
            assert (first.result().status_code, second.result().status_code) == (200, 200)
    assert gated.sizes == [2]
    # A short delay and room for four: a lone face goes to the backend alone once the delay is over.
    lone = GatedBackend(backend)
    with running(create_app(lone, ServeSettings(max_batch=4, max_delay_ms=50))) as url:
        assert post_faces(url, styles="0").status_code == 200
    assert lone.sizes == [1]


def _give_up(url: str) -> str:
    """A client that waits 0.2 s for its face, then closes the connection."""
    try:
        answer = httpx.post(f"{url}/v1/faces", files={"mask": ("m.png", MASK.read_bytes())}, timeout=0.2)
    except httpx.ReadTimeout:
        return "gave up"
    return f"answered {answer.status_code}"


def test_serve_options_are_checked_before_any_work() -> None:
    for args, flag in (
        (["--port", "0"], "--port"),
        (["--max-batch", "0"], "--max-batch"),
        (["--host", "example.com"], "--host"),
        (["--max-queue", "0"], "--max-queue"),
        (["--precision", "bf16", "--backend", "onnxruntime"], "--precision"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "maskface_rt", "serve", *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2 and flag in done.stderr, (args, done.stderr)


def test_serve_refuses_a_port_in_use() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "maskface_rt", "serve", "--port", str(port)],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1 and f"127.0.0.1:{port}: cannot listen there" in done.stderr, done.stderr


def test_a_real_serve_process_takes_its_limits_from_its_flags(serve_process) -> None:
    """``maskface serve`` as users start it: the flags reach the service (/v1/model says so, and a body over
    --max-body-mb gets 413), and it serves faces."""
    _, url = serve_process
    model = httpx.get(f"{url}/v1/model", timeout=5).json()
    assert (model["max_batch"], model["max_delay_ms"], model["max_queue"]) == (3, 7.0, 11)
    assert model["max_body_bytes"] == 2**19 and model["backend"].startswith("onnxruntime")
    assert model["allowed_hosts"] == ["localhost", "127.0.0.1", "::1"]  # the default: loopback names
    assert httpx.get(f"{url}/healthz", headers={"Host": "evil.example.com"}).status_code == 400
    assert post_faces(url, styles="0,1").status_code == 200
    assert post_faces(url, b"x" * (2**19 + 1)).status_code == 413
    assert httpx.get(f"{url}/docs").status_code == 200  # --api-docs (off by default)


@pytest.mark.parametrize(
    ("host", "answered"),
    [
        ("127.0.0.1:{port}", True),
        ("localhost:{port}", True),
        ("[::1]:{port}", True),
        ("LOCALHOST", True),
        ("evil.example.com", False),
        ("evil.example.com:{port}", False),
        ("127.0.0.1.evil.example.com", False),
        ("", False),
    ],
)
def test_only_the_allowed_host_names_get_an_answer(url: str, host: str, answered: bool) -> None:
    """DNS rebinding: a page on another site reaches a local service under a name it controls, so a request
    whose Host is not one of the service's names is refused before anything runs."""
    port = url.rsplit(":", 1)[1]
    headers = {"Host": host.format(port=port)}
    for answer in (httpx.get(f"{url}/healthz", headers=headers), post_faces(url, headers=headers)):
        if answered:
            assert answer.status_code == 200, answer.text
        else:
            assert answer.status_code == 400 and "is not one this service answers to" in answer.json()["detail"]


def test_any_host_is_answered_where_the_settings_say_so(backend: object) -> None:
    with running(create_app(backend, ServeSettings(allowed_hosts=("*",)))) as any_url:
        assert httpx.get(f"{any_url}/healthz", headers={"Host": "faces.example.com"}).status_code == 200
        assert httpx.get(f"{any_url}/v1/model").json()["allowed_hosts"] == ["*"]


@pytest.mark.parametrize("styles", ["1_000", "+3", " 7", "٣", "1,,2", "0x1", "1e2", "99999999999"])
def test_styles_are_plain_ascii_digits(url: str, styles: str) -> None:
    answer = post_faces(url, styles=styles)
    assert answer.status_code == 400 and answer.json()["detail"].startswith("styles: ")


def test_head_requests_answer_like_get(url: str) -> None:
    for path in ("/healthz", "/"):
        assert httpx.head(f"{url}{path}").status_code == 200, path


def _slow_client(port: int) -> socket.socket:
    """A client that announces an 8 MB body and sends one byte of it, then nothing (1 byte/s, or a stall)."""
    client = socket.create_connection(("127.0.0.1", port), timeout=60)
    client.sendall(
        b"POST /v1/faces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        b"Content-Length: 8000000\r\n\r\n-"
    )
    return client


def _whole_answer(client: socket.socket) -> str:
    """An HTTP answer read off a raw socket: its head, then as many body bytes as its Content-Length says."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        assert chunk, f"the connection closed mid-answer: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        chunk = client.recv(65536)
        assert chunk, f"the connection closed mid-body: {data!r}"
        body += chunk
    return (head + b"\r\n\r\n" + body).decode()


def test_a_client_too_slow_with_its_body_gets_408_and_frees_its_place(backend: object) -> None:
    with running(create_app(backend, ServeSettings(body_timeout_s=0.5, max_body_bytes=16 * 2**20))) as url:
        with _slow_client(int(url.rsplit(":", 1)[1])) as client:
            answer = _whole_answer(client)  # waits for the server's answer (the body never comes)
        assert answer.startswith("HTTP/1.1 408 "), answer
        assert '"detail":"the request body took longer than 0.5 s to arrive"' in answer
        assert post_faces(url).status_code == 200
        assert metric(url, 'maskface_errors_total{status="408"}') == 1


@pytest.mark.parametrize(
    ("sig", "code", "line"), [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]
)
def test_a_signal_ends_serve_within_its_shutdown_timeout_even_with_a_slow_client(sig, code, line) -> None:
    """timeout, systemd and docker send SIGTERM: the service stops accepting, lets requests under way finish for
    --shutdown-timeout-s, then exits with the documented code, whatever a slow client is still sending."""
    server, port = _serve_process("--shutdown-timeout-s", "1", "--body-timeout-s", "3600")
    with server:
        with _slow_client(port):
            server.send_signal(sig)
            _, stderr = server.communicate(timeout=60)  # the body would take an hour: bounded by the shutdown
    assert server.returncode == code, stderr
    assert stderr.strip().splitlines()[-1] == line and "Traceback" not in stderr


def _serve_process(*flags: str) -> tuple[subprocess.Popen, int]:
    """A real ``maskface serve`` (onnxruntime, bundled model) answering on a free port: the port was free a moment
    ago, and another process may take it in between (the service then exits saying so): three tries."""
    for _ in range(3):
        port = free_port()
        command = [sys.executable, "-m", "maskface_rt", "serve", "--port", str(port), "--backend", "onnxruntime"]
        server = subprocess.Popen(
            [*command, *flags], stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"}
        )
        deadline = time.monotonic() + 120
        while server.poll() is None:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
                return server, port
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the service never answered"
                time.sleep(0.05)
        _, stderr = server.communicate()
        assert "cannot listen there" in stderr, f"serve exited before listening: {stderr[-2000:]}"
    pytest.fail("no free port could be kept for the service in three tries")


@pytest.fixture(scope="module")
def serve_process() -> Iterator[tuple[subprocess.Popen, str]]:
    """``maskface serve`` as users start it, with limits other than the defaults: (process, base URL)."""
    flags = ["--max-batch", "3", "--max-delay-ms", "7", "--max-queue", "11", "--max-body-mb", "0.5", "--api-docs"]
    server, port = _serve_process(*flags)
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=60)


def _memory_mib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (the process's peak) in MiB."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return {k: int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "VmHWM")}


#: docs/serve.md: a burst of uploads of the largest size the service takes raises its memory by at most this.
BURST_BOUND_MIB = 450


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads the server's peak memory from /proc")
def test_a_burst_of_the_largest_uploads_stays_within_the_documented_memory_bound(serve_process) -> None:
    """Eight concurrent 4096 x 4096 masks (49 kB each, 48 MB of pixels decoded): two are decoded at a time, so the
    peak stays near two decodes' worth (~290 MB measured; ~800 MB when all eight decode at once)."""
    server, url = serve_process
    bomb = _png(np.zeros((4096, 4096, 3), np.uint8))
    assert post_faces(url).status_code == 200  # loaded and warm
    Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # the peak (VmHWM) starts again from now
    before = _memory_mib(server.pid)
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: post_faces(url, bomb).status_code, range(8)))
    after = _memory_mib(server.pid)
    assert codes == [200] * 8
    assert after["VmHWM"] - before["VmRSS"] < BURST_BOUND_MIB, (before, after)


@pytest.mark.parametrize("field", ["mask", "reference"])
@pytest.mark.parametrize("shape", [(8192, 8192), (4097, 16)], ids=["64-mpx-bomb", "one-side-too-long"])
def test_an_upload_larger_than_the_service_takes_is_refused_from_its_header(url: str, field: str, shape) -> None:
    """A 64 Mpx PNG of zeros is a few hundred kB: refused from its header (MAX_UPLOAD_SIDE), never decoded."""
    from maskface_rt.serve.app import MAX_UPLOAD_SIDE

    big = _png(np.zeros(shape, np.uint8))
    files = {"mask": ("big.png", big)} if field == "mask" else {"mask": ("m.png", MASK.read_bytes())}
    if field == "reference":
        files["reference"] = ("big.png", big)
    answer = httpx.post(f"{url}/v1/faces", files=files, timeout=60)
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith(f"{field} (big.png): image of {shape[1]}x{shape[0]} pixels is too large")
    assert f"limit {MAX_UPLOAD_SIDE} per side" in detail
    assert httpx.get(f"{url}/v1/model").json()["max_upload_side"] == MAX_UPLOAD_SIDE
