"""The server's Prometheus metrics: requests by path and status, failures by cause, requests
in flight, scored windows' sizes and times, request latency."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """One registry per app, so two servers in one process (the tests) keep their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "squeezenli_requests",
            "HTTP requests answered, by path and status",
            ["path", "status"],
            registry=self.registry,
        )
        self.failures = Counter(
            "squeezenli_request_failures",
            "Requests refused or failed, by endpoint and cause (TEI's error types)",
            ["endpoint", "cause"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "squeezenli_queue_depth",
            "Requests accepted and not yet answered",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "squeezenli_batch_size",
            "Pairs per scored window (all clients' pairs together)",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "squeezenli_batch_seconds",
            "Time to score a window",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.pairs = Counter("squeezenli_pairs", "Pairs scored", registry=self.registry)
        self.latency = Histogram(
            "squeezenli_request_seconds",
            "Time from a request's arrival to its answer, by path",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_window(self, pairs: int, seconds: float) -> None:
        """The batcher's report of one scored window."""
        self.batch_size.observe(pairs)
        self.batch_seconds.observe(seconds)
        self.pairs.inc(pairs)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
