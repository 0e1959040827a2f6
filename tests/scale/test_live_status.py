"""A reading's live status is one declaration, and reads the same in one process and across Redis.

The embedded service keeps it in memory (``LiveReading``); a worker writes it to a Redis hash that
any API node reads back (``scale.live.progress``). The real ``ReadingRunner`` drives both at once,
and after each step the two must agree field by field; the Redis encoding itself is pinned, so a
worker and an API node of this version read each other's records.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from newsreader.audio.assemble import RenderedSegment, TimedSentence
from newsreader.audio.intro import load_clips
from newsreader.scale.live import LivePublisher, live_keys, progress
from newsreader.scale.state import RedisState
from newsreader.scale.worker import ClusterReading
from newsreader.service.fairness import FairLimiter
from newsreader.service.files import open_reading_storage, staging_folder
from newsreader.service.payloads import SentencePayload
from newsreader.service.pools import Pools
from newsreader.service.readings import EmbeddedLive, LiveReading, StoreState
from newsreader.service.request import JobRequest
from newsreader.service.runner import ReadingRunner
from newsreader.service.security import AddressPolicy
from newsreader.service.status import PROGRESS_FIELDS, LiveStatus, Progress
from newsreader.service.store import JobStore
from newsreader.service.stream import LiveAudio
from newsreader.text.extract import extract
from newsreader.text.segment import build_script
from tests.scale.test_live import sentences as two_sentences
from tests.service.conftest import ARTICLE, make_config
from tests.standin.server import EdgeStandin

STATUS_FIELDS = [f.name for f in dataclasses.fields(LiveStatus)]


def test_the_live_status_is_declared_once() -> None:
    assert issubclass(LiveStatus, Progress) and issubclass(LiveReading, LiveStatus)
    assert [*PROGRESS_FIELDS, "status", "error"] == STATUS_FIELDS
    # the embedded reading adds its audio and nothing else
    assert [f.name for f in dataclasses.fields(LiveReading)] == [*STATUS_FIELDS, "audio"]


def assert_same(embedded: LiveStatus, cluster: LiveStatus | None, step: str) -> None:
    assert cluster is not None, f"{step}: no live status in Redis"
    for name in STATUS_FIELDS:
        ours, theirs = getattr(embedded, name), getattr(cluster, name)
        if name == "audio_seconds":  # Redis adds the seconds up in its own floating point
            assert theirs == pytest.approx(ours, abs=1e-9), f"{step}: {name}"
        else:
            assert theirs == ours, f"{step}: {name}"


class BothPorts:
    """The runner's ``LivePort`` and ``StatePort``, each call made to the embedded service's
    ports and to a worker's; after each step the embedded status and the one an API node reads
    from Redis are compared."""

    def __init__(
        self, embedded: EmbeddedLive, store: StoreState, cluster: ClusterReading, node: Redis
    ) -> None:
        self.embedded, self.store, self.cluster, self.node = embedded, store, cluster, node
        self.steps: list[str] = []

    async def check(self, step: str) -> None:
        self.steps.append(step)
        read = await progress(self.node, self.cluster.reading_id)  # as an API node reads it
        assert_same(self.embedded.live, read, step)

    async def running(self) -> None:
        await self.embedded.running()
        await self.cluster.running()

    async def scripted(self, progress: Progress) -> None:
        await self.embedded.scripted(progress)
        await self.cluster.scripted(progress)  # a worker's live reading begins with the engine

    async def engine(self, progress: Progress) -> None:
        await self.embedded.engine(progress)
        await self.cluster.engine(progress)
        await self.check("engine")

    async def segment(self, item: RenderedSegment, progress: Progress) -> bool:
        heard = await self.embedded.segment(item, progress)
        assert await self.cluster.segment(item, progress)
        await self.check(f"segment {item.index}")
        return heard

    async def restart(self, progress: Progress, warning: str) -> None:
        await self.embedded.restart(progress, warning)
        await self.cluster.restart(progress, warning)
        await self.check("restart")

    async def done(self, progress: Progress) -> None:
        await self.embedded.done(progress)
        await self.cluster.done(progress)
        await self.check("done")

    async def failed(self, code: str, message: str) -> None:
        await self.embedded.failed(code, message)
        await self.cluster.failed(code, message)

    async def update(self, **fields: Any) -> None:
        await self.store.update(**fields)
        await self.cluster.update(**fields)

    async def finish(self, **fields: Any) -> bool:
        assert await self.store.finish(**fields)
        return await self.cluster.finish(**fields)

    async def fail(self, code: str, message: str) -> bool:
        assert await self.store.fail(code, message)
        accepted = await self.cluster.fail(code, message)
        await self.check("failed")
        return accepted


def run_both(tmp_path: Path, redis_url: str, **config: Any) -> tuple[list[str], LiveReading]:
    """One reading of ``ARTICLE`` by the real runner into both sets of ports."""
    settings = make_config(tmp_path / "data", loudness=None, **config)
    request = JobRequest(kind="text", content=ARTICLE)
    reading_id = request.reading_id(b"k" * 32)

    async def scenario() -> tuple[list[str], LiveReading]:
        redis, node = Redis.from_url(redis_url), Redis.from_url(redis_url)
        store = JobStore(tmp_path / "jobs.sqlite3")
        pools = Pools(settings)
        try:
            state = RedisState(redis)
            await state.submit(reading_id, request.to_dict(), None, audio_exists=False)
            assert await state.claim(reading_id, "worker-1")
            store.add(reading_id, request.to_dict(), None)
            runner = ReadingRunner(
                settings,
                AddressPolicy(),
                open_reading_storage(settings),
                limiter=FairLimiter(settings.voice_connections, settings.segment_concurrency),
                pools=pools,
                clips=load_clips(
                    settings.intro, settings.outro, settings.loudness, settings.segment_cache
                ),
                staging=staging_folder(settings),
            )
            live = LiveReading(audio=LiveAudio(tmp_path / "live" / "r.live.mp3"))
            ports = BothPorts(
                EmbeddedLive(live, tmp_path / "live", reading_id, None),
                StoreState(store, reading_id),
                ClusterReading(state, LivePublisher(redis, reading_id), reading_id, "worker-1"),
                node,
            )
            try:
                assert await runner.run(reading_id, request, ports, ports)
            except Exception as error:
                await runner.fail(reading_id, error, ports, ports)
            return ports.steps, live
        finally:
            pools.close()
            store.close()
            await redis.aclose()
            await node.aclose()

    return asyncio.run(scenario())


def failing_paragraph(edge_standin: EdgeStandin) -> None:
    """The online voice drops the connection midway through the second paragraph's audio."""
    script = build_script(extract(ARTICLE, read_whole=True), locale="zh-CN", read_title=True)
    failing = {segment.text for segment in script.segments if segment.block == 1}
    assert failing
    edge_standin.set_faults(chooser=lambda _n, text: "close_mid_audio" if text in failing else None)


