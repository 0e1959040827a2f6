"""The service's Prometheus metrics: one registry of our own, and plain functions to count.

    newsreader_readings_total{outcome="done"|"failed"}     readings finished
    newsreader_segments_total                               segments ready (synthesized or cached)
    newsreader_segment_cache_hits_total                     of those, taken from the segment cache
    newsreader_synthesis_failures_total{kind=…}             failed synthesis attempts (retried or
                                                            not): stall, timeout, rate_limited,
                                                            connection, no_audio, truncated,
                                                            service_changed, other
    newsreader_first_audio_seconds                          from a reading accepted to its first
                                                            audio available to listeners
    newsreader_queue_depth, newsreader_workers,             set by the caller when scraped
    newsreader_readings_running

API nodes and the embedded service answer ``/metrics`` with ``render()``; a worker process serves
the same registry on its own port with ``start_metrics_server``. The registry is not
prometheus_client's global one, so nothing else (process or platform collectors, a library's
metrics) slips in, and tests can read exactly ours.

The CLI never imports this module on start-up (prometheus_client is not light); the scheduler
imports it only when a synthesis attempt fails.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from newsreader.errors import ConfigError

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

Outcome = Literal["done", "failed"]
FAILURE_KINDS = (
    "stall",
    "timeout",
    "rate_limited",
    "connection",
    "no_audio",
    "truncated",
    "service_changed",
    "other",
)
"""The ``kind`` label's values. A stall (edge went silent and was hung up on) is told apart from
a timeout (no connection or no answer in time)."""
_KIND_OF = {"rate_limit": "rate_limited", "network": "connection"}
"""``TransientError.kind`` names that differ from the label's."""
FIRST_AUDIO_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0)

REGISTRY = CollectorRegistry(auto_describe=True)

READINGS = Counter(
    "newsreader_readings",
    "Readings finished, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
SEGMENTS = Counter(
    "newsreader_segments",
    "Segments whose audio is ready, synthesized or from the segment cache.",
    registry=REGISTRY,
)
CACHE_HITS = Counter(
    "newsreader_segment_cache_hits",
    "Segments whose audio came from the segment cache.",
    registry=REGISTRY,
)
SYNTHESIS_FAILURES = Counter(
    "newsreader_synthesis_failures",
    "Failed synthesis attempts (retried or not), by kind.",
    ["kind"],
    registry=REGISTRY,
)
FIRST_AUDIO = Histogram(
    "newsreader_first_audio_seconds",
    "Seconds from a reading accepted to its first audio available to listeners.",
    buckets=FIRST_AUDIO_BUCKETS,
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge("newsreader_queue_depth", "Readings waiting for a worker.", registry=REGISTRY)
WORKERS = Gauge("newsreader_workers", "Live workers.", registry=REGISTRY)
READINGS_RUNNING = Gauge(
    "newsreader_readings_running", "Readings being synthesized now.", registry=REGISTRY
)

for _outcome in ("done", "failed"):
    READINGS.labels(outcome=_outcome)  # every series is there from the start, at 0
for _kind in FAILURE_KINDS:
    SYNTHESIS_FAILURES.labels(kind=_kind)

_servers: list[tuple[WSGIServer, threading.Thread]] = []


def reading_finished(outcome: Outcome) -> None:
    """A reading ended: ``done`` (published) or ``failed``."""
    if outcome not in ("done", "failed"):
        raise ValueError(f"outcome must be 'done' or 'failed', not {outcome!r}")
    READINGS.labels(outcome=outcome).inc()


def segment_ready(from_cache: bool) -> None:
    """A segment's audio is ready; ``from_cache``: the segment cache had it."""
    SEGMENTS.inc()
    if from_cache:
        CACHE_HITS.inc()


def failure_kind(kind: str) -> str:
    """The label for a failure: a ``FAILURE_KINDS`` name or a ``TransientError.kind``."""
    kind = _KIND_OF.get(kind, kind)
    return kind if kind in FAILURE_KINDS else "other"


def synthesis_failed(kind: str) -> None:
    """One synthesis attempt failed (see ``failure_kind`` for the accepted kinds)."""
    SYNTHESIS_FAILURES.labels(kind=failure_kind(kind)).inc()


def first_audio(seconds: float) -> None:
    """A reading's first audio became available ``seconds`` after it was accepted."""
    FIRST_AUDIO.observe(max(0.0, seconds))


def set_gauges(
    *,
    queue_depth: int | None = None,
    workers: int | None = None,
    readings_running: int | None = None,
) -> None:
    """Set the gauges given (the others keep their value); call it when scraped."""
    for gauge, value in (
        (QUEUE_DEPTH, queue_depth),
        (WORKERS, workers),
        (READINGS_RUNNING, readings_running),
    ):
        if value is not None:
            gauge.set(value)


def render() -> tuple[bytes, str]:
    """The registry in Prometheus' text format: ``(body, content type)``."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def start_metrics_server(port: int, host: str) -> None:
    """Serve ``/metrics`` of this registry on ``host:port`` in a daemon thread; port 0: off.

    Raises ``ConfigError`` (one line) when the address cannot be listened on.
    """
    if port == 0:
        return
    if not 0 < port < 65536:
        raise ConfigError(f"--metrics-port must be from 1 to 65535 (0: off), not {port}.")
    try:
        server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as error:
        raise ConfigError(
            f"cannot serve metrics on {host}:{port}: {error.strerror or error}; pick another "
            "--metrics-port (0 turns it off)."
        ) from None
    _servers.append((server, thread))


def stop_metrics_servers() -> None:
    """Stop the servers ``start_metrics_server`` started (at a worker's exit, in tests)."""
    while _servers:
        server, thread = _servers.pop()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
