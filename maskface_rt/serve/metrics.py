"""The service's Prometheus metrics, in a registry of their own (one per app, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Batch-size buckets: powers of two up to the largest --max-batch worth using on one GPU.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "maskface_requests", "HTTP requests answered, by route and status code", ("route", "status"), registry=r
        )
        self.errors = Counter(
            "maskface_errors", "Requests answered with a 4xx or 5xx status, by status code", ("status",), registry=r
        )
        self.queue_length = Gauge("maskface_queue_images", "Faces waiting for the backend", registry=r)
        self.batch_size = Histogram("maskface_batch_size", "Faces per backend call", buckets=BATCH_BUCKETS, registry=r)
        self.latency = Histogram(
            "maskface_request_latency_seconds", "Time to answer POST /v1/faces", buckets=LATENCY_BUCKETS, registry=r
        )
        self.images = Counter("maskface_images", "Faces generated", registry=r)
        self.dropped_images = Counter(
            "maskface_dropped_images",
            "Queued faces dropped because their client went away before the backend ran them",
            registry=r,
        )

    def text(self) -> bytes:
        """The Prometheus text exposition format."""
        return generate_latest(self.registry)
