"""The sweep on a real Redis: a dead worker's jobs are handed back together (one wait for all
their aborts), one sweep at a time for its whole length, and a job that finished while a sweep
was at work is never queued again."""

from __future__ import annotations

import asyncio
import time

import pytest
from saq.job import Job, Status

from newsreader.scale.queue import HEARTBEAT, enqueue, make_queue
from newsreader.scale.redisurl import connect

ABORT_WAIT = 1.5

# saq's finish still calls redis-py's SETEX, deprecated since redis-py 6.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")


def millis_ago(seconds: float) -> int:
    return int((time.time() - seconds) * 1000)


async def dead_jobs(queue: object, keys: list[str]) -> list[Job]:
    """Jobs taken and marked active by a worker that then died (no heartbeat for long)."""
    from saq.queue.redis import RedisQueue

    assert isinstance(queue, RedisQueue)
    taken: list[Job] = []
    for key in keys:
        assert await enqueue(queue, key)
        job = await queue.dequeue()
        assert job is not None and job.key == key
        job.attempts = 1
        job.worker_id = "dead-worker"
        job.started = job.touched = millis_ago(HEARTBEAT + 5)
        await queue._update(job, status=Status.ACTIVE)  # as saq marks it, long ago
        taken.append(job)
    return taken


def test_a_dead_workers_jobs_are_handed_back_after_one_wait(redis_url: str) -> None:
    async def scenario() -> None:
        queue = make_queue(await connect(redis_url))
        try:
            keys = [f"r{n}" for n in range(8)]
            await dead_jobs(queue, keys)
            started = time.monotonic()
            swept = await queue.sweep(lock=2, abort=ABORT_WAIT)
            took = time.monotonic() - started
            assert sorted(swept) == sorted(queue.job_id(key) for key in keys)
            # one wait for all eight aborts (none is confirmed: the worker is dead), not 8 x 1.5 s
            assert took < ABORT_WAIT + 1.5, f"the sweep took {took:.1f} s"
            assert await queue.count("active") == 0
            for job in await queue.jobs(keys):
                assert job is not None and job.status == Status.QUEUED
                assert job.error == queue.swept_error_message
        finally:
            await queue.disconnect()

    asyncio.run(scenario())


def test_two_sweeps_at_once_sweep_each_job_once(redis_url: str) -> None:
    async def scenario() -> None:
        first = make_queue(await connect(redis_url))
        second = make_queue(await connect(redis_url))
        try:
            keys = [f"r{n}" for n in range(4)]
            await dead_jobs(first, keys)

            async def later() -> list[str]:
                # past the lock's own time (1 s), while the first sweep still waits
                await asyncio.sleep(1.2)
                return await second.sweep(lock=1, abort=ABORT_WAIT)

            one, two = await asyncio.gather(first.sweep(lock=1, abort=ABORT_WAIT), later())
            everything = one + two
            assert sorted(everything) == sorted(first.job_id(key) for key in keys), (one, two)
            assert first.retried + second.retried == len(keys)
        finally:
            await first.disconnect()
            await second.disconnect()

    asyncio.run(scenario())


def test_a_job_that_completes_while_swept_is_not_queued_again(redis_url: str) -> None:
    async def scenario() -> None:
        queue = make_queue(await connect(redis_url))
        worker_side = make_queue(await connect(redis_url))
        try:
            await dead_jobs(queue, ["r1", "r2"])

            async def stalled_worker_finishes() -> None:
                # r1's worker was only stalled: it ends its run while the sweep waits
                await asyncio.sleep(0.5)
                job = await worker_side.job("r1")
                assert job is not None
                await worker_side.finish(job, Status.COMPLETE, result="done")

            swept, _ = await asyncio.gather(
                queue.sweep(lock=1, abort=ABORT_WAIT), stalled_worker_finishes()
            )
            assert sorted(swept) == sorted(queue.job_id(key) for key in ("r1", "r2"))
            r1, r2 = await queue.jobs(["r1", "r2"])
            assert r1 is not None and r1.status == Status.COMPLETE and r1.result == "done"
            assert r2 is not None and r2.status == Status.QUEUED
            assert queue.retried == 1
            assert await queue.count("incomplete") == 1  # r2 alone is waiting for a worker
        finally:
            await queue.disconnect()
            await worker_side.disconnect()

    asyncio.run(scenario())


def test_a_heartbeat_never_writes_over_a_finished_job(redis_url: str) -> None:
    async def scenario() -> None:
        queue = make_queue(await connect(redis_url))
        try:
            (job,) = await dead_jobs(queue, ["r1"])
            late = queue.deserialize(queue.serialize(job))  # the run's own copy, as its beat holds
            assert late is not None
            late.queue = queue
            await queue.finish(job, Status.COMPLETE, result="done")
            await late.update()  # a beat that comes after the finish
            stored = await queue.job("r1")
            assert stored is not None and stored.status == Status.COMPLETE
            assert stored.result == "done"
        finally:
            await queue.disconnect()

    asyncio.run(scenario())
