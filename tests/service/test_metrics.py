"""The metrics registry: values move as the service counts, a real run's failures are counted by
kind, and a worker serves the same registry on its own port."""

from __future__ import annotations

import asyncio
import random
import socket
import urllib.request
from collections.abc import Iterator

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from newsreader.errors import ConfigError
from newsreader.models import SegmentAudio
from newsreader.service import metrics
from newsreader.synth.cache import SegmentCache
from newsreader.synth.edge import EdgeEngine
from newsreader.synth.scheduler import Scheduler, StallPolicy
from tests.audio import make_script
from tests.standin.server import EdgeStandin
from tests.synth.test_stalls import edge_settings, segments, stall_once

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(text: str | None = None) -> Samples:
    """Every sample of ``render()`` (or of ``text``): (name, sorted labels) -> value."""
    if text is None:
        body, content_type = metrics.render()
        assert content_type.startswith("text/plain; version=")
        text = body.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_every_series_is_there_from_the_start() -> None:
    samples = scrape()
    for outcome in ("done", "failed"):
        assert ("newsreader_readings_total", (("outcome", outcome),)) in samples
    for kind in metrics.FAILURE_KINDS:
        assert ("newsreader_synthesis_failures_total", (("kind", kind),)) in samples
    names = {name for name, _ in samples}
    assert {
        "newsreader_segments_total",
        "newsreader_segment_cache_hits_total",
        "newsreader_first_audio_seconds_count",
        "newsreader_queue_depth",
        "newsreader_workers",
        "newsreader_readings_running",
    } <= names
    # our own registry: no process or interpreter collectors, nothing from the global default
    assert all(name.startswith("newsreader_") for name in names)
    global_names = {
        family.name
        for family in text_string_to_metric_families(prometheus_client.generate_latest().decode())
    }
    assert not any(name.startswith("newsreader_") for name in global_names)


def test_counters_move_as_the_functions_are_called() -> None:
    before = scrape()
    metrics.reading_finished("done")
    metrics.reading_finished("done")
    metrics.reading_finished("failed")
    metrics.segment_ready(from_cache=False)
    metrics.segment_ready(from_cache=True)
    metrics.segment_ready(from_cache=True)
    metrics.synthesis_failed("rate_limit")  # a TransientError kind
    metrics.synthesis_failed("rate_limited")  # the label itself
    metrics.synthesis_failed("network")
    metrics.synthesis_failed("something new")
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("newsreader_readings_total", outcome="done") == 2
    assert delta("newsreader_readings_total", outcome="failed") == 1
    assert delta("newsreader_segments_total") == 3
    assert delta("newsreader_segment_cache_hits_total") == 2
    assert delta("newsreader_synthesis_failures_total", kind="rate_limited") == 2
    assert delta("newsreader_synthesis_failures_total", kind="connection") == 1
    assert delta("newsreader_synthesis_failures_total", kind="other") == 1
    assert delta("newsreader_synthesis_failures_total", kind="stall") == 0


def test_an_unknown_outcome_is_refused() -> None:
    with pytest.raises(ValueError, match="outcome must be 'done' or 'failed'"):
        metrics.reading_finished("cancelled")  # type: ignore[arg-type]


def test_first_audio_lands_in_its_bucket() -> None:
    before = scrape()
    metrics.first_audio(0.3)
    metrics.first_audio(12.0)
    metrics.first_audio(45.0)  # past the last bucket: only +Inf
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    bucket = "newsreader_first_audio_seconds_bucket"
    assert delta(bucket, le="0.05") == 0
    assert delta(bucket, le="0.25") == 0
    assert delta(bucket, le="0.5") == 1
    assert delta(bucket, le="10.0") == 1
    assert delta(bucket, le="15.0") == 2
    assert delta(bucket, le="30.0") == 2
    assert delta(bucket, le="+Inf") == 3
    assert delta("newsreader_first_audio_seconds_count") == 3
    assert delta("newsreader_first_audio_seconds_sum") == pytest.approx(57.3)


def test_gauges_take_what_the_caller_sets() -> None:
    metrics.set_gauges(queue_depth=7, workers=3, readings_running=2)
    samples = scrape()
    assert value(samples, "newsreader_queue_depth") == 7
    assert value(samples, "newsreader_workers") == 3
    assert value(samples, "newsreader_readings_running") == 2
    metrics.set_gauges(queue_depth=0)  # the others keep their value
    samples = scrape()
    assert value(samples, "newsreader_queue_depth") == 0
    assert value(samples, "newsreader_workers") == 3


def test_a_real_run_counts_its_failed_attempts_by_kind(edge_standin: EdgeStandin) -> None:
    edge_standin.configure(first_audio_latency=0.05, retry_after=0.05)
    parts = segments(6)
    edge_standin.set_faults(
        ["http_429", "http_503", "close_before_audio", "short_audio"],
        chooser=stall_once(parts[5].text),
    )
    scheduler = Scheduler(
        EdgeEngine(),
        edge_settings(concurrency=1, backoff=0.01),
        SegmentCache(None),
        stalls=StallPolicy(floor=0.3, hedge=False),
        rng=random.Random(1),
    )
    before = scrape()

    async def go() -> list[SegmentAudio]:
        return [audio async for audio in scheduler.run(make_script(parts, ("标题",)))]

    done = asyncio.run(asyncio.wait_for(go(), 20))
    after = scrape()
    assert len(done) == len(parts)
    counted = {
        kind: value(after, "newsreader_synthesis_failures_total", kind=kind)
        - value(before, "newsreader_synthesis_failures_total", kind=kind)
        for kind in metrics.FAILURE_KINDS
    }
    assert counted == {
        "stall": 1,
        "timeout": 0,
        "rate_limited": 1,
        "connection": 1,
        "no_audio": 1,
        "truncated": 1,
        "service_changed": 0,
        "other": 0,
    }
    assert scheduler.stats.stalls == 1


@pytest.fixture
def metrics_port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    yield port
    metrics.stop_metrics_servers()


def test_a_worker_serves_the_same_registry(metrics_port: int) -> None:
    metrics.start_metrics_server(metrics_port, "127.0.0.1")
    metrics.reading_finished("done")
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as answer:
        served = scrape(answer.read().decode())
    here = scrape()
    key = ("newsreader_readings_total", (("outcome", "done"),))
    assert served[key] == here[key] >= 1
    assert all(name.startswith("newsreader_") for name, _ in served)


def test_port_zero_is_off(metrics_port: int) -> None:
    metrics.start_metrics_server(0, "127.0.0.1")
    assert metrics._servers == []


def test_a_port_in_use_is_one_line(metrics_port: int) -> None:
    with (
        socket.create_server(("127.0.0.1", metrics_port)),
        pytest.raises(
            ConfigError,
            match=rf"^cannot serve metrics on 127\.0\.0\.1:{metrics_port}: Address already in use; "
            r"pick another --metrics-port \(0 turns it off\)\.$",
        ),
    ):
        metrics.start_metrics_server(metrics_port, "127.0.0.1")


def test_a_bad_port_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^--metrics-port must be from 1 to 65535"):
        metrics.start_metrics_server(70000, "127.0.0.1")
