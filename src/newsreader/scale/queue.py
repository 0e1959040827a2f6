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

import asyncio
import contextlib
import functools
import logging
import math
import time
import uuid
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


SWEEP_HOLD = 5
"""Seconds a sweep holds its lock ahead of itself, renewed at each step (a sweep whose worker
dies mid-way blocks the others no longer than this)."""
SWEEP_POLL = 0.05
"""Seconds between looks at the swept jobs while their workers may confirm the aborts."""

_OWNED_EXPIRE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
"""The sweep lock's new lifetime (ms), if the lock is still this sweep's (its token)."""


@functools.cache
def _queue_class() -> Callable[..., RedisQueue]:
    """saq's Redis queue with the sweep changed (saq is imported only when a queue is made)."""
    from redis.exceptions import WatchError
    from saq.job import TERMINAL_STATUSES, Job, Status
    from saq.queue.redis import RedisQueue
    from saq.utils import now

    class NewsreaderQueue(RedisQueue):
        def __init__(self, redis: Redis, *, given_up: GivenUp | None, **options: Any) -> None:
            super().__init__(redis, **options)
            self.given_up = given_up
            """Called when a sweep ends a job for good (its runs all ended with their workers)."""
            self._owned_expire = redis.register_script(_OWNED_EXPIRE)

        def __repr__(self) -> str:  # saq logs it: the name, not the client's settings
            return f"queue {self.name!r}"

        async def sweep(self, lock: int = 60, abort: float = SWEEP_ABORT_WAIT) -> list[str]:
            """saq's sweep (hand the jobs of dead or stalled workers back to the queue), changed:

            - one sweep at a time, cluster-wide, for its whole length: the lock (a token of
              this sweep) is held ``SWEEP_HOLD`` s ahead and renewed at each step; at the end
              it is left to expire ``lock`` s later (no other sweep sooner);
            - the swept jobs are aborted together and their workers get ``abort`` s in all to
              confirm (saq waits for each job in turn: 16 jobs of a dead worker took 24 s);
            - each step on a job is a compare-and-set on its record: a job that finished, or
              was taken again, since it was read is left alone (never queued again);
            - a job found between a worker's two steps of taking it (moved to the active
              list, not yet marked active) is swept only if the next sweep still finds it so:
              its worker died between the two (saq sweeps it at once, so a starting job went
              to a second worker).
            """
            token = uuid.uuid4().hex
            hold = max(lock, math.ceil(abort) + SWEEP_HOLD)
            if not await self.redis.set(self._sweep, token, ex=hold, nx=True):
                return []  # another worker is sweeping, or swept moments ago
            try:
                return await self._sweep_held(token, hold, abort)
            finally:
                with contextlib.suppress(Exception):
                    await self._hold(token, lock)

        async def _hold(self, token: str, seconds: float) -> bool:
            """The lock expires ``seconds`` from now; False if it is no longer this sweep's."""
            reply = await self._owned_expire(
                keys=[self._sweep], args=[token, max(1, int(seconds * 1000))]
            )
            return bool(reply)

        async def _sweep_held(self, token: str, hold: int, abort: float) -> list[str]:
            taking_key = self.namespace("taking")
            seen_taking = {_text(member) for member in await self.redis.smembers(taking_key)}
            ids = [_text(raw) for raw in await self.redis.lrange(self._active, 0, -1)]
            records = await self.redis.mget(ids) if ids else []
            taking: list[str] = []
            swept: list[str] = []
            aborted: list[str] = []
            for job_id, record in zip(ids, records, strict=True):
                job = self.deserialize(record)
                if job is None:
                    swept.append(job_id)
                    async with self.redis.pipeline(transaction=True) as pipe:
                        pipe.lrem(self._active, 0, job_id)
                        pipe.zrem(self._incomplete, job_id)
                        await pipe.execute()
                    log.info("sweeping missing job %s", job_id)
                elif job.status == Status.QUEUED and job_id not in seen_taking:
                    taking.append(job_id)  # being taken: looked at again next time
                elif _sweepable(job, seen_taking) and await self._abort_swept(job_id, seen_taking):
                    swept.append(job_id)
                    aborted.append(job_id)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(taking_key)
                if taking:
                    pipe.sadd(taking_key, *taking)
                    pipe.expire(taking_key, max(hold * 10, 60))
                await pipe.execute()
            if not aborted:
                return swept
            if not await self._hold(token, hold):
                log.warning("sweep: lost its lock; the next sweep hands the jobs back")
                return swept
            await self._await_aborts(aborted, abort)
            for job_id in aborted:
                if not await self._hold(token, hold):
                    log.warning("sweep: lost its lock; the next sweep hands the jobs back")
                    break
                await self._hand_back(job_id)
            return swept

        async def _abort_swept(self, job_id: str, seen_taking: set[str]) -> bool:
            """Mark the job aborting (its worker, if alive, stops it), if it still needs
            sweeping; it stays in the active list until handed back (a sweep that dies before
            that leaves it for the next one)."""
            async with self.redis.pipeline(transaction=True) as pipe:
                await pipe.watch(job_id)
                job = self.deserialize(await pipe.get(job_id))
                if job is None or not _sweepable(job, seen_taking):
                    return False  # finished, or beat again, since it was read
                log.info("sweeping job %s (%s)", job.key, job.status.value)
                job.status = Status.ABORTING
                job.error = self.swept_error_message
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.set(job_id, self.serialize(job))
                pipe.set(job.abort_id, self.swept_error_message, ex=5)
                pipe.publish(job_id, job.status)
                try:
                    await pipe.execute()
                except WatchError:
                    return False  # changed meanwhile: the next sweep looks again
            return True

        async def _await_aborts(self, job_ids: list[str], wait: float) -> None:
            """Up to ``wait`` s in all for the workers of ``job_ids`` to confirm their aborts
            (a dead worker never does; a stalled one may)."""
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while loop.time() < deadline:
                records = await self.redis.mget(job_ids)
                jobs = [self.deserialize(record) for record in records]
                if all(job is None or job.status in TERMINAL_STATUSES for job in jobs):
                    return
                await asyncio.sleep(min(SWEEP_POLL, max(0.0, deadline - loop.time())))
            log.info("sweep: %d job(s) not confirmed aborted by their workers", len(job_ids))

        async def _hand_back(self, job_id: str) -> None:
            """A swept job goes back to the queue (saq's retry), or ends aborted after its last
            run (then ``given_up``); left alone if it completed, failed or was handed back
            meanwhile."""
            async with self.redis.pipeline(transaction=True) as pipe:
                await pipe.watch(job_id)
                job = self.deserialize(await pipe.get(job_id))
                if job is None or job.status not in (Status.ABORTING, Status.ABORTED):
                    if job is not None:
                        log.info("job %s: %s before it was handed back", job.key, job.status)
                    return
                error = self.swept_error_message
                pipe.multi()  # type: ignore[no-untyped-call]
                retry = job.retryable
                if retry:
                    delay = job.next_retry_delay()
                    job.status = Status.QUEUED
                    job.error = error
                    job.completed = job.started = 0
                    job.progress = 0
                    job.touched = now()
                    pipe.lrem(self._active, 0, job_id)
                    pipe.lrem(self._queued, 0, job_id)
                    if delay:
                        pipe.zadd(self._incomplete, {job_id: time.time() + delay})
                    else:
                        pipe.zadd(self._incomplete, {job_id: job.scheduled})
                        pipe.rpush(self._queued, job_id)
                else:
                    job.status = Status.ABORTED
                    job.error = error
                    job.completed = now()
                    pipe.lrem(self._active, 0, job_id)
                    pipe.zrem(self._incomplete, job_id)
                pipe.set(job_id, self.serialize(job), ex=job.ttl if job.ttl > 0 else None)
                if not retry and job.ttl < 0:
                    pipe.delete(job_id)
                pipe.publish(job_id, job.status)
                try:
                    await pipe.execute()
                except WatchError:
                    log.info("job %s: changed before it was handed back", job.key)
                    return
            if retry:
                self.retried += 1
                log.info("Retrying %s", job.info(log.isEnabledFor(logging.DEBUG)))
            else:
                self.aborted += 1
                log.info("Finished %s", job.info(log.isEnabledFor(logging.DEBUG)))
                if self.given_up is not None:
                    await self.given_up(job.key, job.attempts)

        async def _update(self, job: Job, status: Status | None = None, **kwargs: Any) -> None:
            """saq's update; a heartbeat (no ``status``) is written only over the record of
            the same run while it is active: never over a finished, aborting or re-queued job
            (saq reads the status, then writes the whole job: a beat landing between a
            ``finish`` and its own write turned a COMPLETE job ACTIVE again)."""
            if status is not None:
                await super()._update(job, status, **kwargs)
                return
            async with self.redis.pipeline(transaction=True) as pipe:
                await pipe.watch(job.id)
                stored = self.deserialize(await pipe.get(job.id))
                if (
                    stored is None
                    or stored.status != Status.ACTIVE
                    or stored.attempts != job.attempts
                    or stored.worker_id != job.worker_id
                ):
                    return
                job.status = stored.status
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.set(job.id, self.serialize(job))
                pipe.publish(job.id, job.status)
                with contextlib.suppress(WatchError):  # changed meanwhile: not this beat's
                    await pipe.execute()

    def _sweepable(job: Job, seen_taking: set[str]) -> bool:
        """A job in the active list that a sweep hands back: not finished, not being taken
        (unless it was so at the last sweep already), not active with a recent heartbeat."""
        if job.status in TERMINAL_STATUSES:
            return False
        if job.status == Status.QUEUED:
            return job.id in seen_taking
        if job.status in (Status.ACTIVE, Status.ABORTING):
            return job.stuck
        return True

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
