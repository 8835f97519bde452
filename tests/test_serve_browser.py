"""The mask editor in a real browser: Playwright driving Debian's Chromium (apt-get install chromium).

Playwright's own browser download cannot work on these machines, so the test launches /usr/bin/chromium and
skips with the reason where it is not installed (CI installs it: Makefile, target test). With
MASKFACE_EDITOR_SCREENSHOT=docs/serve-editor.png it also saves the README's screenshot.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

from serve_support import running

from maskface_rt.backends import open_backend
from maskface_rt.bundled import default_model
from maskface_rt.labels import CLASS_NAMES
from maskface_rt.mask_io import read_mask
from maskface_rt.serve.app import ServeSettings, create_app

pytestmark = pytest.mark.slow  # a real browser

CHROMIUM = os.environ.get("MASKFACE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with (
        open_backend(default_model(), "onnxruntime") as backend,
        running(create_app(backend, ServeSettings(max_delay_ms=2))) as u,
    ):
        yield u


@pytest.fixture(scope="module")
def page(url: str) -> Iterator[object]:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; 'make test' does it as root)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 760})
        outside: list[str] = []
        context.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:")) else outside.append(r.url))
        page = context.new_page()
        page.goto(url + "/")
        page.wait_for_function("document.body.dataset.facesVersion !== undefined", timeout=60000)
        yield page
        assert not outside, f"the editor fetched from outside the server: {outside}"
        browser.close()


def _stroke(page: object, y: float, x0: float, x1: float) -> None:
    """Drag across the canvas at fractions of its size."""
    box = page.locator("#mask").bounding_box()
    page.mouse.move(box["x"] + box["width"] * x0, box["y"] + box["height"] * y)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(box["x"] + box["width"] * (x0 + (x1 - x0) * i / 10), box["y"] + box["height"] * y)
    page.mouse.up()


def _faces(page: object) -> list[str]:
    return page.eval_on_selector_all("#faces img", "imgs => imgs.map(i => i.src)")


def test_paint_hair_and_hat_then_download_the_mask(page: object, tmp_path: Path) -> None:
    assert page.locator("#palette button").count() == len(CLASS_NAMES)
    before, version = _faces(page), page.evaluate("document.body.dataset.facesVersion")
    assert len(before) == 4 and all(src.startswith("data:image/png;base64,") for src in before)

    page.click("#palette button[data-name=hair]")
    page.fill("#brush-size", "20")
    page.dispatch_event("#brush-size", "input")
    _stroke(page, 0.08, 0.1, 0.9)
    page.click("#palette button[data-name=hat]")
    _stroke(page, 0.9, 0.1, 0.9)
    page.wait_for_function(f"document.body.dataset.facesVersion !== '{version}'", timeout=60000)
    after = _faces(page)
    assert len(after) == 4 and after != before  # the faces follow the painted mask
    assert "error" not in (page.get_attribute("#status", "class") or "")

    with page.expect_download() as download:
        page.click("#download-labels")
    labels_png = tmp_path / "labels.png"
    download.value.save_as(labels_png)
    labels = read_mask(labels_png)
    assert labels.shape == (256, 256)
    hair, hat = CLASS_NAMES.index("hair"), CLASS_NAMES.index("hat")
    assert np.all(labels[int(0.08 * 256), 40:216] == hair)
    assert np.all(labels[int(0.9 * 256), 40:216] == hat)

    with page.expect_download() as download:
        page.click("#download-colors")
    colours_png = tmp_path / "colours.png"
    download.value.save_as(colours_png)
    assert np.array_equal(read_mask(colours_png), labels)  # the colour mask names the same classes

    page.click("#undo")  # the editor's undo and redo are synchronous: the next click sees their result
    with page.expect_download() as download:
        page.click("#download-labels")
    download.value.save_as(labels_png)
    assert not np.any(read_mask(labels_png)[int(0.9 * 256), 40:216] == hat)  # undo took the hat stroke away
    page.click("#redo")
    with page.expect_download() as download:
        page.click("#download-labels")
    download.value.save_as(labels_png)
    assert np.array_equal(read_mask(labels_png), labels)  # redo put it back, exactly

    if target := os.environ.get("MASKFACE_EDITOR_SCREENSHOT"):
        page.wait_for_function("document.querySelectorAll('#faces img').length === 4")
        page.screenshot(path=target)


def test_reference_photo_and_example_masks(page: object, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(base64.b64decode(_faces(page)[1].split(",", 1)[1]))  # a face is a photo of a face
    page.set_input_files("#upload-reference", str(photo))
    # Wait for the reference face itself: a render begun before the upload may land first on a loaded machine.
    page.wait_for_function(
        "[...document.querySelectorAll('#faces img')].map(i => i.dataset.style).join() === 'reference'", timeout=60000
    )
    assert page.eval_on_selector_all("#faces img", "imgs => imgs.map(i => i.dataset.style)") == ["reference"]
    page.click("#clear-reference")
    page.wait_for_function("document.querySelectorAll('#faces img').length === 4", timeout=60000)

    page.select_option("#examples", "hand03_hat_color.png")
    page.wait_for_function("document.getElementById('status').textContent.includes('hand03_hat_color')", timeout=60000)
    with page.expect_download() as download:
        page.click("#download-labels")
    labels_png = tmp_path / "labels.png"
    download.value.save_as(labels_png)
    example = Path(__file__).parent.parent / "examples" / "masks" / "hand03_hat_color.png"
    assert np.array_equal(read_mask(labels_png), read_mask(example))


def _download_labels(page: object, path: Path) -> np.ndarray:
    with page.expect_download() as download:
        page.click("#download-labels")
    download.value.save_as(path)
    return read_mask(path)


def _api_face(url: str, labels_png: Path, seed: int, style: int) -> str:
    """The service's own face for a mask, seed and style, as the editor shows it (a PNG data URL's base64)."""
    import httpx

    answer = httpx.post(
        f"{url}/v1/faces",
        files={"mask": ("m.png", labels_png.read_bytes())},
        data={"styles": str(style), "seed": str(seed)},
        headers={"Accept": "application/json"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["faces"][0]["png_base64"]


def test_clear_fill_eraser_seed_and_face_download(page: object, url: str, tmp_path: Path) -> None:
    page.click("#clear")
    assert not _download_labels(page, tmp_path / "cleared.png").any()  # all background
    skin = CLASS_NAMES.index("skin")
    page.click("#palette button[data-name=skin]")
    page.check("input[name=tool][value=fill]")
    box = page.locator("#mask").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert (_download_labels(page, tmp_path / "filled.png") == skin).all()  # one region: all of it
    page.check("input[name=tool][value=eraser]")
    page.fill("#brush-size", "10")
    page.dispatch_event("#brush-size", "input")
    _stroke(page, 0.5, 0.1, 0.9)
    labels = _download_labels(page, tmp_path / "erased.png")
    assert (labels[128, 40:216] == 0).all() and (labels[:100] == skin).all()  # erased back to background

    # The faces follow the seed: the editor shows the service's own faces for this mask and seed 5.
    page.fill("#seed", "5")
    page.dispatch_event("#seed", "input")
    expected = _api_face(url, tmp_path / "erased.png", seed=5, style=1)
    page.wait_for_function(
        "b64 => document.querySelectorAll('#faces img')[1]?.src === 'data:image/png;base64,' + b64",
        arg=expected,
        timeout=60000,
    )
    assert expected != _api_face(url, tmp_path / "erased.png", seed=0, style=1)
    page.click("#faces img >> nth=1")
    with page.expect_download() as download:
        page.click("#download-face")
    assert download.value.suggested_filename == "face_s1.png"
    face = tmp_path / "face.png"
    download.value.save_as(face)
    assert face.read_bytes() == base64.b64decode(expected)  # the selected face, byte for byte
