"""Hostile input on an API node: guessed and malformed ids, unknown streams, huge bodies, a
forged X-Forwarded-For. What can be refused without Redis is refused without it: these tests
stop the node's Redis first, so any Redis work would show as a 503 instead of the refusal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from newsreader.scale.redisurl import connect
from tests.redisserver import RedisServer, free_port
from tests.scale.test_attack_listeners import node

ROOT = Path(__file__).resolve().parents[2]

GARBAGE = [
    "x",
    "0" * 23,
    "0" * 25,
    "A" * 24,  # upper case is not an id
    "g" * 24,
    "0" * 24 + ".mp3",
    "%00" * 8,
    "..%2F..%2Fetc%2Fpasswd",
    "%E4%B9%A6" * 8,
    "%20" * 24,
    "0" * 4000,
    "'; DROP TABLE readings; --",
    "newsreader:idkey",
    "*",
]


def test_malformed_ids_are_404_without_asking_redis(
    tmp_path: Path, own_redis_server: RedisServer
) -> None:
    async def scenario() -> None:
        async with node(tmp_path / "data", own_redis_server.url) as (_app, client):
            own_redis_server.stop()  # any Redis work would now be a 503
            for garbage in GARBAGE:
                for suffix in ("", "/stream.mp3", "/audio.mp3", "/captions.vtt", "/chapters.json"):
                    started = time.monotonic()
                    response = await client.get(f"/api/readings/{garbage}{suffix}")
                    assert response.status_code == 404, (garbage, suffix, response.text)
                    assert response.json()["error"]["code"] == "not_found"
                    assert len(response.content) < 400  # a long id is not echoed back whole
                    assert time.monotonic() - started < 0.5
                page = await client.get(f"/readings/{garbage}")
                assert page.status_code == 404, garbage

    asyncio.run(scenario())


def test_an_unknown_reading_s_stream_is_404_at_once(tmp_path: Path, redis_url: str) -> None:
    async def scenario() -> None:
        async with node(tmp_path / "data", redis_url) as (_app, client):
            started = time.monotonic()
            response = await client.get(f"/api/readings/{'d' * 24}/stream.mp3")
            assert response.status_code == 404
            assert time.monotonic() - started < 1
            head = await client.head(f"/api/readings/{'d' * 24}/stream.mp3")
            assert head.status_code == 404

    asyncio.run(scenario())


def test_huge_and_malformed_posts_are_refused_before_redis(
    tmp_path: Path, own_redis_server: RedisServer
) -> None:
    async def scenario() -> None:
        async with node(tmp_path / "data", own_redis_server.url) as (_app, client):
            own_redis_server.stop()
            huge = b'{"text": "' + b"a" * 3_000_000 + b'"}'
            declared = await client.post(
                "/api/readings", content=huge, headers={"content-type": "application/json"}
            )
            assert declared.status_code == 413

            async def chunks() -> object:  # no Content-Length: counted as it comes
                for _ in range(40):
                    yield b"a" * 100_000

            chunked = await client.post(
                "/api/readings",
                content=chunks(),  # type: ignore[arg-type]
                headers={"content-type": "application/json"},
            )
            assert chunked.status_code == 413
            for body, status in [
                (b"{", 400),
                (b"[]", 422),
                (b'{"text": "a", "url": "http://x"}', 422),
                (b'{"nonsense": 1}', 422),
                (b'{"text": "\\u0000"}', 422),
            ]:
                response = await client.post(
                    "/api/readings", content=body, headers={"content-type": "application/json"}
                )
                assert response.status_code == status, (body, response.text)

    asyncio.run(scenario())


def test_x_forwarded_for_from_an_untrusted_peer_does_not_dodge_the_rate_limit(
    tmp_path: Path, redis_url: str
) -> None:
    """A real ``serve --redis`` process (uvicorn reads the headers): each POST claims another
    client address; the node counts the peer's own."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "newsreader", "serve", "--redis", redis_url,
         "--data", str(tmp_path / "data"), "--port", str(port), "--rate-limit", "1"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NEWSREADER_REDIS_URL": ""},
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        statuses = []
        with httpx.Client(base_url=base, timeout=10) as client:
            for n in range(14):
                forged = {"X-Forwarded-For": f"198.51.100.{n}", "X-Real-IP": f"198.51.100.{n}"}
                response = client.post(
                    "/api/readings", json={"text": f"标题\n\n第{n}段正文。"}, headers=forged
                )
                statuses.append(response.status_code)
        assert statuses.count(429) >= 3, statuses  # a burst of 10, then the limit
        assert all(status in (202, 429) for status in statuses), statuses
    finally:
        process.terminate()
        process.wait(timeout=15)

    async def keys() -> list[bytes | str]:
        redis = await connect(redis_url)
        try:
            return list(await redis.keys("newsreader:rate*"))
        finally:
            await redis.aclose()

    assert len(asyncio.run(keys())) == 1  # one bucket: the peer's
