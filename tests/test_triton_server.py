"""A real Triton Inference Server (the tritonserver of the nvidia-pytriton wheel, on 127.0.0.1, free ports) serving
the python flavour of ``maskface triton`` for the bundled model, started once for the module: faces byte-identical
to ``maskface generate``'s over HTTP and gRPC (both ensembles), dynamic batching seen in the statistics, bad inputs
refused while the server keeps serving, a clean stop."""

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc", reason="the [triton] extra (tritonclient) is not installed")
pytest.importorskip("tritonclient.http", reason="the [triton] extra (tritonclient) is not installed")

import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from maskface_rt.backends import latent_for_style
from maskface_rt.bundled import default_model
from maskface_rt.errors import MaskfaceError
from maskface_rt.image_io import encode_png, read_rgb, resize_rgb
from maskface_rt.mask_io import read_mask
from maskface_rt.triton.repository import RepositoryOptions, write_repository
from maskface_rt.triton.server import LocalServer, local_server, server_files

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "masks"
MASKS = ("hand01_smile_color.png", "synth02_palette.png")
SEED, STYLES, SIZE, LATENT = 7, 3, 64, 16
CLIENTS = {"http": httpclient, "grpc": grpcclient}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    try:
        server_files()
    except MaskfaceError as e:
        pytest.skip(str(e))
    repo = tmp_path_factory.mktemp("triton") / "repo"
    # threads=1: the three models' instances share the machine's cores with the clients
    write_repository(
        default_model(), repo, RepositoryOptions(platform="python", max_batch=16, max_queue_delay_us=20000, threads=1)
    )
    with local_server(repo, timeout=180) as running:
        yield running


def _client(server: LocalServer, protocol: str):
    return CLIENTS[protocol].InferenceServerClient(server.http if protocol == "http" else server.grpc)


def _input(protocol: str, name: str, array: np.ndarray, datatype: str):
    tensor = CLIENTS[protocol].InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def _faces(server: LocalServer, protocol: str, labels: np.ndarray, latents: np.ndarray) -> np.ndarray:
    inputs = [_input(protocol, "labels", labels, "UINT8"), _input(protocol, "latent", latents, "FP32")]
    return _client(server, protocol).infer("maskface", inputs).as_numpy("image")


