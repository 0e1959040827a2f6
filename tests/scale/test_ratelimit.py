"""The shared rate limit: one bucket per client in Redis, taken atomically from any API node."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from redis.asyncio import Redis

from newsreader.errors import RedisUnavailable
from newsreader.scale.ratelimit import KEY_PREFIX, RedisRateLimiter
from newsreader.scale.redisurl import connect
from newsreader.service.security import RateLimiter
from tests.redisserver import RedisServer

T = TypeVar("T")


def with_nodes(url: str, body: Callable[[Redis, Redis], Awaitable[T]]) -> T:
    """Run ``body`` with two separate connections to Redis, as two API nodes would have."""

    async def run() -> T:
        first, second = await connect(url), await connect(url)
        try:
            return await body(first, second)
        finally:
            await first.aclose()
            await second.aclose()

    return asyncio.run(run())


def test_two_nodes_share_one_bucket_per_client(redis_url: str) -> None:
    async def body(one: Redis, two: Redis) -> list[float | None]:
        node_a, node_b = RedisRateLimiter(one, 6, 3), RedisRateLimiter(two, 6, 3)
        return [
            await node_a.take("198.51.100.7"),
            await node_b.take("198.51.100.7"),
            await node_a.take("198.51.100.7"),
            await node_b.take("198.51.100.7"),  # the burst of 3 is spent across both nodes
            await node_a.take("198.51.100.7"),
            await node_b.take("203.0.113.9"),  # another client has its own bucket
        ]

    results = with_nodes(redis_url, body)
    assert results[:3] == [None, None, None]
    waits = results[3:5]
    assert all(w is not None and 9.0 < w <= 10.0 for w in waits), waits  # 6/min: 10 s a token
    assert results[5] is None


def test_concurrent_takes_from_two_nodes_never_exceed_the_burst(redis_url: str) -> None:
    async def body(one: Redis, two: Redis) -> list[float | None]:
        nodes = [RedisRateLimiter(one, 1, 10), RedisRateLimiter(two, 1, 10)]
        return list(await asyncio.gather(*(nodes[i % 2].take("client") for i in range(60))))

    results = with_nodes(redis_url, body)
    assert results.count(None) == 10


def test_the_bucket_refills_at_its_rate(redis_url: str) -> None:
    async def body(one: Redis, two: Redis) -> tuple[list[float | None], float | None]:
        node_a, node_b = RedisRateLimiter(one, 600, 2), RedisRateLimiter(two, 600, 2)
        first = [await node_a.take("c"), await node_b.take("c"), await node_a.take("c")]
        wait = first[2]
        assert wait is not None and 0.0 < wait <= 0.1  # 600/min: a token every 0.1 s
        await asyncio.sleep(wait + 0.03)
        return first, await node_b.take("c")

    first, after = with_nodes(redis_url, body)
    assert first[:2] == [None, None]
    assert after is None


def test_the_wait_matches_the_in_process_limiter(redis_url: str) -> None:
    clock = [0.0]
    local = RateLimiter(60, 1, clock=lambda: clock[0])
    assert local.take("c") is None
    expected = local.take("c")

    async def body(one: Redis, two: Redis) -> float | None:
        limiter = RedisRateLimiter(one, 60, 1)
        assert await limiter.take("c") is None
        return await limiter.take("c")

    wait = with_nodes(redis_url, body)
    assert expected == 1.0
    assert wait is not None and 0.9 < wait <= expected


def test_a_bucket_expires_once_it_would_be_full(redis_url: str) -> None:
    async def body(one: Redis, two: Redis) -> tuple[int, int, int]:
        limiter = RedisRateLimiter(one, 600, 5)
        for _ in range(3):
            assert await limiter.take("c") is None
        ttl = int(await one.pttl(KEY_PREFIX + "c"))  # 3 tokens short at 10/s: 300 ms to full
        await asyncio.sleep(0.35)
        gone = int(await one.exists(KEY_PREFIX + "c"))
        for _ in range(5):  # gone means full: the whole burst again
            assert await limiter.take("c") is None
        return ttl, gone, int(await two.exists(KEY_PREFIX + "c"))

    ttl, gone, back = with_nodes(redis_url, body)
    assert 200 < ttl <= 300
    assert gone == 0
    assert back == 1


def test_zero_per_minute_is_off_and_never_asks_redis(own_redis_server: RedisServer) -> None:
    async def body() -> list[float | None]:
        client = await connect(own_redis_server.url)
        own_redis_server.stop()
        try:
            limiter = RedisRateLimiter(client, 0, 0)
            return [await limiter.take("c") for _ in range(100)]
        finally:
            await client.aclose()

    assert asyncio.run(body()) == [None] * 100


def test_redis_gone_is_one_line(own_redis_server: RedisServer) -> None:
    async def body() -> None:
        client = await connect(own_redis_server.url)
        own_redis_server.stop()
        try:
            await RedisRateLimiter(client, 60, 5).take("c")
        finally:
            await client.aclose()

    started = time.monotonic()
    with pytest.raises(RedisUnavailable, match=r"^cannot check the rate limit: Redis does not"):
        asyncio.run(body())
    assert time.monotonic() - started < 10


def test_negative_settings_are_refused(redis_url: str) -> None:
    async def body(one: Redis, two: Redis) -> None:
        with pytest.raises(ValueError):
            RedisRateLimiter(one, -1, 5)

    with_nodes(redis_url, body)


def test_the_limit_carries_on_after_redis_restarts(own_redis_server: RedisServer) -> None:
    async def body() -> list[float | None]:
        client = await connect(own_redis_server.url)
        try:
            limiter = RedisRateLimiter(client, 60, 1)
            first = await limiter.take("c")
            own_redis_server.restart()  # connections dead, the script cache and buckets gone
            return [first, await limiter.take("c"), await limiter.take("c")]
        finally:
            await client.aclose()

    first, again, refused = asyncio.run(body())
    assert first is None and again is None  # a fresh, full bucket
    assert refused is not None and 0.9 < refused <= 1.0


def test_a_hung_redis_is_one_line_in_time(own_redis_server: RedisServer) -> None:
    process = own_redis_server.process
    assert process is not None

    async def body() -> None:
        client = await connect(own_redis_server.url)
        limiter = RedisRateLimiter(client, 60, 5, timeout=0.5)
        assert await limiter.take("c") is None
        os.kill(process.pid, signal.SIGSTOP)  # alive, connections open, answers nothing
        try:
            await limiter.take("c")
        finally:
            os.kill(process.pid, signal.SIGCONT)
            await client.aclose()

    started = time.monotonic()
    with pytest.raises(
        RedisUnavailable, match=r"^cannot check the rate limit: Redis does not answer \(no answer"
    ):
        asyncio.run(asyncio.wait_for(body(), 5))  # a limiter without a bound fails here
    assert time.monotonic() - started < 3
