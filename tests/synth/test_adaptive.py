"""Adaptive concurrency and work order, against the edge stand-in with the real ``edge_tts``.

The stand-in caps the connections it takes (HTTP 429 with ``Retry-After`` beyond the cap) and
counts, on its side, every connection asked for at once: refused handshakes included.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from newsreader.errors import TransientError
from newsreader.models import Segment, SegmentAudio
from newsreader.synth.base import REQUEST_PROGRESS, Progress
from newsreader.synth.cache import SegmentCache
from newsreader.synth.edge import EdgeEngine
from newsreader.synth.order import WorkOrder, work_order
from newsreader.synth.scheduler import Limiter, Scheduler, limiter_for
from tests.audio import make_script, make_segment
from tests.standin.server import EdgeStandin, tone_mp3
from tests.synth.test_stalls import edge_settings, segments


def run(scheduler: Scheduler, parts: tuple[Segment, ...], levels: list[int]) -> list[SegmentAudio]:
    """Synthesize ``parts``, noting the limiter's level every 5 ms in ``levels``."""

    async def watch() -> None:
        while True:
            levels.append(scheduler.limiter.allowed)
            await asyncio.sleep(0.005)

    async def go() -> list[SegmentAudio]:
        watcher = asyncio.create_task(watch())
        try:
            script = make_script(parts, ("标题",))
            return [audio async for audio in scheduler.run(script)]
        finally:
            watcher.cancel()

    return asyncio.run(asyncio.wait_for(go(), 60))  # a guard for the test itself


def assert_complete(
    done: list[SegmentAudio], parts: tuple[Segment, ...], edge: EdgeStandin
) -> None:
    assert len(done) == len(parts)
    for audio, segment in zip(done, parts, strict=True):
        assert audio.mp3 == tone_mp3(edge.plan(segment.text).frames), segment.text


def test_adaptive_concurrency_meets_the_cap_with_one_probe_and_recovers_after_429s(
    edge_standin: EdgeStandin,
) -> None:
    cap, burst = 6, range(40, 50)
    edge_standin.configure(
        max_connections=cap, retry_after=0.2, first_audio_latency=0.05, realtime_multiple=20.0
    )
    # Besides the cap: the service refuses ten handshakes in a row (40 to 49), as a service does
    # when it starts throttling a client.
    edge_standin.set_faults(
        chooser=lambda number, text: "http_429" if text is None and number in burst else None
    )
    parts = segments(110)
    settings = edge_settings(concurrency=None, max_concurrency=16, retries=10)
    limiter = limiter_for(settings)
    assert (limiter.adaptive, limiter.proven, limiter.allowed, limiter.limit) == (True, 4, 5, 16)
    scheduler = Scheduler(
        EdgeEngine(), settings, SegmentCache(None), limiter=limiter, rng=random.Random(1)
    )
    levels: list[int] = []
    done = run(scheduler, parts, levels)
    assert_complete(done, parts, edge_standin)

    # Never more than one probe beyond the service's cap, seen from both sides.
    assert edge_standin.max_open_connections == cap  # it found the cap ...
    assert edge_standin.max_asked_connections <= cap + 1  # ... one probe at a time
    assert limiter.peak <= cap + 1
    log = edge_standin.handshake_log
    at_cap = [h for h in log if h.status == 429 and h.number not in burst]
    assert 1 <= len(at_cap) <= 5, [h.number for h in at_cap]  # probes, not hammering

    # The burst halved the level round after round, down to 1, and it grew back to the cap.
    lowest = levels.index(1)
    assert cap in levels[lowest:], levels
    assert scheduler.stats.level >= cap
    stats = scheduler.stats
    assert (stats.adaptive_limit, stats.peak) == (16, limiter.peak)
    assert stats.concurrency_note() == f"concurrency settled at {stats.level} (at most 16)"
    assert stats.failures["rate_limit"] == len([h for h in log if h.status == 429])


