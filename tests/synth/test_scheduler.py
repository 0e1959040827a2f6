"""The Limiter: the run's level of concurrency, how it grows (AIMD) and how it yields to the
service; the order in which a run asks for its segments."""

from __future__ import annotations

import asyncio

import pytest

from newsreader.config import Settings
from newsreader.errors import UsageError
from newsreader.synth.order import WorkOrder, work_order
from newsreader.synth.scheduler import (
    EMBEDDED_IN_FLIGHT,
    AdaptPolicy,
    Limiter,
    Pace,
    StallPolicy,
    Ticket,
    limiter_for,
)
from tests.audio import make_segment


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


def test_after_a_decrease_only_answers_begun_since_allow_more() -> None:
    async def run() -> Limiter:
        limiter = Limiter(2)
        async with limiter:
            before = limiter.ticket()
            limiter.rate_limited(0.0)  # one open: allowed drops to 1
        assert limiter.allowed == 1
        for _ in range(10):
            limiter.answered(before)  # begun before the 429: they prove nothing
        assert limiter.allowed == 1
        after = Ticket(limiter.epoch, 1)
        for _ in range(2 * limiter.allowed - 1):  # probe_rounds x the level
            limiter.answered(after)
        assert limiter.allowed == 1
        limiter.answered(after)
        assert limiter.allowed == 2  # one probe allowed: two at once
        return limiter

    limiter = asyncio.run(run())
    limiter.answered(Ticket(limiter.epoch, 2))  # the probe went through
    assert (limiter.allowed, limiter.proven) == (2, 2)  # never above the run's own cap


def test_never_below_one() -> None:
    async def run() -> int:
        limiter = Limiter(3)
        limiter.rate_limited(0.0)  # nothing open
        return limiter.allowed

    assert asyncio.run(run()) == 1
    with pytest.raises(ValueError):
        Limiter(0)


def test_adaptive_grows_one_probe_at_a_time_until_trouble() -> None:
    limiter = Limiter(16, start=4)
    # 4 on trust, and the first probe at once
    assert (limiter.allowed, limiter.proven, limiter.growing) == (5, 4, True)
    # Answers at levels already proven never take it more than one above the proven level.
    for _ in range(50):
        limiter.answered(Ticket(0, 3))
    assert limiter.allowed == limiter.proven + 1 == 5
    # Each answered probe (a request opened above the proven level) allows the next one at once.
    for level in range(5, 16):
        limiter.answered(Ticket(0, level))
        assert (limiter.proven, limiter.allowed) == (level, level + 1)
    limiter.answered(Ticket(0, 16))
    assert (limiter.proven, limiter.allowed) == (16, 16)  # the ceiling: no probe beyond it


def test_a_probe_is_proven_when_the_service_takes_its_connection() -> None:
    limiter = Limiter(16, start=4)
    limiter.accepted(Ticket(0, 3))  # within the proven level: nothing to prove
    assert (limiter.proven, limiter.allowed) == (4, 5)
    limiter.accepted(Ticket(0, 5))  # the probe's handshake went through: the next probe at once
    assert (limiter.proven, limiter.allowed) == (5, 6)
    limiter.answered(Ticket(0, 5))  # its first audio later proves nothing more
    assert (limiter.proven, limiter.allowed) == (5, 6)
    limiter.failed(Ticket(0, 6), "network")
    limiter.accepted(Ticket(0, 6))  # a connection taken ends a run of connection failures
    limiter.failed(Ticket(0, 7), "network")
    assert (limiter.proven, limiter.allowed, limiter.epoch) == (6, 7, 0)
    limiter.failed(Ticket(0, 7), "network")  # two in a row: halved
    assert (limiter.allowed, limiter.epoch) == (3, 1)
    limiter.accepted(Ticket(0, 7))  # begun before the decrease: proves nothing
    assert (limiter.proven, limiter.allowed) == (3, 3)


def test_a_refused_probe_steps_back_and_probes_again_ever_more_rarely() -> None:
    async def run() -> list[int]:
        limiter = Limiter(16, start=4)
        for level in range(4, 9):
            limiter.answered(Ticket(0, level))
        assert (limiter.proven, limiter.allowed) == (8, 9)
        # The probe (the ninth) is refused while the eight others are open.
        for _ in range(8):
            await limiter.__aenter__()
        limiter.rate_limited(0.0, Ticket(0, 9))
        assert (limiter.allowed, limiter.growing, limiter.epoch) == (8, False, 1)
        # A second 429 of the same round (begun before the step back) changes nothing.
        limiter.rate_limited(0.0, Ticket(0, 9))
        assert (limiter.allowed, limiter.epoch) == (8, 1)
        gaps = []
        for _round in range(3):
            answers = 0
            while limiter.allowed == limiter.proven:
                limiter.answered(Ticket(limiter.epoch, 4))
                answers += 1
            gaps.append(answers)
            limiter.rate_limited(0.0, Ticket(limiter.epoch, 9))  # refused again
            assert limiter.allowed == 8
        return gaps

    gaps = asyncio.run(run())
    assert gaps == [2 * 2 * 8, 2 * 4 * 8, 2 * 8 * 8]  # twice as many answers after each refusal


