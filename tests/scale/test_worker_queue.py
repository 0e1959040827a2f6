"""The job queue on a real Redis: one job per reading, and a sweep that spares a starting job."""

from __future__ import annotations

import asyncio

import pytest

from newsreader.scale.queue import HEARTBEAT, enqueue, make_queue, queue_depth
from newsreader.scale.redisurl import connect


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
