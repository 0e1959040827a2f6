"""``newsreader worker`` as real processes: Redis, the edge stand-in, one or two workers.

Readings are submitted as an API node does (``RedisState.submit`` + ``queue.enqueue``); the
finished file is checked by decoding it with ffmpeg and against the frames the stand-in sends
for the same script; the live stream is followed from Redis as an API node would relay it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from newsreader import pipeline
from newsreader.audio.mp3 import bare_frames
from newsreader.models import FRAME_BYTES
from newsreader.scale.live import follow
from newsreader.scale.queue import enqueue, live_workers, make_queue
from newsreader.scale.redisurl import connect
from newsreader.scale.state import RedisState
from newsreader.service.request import JobRequest, job_settings, load_article
from newsreader.service.security import AddressPolicy
from newsreader.service.store import Row
from tests.audio import ffmpeg_errors
from tests.cluster import Cluster, Node
from tests.redisserver import free_port
from tests.service.conftest import ARTICLE, make_config
from tests.standin.server import EdgeStandin

WORKER = ("--engine", "edge", "--loudness", "off", "--voice-connections", "1")
"""Loudness off: the finished file is then exactly the live stream's frames. One voice
connection: segments come one after another, so a reading lasts (stand-in latency) x segments."""


def long_article(paragraphs: int) -> str:
    """A headline and ``paragraphs`` numbered paragraphs (each its own segment)."""
    body = "书房位于市中心广场东侧，面积约三百平方米，馆内藏书一万余册。"
    lines = ["城市书房今天开放"] + [f"第{n}段。{body}" for n in range(1, paragraphs + 1)]
    return "\n\n".join(lines)


async def submit(redis_url: str, text: str | JobRequest) -> str:
    """What an API node does for a posted text (or any request): the row in Redis, then the
    job."""
    redis = await connect(redis_url)
    queue = make_queue(redis)
    try:
        state = RedisState(redis)
        request = JobRequest(kind="text", content=text) if isinstance(text, str) else text
        reading_id = request.reading_id(await state.id_key())
        _, created = await state.submit(
            reading_id, request.to_dict(), request.source, audio_exists=False
        )
        assert created
        assert await enqueue(queue, reading_id)
        assert not await enqueue(queue, reading_id)  # one job per reading
        return reading_id
    finally:
        await queue.disconnect()


async def wait_row(
    redis_url: str, reading_id: str, done: Callable[[Row], bool], timeout: float = 25
) -> Row:
    redis = await connect(redis_url)
    try:
        state = RedisState(redis)
        deadline = time.monotonic() + timeout
        while True:
            row = await state.get(reading_id)
            assert row is not None
            if done(row):
                return row
            assert time.monotonic() < deadline, f"reading stuck at {row.status}"
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()


async def listen(redis_url: str, reading_id: str) -> bytes:
    """The live stream from its first byte to its end, as an API node relays it."""
    redis = await connect(redis_url)
    try:
        heard = bytearray()
        async for chunk in follow(redis, reading_id, wait=20, idle=25):
            heard += chunk
        return bytes(heard)
    finally:
        await redis.aclose()


async def live_segments(redis_url: str, reading_id: str) -> int:
    """Segments the live stream has so far."""
    from newsreader.scale.live import progress

    redis = await connect(redis_url)
    try:
        live = await progress(redis, reading_id)
        return live.done if live is not None else 0
    finally:
        await redis.aclose()


async def until(check: Callable[[], Any], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def expected_frames(text: str | JobRequest, tmp_path: Path) -> bytes:
    """The frames the stand-in sends for this text's (request's) script, rendered here with a
    cache of its own."""
    config = make_config(tmp_path / "expected", loudness=None)
    request = JobRequest(kind="text", content=text) if isinstance(text, str) else text
    settings = job_settings(request, config)
    article = load_article(request, settings, AddressPolicy())
    script = pipeline.make_script(article, settings)
    pieces = []
    async with contextlib.aclosing(pipeline.RenderStream(script, settings).items()) as items:
        async for item in items:
            assert not isinstance(item, pipeline.Restarted)
            pieces.append(item.audio())
    return b"".join(pieces)


def finished_files(data: Path, reading_id: str) -> bytes:
    folder = data / "readings"
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(reading_id)) == [
        f"{reading_id}.json",
        f"{reading_id}.mp3",
        f"{reading_id}.vtt",
    ]
    assert (folder / f"{reading_id}.vtt").read_text(encoding="utf-8").startswith("WEBVTT")
    return (folder / f"{reading_id}.mp3").read_bytes()


def done_lines(nodes: list[Node], reading_id: str) -> list[str]:
    """The workers' log lines that say they published the reading."""
    pattern = re.compile(rf"reading {reading_id}: done$")
    return [line for node in nodes for line in node.output().splitlines() if pattern.search(line)]


