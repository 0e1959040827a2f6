"""The cluster's reading state in a real Redis: atomic across connections, the job table's rows."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from redis.asyncio import Redis

from newsreader.scale.live import LivePublisher, live_keys
from newsreader.scale.state import ID_KEY, RedisState, StateError, reading_key
from newsreader.service.store import JobStore, Row

T = TypeVar("T")
REQUEST: dict[str, Any] = {"kind": "url", "content": "https://news.example.cn/a.html"}
SOURCE = "https://news.example.cn/a.html"


def run(url: str, scenario: Callable[[RedisState, RedisState], Awaitable[T]]) -> T:
    """Run ``scenario`` with two states on two separate connections (two API nodes)."""

    async def main() -> T:
        first, second = Redis.from_url(url), Redis.from_url(url)
        try:
            return await scenario(RedisState(first), RedisState(second))
        finally:
            await first.aclose()
            await second.aclose()

    return asyncio.run(main())


def test_concurrent_submits_of_one_id_create_one_job(redis_url: str) -> None:
    async def scenario(a: RedisState, b: RedisState) -> list[tuple[bool, bool]]:
        outcomes = []
        for n in range(40):
            reading = f"r{n}"
            (row_a, new_a), (row_b, new_b) = await asyncio.gather(
                a.submit(reading, REQUEST, SOURCE, audio_exists=False),
                b.submit(reading, REQUEST, SOURCE, audio_exists=False),
            )
            assert row_a.id == row_b.id == reading
            assert row_a.status == row_b.status == "queued"
            assert row_a.created == row_b.created
            outcomes.append((new_a, new_b))
        assert await a.counts() == {"queued": 40, "running": 0}
        return outcomes

    outcomes = run(redis_url, scenario)
    assert all(new_a != new_b for new_a, new_b in outcomes)  # exactly one of each pair created


def test_a_done_reading_is_made_again_only_when_its_audio_is_gone(redis_url: str) -> None:
    asked: list[str] = []

    async def scenario(a: RedisState, b: RedisState) -> None:
        await a.submit("r", REQUEST, SOURCE, audio_exists=False)
        assert await a.claim("r", "job-1")
        assert await a.finish("r", duration=3.0, bytes=100, etag="e1", listed=True)

        def stored() -> bool:
            asked.append("sync")
            return True

        row, created = await b.submit("r", REQUEST, SOURCE, audio_exists=stored)
        assert (row.status, created, asked) == ("done", False, ["sync"])

        async def gone() -> bool:  # a storage look-up: a coroutine function
            asked.append("async")
            await asyncio.sleep(0.01)
            return False

        # Both nodes find the audio gone at once: one of them queues the reading again.
        (row_a, new_a), (row_b, new_b) = await asyncio.gather(
            a.submit("r", REQUEST, SOURCE, audio_exists=gone),
            b.submit("r", REQUEST, SOURCE, audio_exists=gone),
        )
        assert {new_a, new_b} == {True, False}
        assert row_a.status == row_b.status == "queued"
        assert (row_a.etag, row_a.duration, row_a.finished, row_a.done) == (None, None, None, 0)
        assert await a.finished() == [] and await a.finished(listed=True) == []
        assert await a.counts() == {"queued": 1, "running": 0}

    run(redis_url, scenario)
    assert asked.count("async") == 2


def test_a_row_that_finishes_while_its_audio_is_checked_is_checked_again(redis_url: str) -> None:
    """The audio check runs outside the script: if the row changes meanwhile, it is asked again
    about the new row instead of resetting a reading that was just published."""

    async def scenario(a: RedisState, b: RedisState) -> None:
        await a.submit("r", REQUEST, SOURCE, audio_exists=False)
        await a.claim("r")
        await a.finish("r", etag="old")
        answers = iter([False, True])

        async def check() -> bool:
            answer = next(answers)
            if not answer:  # while the first answer is on its way, the reading is made again
                assert (await b.submit("r", REQUEST, SOURCE, audio_exists=False))[1]
                assert await b.claim("r")
                assert await b.finish("r", etag="new")
            return answer

        row, created = await a.submit("r", REQUEST, SOURCE, audio_exists=check)
        assert (row.status, row.etag, created) == ("done", "new", False)

    run(redis_url, scenario)


def test_finish_is_a_compare_and_set_true_for_exactly_one_caller(redis_url: str) -> None:
    async def scenario(a: RedisState, b: RedisState) -> None:
        for n in range(20):
            reading = f"r{n}"
            await a.submit(reading, REQUEST, SOURCE, audio_exists=False)
            assert await a.claim(reading, "first") and await b.claim(reading, "second")
            results = await asyncio.gather(
                *(
                    state.finish(reading, etag=f"{name}-{k}", bytes=k, duration=1.0)
                    for k in range(3)
                    for name, state in (("a", a), ("b", b))
                )
            )
            assert sum(results) == 1
            winner = results.index(True)
            row = await b.get(reading)
            assert row is not None and row.status == "done"
            assert row.etag == f"{'ab'[winner % 2]}-{winner // 2}" and row.bytes == winner // 2
            # Later calls change nothing: not finish, not fail, not progress.
            assert not await a.finish(reading, etag="late")
            assert not await a.fail(reading, "synthesis_failed", "late")
            assert not await a.update(reading, done=0, title="late")
            assert await a.get(reading) == row
        assert len(await a.finished(limit=100)) == 20
        assert await a.counts() == {"queued": 0, "running": 0}

    run(redis_url, scenario)


def test_claim_release_and_fail_follow_the_status(redis_url: str) -> None:
    async def scenario(a: RedisState, b: RedisState) -> None:
        assert not await a.claim("missing")
        assert await a.get("missing") is None
        assert not await a.update("missing", title="x")
        assert not await a.fail("missing", "no_article", "x")
        await a.submit("r", REQUEST, SOURCE, audio_exists=False)
        assert not await a.finish("r")  # done only from running
        assert await a.claim("r", "job-1")
        assert await a.counts() == {"queued": 0, "running": 1}
        assert await a.release("r", "job-1")
        assert (await a.get("r")).status == "queued"  # type: ignore[union-attr]
        assert await a.counts() == {"queued": 1, "running": 0}
        assert await a.claim("r", "job-1")
        assert await a.fail("r", "no_article", "the page holds no article.")
        row = await b.get("r")
        assert row is not None
        assert (row.status, row.error_code, row.error_message) == (
            "failed",
            "no_article",
            "the page holds no article.",
        )
        assert not await a.claim("r") and not await a.fail("r", "x", "y")
        assert await a.counts() == {"queued": 0, "running": 0}
        # A failed reading submitted again is queued afresh, its error gone.
        row, created = await b.submit("r", REQUEST, SOURCE, audio_exists=False)
        assert created and (row.status, row.error_code, row.error_message) == ("queued", None, None)

    run(redis_url, scenario)


def test_a_redelivered_job_takes_the_reading_and_the_stalled_one_is_refused(
    redis_url: str,
) -> None:
    async def scenario(a: RedisState, b: RedisState) -> None:
        await a.submit("r", REQUEST, SOURCE, audio_exists=False)
        assert await a.claim("r", "attempt-1")
        assert await a.update("r", owner="attempt-1", title="标题", total=9, done=4)
        # The first worker stops answering; the queue hands the job to another.
        assert await b.claim("r", "attempt-2")
        assert await b.update("r", owner="attempt-2", done=1)
        # The first wakes up: its progress and its failure are refused ...
        assert not await a.update("r", owner="attempt-1", done=5)
        assert not await a.fail("r", "synthesis_failed", "stalled", owner="attempt-1")
        assert not await a.release("r", "attempt-1")
        row = await a.get("r")
        assert row is not None and (row.status, row.done, row.total) == ("running", 1, 9)
        # ... but either may publish (both wrote identical files): once.
        assert await a.finish("r", etag="e")
        assert not await b.finish("r", etag="e")

    run(redis_url, scenario)


def test_update_refuses_what_only_the_transitions_may_change(redis_url: str) -> None:
    async def scenario(a: RedisState, _b: RedisState) -> None:
        await a.submit("r", REQUEST, SOURCE, audio_exists=False)
        for field in ("status", "id", "request", "created", "nonsense"):
            with pytest.raises(ValueError, match=field):
                await a.update("r", **{field: "x"})
        assert await a.update("r", engine="espeak", title="t")
        assert await a.update("r", engine=None)  # None removes the value
        row = await a.get("r")
        assert row is not None and (row.engine, row.title, row.status) == (None, "t", "queued")

    run(redis_url, scenario)


def test_rows_match_the_embedded_job_table(redis_url: str, tmp_path: Path) -> None:
    """The same steps give the same ``Row`` as the SQLite store (timestamps aside), so the API's
    ``describe()`` reads either."""
    store = JobStore(tmp_path / "jobs.sqlite3")
    request = {"kind": "text", "content": "今天天气很好。", "title": "天气", "voice": "v"}
    store.add("r", request, None)
    store.update("r", status="running")
    store.update("r", title="天气", total=3, done=2, engine="espeak")
    store.update("r", status="done", done=3, duration=12.5, bytes=4096, etag="abc", finished=1.0e9)

    async def scenario(a: RedisState, _b: RedisState) -> Row | None:
        await a.submit("r", request, None, audio_exists=False)
        await a.claim("r", "job")
        await a.update("r", owner="job", title="天气", total=3, done=2, engine="espeak")
        await a.finish("r", done=3, duration=12.5, bytes=4096, etag="abc", finished=1.0e9)
        return await a.get("r")

    in_redis = run(redis_url, scenario)
    in_sqlite = store.get("r")
    store.close()
    assert in_redis is not None and in_sqlite is not None
    assert dataclasses.replace(in_redis, created=0.0, updated=0.0) == dataclasses.replace(
        in_sqlite, created=0.0, updated=0.0
    )
    assert in_redis.finished == 1.0e9 and isinstance(in_redis.bytes, int)


def test_finished_lists_the_latest_first_and_the_feed_only_listed(redis_url: str) -> None:
    async def scenario(a: RedisState, _b: RedisState) -> None:
        for n in range(6):
            reading = f"r{n}"
            await a.submit(reading, REQUEST, SOURCE, audio_exists=False)
            await a.claim(reading)
            await a.finish(reading, finished=1000.0 + n, listed=n % 2 == 0)
        await a.submit("running", REQUEST, SOURCE, audio_exists=False)
        await a.claim("running")
        assert [r.id for r in await a.finished()] == ["r5", "r4", "r3", "r2", "r1", "r0"]
        assert [r.id for r in await a.finished(limit=2)] == ["r5", "r4"]
        assert [r.id for r in await a.finished(listed=True)] == ["r4", "r2", "r0"]
        assert await a.finished(limit=0) == []
        assert await a.counts() == {"queued": 0, "running": 1}

    run(redis_url, scenario)


def test_a_reading_queued_again_loses_its_old_live_stream(redis_url: str) -> None:
    async def scenario(a: RedisState, _b: RedisState) -> None:
        await a.submit("r", REQUEST, SOURCE, audio_exists=False)
        await a.claim("r")
        publisher = LivePublisher(a.redis, "r")
        await publisher.begin("t", 1, [], "espeak")
        await a.fail("r", "synthesis_failed", "the voice failed")
        await publisher.end("failed", ("synthesis_failed", "the voice failed"))
        assert await a.redis.exists(*live_keys("r")) == 2
        await a.submit("r", REQUEST, SOURCE, audio_exists=False)
        assert await a.redis.exists(*live_keys("r")) == 0

    run(redis_url, scenario)


def test_every_node_derives_ids_with_the_same_key(redis_url: str) -> None:
    async def scenario(a: RedisState, b: RedisState) -> tuple[bytes, bytes, bytes]:
        first, second = await asyncio.gather(a.id_key(), b.id_key())
        return first, second, await a.id_key()

    first, second, again = run(redis_url, scenario)
    assert first == second == again and len(first) == 32


def test_a_damaged_id_key_is_one_clear_error(redis_url: str) -> None:
    async def scenario(a: RedisState, _b: RedisState) -> None:
        await a.redis.set(ID_KEY, "not hex")
        with pytest.raises(StateError, match="damaged: delete it"):
            await a.id_key()

    run(redis_url, scenario)


def test_a_client_that_decodes_responses_reads_the_same_rows(redis_url: str) -> None:
    async def main() -> tuple[Row | None, Row | None, bytes]:
        raw, text = Redis.from_url(redis_url), Redis.from_url(redis_url, decode_responses=True)
        try:
            state = RedisState(text)
            await state.submit("r", {"kind": "text", "content": "新闻"}, None, audio_exists=False)
            await state.claim("r")
            await state.finish("r", etag="e", listed=True)
            assert [r.id for r in await state.finished(listed=True)] == ["r"]
            return await state.get("r"), await RedisState(raw).get("r"), await state.id_key()
        finally:
            await raw.aclose()
            await text.aclose()

    decoded, plain, key = asyncio.run(main())
    assert decoded == plain and decoded is not None and decoded.request["content"] == "新闻"
    assert len(key) == 32


def test_the_row_lives_under_the_shared_prefix(redis_url: str) -> None:
    async def scenario(a: RedisState, _b: RedisState) -> list[bytes]:
        await a.submit("r", REQUEST, SOURCE, audio_exists=False)
        return sorted(cast(list[bytes], await a.redis.keys("*")))

    keys = run(redis_url, scenario)
    assert reading_key("r").encode() in keys
    assert all(key.startswith(b"newsreader:") for key in keys)
