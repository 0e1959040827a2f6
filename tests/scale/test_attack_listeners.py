"""Many listeners on one API node: one Redis reader per reading, not one connection a listener.

A reading is published straight into Redis (``LivePublisher``, as a worker does), and an API node
(in this process) serves its ``stream.mp3`` to many listeners at once, on a real Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from newsreader.scale.live import LivePublisher
from newsreader.scale.redisurl import connect
from newsreader.scale.state import RedisState
from newsreader.service import cluster
from newsreader.service.app import create_app
from newsreader.service.cluster import ClusterBackend
from newsreader.service.request import JobRequest
from tests.service.conftest import make_config

REQUEST = JobRequest(kind="text", content="标题\n\n正文。").to_dict()
"""A posted text's request, as an API node stores it (the tests publish its audio themselves)."""
LISTENERS = 150
"""More than redis-py's default pool (100): each listener used to hold one connection."""


@contextlib.asynccontextmanager
async def node(data: Path, redis_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(make_config(data, redis_url=redis_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


def backend(app: FastAPI) -> ClusterBackend:
    found = app.state.service.backend
    assert isinstance(found, ClusterBackend)
    return found


async def begun(redis_url: str, reading_id: str) -> tuple[Any, LivePublisher]:
    """A reading a worker has claimed and begun live (no worker needed: the test is one)."""
    redis = await connect(redis_url)
    state = RedisState(redis)
    await state.submit(reading_id, REQUEST, None, audio_exists=False)
    assert await state.claim(reading_id, "test")
    publisher = LivePublisher(redis, reading_id)
    await publisher.begin("title", 20, [], "edge")
    return redis, publisher


def segment(index: int) -> bytes:
    return bytes([index + 1]) * 2000


async def until(check: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


def test_many_listeners_share_one_redis_reader_and_the_node_keeps_answering(
    tmp_path: Path, redis_url: str
) -> None:
    reading_id = "a1" * 12

    async def scenario() -> None:
        redis, publisher = await begun(redis_url, reading_id)
        for index in range(12):  # more than the watch keeps: early listeners catch up from Redis
            await publisher.segment(index, segment(index), 1.0, [])
        async with node(tmp_path / "data", redis_url) as (app, client):
            hub = backend(app).hub
            path = f"/api/readings/{reading_id}/stream.mp3"
            listeners = [asyncio.create_task(client.get(path)) for _ in range(LISTENERS)]
            await until(lambda: hub.listeners == LISTENERS, "the listeners did not all arrive")

            # every listener is waiting for more; the node holds a bounded number of
            # connections to Redis, and its other requests are answered at once
            clients = await redis.client_list()
            assert len(clients) <= cluster.REDIS_DESCRIPTORS + 1, len(clients)
            assert hub.watched == 1
            status = await client.get(f"/api/readings/{reading_id}")
            assert status.status_code == 200, status.text
            assert status.json()["progress"]["done"] == 12

            for index in range(12, 16):
                await publisher.segment(index, segment(index), 1.0, [])
            late = asyncio.create_task(client.get(path))  # joins after 16 segments
            await until(lambda: hub.listeners == LISTENERS + 1, "the late listener")
            await publisher.end("done")

            expected = b"".join(segment(index) for index in range(16))
            for response in await asyncio.gather(*listeners, late):
                assert response.status_code == 200
                assert response.content == expected
            assert hub.watched == 0 and hub.listeners == 0  # the reader stopped with the last
        await redis.aclose()

    asyncio.run(scenario())


def test_a_node_following_its_limit_of_readings_answers_503_for_one_more(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "MAX_WATCHED", 2)

    async def scenario() -> None:
        ids = [f"{n:02d}" * 12 for n in range(3)]
        redis = await connect(redis_url)
        state = RedisState(redis)
        for reading_id in ids:  # queued: their listeners wait for a worker
            await state.submit(reading_id, REQUEST, None, audio_exists=False)
        async with node(tmp_path / "data", redis_url) as (app, client):
            hub = backend(app).hub
            waiting = [
                asyncio.create_task(client.get(f"/api/readings/{reading_id}/stream.mp3"))
                for reading_id in (ids[0], ids[0], ids[1])
            ]
            await until(lambda: hub.watched == 2 and hub.listeners == 3, "two watched readings")
            refused = await client.get(f"/api/readings/{ids[2]}/stream.mp3")
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "too_many_streams"
            assert refused.headers["retry-after"] == "10"
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            await until(lambda: hub.watched == 0, "the watches stop with their listeners")
        await redis.aclose()

    asyncio.run(scenario())


def test_listeners_of_readings_still_queued_hold_no_redis_connection(
    tmp_path: Path, redis_url: str
) -> None:
    """Queued readings cost an attacker only submissions; their listeners must not pin the
    node's blocking connections (those are for readings being made)."""

    async def scenario() -> None:
        ids = [f"{n:02x}" * 12 for n in range(40)]
        redis = await connect(redis_url)
        state = RedisState(redis)
        for reading_id in ids:
            await state.submit(reading_id, REQUEST, None, audio_exists=False)
        async with node(tmp_path / "data", redis_url) as (app, client):
            hub = backend(app).hub
            waiting = [
                asyncio.create_task(client.get(f"/api/readings/{reading_id}/stream.mp3"))
                for reading_id in ids
            ]
            await until(lambda: hub.watched == len(ids), "every reading watched")
            await asyncio.sleep(0.5)
            blocked = [c for c in await redis.client_list() if c.get("cmd") == "xread"]
            assert blocked == []
            # one of them begins: its listener hears it from the first segment
            assert await state.claim(ids[7], "test")
            publisher = LivePublisher(redis, ids[7])
            await publisher.begin("title", 1, [], "edge")
            await publisher.segment(0, segment(0), 1.0, [])
            await publisher.end("done")
            begun = await waiting[7]
            assert begun.content == segment(0)
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
        await redis.aclose()

    asyncio.run(scenario())


def test_serve_counts_the_redis_connections_in_the_open_files_it_needs(
    tmp_path: Path, redis_url: str
) -> None:
    """With a hard limit that fits --max-connections alone but not the Redis connections
    beside them, an API node refuses to start in one line (it would hit "Too many open files"
    under load); the number it suggests does fit."""
    limit = 1100
    max_connections = limit - 128 - 10  # fits without Redis, not with it

    def lowered() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    def serve(connections: int) -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable, "-m", "newsreader", "serve", "--redis", redis_url,
            "--data", str(tmp_path / "data"), "--port", "0",
            "--max-connections", str(connections),
        ]  # fmt: skip
        return subprocess.run(
            command,
            preexec_fn=lowered,  # a lower limit for the child only
            capture_output=True,
            text=True,
            timeout=20,
            env={**os.environ, "NEWSREADER_REDIS_URL": ""},
        )

    refused = serve(max_connections)
    assert refused.returncode == 2, refused.stderr
    lines = [line for line in refused.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("newsreader: error: --max-connections 962 needs"), lines
    assert "Traceback" not in refused.stderr
    suggested = int(lines[-1].split("lower --max-connections to ")[1].split()[0])
    assert suggested + cluster.REDIS_DESCRIPTORS + 128 <= limit


def rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


def test_listeners_who_never_read_hold_neither_the_worker_nor_the_nodes_memory(
    tmp_path: Path, redis_url: str
) -> None:
    """A ``serve --redis`` process; 120 listeners ask for the stream and never read a byte
    (half-open, or a phone in a tunnel) while 30 segments of 100 KB are published: 360 MB if
    the node buffered what each of them is owed."""
    import socket

    from tests.redisserver import free_port

    reading_id = "e5" * 12
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "newsreader", "serve", "--redis", redis_url,
         "--data", str(tmp_path / "data"), "--port", str(port), "--rate-limit", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NEWSREADER_REDIS_URL": ""},
    )  # fmt: skip
    stalled: list[socket.socket] = []

    async def scenario() -> None:
        redis, publisher = await begun(redis_url, reading_id)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                await asyncio.sleep(0.05)
        before = rss_mb(process.pid)
        for _ in range(120):
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            listener.connect(("127.0.0.1", port))
            request = f"GET /api/readings/{reading_id}/stream.mp3 HTTP/1.1\r\nHost: x\r\n\r\n"
            listener.sendall(request.encode())
            stalled.append(listener)
        await asyncio.sleep(0.5)
        started = time.monotonic()
        for index in range(30):
            await publisher.segment(index, os.urandom(100_000), 1.0, [])
        assert time.monotonic() - started < 5  # the worker's side never waits for listeners
        await asyncio.sleep(2)
        assert rss_mb(process.pid) - before < 80
        async with httpx.AsyncClient(timeout=5) as client:
            status = await client.get(f"http://127.0.0.1:{port}/api/readings/{reading_id}")
            assert status.status_code == 200 and status.json()["progress"]["done"] == 30
        await redis.aclose()

    try:
        asyncio.run(scenario())
    finally:
        for listener in stalled:
            listener.close()
        process.terminate()
        process.wait(timeout=15)