def _generate(tmp_path: Path, *extra: str) -> Path:
    masks, out = tmp_path / "masks", tmp_path / "out"
    masks.mkdir(exist_ok=True)
    for name in MASKS:
        (masks / name).write_bytes((EXAMPLES / name).read_bytes())
    command = [sys.executable, "-m", "maskface_rt", "generate", str(masks), "--out", str(out), "--backend"]
    done = subprocess.run([*command, "onnxruntime", *extra], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_faces_are_byte_identical_to_generate(server, tmp_path, protocol):
    """Each mask's STYLES faces in one request (latent k = latent_for_style(seed, k), the mask index plays no part)
    and, concurrently, one face per request: whatever batches Triton forms, generate's bytes."""
    out = _generate(tmp_path, "--styles", str(STYLES), "--seed", str(SEED))
    latents = np.stack([latent_for_style(SEED, k, LATENT) for k in range(STYLES)])
    for name in MASKS:
        labels = read_mask(EXAMPLES / name, size=SIZE)
        faces = _faces(server, protocol, np.repeat(labels[None], STYLES, axis=0), latents)
        one = np.repeat(labels[None], 1, axis=0)
        with ThreadPoolExecutor(STYLES) as pool:
            singles = list(
                pool.map(lambda k, one=one: _faces(server, protocol, one, latents[k : k + 1])[0], range(STYLES))
            )
        for k in range(STYLES):
            expected = (out / f"{Path(name).stem}_s{k}.png").read_bytes()
            assert encode_png(faces[k]) == expected, (name, k)
            assert encode_png(singles[k]) == expected, (name, k, "alone")


def test_the_reference_ensemble_makes_generates_reference_faces(server, tmp_path):
    photo = EXAMPLES / "hand03_hat_color.png"  # any RGB picture serves as the reference photo
    out = _generate(tmp_path, "--reference", str(photo))
    reference = resize_rgb(read_rgb(photo), SIZE)  # what generate does to the photo, done by the client
    for protocol in CLIENTS:
        for name in MASKS:
            labels = read_mask(EXAMPLES / name, size=SIZE)[None]
            inputs = [
                _input(protocol, "labels", labels, "UINT8"),
                _input(protocol, "reference", reference[None], "UINT8"),
            ]
            face = _client(server, protocol).infer("maskface_reference", inputs).as_numpy("image")[0]
            (expected,) = out.glob(f"{Path(name).stem}_ref-*.png")
            assert encode_png(face) == expected.read_bytes(), (protocol, name)


def _generator_counts(server: LocalServer) -> tuple[int, int]:
    stats = _client(server, "http").get_inference_statistics("maskface_generator")["model_stats"][0]
    return stats["inference_count"], stats["execution_count"]


def test_concurrent_requests_are_batched_by_triton(server):
    """64 one-face requests in flight at once (gRPC's async_infer: a burst that no client thread's scheduling can
    thin out on a busy machine): the generator runs fewer executions than inferences, and every face comes back."""
    inferences, executions = _generator_counts(server)
    labels = read_mask(EXAMPLES / MASKS[0], size=SIZE)[None]
    client = _client(server, "grpc")
    done = threading.Semaphore(0)
    answers = []

    def callback(result, error) -> None:
        answers.append(error if error is not None else result.as_numpy("image").shape)
        done.release()

    for i in range(64):
        inputs = [_input("grpc", "labels", labels, "UINT8")]
        inputs.append(_input("grpc", "latent", latent_for_style(i, 0, LATENT)[None], "FP32"))
        client.async_infer("maskface", inputs, callback)
    for _ in range(64):
        assert done.acquire(timeout=120)
    assert answers == [(1, SIZE, SIZE, 3)] * 64
    inferences_after, executions_after = _generator_counts(server)
    assert inferences_after - inferences == 64
    assert executions_after - executions < 32, (inferences_after - inferences, executions_after - executions)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_inputs_are_refused_and_the_server_keeps_serving(server, protocol):
    labels = read_mask(EXAMPLES / MASKS[0], size=SIZE)[None]
    latent = latent_for_style(SEED, 0, LATENT)[None]
    client = _client(server, protocol)
    bad = {
        "dtype": ([_input(protocol, "labels", labels.astype(np.float32), "FP32")], "data-type"),
        "shape": ([_input(protocol, "labels", labels[:, :32], "UINT8")], "shape"),
        "label": ([_input(protocol, "labels", np.full_like(labels, 19), "UINT8")], "labels: values must be 0..18"),
    }
    for what, (inputs, message) in bad.items():
        with pytest.raises(InferenceServerException, match=message):
            client.infer("maskface", [*inputs, _input(protocol, "latent", latent, "FP32")])
        assert server.ready(), what
    face = _faces(server, protocol, labels, latent)
    assert face.shape == (1, SIZE, SIZE, 3) and face.dtype == np.uint8


def test_a_bad_label_fails_only_its_own_request_in_a_batch(server):
    """Requests batched with a refused one still get their faces."""
    labels = read_mask(EXAMPLES / MASKS[0], size=SIZE)[None]
    latent = latent_for_style(SEED, 0, LATENT)[None]
    barrier = threading.Barrier(8)

    def ask(i: int) -> str:
        barrier.wait()
        try:
            _faces(server, "grpc", np.full_like(labels, 200) if i == 3 else labels, latent)
        except InferenceServerException as e:
            return str(e)
        return "ok"

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert answers[:3] + answers[4:] == ["ok"] * 7 and "got 200" in answers[3]


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_the_docs_client_makes_generates_files(server, tmp_path, monkeypatch, protocol):
    """docs/triton.md's client, run as written (its server, mask and photo paths pointed here): generate's bytes."""
    import re

    code = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "triton.md").read_text(), re.S).group(1)
    code = code.replace('"examples/masks/', f'"{EXAMPLES}/').replace(
        '"photo.jpg"', f'"{EXAMPLES / "hand03_hat_color.png"}"'
    )
    code = code.replace('"localhost:8001"', repr(server.grpc))
    if protocol == "http":
        code = code.replace("tritonclient.grpc as grpcclient", "tritonclient.http as grpcclient")
        code = code.replace(repr(server.grpc), repr(server.http))
    out = _generate(tmp_path, "--styles", "3", "--seed", "7")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "docs/triton.md", "exec"), scope)
    assert scope["face"].shape == (SIZE, SIZE, 3)
    for k in range(3):
        name = f"hand01_smile_color_s{k}.png"
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_the_server_stops_cleanly(server):
    """Last in the module: SIGTERM ends the server with exit 0 after every model is unloaded."""
    assert server.stop() == 0, server.log_tail(30)
    log = server.log.read_text()
    for model in ("maskface_generator", "maskface_style_encoder", "maskface_style_decoder", "maskface"):
        assert f"successfully unloaded '{model}'" in log
    assert not server.ready()