def test_the_edge_engine_reports_the_accepted_handshake_before_the_first_audio(
    edge_standin: EdgeStandin,
) -> None:
    edge_standin.configure(handshake_latency=0.05, first_audio_latency=0.3)
    # The first request's handshake is refused with a 403 (clock skew), and the client opens a
    # second session on the same connector; the second request's handshake is refused (429).
    edge_standin.set_faults(["http_403_skew", None, "http_429"])
    part, other = segments(2)

    async def one(segment: Segment) -> tuple[Progress, SegmentAudio | TransientError]:
        progress = Progress()
        REQUEST_PROGRESS.set(progress)  # this task's own context, as the scheduler sets it
        try:
            return progress, await EdgeEngine().synthesize(segment, edge_settings())
        except TransientError as exc:
            return progress, exc

    async def both() -> list[tuple[Progress, SegmentAudio | TransientError]]:
        return [await asyncio.create_task(one(part)), await asyncio.create_task(one(other))]

    (taken, audio), (refused, error) = asyncio.run(both())
    assert isinstance(audio, SegmentAudio)
    assert audio.mp3 == tone_mp3(edge_standin.plan(part.text).frames)
    assert taken.started is not None and taken.accepted is not None and taken.first is not None
    # two handshakes of 0.05 s, then 0.3 s to the first audio
    assert taken.accepted - taken.started >= 0.09
    assert taken.first - taken.accepted >= 0.25
    assert isinstance(error, TransientError) and error.kind == "rate_limit"
    assert refused.started is not None and refused.accepted is None
    assert [h.status for h in edge_standin.handshake_log] == [403, 101, 429]


def test_a_probe_is_proven_when_its_connection_is_taken_not_at_its_first_audio(
    edge_standin: EdgeStandin,
) -> None:
    cap, first_audio = 8, 0.6
    edge_standin.configure(
        max_connections=cap,
        retry_after=0.2,
        handshake_latency=0.02,
        first_audio_latency=first_audio,
        realtime_multiple=20.0,
    )
    parts = segments(30)
    settings = edge_settings(concurrency=None, max_concurrency=16, retries=10)
    scheduler = Scheduler(EdgeEngine(), settings, SegmentCache(None), rng=random.Random(1))
    done = run(scheduler, parts, [])
    assert_complete(done, parts, edge_standin)
    log = edge_standin.handshake_log
    refused = [h for h in log if h.status == 429]
    assert refused, "the run never found the cap"
    # The probes 5 to 8 were taken and the 9th refused before any request's first audio could
    # have come (each step waited only for a handshake, 0.02 s, not for the first audio) ...
    began = log[0].at - 0.02
    assert refused[0].at - began < first_audio - 0.1, [(h.at - began, h.status) for h in log]
    assert [h.status for h in log[: cap + 1]] == [101] * cap + [429]
    # ... and still never more than one connection beyond the cap.
    assert edge_standin.max_open_connections == cap
    assert edge_standin.max_asked_connections <= cap + 1
    assert scheduler.limiter.peak <= cap + 1
    assert scheduler.stats.level == cap


def test_a_pinned_run_stays_at_its_level(edge_standin: EdgeStandin) -> None:
    edge_standin.configure(first_audio_latency=0.05, realtime_multiple=20.0)
    parts = segments(30)
    settings = edge_settings(concurrency=3, max_concurrency=16)
    scheduler = Scheduler(EdgeEngine(), settings, SegmentCache(None))
    levels: list[int] = []
    assert_complete(run(scheduler, parts, levels), parts, edge_standin)
    assert set(levels) == {3}
    assert edge_standin.max_asked_connections == 3
    assert scheduler.stats.concurrency_note() == ""


