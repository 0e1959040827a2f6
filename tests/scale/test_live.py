"""Live audio across machines on a real Redis: publishers, followers, takes, failure, expiry."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from redis.asyncio import Redis

from newsreader import pipeline
from newsreader.audio.assemble import RenderedSegment, TimedSentence
from newsreader.config import Settings
from newsreader.scale import live
from newsreader.scale.live import (
    LiveFailed,
    LiveNotStarted,
    LivePublisher,
    LiveStalled,
    LiveSuperseded,
    follow,
    live_keys,
    progress,
)
from newsreader.service.payloads import SentencePayload, sentence_list, time_sentences
from newsreader.text.extract import extract

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
SEGMENTS = 8


def audio(index: int, take: int = 1, size: int = 0) -> bytes:
    """A segment's bytes, different for every index and take (and a few KB unless ``size``)."""
    seed = hashlib.sha256(f"{take}:{index}".encode()).digest()
    length = size or 2000 + 137 * index
    return (seed * (length // len(seed) + 1))[:length]


def timings(index: int) -> list[TimedSentence]:
    return [TimedSentence(f"s{index}", index * 1000, index * 1000 + 800)]


def sentences(total: int) -> list[SentencePayload]:
    return [
        {
            "index": n,
            "text": f"第{n}句。",
            "kind": "body",
            "block": n,
            "segment": n,
            "start": None,
            "end": None,
        }
        for n in range(total)
    ]


def run(url: str, scenario: Callable[[Redis, Redis], Awaitable[T]]) -> T:
    """``scenario(publishing, following)``: two clients, as a worker and an API node."""

    async def main() -> T:
        worker, node = Redis.from_url(url), Redis.from_url(url)
        try:
            return await scenario(worker, node)
        finally:
            await worker.aclose()
            await node.aclose()

    return asyncio.run(main())


async def collect(redis: Redis, reading_id: str, **options: Any) -> bytes:
    return b"".join([chunk async for chunk in follow(redis, reading_id, **options)])


def start_follower(redis: Redis, reading_id: str, **options: Any) -> asyncio.Task[bytes]:
    return asyncio.create_task(collect(redis, reading_id, block_ms=200, **options))


async def following(redis: Redis, reading_id: str) -> asyncio.Task[bytes]:
    """A follower that has its first segment of the current take (it goes on in a task)."""
    first = asyncio.Event()

    async def listen() -> bytes:
        chunks = []
        async for chunk in follow(redis, reading_id, block_ms=200):
            chunks.append(chunk)
            first.set()
        return b"".join(chunks)

    task = asyncio.create_task(listen())
    await asyncio.wait_for(first.wait(), 10)
    return task


async def publish(publisher: LivePublisher, indices: range, take: int = 1) -> list[bool]:
    return [await publisher.segment(i, audio(i, take), 0.5 + i / 100, timings(i)) for i in indices]


async def stream_indices(redis: Redis, reading_id: str) -> list[int]:
    """The segment indices in the stream, in its order (every take)."""
    entries = cast(
        list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(live_keys(reading_id)[0])
    )
    return [int(fields[b"index"]) for _, fields in entries if fields[b"kind"] == b"seg"]


def whole(count: int = SEGMENTS, take: int = 1) -> bytes:
    return b"".join(audio(i, take) for i in range(count))


def test_followers_early_midway_and_late_get_the_same_bytes(redis_url: str) -> None:
    async def scenario(worker: Redis, node: Redis) -> list[bytes]:
        early = start_follower(node, "r")  # before the job has begun: it waits
        await asyncio.sleep(0.3)
        publisher = LivePublisher(worker, "r")
        assert await publisher.begin("标题", SEGMENTS, sentences(SEGMENTS), "espeak") == "begin"
        assert await publish(publisher, range(3)) == [True] * 3
        midway = start_follower(node, "r")
        await asyncio.sleep(0.3)
        assert await publish(publisher, range(3, SEGMENTS)) == [True] * (SEGMENTS - 3)
        assert await publisher.end("done")
        assert not await publisher.end("failed", ("synthesis_failed", "late"))  # first end wins
        late = await collect(node, "r")
        state = await progress(node, "r")
        assert state is not None
        assert (state.status, state.done, state.total, state.takes) == ("done", SEGMENTS, 8, 1)
        assert state.audio_seconds == pytest.approx(sum(0.5 + i / 100 for i in range(SEGMENTS)))
        return [await early, await midway, late]

    assert run(redis_url, scenario) == [whole()] * 3


def test_a_killed_publisher_is_followed_by_a_second_one_without_a_repeat(
    redis_url: str,
) -> None:
    """A worker dies after segment 3; the job, re-delivered, renders from segment 0 again:
    listeners hear every segment once, in order."""
    worker = f"""
import asyncio, sys, time
from redis.asyncio import Redis
from newsreader.scale.live import LivePublisher
from tests.scale.test_live import audio, sentences, timings

async def main():
    redis = Redis.from_url({redis_url!r})
    publisher = LivePublisher(redis, "r")
    await publisher.begin("标题", {SEGMENTS}, sentences({SEGMENTS}), "espeak")
    for index in range(4):
        await publisher.segment(index, audio(index), 0.5, timings(index))
    print("published", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""

    async def scenario(publishing: Redis, node: Redis) -> tuple[bytes, bytes]:
        early = start_follower(node, "r", wait=30)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            worker,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line == b"published\n"
        finally:
            process.kill()
            await process.wait()
        joined = start_follower(node, "r")
        second = LivePublisher(publishing, "r")
        assert await second.begin("标题", SEGMENTS, sentences(SEGMENTS), "espeak") == "resume"
        appended = await publish(second, range(SEGMENTS))
        assert appended == [False] * 4 + [True] * (SEGMENTS - 4)
        await second.end("done")
        assert await stream_indices(node, "r") == list(range(SEGMENTS))
        return await early, await joined

    early, joined = run(redis_url, scenario)
    assert early == joined == whole()


def test_two_executions_at_once_append_each_segment_once_in_order(redis_url: str) -> None:
    """A stalled worker and the one the job was handed to run side by side."""

    async def scenario(one: Redis, other: Redis) -> bytes:
        follower = start_follower(other, "r")
        first, second = LivePublisher(one, "r"), LivePublisher(other, "r")
        assert await first.begin("t", SEGMENTS, sentences(SEGMENTS), "edge") == "begin"
        assert await second.begin("t", SEGMENTS, sentences(SEGMENTS), "edge") == "resume"

        async def render(publisher: LivePublisher, pause: float) -> list[bool]:
            results = []
            for index in range(SEGMENTS):
                results.append(await publisher.segment(index, audio(index), 0.5, timings(index)))
                await asyncio.sleep(pause)
            return results

        a, b = await asyncio.gather(render(first, 0.01), render(second, 0.017))
        assert [x or y for x, y in zip(a, b, strict=True)] == [True] * SEGMENTS
        assert not any(x and y for x, y in zip(a, b, strict=True))
        await first.end("done")
        state = await progress(other, "r")
        assert state is not None and state.done == SEGMENTS
        assert state.audio_seconds == pytest.approx(0.5 * SEGMENTS)
        return await follower

    assert run(redis_url, scenario) == whole()


def test_a_segment_is_never_appended_before_an_earlier_one(redis_url: str) -> None:
    async def scenario(worker: Redis, _node: Redis) -> None:
        publisher = LivePublisher(worker, "r")
        with pytest.raises(RuntimeError, match="before begin"):
            await publisher.segment(0, b"x", 0.1, [])
        await publisher.begin("t", 4, sentences(4), "espeak")
        await publisher.segment(0, audio(0), 0.5, timings(0))
        with pytest.raises(ValueError, match="segment 2 comes before an earlier one"):
            await publisher.segment(2, audio(2), 0.5, timings(2))
        assert await publisher.segment(1, audio(1), 0.5, timings(1))
        await publisher.end("done")
        assert not await publisher.segment(2, audio(2), 0.5, timings(2))  # it has ended
        assert await stream_indices(worker, "r") == [0, 1]

    run(redis_url, scenario)


def test_a_fallback_restart_ends_the_first_take_and_later_followers_get_the_new_one(
    redis_url: str,
) -> None:
    async def scenario(worker: Redis, node: Redis) -> None:
        publisher = LivePublisher(worker, "r")
        await publisher.begin("t", SEGMENTS, sentences(SEGMENTS), "edge")
        await publish(publisher, range(3))
        first_take = await following(node, "r")
        await publisher.restart("espeak", "the online voice failed: the embedded voice reads it")
        # The first voice's listener has heard it end, before the new take has a segment.
        assert await asyncio.wait_for(first_take, 5) == whole(3)
        state = await progress(node, "r")
        assert state is not None
        assert (state.engine, state.done, state.audio_seconds, state.takes) == ("espeak", 0, 0, 2)
        assert state.warnings == ["the online voice failed: the embedded voice reads it"]
        assert all(s["start"] is None for s in state.sentences)  # the old take's times are gone
        second_take = start_follower(node, "r")
        assert await publish(publisher, range(SEGMENTS), take=2) == [True] * SEGMENTS
        await publisher.end("done")
        assert await second_take == whole(take=2)
        assert await collect(node, "r") == whole(take=2)

    run(redis_url, scenario)


def test_a_redelivered_job_in_another_voice_starts_a_new_take_and_the_old_is_refused(
    redis_url: str,
) -> None:
    async def scenario(one: Redis, other: Redis) -> None:
        stalled = LivePublisher(one, "r")
        await stalled.begin("t", SEGMENTS, sentences(SEGMENTS), "espeak")
        await publish(stalled, range(2))
        listener = await following(other, "r")
        taken = LivePublisher(other, "r")
        assert await taken.begin("t", SEGMENTS, sentences(SEGMENTS), "edge") == "take"
        assert await asyncio.wait_for(listener, 5) == whole(2)
        with pytest.raises(LiveSuperseded):
            await stalled.segment(2, audio(2), 0.5, timings(2))
        with pytest.raises(LiveSuperseded):
            await stalled.restart("espeak", "x")
        assert not await stalled.end("failed", ("synthesis_failed", "stalled"))
        assert await publish(taken, range(2), take=2) == [True, True]
        # The same voice but another script (the page changed): a new take as well.
        changed = sentences(SEGMENTS)
        changed[0]["text"] = "改了。"
        again = LivePublisher(one, "r")
        assert await again.begin("t", SEGMENTS, changed, "edge") == "take"
        state = await progress(other, "r")
        assert state is not None and (state.takes, state.done) == (3, 0)

    run(redis_url, scenario)


def test_a_failure_reaches_the_followers_as_an_error(redis_url: str) -> None:
    async def scenario(worker: Redis, node: Redis) -> None:
        publisher = LivePublisher(worker, "r")
        await publisher.begin("t", SEGMENTS, sentences(SEGMENTS), "edge")
        await publish(publisher, range(2))
        received: list[bytes] = []

        async def listen() -> None:
            async for chunk in follow(node, "r", block_ms=200):
                received.append(chunk)

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.2)
        assert await publisher.end("failed", ("synthesis_failed", "the voice failed"))
        with pytest.raises(LiveFailed) as failed:
            await listener
        assert (failed.value.error_code, failed.value.message) == (
            "synthesis_failed",
            "the voice failed",
        )
        assert received == [audio(0), audio(1)]
        state = await progress(node, "r")
        assert state is not None
        assert (state.status, state.error) == ("failed", ("synthesis_failed", "the voice failed"))

        # A job that fails before it begins (the page could not be read) ends waiting followers.
        waiting = start_follower(node, "other")
        await asyncio.sleep(0.3)
        assert await LivePublisher(worker, "other").end("failed", ("no_article", "no article"))
        with pytest.raises(LiveFailed, match="no article"):
            await waiting

    run(redis_url, scenario)


def test_the_stream_expires_after_its_end(redis_url: str) -> None:
    async def scenario(worker: Redis, node: Redis) -> None:
        publisher = LivePublisher(worker, "r", keep_seconds=1)
        await publisher.begin("t", 2, sentences(2), "espeak")
        await publish(publisher, range(2))
        keys = live_keys("r")
        assert [await node.ttl(key) for key in keys] == [-1, -1]  # no expiry while it runs
        await publisher.end("done")
        assert [await node.ttl(key) for key in keys] == [1, 1]
        assert await collect(node, "r") == whole(2)
        await asyncio.sleep(1.2)
        assert await node.exists(*keys) == 0
        assert await progress(node, "r") is None
        with pytest.raises(LiveNotStarted):
            await collect(node, "r", wait=0.2, block_ms=50)

    run(redis_url, scenario)


def test_a_slow_follower_keeps_an_ended_stream_until_it_has_read_it(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "_TOUCH_EVERY", 0.0)
    monkeypatch.setattr(live, "FOLLOWER_KEEP", 2)

    async def scenario(worker: Redis, node: Redis) -> bytes:
        publisher = LivePublisher(worker, "r", keep_seconds=1)
        await publisher.begin("t", 4, sentences(4), "espeak")
        await publish(publisher, range(4))
        await publisher.end("done")
        received = []
        async for chunk in follow(node, "r", batch=1, block_ms=100):
            received.append(chunk)
            await asyncio.sleep(0.6)  # a listener whose player reads at its own pace
        return b"".join(received)

    assert run(redis_url, scenario) == whole(4)


def test_following_a_long_reading_holds_little_memory(redis_url: str) -> None:
    size, count = 256 * 1024, 200  # 50 MB of audio

    async def scenario(worker: Redis, node: Redis) -> tuple[int, str, int]:
        publisher = LivePublisher(worker, "r")
        await publisher.begin("t", count, sentences(count), "espeak")
        for index in range(count):
            await publisher.segment(index, audio(index, size=size), 10.0, timings(index))
        await publisher.end("done")
        digest, received = hashlib.sha256(), 0
        tracemalloc.start()
        try:
            async for chunk in follow(node, "r"):
                digest.update(chunk)
                received += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return received, digest.hexdigest(), peak

    received, digest, peak = run(redis_url, scenario)
    expected = hashlib.sha256(b"".join(audio(i, size=size) for i in range(count))).hexdigest()
    assert (received, digest) == (size * count, expected)
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while following 50 MB"


def test_progress_gives_the_sentences_the_times_the_embedded_service_gives(
    redis_url: str, seed_text: str
) -> None:
    script = pipeline.make_script(extract(seed_text, read_whole=True), Settings())
    embedded = sentence_list(script)
    rendered = []
    start_ms = 0
    for segment in script.segments:
        timed = []
        for text in segment.display:
            timed.append(TimedSentence(text, start_ms, start_ms + 1234))
            start_ms += 1500
        rendered.append(RenderedSegment(segment.index, segment, b"", 0, tuple(timed), 0))
    half = rendered[: len(rendered) // 2]
    for item in half:
        time_sentences(embedded, item)

    async def scenario(worker: Redis, node: Redis) -> list[SentencePayload]:
        publisher = LivePublisher(worker, "r")
        await publisher.begin(script.title, len(script.segments), sentence_list(script), "edge")
        for item in half:
            await publisher.segment(item.index, b"\xff" * 144, item.seconds, item.sentences)
        state = await progress(node, "r")
        assert state is not None and (state.title, state.done) == (script.title, len(half))
        return state.sentences

    assert len(script.segments) > 3
    assert run(redis_url, scenario) == embedded


def test_waiting_and_silence_are_bounded(redis_url: str) -> None:
    async def scenario(worker: Redis, node: Redis) -> None:
        began = time.monotonic()
        with pytest.raises(LiveNotStarted, match=r"not started within 0\.5 s"):
            await collect(node, "r", wait=0.5, block_ms=100)
        assert 0.5 <= time.monotonic() - began < 3
        publisher = LivePublisher(worker, "r")
        await publisher.begin("t", 2, sentences(2), "espeak")
        await publish(publisher, range(1))
        received: list[bytes] = []
        with pytest.raises(LiveStalled, match=r"no audio for 0\.5 s"):
            async for chunk in follow(node, "r", idle=0.5, block_ms=100):
                received.append(chunk)
        assert received == [audio(0)]

    run(redis_url, scenario)


def test_live_audio_refuses_a_decoding_client_and_bad_bounds(redis_url: str) -> None:
    async def main() -> None:
        text = Redis.from_url(redis_url, decode_responses=True)
        try:
            with pytest.raises(ValueError, match="decode_responses"):
                LivePublisher(text, "r")
            with pytest.raises(ValueError, match="decode_responses"):
                await collect(text, "r")
            raw = Redis.from_url(redis_url)
            with pytest.raises(ValueError, match="keep_seconds"):
                LivePublisher(raw, "r", keep_seconds=0)
            with pytest.raises(ValueError, match="batch"):
                await collect(raw, "r", batch=0)
            await raw.aclose()
        finally:
            await text.aclose()

    asyncio.run(main())


def test_a_follower_of_a_stream_replaced_by_a_new_run_does_not_splice_them(
    redis_url: str,
) -> None:
    """The reading failed and was submitted again while a slow listener was still reading the
    old stream: the new run's entries (later ids under the same key) are not its continuation."""
    from newsreader.scale.state import RedisState

    async def scenario(worker: Redis, node: Redis) -> list[bytes]:
        state = RedisState(worker)
        request = {"kind": "url", "content": "https://news.example.cn/a.html"}
        await state.submit("r", request, None, audio_exists=False)
        await state.claim("r")
        old = LivePublisher(worker, "r")
        await old.begin("t", 4, sentences(4), "edge")
        await publish(old, range(4))
        received: list[bytes] = []
        listener = follow(node, "r", batch=1, block_ms=100)
        received.append(await anext(listener))
        await state.fail("r", "synthesis_failed", "the voice failed")
        await old.end("failed", ("synthesis_failed", "the voice failed"))
        await state.submit("r", request, None, audio_exists=False)  # a new run, a new stream
        new = LivePublisher(worker, "r")
        assert await new.begin("t", 4, sentences(4), "edge") == "begin"
        await publish(new, range(4), take=7)
        async for chunk in listener:
            received.append(chunk)
        return received

    assert run(redis_url, scenario) == [audio(0)]


def test_listeners_who_leave_end_their_followers_and_free_their_connections(
    redis_url: str,
) -> None:
    """Followers cancelled while they block (a listener hung up) end at once, every time:
    redis-py on Python 3.11 can swallow a cancellation as a command's write completes."""

    async def clients(redis: Redis) -> int:
        return len(cast(list[dict[str, Any]], await redis.client_list()))

    async def scenario(worker: Redis, node: Redis) -> tuple[int, int, int, int]:
        publisher = LivePublisher(worker, "r")
        await publisher.begin("t", 4, sentences(4), "espeak")
        await publish(publisher, range(1))
        before = await clients(worker)
        during = 0
        lingering = 0
        for round_ in range(12):
            listeners = [start_follower(node, "r") for _ in range(5)]
            await asyncio.sleep(0.25 + round_ % 4 * 0.07)  # they block for the next segment
            during = max(during, await clients(worker))
            for listener in listeners:
                listener.cancel()
            _, pending = await asyncio.wait(listeners, timeout=3)
            lingering += len(pending)
            for listener in pending:  # (so that a failure does not hang the test)
                listener.cancel()
        await node.connection_pool.disconnect(inuse_connections=False)
        await asyncio.sleep(0.2)
        after = await clients(worker)
        # The node's client still works, and the segments go on for new listeners.
        await publish(publisher, range(1, 4))
        await publisher.end("done")
        assert await collect(node, "r") == whole(4)
        return lingering, before, during, after

    lingering, before, during, after = run(redis_url, scenario)
    assert lingering == 0
    assert during >= before + 5
    assert after <= before + 1


def test_blocking_reads_stay_inside_the_clients_socket_timeout(redis_url: str) -> None:
    assert live.socket_timeout(Redis.from_url(redis_url)) == 5.0  # redis-py's own default
    assert live.socket_timeout(Redis.from_url(redis_url, socket_timeout=None)) is None

    async def main() -> bytes:
        worker = Redis.from_url(redis_url)
        node = Redis.from_url(redis_url, socket_timeout=0.4)
        try:
            publisher = LivePublisher(worker, "r")
            await publisher.begin("t", 2, sentences(2), "espeak")
            listener = asyncio.create_task(collect(node, "r", block_ms=5000))
            await asyncio.sleep(1.2)  # three socket timeouts with nothing to read
            await publish(publisher, range(2))
            await publisher.end("done")
            return await listener
        finally:
            await worker.aclose()
            await node.aclose()

    assert asyncio.run(main()) == whole(2)
