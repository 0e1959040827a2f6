"""Redis going away and coming back while readings are made and listened to; the S3 endpoint
going away while a finished reading is served. Each on a private Redis (``own_redis_server``)
or a private S3 server, stopped and started again mid-way."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsreader.scale.live import LivePublisher
from newsreader.scale.redisurl import connect
from newsreader.scale.state import RedisState
from newsreader.service import cluster
from tests.cluster import Cluster
from tests.redisserver import RedisServer
from tests.scale.test_api import api_node as node_with
from tests.scale.test_attack_listeners import REQUEST, node
from tests.scale.test_worker import WORKER, long_article, submit, wait_row
from tests.service.conftest import make_config
from tests.standin.server import EdgeStandin


def test_a_hung_redis_ends_listeners_within_seconds(
    tmp_path: Path, own_redis_server: RedisServer
) -> None:
    """Redis stops answering (SIGSTOP) under listeners: each gets a clean end of what it heard
    within seconds (it took the client's retries of its socket timeouts, 20 s, before)."""
    url = own_redis_server.url
    reading_id = "b3" * 12
    assert own_redis_server.process is not None
    pid = own_redis_server.process.pid

    async def scenario() -> None:
        redis = await connect(url)
        state = RedisState(redis)
        await state.submit(reading_id, REQUEST, None, audio_exists=False)
        assert await state.claim(reading_id, "test")
        publisher = LivePublisher(redis, reading_id)
        await publisher.begin("title", 10, [], "edge")
        await publisher.segment(0, b"\x01" * 1000, 1.0, [])
        await redis.aclose()
        async with node(tmp_path / "data", url) as (_app, client):
            path = f"/api/readings/{reading_id}/stream.mp3"
            listeners = [asyncio.create_task(client.get(path)) for _ in range(3)]
            await asyncio.sleep(0.3)
            os.kill(pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                done, _ = await asyncio.wait(listeners, timeout=10)
                assert len(done) == len(listeners), "a listener hung with Redis"
                assert all(t.result().content == b"\x01" * 1000 for t in done)
                assert time.monotonic() - started < 8
            finally:
                os.kill(pid, signal.SIGCONT)
            again = await client.get(f"/api/readings/{reading_id}")
            assert again.status_code == 200

    asyncio.run(scenario())


def test_a_stopped_redis_ends_listeners_and_gets_503_then_the_node_recovers(
    tmp_path: Path, own_redis_server: RedisServer
) -> None:
    url = own_redis_server.url
    reading_id = "b2" * 12

    async def scenario() -> None:
        redis = await connect(url)
        state = RedisState(redis)
        await state.submit(reading_id, REQUEST, None, audio_exists=False)
        assert await state.claim(reading_id, "test")
        publisher = LivePublisher(redis, reading_id)
        await publisher.begin("title", 10, [], "edge")
        await publisher.segment(0, b"\x01" * 1000, 1.0, [])
        await redis.aclose()
        async with node(tmp_path / "data", url) as (_app, client):
            listeners = [
                asyncio.create_task(client.get(f"/api/readings/{reading_id}/stream.mp3"))
                for _ in range(5)
            ]
            await asyncio.sleep(0.3)
            own_redis_server.stop()
            started = time.monotonic()
            # every listener gets a clean end (what it heard so far), within a bound
            done, _ = await asyncio.wait(listeners, timeout=10)
            assert len(done) == len(listeners), "a listener hung after Redis went away"
            for task in done:
                response = task.result()
                assert response.status_code == 200
                assert response.content == b"\x01" * 1000
            assert time.monotonic() - started < 10

            # meanwhile: 503 with Retry-After, quickly, for every route that needs Redis
            for method, path in [
                ("GET", f"/api/readings/{reading_id}"),
                ("GET", f"/api/readings/{reading_id}/stream.mp3"),
                ("POST", "/api/readings"),
                ("GET", "/feed.xml"),
            ]:
                asked = time.monotonic()
                response = await client.request(
                    method, path, json={"text": "标题\n\n正文。"} if method == "POST" else None
                )
                assert response.status_code == 503, (path, response.text)
                assert response.headers["retry-after"] == "5"
                assert response.json()["error"]["code"] == "unavailable"
                assert time.monotonic() - asked < 6, path
            assert (await client.get("/healthz")).status_code == 503

            own_redis_server.start()  # back, empty (no persistence)
            deadline = time.monotonic() + 10
            while (await client.get("/healthz")).status_code != 200:
                assert time.monotonic() < deadline, "the node did not recover"
                await asyncio.sleep(0.1)
            posted = await client.post("/api/readings", json={"text": "标题\n\n正文。"})
            assert posted.status_code == 202, posted.text
            assert (await client.get(f"/api/readings/{posted.json()['id']}")).status_code == 200

    asyncio.run(scenario())


@pytest.mark.parametrize("outage", ["hang", "restart"])
def test_redis_going_away_mid_reading_leaves_the_worker_working(
    tmp_path: Path, own_redis_server: RedisServer, edge_standin: EdgeStandin, outage: str
) -> None:
    """Redis stops answering (SIGSTOP: a partition) for longer than the heartbeat limit, or is
    killed and started again empty, while a worker makes a reading. After a hang the reading
    is finished (by a retry of its job) or failed with a reason; after a restart it is gone
    with the rest of Redis. Either way the worker lives on and takes new work."""
    url = own_redis_server.url
    edge_standin.configure(first_audio_latency=0.3)
    with Cluster(tmp_path, url, edge_standin, worker_options=WORKER) as cluster:
        worker = cluster.worker(ready=False)

        async def scenario() -> None:
            reading_id = await submit(url, long_article(9))
            await wait_row(url, reading_id, lambda r: r.status == "running")
            await asyncio.sleep(0.8)
            ended = ("done", "failed")
            if outage == "hang":
                assert own_redis_server.process is not None
                pid = own_redis_server.process.pid
                os.kill(pid, signal.SIGSTOP)
                try:
                    await asyncio.sleep(7)
                finally:
                    os.kill(pid, signal.SIGCONT)
                row = await wait_row(url, reading_id, lambda r: r.status in ended, 40)
                if row.status == "failed":
                    assert row.error_message, row
            else:
                own_redis_server.stop()
                await asyncio.sleep(3)
                own_redis_server.start()
            assert worker.alive, worker.tail()
            second = await submit(url, long_article(2))
            row = await wait_row(url, second, lambda r: r.status in ended, 30)
            assert row.status == "done", (row.error_message, worker.tail())

        asyncio.run(scenario())


@contextlib.contextmanager
def silent_endpoint() -> Iterator[str]:
    """An address that accepts connections and never answers (a hung or blackholed S3)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for connection in accepted:
            connection.close()
        listener.close()


def test_a_silent_s3_endpoint_while_serving_audio_is_503_not_a_hang(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in [
        ("AWS_ACCESS_KEY_ID", "k"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_CONFIG_FILE", os.devnull),
        ("AWS_SHARED_CREDENTIALS_FILE", os.devnull),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]:
        monkeypatch.setenv(name, value)
    reading_id = "c3" * 12

    async def scenario(endpoint: str) -> None:
        redis = await connect(redis_url)
        state = RedisState(redis)
        await state.submit(reading_id, REQUEST, None, audio_exists=False)
        assert await state.claim(reading_id, "t")
        assert await state.finish(reading_id, etag="e1", bytes=3, duration=1.0, title="t")
        await redis.aclose()
        config = make_config(
            tmp_path / "data", redis_url=redis_url, storage="s3://news", s3_endpoint=endpoint
        )
        async with node_with(config) as client:
            for path in ("audio.mp3", "captions.vtt", "stream.mp3", "chapters.json", ""):
                asked = time.monotonic()
                response = await client.get(f"/api/readings/{reading_id}/{path}".rstrip("/"))
                took = time.monotonic() - asked
                assert response.status_code == 503, (path, response.text)
                assert response.json()["error"]["code"] == "storage_unavailable"
                assert response.headers["retry-after"] == str(cluster.STORAGE_PAUSE), path
                # the first within the storage's deadline, the others at once
                assert took < cluster.STORAGE_TIMEOUT + 2, (path, took)
                if path != "audio.mp3":
                    assert took < 1, (path, took)

    with silent_endpoint() as endpoint:
        asyncio.run(scenario(endpoint))
