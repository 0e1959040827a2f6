"""The job queue on a real Redis: one job per reading, a sweep that spares a starting job, and a
reading whose every run was lost with its worker ends failed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from saq.job import Status

from newsreader.scale.queue import HEARTBEAT, RETRIES, enqueue, make_queue, queue_depth
from newsreader.scale.redisurl import connect
from newsreader.scale.state import RedisState
from newsreader.scale.worker import ReadingWorker
from newsreader.service.files import open_reading_storage
from newsreader.service.request import JobRequest
from tests.service.conftest import ARTICLE, make_config


# saq's abort (part of a sweep) still calls redis-py's SETEX, deprecated since redis-py 6.
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_one_job_per_reading_and_a_job_being_taken_is_not_swept(redis_url: str) -> None:
    async def scenario() -> None:
        queue = make_queue(await connect(redis_url))
        try:
            assert await enqueue(queue, "r1")
            assert not await enqueue(queue, "r1")  # the same reading: the same job
            assert await enqueue(queue, "r2")
            assert await queue_depth(queue) == 2
            job = await queue.job("r1")
            assert job is not None and job.heartbeat == HEARTBEAT
            assert job.kwargs == {"reading_id": "r1"}

            # A worker's first step of taking a job (moved to the active list; its second
            # step, marking it active, has not come yet), then a sweep: the job is left alone.
            taken = await queue.dequeue()
            assert taken is not None and taken.key == "r1"
            assert await queue.sweep(lock=1) == []
            assert await queue.count("active") == 1
            # Still not marked at the next sweep: its worker died between the steps. Swept,
            # back in the queue for another worker.
            await queue.redis.delete(queue.namespace("sweep"))  # the lock of the last sweep
            assert await queue.sweep(lock=1) == [queue.job_id("r1")]
            assert await queue.count("active") == 0
            assert await queue_depth(queue) == 2
            again = await queue.dequeue()
            assert again is not None and again.key == "r2"  # r1 went back behind r2
        finally:
            await queue.disconnect()

    asyncio.run(scenario())


@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_a_reading_whose_workers_all_died_fails_with_a_reason(
    redis_url: str, tmp_path: Path
) -> None:
    async def scenario() -> None:
        redis = await connect(redis_url)
        state = RedisState(redis)
        config = make_config(tmp_path, redis_url=redis_url)
        worker = ReadingWorker(config, redis, open_reading_storage(config))
        queue = make_queue(redis, given_up=worker.given_up)
        try:
            request = JobRequest(kind="text", content=ARTICLE)
            await state.submit("r1", request.to_dict(), None, audio_exists=False)
            assert await enqueue(queue, "r1")
            # The last of its runs: taken, claimed, then its worker went silent.
            job = await queue.dequeue()
            assert job is not None
            assert await state.claim("r1", "lost-worker/4")
            job.attempts = RETRIES
            job.started = job.touched = millis_ago(HEARTBEAT + 5)
            await queue._update(job, status=Status.ACTIVE)  # as saq marks it, long ago
            assert await queue.sweep(lock=1) == [queue.job_id("r1")]
            row = await state.get("r1")
            assert row is not None and row.status == "failed"
            assert row.error_code == "synthesis_failed"
            assert row.error_message is not None and f"stopped {RETRIES} times" in row.error_message
            assert await queue_depth(queue) == 0  # not queued again
        finally:
            worker.close()
            await queue.disconnect()

    asyncio.run(scenario())


def millis_ago(seconds: float) -> int:
    return int((time.time() - seconds) * 1000)