def test_a_429_within_the_proven_level_halves_it() -> None:
    async def run() -> Limiter:
        limiter = Limiter(16, start=4)
        for level in range(4, 13):
            limiter.answered(Ticket(0, level))
        assert (limiter.proven, limiter.allowed) == (12, 13)
        for _ in range(12):
            await limiter.__aenter__()
        limiter.rate_limited(0.0, Ticket(0, 12))  # with the probe (13th) not yet sent
        return limiter

    limiter = asyncio.run(run())
    # a probe was allowed but not out: a 429 then is the probe's, and steps back to 12;
    # the next 429, of a request begun after that, halves
    assert limiter.allowed == 12
    limiter.failed(Ticket(limiter.epoch, 5), "rate_limit")
    assert limiter.allowed == 6
    limiter.failed(Ticket(limiter.epoch, 5), "rate_limit")
    assert limiter.allowed == 3


def test_a_run_of_connection_failures_halves_the_level() -> None:
    limiter = Limiter(8)
    limiter.failed(Ticket(0, 3), "network")
    assert limiter.allowed == 8  # one failure is not a run
    limiter.answered(Ticket(0, 3))  # an answer in between
    limiter.failed(Ticket(0, 3), "network")
    assert limiter.allowed == 8
    limiter.failed(Ticket(0, 4), "network")
    assert limiter.allowed == 4
    limiter.failed(Ticket(0, 5), "network")  # begun before the decrease: already answered for
    limiter.failed(Ticket(0, 6), "network")
    assert limiter.allowed == 4
    for kind in ("timeout", "truncated", "service_changed", "no_audio"):
        limiter.failed(Ticket(limiter.epoch, 1), kind)
    assert limiter.allowed == 4  # these say nothing about load


def test_an_answer_slow_to_start_halves_the_level() -> None:
    policy = AdaptPolicy(slow_factor=3.0, slow_margin=1.0, slow_samples=4)
    pace = Pace(StallPolicy())
    for seconds in (0.5, 0.6, 0.5, 0.7):
        assert not pace.slow(5.0, policy)  # too few answers yet to know what is usual
        pace.first_audio(seconds)
    assert not pace.slow(1.4, policy)  # under usual + 1 s
    assert pace.slow(1.6, policy)
    limiter = Limiter(8, policy=policy)
    limiter.answered(Ticket(0, 8), slow=True)
    assert (limiter.allowed, limiter.epoch) == (4, 1)
    limiter.answered(Ticket(0, 8), slow=True)  # same round: once
    assert limiter.allowed == 4


def test_settings_choose_a_pinned_or_an_adaptive_limiter() -> None:
    pinned = limiter_for(Settings(concurrency=6))
    assert (pinned.adaptive, pinned.allowed, pinned.limit) == (False, 6, 6)
    adaptive = limiter_for(Settings())
    assert (adaptive.adaptive, adaptive.proven, adaptive.allowed, adaptive.limit) == (
        True,
        4,
        5,
        16,
    )
    low = limiter_for(Settings(max_concurrency=2))
    assert (low.proven, low.allowed, low.limit) == (2, 2, 2)
    for bad in ({"concurrency": 0}, {"concurrency": 17}, {"max_concurrency": 0}):
        with pytest.raises(UsageError, match="out of range: use 1 to 16"):
            Settings(**bad)  # type: ignore[arg-type]


def test_an_embedded_engine_is_given_two_segments_at_a_time() -> None:
    # It renders on one thread: more in flight would only hold finished audio (memory would grow
    # with the level an adaptive run climbs to on a long article).
    from newsreader.synth.espeak import EspeakEngine

    engine = EspeakEngine()
    for settings in (Settings(), Settings(concurrency=8), Settings(concurrency=1)):
        limiter = limiter_for(settings, engine=engine)
        expected = min(settings.concurrency or EMBEDDED_IN_FLIGHT, EMBEDDED_IN_FLIGHT)
        assert (limiter.adaptive, limiter.limit) == (False, expected)


def test_work_order_keeps_the_head_and_goes_longest_first_in_windows() -> None:
    lengths = [3, 1, 9, 2, 5, 8, 1, 7, 4, 6, 2, 9]
    segments = [make_segment(i + 1, ("字" * n + "。",)) for i, n in enumerate(lengths)]
    order = work_order(segments[:11], WorkOrder(head=3, window=4))
    assert order[:3] == [0, 1, 2]  # the headline and first paragraphs, in script order
    assert order[3:7] == [5, 4, 3, 6]  # lengths 8, 5, 2, 1
    assert order[7:11] == [7, 9, 8, 10]  # 7, 6, 4, 2
    assert sorted(order) == list(range(11))
    assert work_order(segments[:2], WorkOrder(head=4)) == [0, 1]
    assert work_order([], WorkOrder()) == []
    # a remainder of half a window or more is a window of its own
    more = [*segments, make_segment(13, ("字" * 10 + "。",))]
    assert work_order(more, WorkOrder(head=3, window=4))[11:] == [12, 11]  # lengths 10, 9


def test_a_short_remainder_joins_the_last_window() -> None:
    # 1 + 4 + 1: alone, the last segment (the longest) would be asked for after every other one
    # and the run would end on it; joined to the window before, it goes first in that window.
    lengths = [3, 2, 5, 4, 1, 9]
    segments = [make_segment(i + 1, ("字" * n + "。",)) for i, n in enumerate(lengths)]
    assert work_order(segments, WorkOrder(head=1, window=4)) == [0, 5, 2, 3, 1, 4]
    # 29 segments, as the 27-paragraph article of the throughput benchmark makes: 4 + 25
    many = [make_segment(i + 1, ("字" * ((i + 3) % 7 + 1) + "。",)) for i in range(29)]
    order = work_order(many, WorkOrder(head=4, window=24))
    assert order[:4] == [0, 1, 2, 3]
    rest = order[4:]
    assert [len(many[i].text) for i in rest] == sorted(
        (len(many[i].text) for i in rest), reverse=True
    )