def test_a_reading_restarted_in_the_embedded_voice_reads_the_same_from_redis(
    tmp_path: Path, redis_url: str, edge_standin: EdgeStandin
) -> None:
    failing_paragraph(edge_standin)
    steps, live = run_both(tmp_path, redis_url, fallback="espeak")
    assert live.status == "done" and live.takes == 2 and live.engine == "espeak"
    assert len(live.warnings) == 1 and live.done == live.total == 4
    assert all(s["start"] is not None for s in live.sentences)
    after = steps[steps.index("restart") + 1 :]
    assert after == [f"segment {n}" for n in range(4)] + ["done"]  # the new take, each compared


def test_a_failed_reading_reads_the_same_from_redis(
    tmp_path: Path, redis_url: str, edge_standin: EdgeStandin
) -> None:
    failing_paragraph(edge_standin)
    steps, live = run_both(tmp_path, redis_url)
    assert live.status == "failed" and live.error is not None
    assert live.error[0] == "synthesis_failed" and "paragraph 2" in live.error[1]
    assert steps[0] == "engine" and steps[-1] == "failed"


def test_the_redis_encoding_of_a_status_is_the_one_every_node_reads(redis_url: str) -> None:
    """The hash a worker writes, as bytes, and the status an API node reads from such a hash.
    A change here breaks nodes of different versions reading each other's readings."""
    sentences = two_sentences(2)

    async def scenario() -> tuple[dict[bytes, bytes], LiveStatus | None, LiveStatus | None]:
        redis = Redis.from_url(redis_url)
        try:
            publisher = LivePublisher(redis, "r")
            await publisher.begin("标题", 2, sentences, "edge")
            timed = [TimedSentence("第0句。", 0, 1500)]
            await publisher.segment(0, b"\xff" * 144, 1.5, timed)
            await publisher.restart("espeak", "换了声音")
            await publisher.segment(0, b"\xff" * 144, 0.25, timed)
            written = cast(dict[bytes, bytes], await redis.hgetall(live_keys("r")[1]))
            read = await progress(redis, "r")
            # a hash as this version's workers write it, ended failed
            await redis.hset(
                live_keys("x")[1],
                mapping={
                    b"run": b"0123456789abcdef",
                    b"status": b"failed",
                    b"title": json.dumps("标题", ensure_ascii=False).encode(),
                    b"total": b"2",
                    b"done": b"1",
                    b"sentences": json.dumps(sentences, ensure_ascii=False).encode(),
                    b"engine": b"edge",
                    b"script": b"f" * 32,
                    b"warnings": b"[]",
                    b"audio_seconds": b"2.5",
                    b"takes": b"1",
                    b"take_start": b"1-0",
                    b"t0": b"[[0, 2400]]",
                    b"error_code": b"synthesis_failed",
                    b"error_message": "第2段读不出来".encode(),
                },
            )
            return written, read, await progress(redis, "x")
        finally:
            await redis.aclose()

    written, read, failed = asyncio.run(scenario())
    variable = {b"run", b"script", b"take_start"}  # a random run id, a hash, a stream id
    assert {k: v for k, v in written.items() if k not in variable} == {
        b"status": b"running",
        b"title": json.dumps("标题", ensure_ascii=False).encode(),
        b"total": b"2",
        b"done": b"1",
        b"sentences": json.dumps(sentences, ensure_ascii=False).encode(),
        b"engine": b"espeak",
        b"warnings": json.dumps(["换了声音"], ensure_ascii=False).encode(),
        b"audio_seconds": b"0.25",
        b"takes": b"2",
        b"t0": b"[[0, 1500]]",
    }
    assert len(written[b"run"]) == 16 and len(written[b"script"]) == 32
    timed: list[SentencePayload] = [{**sentences[0], "start": 0.0, "end": 1.5}, sentences[1]]
    assert read == LiveStatus(
        title="标题",
        total=2,
        done=1,
        sentences=timed,
        engine="espeak",
        audio_seconds=0.25,
        warnings=["换了声音"],
        takes=2,
        status="running",
    )
    assert failed == LiveStatus(
        title="标题",
        total=2,
        done=1,
        sentences=[{**sentences[0], "start": 0.0, "end": 2.4}, sentences[1]],
        engine="edge",
        audio_seconds=2.5,
        warnings=[],
        takes=1,
        status="failed",
        error=("synthesis_failed", "第2段读不出来"),
    )
