"""A bounded load test on loopback: ``maskface serve``, and with ``--triton`` Triton Inference Server beside it.

    python benchmarks/serve_load.py --clients 16 --requests 500 --rounds 2 \
        --json benchmarks/results/cpu_serve_load_demo-64.json
    python benchmarks/serve_load.py --triton --concurrency 1,8,16 --requests 240 --rounds 2 \
        --json benchmarks/results/cpu_triton_load_demo-64.json

One load generator (``load``: N concurrent asyncio clients, each sending its next request when its last one is
answered; latency per request, images/s, errors) drives every target through a ``send`` coroutine.

Default: the server is ``maskface serve`` (bundled model, onnxruntime) in its own process on 127.0.0.1; the clients
are asyncio + httpx in this one, each posting one example mask for one face at a time (seeds vary). Rounds
alternate the served load and the bare backend (``backend.generate`` on decoded labels, in this process,
while the server idles) at the batch size the server achieved in that round; the ratio is served images/s
over bare images/s, the median of the rounds (goal >= 0.8). Server RSS is read from /proc before the first
and after the last round. Errors are non-200 answers.

``--triton``: at each concurrency, in one run and alternating per round, ``maskface serve`` (as above), the
python flavour of ``maskface triton`` served by the nvidia-pytriton wheel's ``tritonserver`` (the ``maskface``
ensemble; tritonclient's asyncio clients, gRPC and HTTP, sending decoded labels + the latent and taking raw
pixels back) and the bare backend (``map_latent`` + ``generate`` at the batch Triton's generator achieved,
from its statistics). Both servers: the same max batch and queue delay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from maskface_rt.benchmarking.environment import environment
from maskface_rt.benchmarking.scripts import write_result

ROOT = Path(__file__).parent.parent
MASK = ROOT / "examples" / "masks" / "hand01_smile_color.png"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metric(text: str, name: str) -> float:
    return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")), 0.0)


async def load(send: Callable[[int], Awaitable[bool]], clients: int, requests: int) -> dict[str, float]:
    """``requests`` calls of ``send(i)`` (True: answered well) from ``clients`` concurrent clients."""
    latencies: list[float] = []
    errors = 0
    todo = iter(range(requests))

    async def worker() -> None:
        nonlocal errors
        for i in todo:
            t0 = time.perf_counter()
            ok = await send(i)
            latencies.append(time.perf_counter() - t0)
            errors += not ok

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    seconds = time.perf_counter() - t0
    q = np.quantile(latencies, [0.5, 0.99])
    return {
        "images_per_s": (requests - errors) / seconds,
        "p50_ms": float(q[0]) * 1000,
        "p99_ms": float(q[1]) * 1000,
        "errors": errors,
        "seconds": seconds,
    }


async def load_serve(url: str, clients: int, requests: int) -> dict[str, float]:
    """``load`` of POST /v1/faces (one mask upload, one face), with the mean batch from /metrics."""
    mask = MASK.read_bytes()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as client:
        before = (await client.get(f"{url}/metrics")).text

        async def send(i: int) -> bool:
            data = {"seed": str(i % 64), "styles": "0"}
            return (await client.post(f"{url}/v1/faces", files={"mask": ("m.png", mask)}, data=data)).status_code == 200

        result = await load(send, clients, requests)
        after = (await client.get(f"{url}/metrics")).text
    batches = metric(after, "maskface_batch_size_count") - metric(before, "maskface_batch_size_count")
    faces = metric(after, "maskface_batch_size_sum") - metric(before, "maskface_batch_size_sum")
    return {**result, "mean_batch": faces / batches if batches else 0.0}


async def load_triton(server: Any, protocol: str, clients: int, requests: int) -> dict[str, float]:
    """``load`` of the ``maskface`` ensemble (decoded labels + latent in, raw pixels out) over ``protocol``, with
    the generator's mean batch from Triton's statistics."""
    from maskface_rt.backends import latent_for_style
    from maskface_rt.mask_io import read_mask

    if protocol == "grpc":
        import tritonclient.grpc.aio as client_module
    else:
        import tritonclient.http.aio as client_module
    labels = read_mask(MASK, size=64)[None]
    client = client_module.InferenceServerClient(server.grpc if protocol == "grpc" else server.http)
    try:
        before = await _triton_stats(client, protocol)

        async def send(i: int) -> bool:
            inputs = [client_module.InferInput("labels", [1, 64, 64], "UINT8")]
            inputs.append(client_module.InferInput("latent", [1, 16], "FP32"))
            inputs[0].set_data_from_numpy(labels)
            inputs[1].set_data_from_numpy(latent_for_style(i % 64, 0, 16)[None])
            try:
                answer = await client.infer("maskface", inputs)
            except Exception:  # tritonclient raises InferenceServerException, aiohttp/grpc their own
                return False
            return answer.as_numpy("image").shape == (1, 64, 64, 3)

        result = await load(send, clients, requests)
        after = await _triton_stats(client, protocol)
    finally:
        await client.close()
    server_side = _server_side(before, after)
    return {**result, "mean_batch": server_side["maskface_generator"]["mean_batch"], "server_side": server_side}


#: The models whose server-side time a Triton row breaks down: the ensemble, then its two steps.
TRITON_MODELS = ("maskface", "maskface_style_encoder", "maskface_generator")
_PHASES = ("queue", "compute_input", "compute_infer", "compute_output", "success")


async def _triton_stats(client: Any, protocol: str) -> dict[str, dict[str, int]]:
    """Per model of ``TRITON_MODELS``: executions, inferences, and each phase's request count and nanoseconds
    so far (gRPC's JSON writes the 64-bit numbers as strings)."""
    if protocol == "grpc":
        stats = (await client.get_inference_statistics("", as_json=True))["model_stats"]
    else:
        stats = (await client.get_inference_statistics(""))["model_stats"]
    found = {}
    for model in stats:
        if model["name"] in TRITON_MODELS:
            phases = model.get("inference_stats", {})
            numbers = {
                "executions": int(model.get("execution_count", 0)),
                "inferences": int(model.get("inference_count", 0)),
            }
            for phase in _PHASES:
                numbers[f"{phase}_count"] = int(phases.get(phase, {}).get("count", 0))
                numbers[f"{phase}_ns"] = int(phases.get(phase, {}).get("ns", 0))
            found[model["name"]] = numbers
    return found


def _server_side(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Per model, the mean milliseconds a request spent queued, in compute (input + infer + output) and in all
    (success), and the model's mean batch, between two ``_triton_stats``."""
    out = {}
    for model in TRITON_MODELS:
        d = {k: after[model][k] - before[model][k] for k in after[model]}
        per = max(1, d["success_count"])
        compute = d["compute_input_ns"] + d["compute_infer_ns"] + d["compute_output_ns"]
        out[model] = {
            "queue_ms": d["queue_ns"] / per / 1e6,
            "compute_ms": compute / per / 1e6,
            "total_ms": d["success_ns"] / per / 1e6,
            "mean_batch": d["inferences"] / d["executions"] if d["executions"] else 0.0,
        }
    return out


def bare(backend, batch: int, images: int, *, with_styles: bool = False) -> float:
    """images/s of backend.generate on decoded labels at ``batch``, ``images`` faces in all (``with_styles``: each
    call maps the batch's latents first, as the ``maskface`` ensemble does)."""
    from maskface_rt.backends import latent_for_style
    from maskface_rt.mask_io import read_mask

    size = backend.config.img_size
    labels = np.repeat(read_mask(MASK, size=size)[None], batch, axis=0)
    styles = backend.styles_for_seed(0, batch)
    calls = max(1, images // batch)
    latents = np.stack([latent_for_style(k, 0, backend.config.latent_dim) for k in range(batch)])
    t0 = time.perf_counter()
    for _ in range(calls):
        backend.generate(labels, backend.map_latent(latents) if with_styles else styles)
    return calls * batch / (time.perf_counter() - t0)


@contextlib.contextmanager
def serve_process(port: int, max_batch: int, max_delay_ms: float) -> Iterator[tuple[str, int]]:
    """``maskface serve`` (bundled model, onnxruntime) on 127.0.0.1:``port`` until the block ends: (url, pid)."""
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "maskface_rt", "serve", "--backend", "onnxruntime", "--port", str(port)]
    command += ["--max-batch", str(max_batch), "--max-delay-ms", str(max_delay_ms), "--max-queue", "256"]
    server = subprocess.Popen(command)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(30)


def serve_rounds(args: argparse.Namespace) -> dict[str, Any]:
    """``maskface serve`` against the bare backend at the batch it achieved, in alternating rounds."""
    from maskface_rt.backends import open_backend
    from maskface_rt.bundled import default_model

    with serve_process(args.port, args.max_batch, args.max_delay_ms) as (url, pid):
        asyncio.run(load_serve(url, args.clients, 4 * args.clients))  # warm-up: sessions, allocator, connections
        rss_before = rss_mib(pid)
        rounds = []
        with open_backend(default_model(), "onnxruntime") as backend:
            bare(backend, args.max_batch, 4 * args.max_batch)  # warm-up
            for r in range(args.rounds):
                served = asyncio.run(load_serve(url, args.clients, args.requests))
                batch = max(1, round(served["mean_batch"]))
                alone = bare(backend, batch, args.requests)
                rounds.append(
                    {**served, "bare_batch": batch, "bare_images_per_s": alone, "ratio": served["images_per_s"] / alone}
                )
                print(
                    f"round {r}: served {served['images_per_s']:.1f} img/s (p50 {served['p50_ms']:.1f} ms, "
                    f"p99 {served['p99_ms']:.1f} ms, mean batch {served['mean_batch']:.2f}, errors "
                    f"{served['errors']}); bare at batch {batch}: {alone:.1f} img/s; ratio {rounds[-1]['ratio']:.2f}"
                )
        rss_after = rss_mib(pid)
    print(f"server RSS {rss_before:.0f} -> {rss_after:.0f} MiB")
    return {
        "clients": args.clients,
        "rounds": rounds,
        "ratio_median": statistics.median(r["ratio"] for r in rounds),
        "p50_ms_median": statistics.median(r["p50_ms"] for r in rounds),
        "p99_ms_max": max(r["p99_ms"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "server_rss_mib_before": rss_before,
        "server_rss_mib_after": rss_after,
    }


#: The targets of ``--triton``, in the order each concurrency level runs them.
TRITON_TARGETS = ("serve", "triton_grpc", "triton_http")


def triton_rounds(args: argparse.Namespace) -> dict[str, Any]:
    """At each concurrency: maskface serve, Triton over gRPC and HTTP, and the bare backend at the batch Triton's
    generator achieved (style mapping included, as in the ensemble), in alternating rounds."""
    from maskface_rt.backends import open_backend
    from maskface_rt.benchmarking.scripts import scratch
    from maskface_rt.bundled import default_model
    from maskface_rt.triton.repository import RepositoryOptions, write_repository
    from maskface_rt.triton.server import local_server

    levels = [int(c) for c in args.concurrency.split(",")]
    options = RepositoryOptions(
        platform="python", max_batch=args.max_batch, max_queue_delay_us=round(args.max_delay_ms * 1000)
    )
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(scratch()))
        write_repository(default_model(), tmp / "repo", options)
        triton = stack.enter_context(local_server(tmp / "repo"))
        url, _ = stack.enter_context(serve_process(args.port, args.max_batch, args.max_delay_ms))
        backend = stack.enter_context(open_backend(default_model(), "onnxruntime"))
        runs = {
            "serve": lambda c, n: load_serve(url, c, n),
            "triton_grpc": lambda c, n: load_triton(triton, "grpc", c, n),
            "triton_http": lambda c, n: load_triton(triton, "http", c, n),
        }
        for target in TRITON_TARGETS:  # warm-up: sessions, allocators, connections
            asyncio.run(runs[target](16, 64))
        bare(backend, args.max_batch, 4 * args.max_batch, with_styles=True)
        rows = [_triton_row(runs, backend, r, c, args.requests) for r in range(args.rounds) for c in levels]
    return {"concurrency": levels, "rows": rows, "summary": _triton_summary(rows, levels)}


def _triton_row(runs: dict[str, Any], backend: Any, round_: int, clients: int, requests: int) -> dict[str, Any]:
    row: dict[str, Any] = {"round": round_, "concurrency": clients}
    for target in TRITON_TARGETS:
        row[target] = asyncio.run(runs[target](clients, requests))
    batch = max(1, round(row["triton_grpc"]["mean_batch"]))
    row["bare"] = {"batch": batch, "images_per_s": bare(backend, batch, requests, with_styles=True)}
    row["triton_grpc_over_bare"] = row["triton_grpc"]["images_per_s"] / row["bare"]["images_per_s"]
    print(
        f"round {round_} concurrency {clients}: "
        + "; ".join(
            f"{t} {row[t]['images_per_s']:.1f} img/s (p50 {row[t]['p50_ms']:.1f} ms, p99 {row[t]['p99_ms']:.1f} ms, "
            f"batch {row[t]['mean_batch']:.2f}, errors {row[t]['errors']})"
            for t in TRITON_TARGETS
        )
        + f"; bare at batch {batch}: {row['bare']['images_per_s']:.1f} img/s; "
        f"triton gRPC / bare {row['triton_grpc_over_bare']:.2f}",
        flush=True,
    )
    return row


def _triton_summary(rows: list[dict[str, Any]], levels: list[int]) -> dict[str, Any]:
    """Per concurrency, the median over rounds of each target's images/s and p50, the largest p99."""
    summary: dict[str, Any] = {}
    for c in levels:
        mine = [r for r in rows if r["concurrency"] == c]
        level: dict[str, Any] = {
            t: {
                "images_per_s": statistics.median(r[t]["images_per_s"] for r in mine),
                "p50_ms": statistics.median(r[t]["p50_ms"] for r in mine),
                "p99_ms": max(r[t]["p99_ms"] for r in mine),
                "mean_batch": statistics.median(r[t]["mean_batch"] for r in mine),
                "errors": sum(r[t]["errors"] for r in mine),
            }
            for t in TRITON_TARGETS
        }
        level["bare"] = {"images_per_s": statistics.median(r["bare"]["images_per_s"] for r in mine)}
        level["triton_grpc_over_bare"] = statistics.median(r["triton_grpc_over_bare"] for r in mine)
        summary[str(c)] = level
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-delay-ms", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=0, help="maskface serve's port [0: a free one]")
    parser.add_argument("--triton", action="store_true", help="serve, Triton (gRPC, HTTP) and bare, per concurrency")
    parser.add_argument("--concurrency", default="1,8,16", help="--triton's client counts")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not args.port:
        from maskface_rt.triton.server import free_port

        args.port = free_port()
    measured = triton_rounds(args) if args.triton else serve_rounds(args)
    result = {
        "command": "python " + " ".join([f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
        "requests_per_round": args.requests,
        "max_batch": args.max_batch,
        "max_delay_ms": args.max_delay_ms,
        "model": "bundled demo model (64x64, fp32 ONNX), onnxruntime CPU",
        **measured,
        "loadavg_at_end": os.getloadavg(),
        "environment": environment(),
    }
    write_result(args.json, result)


if __name__ == "__main__":
    main()
