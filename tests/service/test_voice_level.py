"""The service's voice connections: one shared limiter, adaptive within --voice-connections."""

from __future__ import annotations

import asyncio
from pathlib import Path

from newsreader.service.fairness import FairLimiter
from tests.service.conftest import in_process, make_config, wait_for
from tests.standin.server import EdgeStandin

PARAGRAPHS = [
    "城市书房今天正式开放，市民可以免费借阅图书。",
    "书房位于市中心广场东侧，馆内藏书一万余册。",
    "工作人员介绍，书房将定期举办讲座和展览。",
    "周末的读书会吸引了很多孩子和老人参加。",
    "社区志愿者每天晚上在书房值班，帮助读者找书。",
    "夜间开放以来，来这里阅读的年轻人越来越多。",
]


def article(number: int) -> str:
    body = "\n\n".join(f"第{number}篇第{i + 1}段。{text}" for i, text in enumerate(PARAGRAPHS))
    return f"城市书房第{number}篇\n\n{body}"


def test_the_shared_limiter_settles_below_the_voice_connections_without_failing_readings(
    tmp_path: Path, edge_standin: EdgeStandin
) -> None:
    """The voice service takes 6 connections at once; the service may use 8. Three readings at
    once (up to 4 requests each) find the 6, with never more than one connection asked beyond
    it, and all finish."""
    cap = 6
    edge_standin.configure(max_connections=cap, retry_after=0.1, first_audio_latency=0.05)
    config = make_config(tmp_path, voice_connections=8, segment_concurrency=4)

    async def scenario() -> tuple[FairLimiter, list[str]]:
        async with in_process(config) as (app, client):
            limiter = app.state.service.readings.limiter
            assert isinstance(limiter, FairLimiter)
            assert (limiter.adaptive, limiter.limit, limiter.proven) == (True, 8, 4)
            posted = [
                await client.post("/api/readings", json={"text": article(n)}) for n in range(3)
            ]
            assert [p.status_code for p in posted] == [202] * 3
            readings = [await wait_for(client, p.json()["id"]) for p in posted]
            return limiter, [r["status"] for r in readings]

    limiter, statuses = asyncio.run(scenario())
    assert statuses == ["done"] * 3
    assert edge_standin.max_open_connections == cap
    assert edge_standin.max_asked_connections <= cap + 1  # one probe beyond it at a time
    assert limiter.peak <= cap + 1
    assert limiter.allowed <= cap + 1 and limiter.proven <= cap  # it settled at the cap
    refused = [h for h in edge_standin.handshake_log if h.status == 429]
    assert 1 <= len(refused) <= 8, len(refused)  # it found the cap by probing, not hammering
    assert len(edge_standin.requests) == 3 * (len(PARAGRAPHS) + 1)  # each segment once


def test_a_voice_connection_cap_below_the_start_is_the_level() -> None:
    limiter = FairLimiter(2, per_job=4)
    assert (limiter.adaptive, limiter.proven, limiter.allowed, limiter.limit) == (True, 2, 2, 2)