def test_a_worker_makes_an_enqueued_reading(
    tmp_path: Path, redis_url: str, edge_standin: EdgeStandin
) -> None:
    edge_standin.configure(first_audio_latency=0.2)
    metrics_port = free_port()
    data = tmp_path / "data"
    with Cluster(tmp_path, redis_url, edge_standin, data=data, worker_options=WORKER) as cluster:
        worker = cluster.worker("--metrics-port", str(metrics_port), ready=False)

        async def scenario() -> None:
            reading_id = await submit(redis_url, ARTICLE)
            heard = asyncio.create_task(listen(redis_url, reading_id))
            row = await wait_row(redis_url, reading_id, lambda r: r.status in ("done", "failed"))
            assert row.status == "done", (row.error_code, row.error_message, cluster.logs())
            live = await heard
            finished = finished_files(data, reading_id)
            assert ffmpeg_errors(finished) == ""
            frames = bare_frames(finished)
            # the file is the stand-in's frames for this script, and what listeners heard
            assert frames == await expected_frames(ARTICLE, tmp_path)
            assert live == frames and len(frames) % FRAME_BYTES == 0
            assert row.bytes == len(finished) and row.total == row.done == 4
            assert row.engine == "edge" and row.duration is not None and row.duration > 0

            queue = make_queue(await connect(redis_url))
            try:
                assert await live_workers(queue) == 1
            finally:
                await queue.disconnect()

        asyncio.run(scenario())
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert 'newsreader_readings_total{outcome="done"} 1.0' in scraped
        assert "newsreader_segments_total 4.0" in scraped, scraped
        assert worker.alive


def test_a_worker_killed_mid_reading_leaves_it_to_another(
    tmp_path: Path, redis_url: str, edge_standin: EdgeStandin
) -> None:
    edge_standin.configure(first_audio_latency=0.4)
    text = long_article(9)  # 10 segments, about 4 s with one voice connection
    data = tmp_path / "data"
    with Cluster(tmp_path, redis_url, edge_standin, data=data, worker_options=WORKER) as cluster:
        first = cluster.worker(ready=False)

        async def scenario() -> None:
            reading_id = await submit(redis_url, text)
            heard = asyncio.create_task(listen(redis_url, reading_id))  # from the start
            await wait_row(redis_url, reading_id, lambda r: r.status == "running")
            second = cluster.worker(ready=False)  # started once the first holds the job

            async def three_segments_out() -> bool:
                return await live_segments(redis_url, reading_id) >= 3

            await until(three_segments_out, "the first worker's third segment")
            first.kill()  # SIGKILL, as when the machine dies
            row = await wait_row(redis_url, reading_id, lambda r: r.status != "running", 25)
            assert row.status == "done", (row.error_code, row.error_message, cluster.logs())
            # the second worker synthesized only what the first had not put in the shared
            # segment cache (at most one segment was on its way when the first died)
            assert len(edge_standin.requests) <= 10 + 1
            live = await heard
            frames = bare_frames(finished_files(data, reading_id))
            assert live == frames  # one unbroken stream: nothing missing, nothing twice
            assert frames == await expected_frames(text, tmp_path)
            assert done_lines([first], reading_id) == []
            assert len(done_lines([second], reading_id)) == 1  # published once

        asyncio.run(scenario())


def test_sigterm_lets_the_running_reading_finish_then_exits(
    tmp_path: Path, redis_url: str, edge_standin: EdgeStandin
) -> None:
    edge_standin.configure(first_audio_latency=0.3)
    text = long_article(7)  # 8 segments, about 2.5 s
    data = tmp_path / "data"
    options = (*WORKER, "--shutdown-grace", "15")
    with Cluster(tmp_path, redis_url, edge_standin, data=data, worker_options=options) as cluster:
        worker = cluster.worker(ready=False)

        async def scenario() -> float:
            reading_id = await submit(redis_url, text)

            async def begun() -> bool:
                return await live_segments(redis_url, reading_id) >= 1

            await until(begun, "the first segment")
            start = time.monotonic()
            worker.process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(worker.process.wait, 20)
            took = time.monotonic() - start
            assert code == 0, worker.tail()
            row = await wait_row(redis_url, reading_id, lambda r: r.status != "running", 1)
            assert row.status == "done", (row.error_code, row.error_message, worker.tail())
            assert done_lines([worker], reading_id)  # it finished the reading itself
            return took

        took = asyncio.run(scenario())
        assert took < 15 + 2


def test_sigterm_past_the_grace_hands_the_reading_to_another_worker(
    tmp_path: Path, redis_url: str, edge_standin: EdgeStandin
) -> None:
    edge_standin.configure(first_audio_latency=0.4)
    text = long_article(9)  # 10 segments, about 4 s
    data = tmp_path / "data"
    options = (*WORKER, "--shutdown-grace", "1")
    with Cluster(tmp_path, redis_url, edge_standin, data=data, worker_options=options) as cluster:
        first = cluster.worker(ready=False)

        async def scenario() -> float:
            reading_id = await submit(redis_url, text)
            heard = asyncio.create_task(listen(redis_url, reading_id))
            await wait_row(redis_url, reading_id, lambda r: r.status == "running")
            second = cluster.worker(ready=False)

            async def two_segments_out() -> bool:
                return await live_segments(redis_url, reading_id) >= 2

            await until(two_segments_out, "the first worker's second segment")
            start = time.monotonic()
            first.process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(first.process.wait, 20)
            took = time.monotonic() - start
            assert code == 0, first.tail()
            assert not done_lines([first], reading_id)  # cut short, handed back
            ended = ("done", "failed")
            row = await wait_row(redis_url, reading_id, lambda r: r.status in ended, 20)
            assert row.status == "done", (row.error_code, row.error_message, cluster.logs())
            assert len(done_lines([second], reading_id)) == 1
            assert await heard == bare_frames(finished_files(data, reading_id))
            return took

        took = asyncio.run(scenario())
        assert took < 1 + 5
