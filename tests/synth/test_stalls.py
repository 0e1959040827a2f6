"""Stalled requests are told by silence, not by the deadline; slow answers are never cut off.

The real ``edge_tts`` client talks to the edge stand-in, whose ``stall`` fault accepts a request
and then says nothing until the client hangs up. The run's ``--timeout`` here is 30 s: a stall
that cost it would hold these tests for that long.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass

import pytest

from newsreader.config import Settings
from newsreader.models import Segment, SegmentAudio
from newsreader.synth.cache import SegmentCache
from newsreader.synth.edge import EdgeEngine
from newsreader.synth.scheduler import Pace, Scheduler, StallPolicy
from tests.audio import make_script, make_segment
from tests.standin.server import EdgeStandin, FaultChooser, keyed_faults, tone_mp3

WORDS = (
    "市民", "图书馆", "社区", "书房", "读者", "夜间", "开放", "服务", "志愿者", "活动",
    "孩子", "老人", "周末", "阅读", "城市", "文化", "公园", "街道", "讲座", "展览",
)  # fmt: skip


def segments(count: int, words: int = 3) -> tuple[Segment, ...]:
    """``count`` one-sentence segments, each a different text."""
    made = []
    for i in range(count):
        text = "".join(WORDS[(i + k * 7) % len(WORDS)] for k in range(words))
        made.append(make_segment(i + 1, (f"{WORDS[i % len(WORDS)]}第{i + 1}段{text}。",)))
    return tuple(made)


def edge_settings(**changes: object) -> Settings:
    values: dict[str, object] = {
        "engine": "edge",
        "voice": "zh-CN-YunyangNeural",
        "concurrency": 4,
        "retries": 4,
        "request_timeout": 30.0,
        "use_cache": False,
    }
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class Run:
    parts: list[SegmentAudio]
    scheduler: Scheduler
    seconds: float


def synthesize(
    parts: tuple[Segment, ...], settings: Settings, policy: StallPolicy, seed: int = 2
) -> Run:
    scheduler = Scheduler(
        EdgeEngine(), settings, SegmentCache(None), stalls=policy, rng=random.Random(seed)
    )

    async def go() -> list[SegmentAudio]:
        return [audio async for audio in scheduler.run(make_script(parts, ("标题",)))]

    started = time.monotonic()
    # a guard for the test itself: 20 s is far below the 30 s a stall used to cost
    done = asyncio.run(asyncio.wait_for(go(), 20))
    return Run(done, scheduler, time.monotonic() - started)


def assert_complete(run: Run, parts: tuple[Segment, ...], edge: EdgeStandin) -> None:
    assert len(run.parts) == len(parts)
    for audio, segment in zip(run.parts, parts, strict=True):
        assert audio.mp3 == tone_mp3(edge.plan(segment.text).frames), segment.text


def stall_once(text: str) -> FaultChooser:
    """The first request for ``text`` stalls; everything else is answered."""
    stalled: list[str] = []

    def choose(_number: int, asked: str | None) -> str | None:
        if asked == text and not stalled:
            stalled.append(asked)
            return "stall"
        return None

    return choose


def asked(edge: EdgeStandin) -> Counter[str]:
    return Counter(request.text for request in edge.requests)


def test_a_stall_is_hung_up_and_sent_again_long_before_the_timeout(
    edge_standin: EdgeStandin,
) -> None:
    edge_standin.configure(first_audio_latency=0.05)
    parts = segments(8)
    target = parts[5].text
    edge_standin.set_faults(chooser=stall_once(target))
    # back-off of up to 20 s for errors (this seed draws 19 s): a stall is not an error, it is
    # sent again at once
    run = synthesize(parts, edge_settings(backoff=20.0), StallPolicy(floor=0.3, hedge=False))
    assert_complete(run, parts, edge_standin)
    stats = run.scheduler.stats
    assert stats.stalls == 1
    assert stats.failures == Counter({"timeout": 1})
    assert asked(edge_standin)[target] == 2
    assert run.seconds < 4  # the stall cost its silence bound, not --timeout's 30 s
    assert edge_standin.wait_idle(2.0)  # the stalled connection was hung up


def test_a_request_silent_past_the_usual_wait_gets_a_second_copy(
    edge_standin: EdgeStandin,
) -> None:
    edge_standin.configure(first_audio_latency=0.05)
    parts = segments(5)
    target = parts[4].text  # sent once the first four have answered: the usual wait is known
    edge_standin.set_faults(chooser=stall_once(target))
    policy = StallPolicy(floor=10.0, hedge_floor=0.1)  # the hedge answers long before a stall
    run = synthesize(parts, edge_settings(), policy)
    assert_complete(run, parts, edge_standin)
    stats = run.scheduler.stats
    assert (stats.hedges, stats.stalls, stats.retries) == (1, 0, 0)
    assert asked(edge_standin)[target] == 2
    assert run.seconds < 3
    assert edge_standin.wait_idle(2.0)  # the silent first copy was hung up


def test_a_slow_answer_that_keeps_coming_is_never_cut_off(edge_standin: EdgeStandin) -> None:
    # audio at 2x real time, 4 frames (96 ms) a message: a message every 48 ms, and each answer
    # takes well over a second, many times the 0.2 s silence floor
    edge_standin.configure(first_audio_latency=0.02, realtime_multiple=2.0, frames_per_message=4)
    parts = segments(4, words=4)
    floor = 0.2
    for segment in parts:
        assert edge_standin.plan(segment.text).duration / 2.0 > 5 * floor
    run = synthesize(parts, edge_settings(), StallPolicy(floor=floor, hedge_floor=0.1))
    assert_complete(run, parts, edge_standin)
    stats = run.scheduler.stats
    assert (stats.stalls, stats.hedges, stats.retries, stats.requests) == (0, 0, 0, 4)
    assert run.seconds > 5 * floor


def test_stalls_and_hedges_never_open_more_connections_than_the_cap(
    edge_standin: EdgeStandin,
) -> None:
    edge_standin.configure(first_audio_latency=0.05, realtime_multiple=20.0)
    edge_standin.set_faults(chooser=keyed_faults({"stall": 0.3}, seed=5))
    parts = segments(20)
    policy = StallPolicy(floor=0.3, hedge_floor=0.1)
    run = synthesize(parts, edge_settings(concurrency=3, retries=8), policy)
    assert_complete(run, parts, edge_standin)
    stats = run.scheduler.stats
    assert stats.stalls > 0
    assert stats.hedges > 0
    assert edge_standin.max_open_connections == 3  # reached, never passed
    assert run.scheduler.limiter.peak == 3
    assert edge_standin.wait_idle(2.0)


def test_the_silence_bounds_follow_the_runs_own_answers() -> None:
    policy = StallPolicy(
        factor=4.0, floor=1.0, hedge_factor=2.0, hedge_floor=0.5, samples=3, initial=7.0
    )
    pace = Pace(policy)
    for seconds in (0.1, 0.2):
        assert pace.silence_bound(answering=False) == 7.0  # too little known: the prior
        assert pace.silence_bound(answering=True, patience=2.0) == 14.0
        assert pace.hedge_after() is None
        pace.first_audio(seconds)
    pace.first_audio(0.15)
    assert pace.silence_bound(answering=False) == 1.0  # 4 x 0.2 is below the floor
    assert pace.silence_bound(answering=False, patience=2.0) == 2.0
    assert pace.hedge_after() == 0.5
    for seconds in (0.6,) * 10:
        pace.first_audio(seconds)
    assert pace.silence_bound(answering=False) == pytest.approx(2.4)  # 4 x the 90th percentile
    assert pace.hedge_after() == pytest.approx(1.2)
    assert pace.silence_bound(answering=True) == 1.0  # no answer's inner silence known yet
    pace.answered(0.5)
    assert pace.silence_bound(answering=True) == pytest.approx(2.0)
    assert Pace(StallPolicy(hedge=False, samples=0)).hedge_after() is None
