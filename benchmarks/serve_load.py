"""A bounded load test of ``maskface serve`` on loopback: latency, images/s against the bare backend.

    python benchmarks/serve_load.py --clients 16 --requests 500 --rounds 2 \
        --json benchmarks/results/cpu_serve_load_demo-64.json

The server is ``maskface serve`` (bundled model, onnxruntime) in its own process on 127.0.0.1; the clients
are asyncio + httpx in this one, each posting one example mask for one face at a time (seeds vary). Rounds
alternate the served load and the bare backend (``backend.generate`` on decoded labels, in this process,
while the server idles) at the batch size the server achieved in that round; the ratio is served images/s
over bare images/s, the median of the rounds (goal >= 0.8). Server RSS is read from /proc before the first
and after the last round. Errors are non-200 answers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

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


async def load(url: str, clients: int, requests: int) -> dict[str, float]:
    """``requests`` POST /v1/faces from ``clients`` concurrent clients: latency, images/s, errors, batch."""
    mask = MASK.read_bytes()
    latencies: list[float] = []
    errors = 0
    todo = iter(range(requests))
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as client:
        before = (await client.get(f"{url}/metrics")).text

        async def worker() -> None:
            nonlocal errors
            for i in todo:
                t0 = time.perf_counter()
                answer = await client.post(
                    f"{url}/v1/faces", files={"mask": ("m.png", mask)}, data={"seed": str(i % 64), "styles": "0"}
                )
                latencies.append(time.perf_counter() - t0)
                errors += answer.status_code != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - t0
        after = (await client.get(f"{url}/metrics")).text
    batches = metric(after, "maskface_batch_size_count") - metric(before, "maskface_batch_size_count")
    faces = metric(after, "maskface_batch_size_sum") - metric(before, "maskface_batch_size_sum")
    q = np.quantile(latencies, [0.5, 0.99])
    return {
        "images_per_s": (requests - errors) / seconds,
        "p50_ms": float(q[0]) * 1000,
        "p99_ms": float(q[1]) * 1000,
        "errors": errors,
        "mean_batch": faces / batches if batches else 0.0,
        "seconds": seconds,
    }


def bare(backend, batch: int, images: int) -> float:
    """images/s of backend.generate on decoded labels at ``batch``, ``images`` faces in all."""
    from maskface_rt.mask_io import read_mask

    size = backend.config.img_size
    labels = np.repeat(read_mask(MASK, size=size)[None], batch, axis=0)
    styles = backend.styles_for_seed(0, batch)
    calls = max(1, images // batch)
    t0 = time.perf_counter()
    for _ in range(calls):
        backend.generate(labels, styles)
    return calls * batch / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-delay-ms", type=float, default=5.0)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from maskface_rt.backends import open_backend
    from maskface_rt.bundled import default_model

    url = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "maskface_rt",
            "serve",
            "--backend",
            "onnxruntime",
            "--port",
            str(args.port),
            "--max-batch",
            str(args.max_batch),
            "--max-delay-ms",
            str(args.max_delay_ms),
            "--max-queue",
            "256",
        ]
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        asyncio.run(load(url, args.clients, 4 * args.clients))  # warm-up: sessions, allocator, connections
        rss_before = rss_mib(server.pid)
        rounds = []
        with open_backend(default_model(), "onnxruntime") as backend:
            bare(backend, args.max_batch, 4 * args.max_batch)  # warm-up
            for r in range(args.rounds):
                served = asyncio.run(load(url, args.clients, args.requests))
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
        rss_after = rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(30)
    result = {
        "command": "python " + " ".join([f"benchmarks/{Path(__file__).name}", *sys.argv[1:]]),
        "clients": args.clients,
        "requests_per_round": args.requests,
        "max_batch": args.max_batch,
        "max_delay_ms": args.max_delay_ms,
        "model": "bundled demo model (64x64, fp32 ONNX), onnxruntime CPU",
        "rounds": rounds,
        "ratio_median": statistics.median(r["ratio"] for r in rounds),
        "p50_ms_median": statistics.median(r["p50_ms"] for r in rounds),
        "p99_ms_max": max(r["p99_ms"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "server_rss_mib_before": rss_before,
        "server_rss_mib_after": rss_after,
        "loadavg_at_end": os.getloadavg(),
        "environment": environment(),
    }
    print(f"ratio (median) {result['ratio_median']:.2f}; server RSS {rss_before:.0f} -> {rss_after:.0f} MiB")
    write_result(args.json, result)


if __name__ == "__main__":
    main()
