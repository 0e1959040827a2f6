"""A job's heartbeat at the job's end, on a real Redis and a real saq worker: the job function
returns only once its heartbeat has stopped, so every job ends COMPLETE (a beat cancelled just
as its Redis write completed went on beating, and the job stayed ACTIVE for ever)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path

import pytest
from saq.job import TERMINAL_STATUSES, Status
from saq.types import Context
from saq.worker import Worker

from newsreader.scale import worker as worker_module
from newsreader.scale.queue import JOB_FUNCTION, enqueue, make_queue
from newsreader.scale.redisurl import connect
from newsreader.scale.worker import ReadingWorker
from newsreader.service.files import open_reading_storage
from tests.service.conftest import make_config

JOBS = 150


# saq's finish still calls redis-py's SETEX, deprecated since redis-py 6.
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_every_short_job_ends_complete_with_beats_all_the_time(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A beat always in flight: the job's end lands on one, job after job.
    monkeypatch.setattr(worker_module, "BEAT_EVERY", 0.0)

    async def scenario() -> None:
        redis = await connect(redis_url)
        config = make_config(tmp_path, redis_url=redis_url)
        reading_worker = ReadingWorker(config, redis, open_reading_storage(config))
        queue = make_queue(redis, given_up=reading_worker.given_up)
        worker: Worker[Context] = Worker(
            queue,
            [(JOB_FUNCTION, reading_worker.make_reading)],
            concurrency=10,
            timers={"sweep": 3600, "worker_info": 3600, "schedule": 3600, "abort": 3600},
            dequeue_timeout=0.2,
        )
        running = asyncio.create_task(worker.start())
        try:
            # Readings that are not in the cluster state: each job finds nothing to do, at once.
            keys = [f"r{n}" for n in range(JOBS)]
            for key in keys:
                assert await enqueue(queue, key)
            jobs = await queue.jobs(keys)
            deadline = asyncio.get_running_loop().time() + 30
            while asyncio.get_running_loop().time() < deadline:
                jobs = await queue.jobs(keys)
                if all(job is not None and job.status in TERMINAL_STATUSES for job in jobs):
                    break
                await asyncio.sleep(0.2)
            # Settled: a beat written after the job's end would show now.
            await asyncio.sleep(0.5)
            jobs = await queue.jobs(keys)
            stuck = [job.key for job in jobs if job is not None and job.status != Status.COMPLETE]
            assert None not in jobs
            statuses = Counter(job.status.value for job in jobs if job is not None)
            assert stuck == [], f"{len(stuck)} of {JOBS} jobs not COMPLETE: {dict(statuses)}"
            assert all(job is not None and job.result == "nothing to do" for job in jobs)
        finally:
            # bounded: a job whose beat never stops would hold the worker's stop for ever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await worker.stop()
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(5):
                    await running
            reading_worker.close()
            await queue.disconnect()

    asyncio.run(scenario())
