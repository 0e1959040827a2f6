"""The Limiter: the run's cap on connections, and how it yields to the service's rate limits."""

from __future__ import annotations

import asyncio

import pytest

from newsreader.synth.scheduler import Limiter


async def _hold(limiter: Limiter, name: int, started: list[int], seconds: float) -> None:
    async with limiter:
        started.append(name)
        await asyncio.sleep(seconds)


def test_never_more_than_the_limit_and_first_come_first_served() -> None:
    async def run() -> tuple[Limiter, list[int]]:
        limiter = Limiter(3)
        started: list[int] = []
        await asyncio.gather(*(_hold(limiter, n, started, 0.01) for n in range(12)))
        return limiter, started

    limiter, started = asyncio.run(run())
    assert limiter.peak == 3
    assert limiter.active == 0
    assert started == list(range(12))


def test_a_429_pauses_every_request_and_allows_fewer() -> None:
    async def run() -> tuple[float, float, int]:
        limiter = Limiter(4)
        loop = asyncio.get_running_loop()
        async with limiter, limiter:  # two requests open when a third one's 429 comes in
            limiter.rate_limited(0.2)
            assert limiter.allowed == 2
            assert limiter.epoch == 1
        began = loop.time()
        started: list[int] = []
        await asyncio.gather(*(_hold(limiter, n, started, 0.01) for n in range(6)))
        return began, loop.time(), limiter.allowed

    began, ended, allowed = asyncio.run(run())
    assert ended - began >= 0.19  # nobody started before Retry-After had passed
    assert allowed == 2


def test_only_successes_begun_after_the_last_429_allow_more() -> None:
    async def run() -> Limiter:
        limiter = Limiter(2)
        async with limiter:
            limiter.rate_limited(0.0)  # one open: allowed drops to 1
        assert limiter.allowed == 1
        for _ in range(10):
            limiter.succeeded(epoch=0)  # begun before the 429: they prove nothing
        assert limiter.allowed == 1
        for _ in range(2 * limiter.limit - 1):
            limiter.succeeded(epoch=1)
        assert limiter.allowed == 1
        limiter.succeeded(epoch=1)
        return limiter

    limiter = asyncio.run(run())
    assert limiter.allowed == 2
    limiter.succeeded(epoch=1)
    assert limiter.allowed == 2  # never above the run's own cap


def test_never_below_one() -> None:
    async def run() -> int:
        limiter = Limiter(3)
        limiter.rate_limited(0.0)  # nothing open
        return limiter.allowed

    assert asyncio.run(run()) == 1
    with pytest.raises(ValueError):
        Limiter(0)