def test_identical_segments_are_synthesized_once(edge_standin: EdgeStandin) -> None:
    edge_standin.configure(first_audio_latency=0.02)
    distinct = segments(4)
    repeated = "本报讯。"  # e.g. a sign-off line the article repeats
    texts = [distinct[0].text, repeated, distinct[1].text, repeated, distinct[2].text, repeated]
    texts += [distinct[3].text, distinct[1].text]
    parts = tuple(make_segment(i + 1, (text,)) for i, text in enumerate(texts))
    scheduler = Scheduler(EdgeEngine(), edge_settings(), SegmentCache(None))
    done = run(scheduler, parts, [])
    assert_complete(done, parts, edge_standin)
    asked = Counter(request.text for request in edge_standin.requests)
    assert asked == Counter(set(texts))  # each text once
    assert scheduler.stats.duplicates == 3
    assert scheduler.stats.requests == 5


def test_segments_are_asked_for_in_work_order(edge_standin: EdgeStandin) -> None:
    """One connection at a time: the stand-in sees the headline and first paragraphs in script
    order, then each window longest first."""
    lengths = [2, 5, 1, 3, 2, 6, 4, 1, 5, 3]
    parts = tuple(
        make_segment(i + 1, (f"第{i + 1}段" + "市民阅读" * n + "。",))
        for i, n in enumerate(lengths)
    )
    order = WorkOrder(head=2, window=4)
    scheduler = Scheduler(
        EdgeEngine(), edge_settings(concurrency=1), SegmentCache(None), order=order
    )
    done = run(scheduler, parts, [])
    assert_complete(done, parts, edge_standin)
    asked = [request.text for request in edge_standin.requests]
    expected = [parts[i].text for i in work_order(parts, order)]
    assert asked == expected
    assert asked[:2] == [parts[0].text, parts[1].text]
    assert asked[2:6] == [parts[i].text for i in (5, 3, 4, 2)]  # lengths 6, 3, 2, 1


def test_each_segment_is_handed_on_as_soon_as_it_arrives(edge_standin: EdgeStandin) -> None:
    """``on_audio`` hears a segment's audio when it arrives, not when its turn in the script
    comes (a level meter measures it then, while the other requests are still out)."""
    edge_standin.configure(first_audio_latency=0.05, realtime_multiple=20.0)
    lengths = [30, 1, 2]  # the first paragraph takes far longest
    parts = tuple(
        make_segment(i + 1, (f"第{i + 1}段" + "市民阅读" * n + "。",))
        for i, n in enumerate(lengths)
    )
    heard: list[tuple[bytes, int]] = []
    scheduler = Scheduler(
        EdgeEngine(),
        edge_settings(concurrency=3),
        SegmentCache(None),
        on_audio=lambda mp3: heard.append((mp3, len(done))),
    )
    done: list[SegmentAudio] = []

    async def go() -> None:
        async for audio in scheduler.run(make_script(parts, ("标题",))):
            done.append(audio)

    asyncio.run(go())
    assert_complete(done, parts, edge_standin)
    which = {tone_mp3(edge_standin.plan(p.text).frames): i for i, p in enumerate(parts)}
    assert sorted(which[mp3] for mp3, _ in heard) == [0, 1, 2]  # each once
    assert [which[mp3] for mp3, _ in heard][-1] == 0  # in the order they arrived
    # the short ones were heard while nothing had been yielded yet (the first was still coming)
    assert [ready for mp3, ready in heard if which[mp3] != 0] == [0, 0]


def test_the_limiter_a_service_shares_keeps_working(edge_standin: EdgeStandin) -> None:
    """A limiter given to the scheduler (as the service gives its shared one) is used as is."""
    edge_standin.configure(first_audio_latency=0.05, realtime_multiple=20.0)
    parts = segments(12)
    shared = Limiter(2)
    scheduler = Scheduler(
        EdgeEngine(), edge_settings(concurrency=None), SegmentCache(None), limiter=shared
    )
    assert_complete(run(scheduler, parts, []), parts, edge_standin)
    assert edge_standin.max_asked_connections == 2
    assert (scheduler.stats.adaptive_limit, scheduler.stats.peak) == (0, 2)
