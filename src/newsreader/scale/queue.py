"""The job queue of scale-out mode (saq on Redis): API nodes enqueue readings, workers take them.

One queue, ``newsreader`` (saq keeps it under ``saq:newsreader:…``), one job function
(``JOB_FUNCTION``) whose only argument is the reading's id; the reading itself (its request) is
in the cluster state (``scale.state``). The job's key is the reading id, so one reading is one
job however many nodes submit it at once.

Re-delivery: a job must send a heartbeat (``await job.update()``) at least every ``HEARTBEAT``
seconds; a worker's sweep (every few seconds, on any worker) hands a job whose heartbeat lapsed
(its worker died or stalled) to the queue again, up to ``RETRIES`` runs in all. A job is not
cut short by its length: ``TIMEOUT`` is far beyond the longest reading ``--max-chars`` allows.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from saq.queue import Queue
    from saq.queue.redis import RedisQueue

log = logging.getLogger("newsreader.queue")

QUEUE_NAME = "newsreader"
JOB_FUNCTION = "make_reading"
"""The name workers register the job function under; its keyword argument is ``reading_id``."""
HEARTBEAT = 5
"""Seconds a running job may go without a heartbeat before it is handed to another worker."""
TIMEOUT = 4 * 3600
"""Seconds one run of a job may take at most (a reading of 80 minutes with a slow voice)."""
RETRIES = 4
"""Runs of a job at most: the first and three more after a lost worker or a shutdown."""
RETRY_DELAY = 1.0
"""Seconds before the first retry; each later one waits up to twice as long (with jitter)."""
RETRY_BACKOFF = 30.0
"""The longest wait before a retry, seconds."""
KEEP_FINISHED = 600
"""Seconds saq keeps a finished job's record (the reading's state is kept elsewhere)."""
SWEEP_ABORT_WAIT = 1.5
"""Seconds a sweep waits for a swept job's worker to confirm the abort before handing the job
to another worker (saq waits 5 s: a dead worker never confirms; a stalled one that has not
confirmed by then is the "two executions" case the cluster state is made for)."""


GivenUp = Callable[[str, int], Awaitable[None]]
"""``(reading_id, runs)``: the queue stopped making a reading whose workers kept dying."""


def make_queue(redis: str | Redis, *, given_up: GivenUp | None = None) -> RedisQueue:
    """The queue on ``redis``: a client (e.g. from ``scale.redisurl.connect``, which checked the
    server answers; it must not decode responses) or a URL (not contacted here).

    ``await queue.disconnect()`` closes the client too: share it only with code that stops
    with the queue. ``given_up``: what a worker's sweep does when it ends a job for good
    (``RETRIES`` runs all lost with their workers): the worker marks the reading failed."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis) if isinstance(redis, str) else redis
    if client.connection_pool.connection_kwargs.get("decode_responses"):
        raise ValueError("the job queue needs a Redis client without decode_responses")
    return _queue_class()(client, name=QUEUE_NAME, given_up=given_up)


@functools.cache
def _queue_class() -> Callable[..., RedisQueue]:
    """saq's Redis queue with the sweep changed (saq is imported only when a queue is made)."""
    from saq.job import TERMINAL_STATUSES, Status
    from saq.queue.redis import RedisQueue

    class NewsreaderQueue(RedisQueue):
        def __init__(self, redis: Redis, *, given_up: GivenUp | None, **options: Any) -> None:
            super().__init__(redis, **options)
            self.given_up = given_up
            """Called when a sweep ends a job for good (its runs all ended with their workers)."""

        def __repr__(self) -> str:  # saq logs it: the name, not the client's settings
            return f"queue {self.name!r}"

        async def sweep(self, lock: int = 60, abort: float = SWEEP_ABORT_WAIT) -> list[str]:
            """saq's sweep (hand the jobs of dead or stalled workers back to the queue), with
            one change. A worker takes a job in two steps: it moves the job's id to the active
            list, then marks the job active. saq sweeps a job it finds between the two, so a
            sweep that runs just then hands a job that is starting to a second worker (on a
            busy machine, often). Here such a job is swept only when the next sweep still
            finds it so: its worker died between the two steps."""
            if not await self.redis.set(self._sweep, 1, ex=lock, nx=True):
                return []  # another worker swept moments ago
            taking_key = self.namespace("taking")
            members = await self.redis.smembers(taking_key)
            seen_taking = {_text(member) for member in members}
            ids = await self.redis.lrange(self._active, 0, -1)
            taking: list[str] = []
            swept: list[str] = []
            for raw_id in ids:
                job_id = _text(raw_id)
                # Read each job as its turn comes, not all up front: the sweep waits up to
                # ``abort`` s for each job it sweeps, and after a dead worker's few jobs a
                # healthy job read before those waits looks past its heartbeat limit.
                job = self.deserialize(await self.redis.get(job_id))
                if job is not None and job.status in TERMINAL_STATUSES:
                    continue  # finished since the list was read: no longer active
                if job is None:
                    swept.append(job_id)
                    async with self.redis.pipeline(transaction=True) as pipe:
                        pipe.lrem(self._active, 0, job_id)
                        pipe.zrem(self._incomplete, job_id)
                        await pipe.execute()
                    log.info("sweeping missing job %s", job_id)
                    continue
                if job.status == Status.QUEUED and job_id not in seen_taking:
                    taking.append(job_id)  # being taken: looked at again next time
                    continue
                if job.status == Status.ACTIVE and not job.stuck:
                    continue
                log.info("sweeping job %s (%s)", job.key, job.status.value)
                swept.append(job_id)
                await self.abort(job, error=self.swept_error_message)
                try:
                    await job.refresh(abort)
                except TimeoutError:
                    log.info("job %s: its worker did not confirm the abort", job.key)
                if job.retryable:
                    await self.retry(job, error=self.swept_error_message)
                else:
                    await self.finish(job, Status.ABORTED, error=self.swept_error_message)
                    if self.given_up is not None:
                        await self.given_up(job.key, job.attempts)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(taking_key)
                if taking:
                    pipe.sadd(taking_key, *taking)
                    pipe.expire(taking_key, max(lock * 10, 60))
                await pipe.execute()
            return swept

    return NewsreaderQueue


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


async def enqueue(queue: Queue, reading_id: str) -> bool:
    """Queue the job that makes ``reading_id``; False if that reading's job is queued or running
    already (on any node), or was swept moments ago and is being handed back."""
    job = await queue.enqueue(
        JOB_FUNCTION,
        key=reading_id,
        reading_id=reading_id,
        timeout=TIMEOUT,
        heartbeat=HEARTBEAT,
        retries=RETRIES,
        retry_delay=RETRY_DELAY,
        retry_backoff=RETRY_BACKOFF,
        ttl=KEEP_FINISHED,
    )
    return job is not None


async def queue_depth(queue: Queue) -> int:
    """Jobs waiting for a worker: queued, or waiting out a retry's delay (not those running)."""
    waiting = await queue.count("incomplete") - await queue.count("active")
    return max(waiting, 0)


async def live_workers(queue: Queue) -> int:
    """Workers that reported in within their last few seconds (``WORKER_INFO`` + 1)."""
    info = await queue.info()
    return len(info["workers"])


__all__ = [
    "HEARTBEAT",
    "JOB_FUNCTION",
    "QUEUE_NAME",
    "RETRIES",
    "TIMEOUT",
    "enqueue",
    "live_workers",
    "make_queue",
    "queue_depth",
]
