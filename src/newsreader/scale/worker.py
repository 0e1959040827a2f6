"""A scale-out worker: takes readings from the job queue and makes them (``newsreader worker``).

Each job is one reading (its id; the request is in the cluster state):

1. ``RedisState.claim``: queued or running -> running, owned by this run (a job handed back after
   its worker died finds the reading running, and takes it); nothing to do if it is done or
   failed meanwhile (the live stream is ended, idempotently);
2. a heartbeat (``await job.update()``) every ``BEAT_EVERY`` seconds while it runs, so the queue
   hands the job to another worker within seconds if this process dies, and never cuts a long
   healthy one;
3. the same ``ReadingRunner`` as the embedded service, with the cluster's ports: live audio and
   progress to a Redis Stream (``LivePublisher``: each segment with its index, so a run that
   starts again appends only what listeners do not have yet), the row in Redis, the finished
   files in storage (the MP3 last), then ``RedisState.finish``: a compare-and-set, so a reading
   is published once however many runs made it (only that run counts it in the metrics);
4. a failure is the reading's (``RedisState.fail`` + the live stream ends failed), unless it is
   the cluster's own (Redis unreachable): then the job is retried.

Shutdown (SIGTERM, SIGINT): the worker takes no more jobs, lets running ones finish within
``shutdown_grace`` seconds, then cancels them; a cancelled job's reading goes back to
``queued`` and its job to the queue, where another worker takes it.

Each worker caps its own voice connections (``--voice-connections``, shared fairly by its jobs
as in the embedded service) and applies the same address policy, fetch deadlines and size limits
as the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
from typing import TYPE_CHECKING, Any

from newsreader.audio.assemble import RenderedSegment
from newsreader.audio.intro import load_clips
from newsreader.errors import SynthesisError
from newsreader.service.config import ServiceConfig
from newsreader.service.fairness import FairLimiter
from newsreader.service.files import open_reading_storage, staging_folder
from newsreader.service.pools import Pools
from newsreader.service.request import JobRequest
from newsreader.service.runner import ReadingRunner
from newsreader.service.security import AddressPolicy
from newsreader.service.status import Progress

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from saq.job import Job
    from saq.types import Context

    from newsreader.scale.live import LivePublisher
    from newsreader.scale.state import RedisState
    from newsreader.storage import Storage

log = logging.getLogger("newsreader.worker")

BEAT_EVERY = 1.5
"""Seconds between a running job's heartbeats (the queue's limit is ``queue.HEARTBEAT``)."""
SWEEP_EVERY = 2
"""Seconds between sweeps for jobs whose worker stopped beating (one sweep at a time, cluster-
wide)."""
REPORT_EVERY = 3
"""Seconds between a worker's reports of itself (``queue.live_workers`` counts recent ones)."""
REDIS_PER_JOB = 2
"""Redis connections one reading slot may use at once: the queue's blocking take (idle) or the
job's heartbeat beside its own commands (live audio, state)."""
REDIS_SPARE = 8
"""Redis connections for the worker's own upkeep: sweep, reports, schedule, aborts, the queue's
notices."""
REDIS_WAIT = 10.0
"""Seconds a command may wait for a free connection of the bounded pool."""
STOP_WAIT = 12.0
"""Seconds a job's end waits for a heartbeat in flight before cancelling it."""
RELEASE_TIMEOUT = 2.0
"""Seconds a cancelled job may take to hand its reading back."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ClusterReading:
    """The cluster's ``LivePort`` and ``StatePort`` of one run of one reading.

    The live stream follows the state: it ends ``done`` only after this run won ``finish``,
    and ``failed`` only after ``fail`` was accepted for this run (a run superseded by another
    execution neither fails the reading nor ends the other's stream)."""

    def __init__(
        self, state: RedisState, publisher: LivePublisher, reading_id: str, owner: str
    ) -> None:
        self.state = state
        self.publisher = publisher
        self.reading_id = reading_id
        self.owner = owner
        self.won = False

    # -- LivePort -------------------------------------------------------------------------------

    async def running(self) -> None:
        """Claimed already (``RedisState.claim``)."""

    async def scripted(self, progress: Progress) -> None:
        """The live reading begins once its engine is known (``engine``)."""

    async def engine(self, progress: Progress) -> None:
        outcome = await self.publisher.begin(
            progress.title, progress.total, progress.sentences, progress.engine or ""
        )
        if outcome != "begin":
            log.info("reading %s: live stream %s (run again)", self.reading_id, outcome)

    async def segment(self, item: RenderedSegment, progress: Progress) -> bool:
        return await self.publisher.segment(item.index, item.audio(), item.seconds, item.sentences)

    async def restart(self, progress: Progress, warning: str) -> None:
        await self.publisher.restart(progress.engine or "", warning)

    async def done(self, progress: Progress) -> None:
        if self.won:
            await self.publisher.end("done")

    async def failed(self, code: str, message: str) -> None:
        """The stream ends in ``fail``, once the state has accepted the failure."""

    # -- StatePort ------------------------------------------------------------------------------

    async def update(self, **fields: Any) -> None:
        fields.pop("status", None)  # the claim made it running
        if fields:
            await self.state.update(self.reading_id, owner=self.owner, **fields)

    async def finish(self, **fields: Any) -> bool:
        self.won = await self.state.finish(self.reading_id, **fields)
        return self.won

    async def fail(self, code: str, message: str) -> bool:
        accepted = await self.state.fail(self.reading_id, code, message, owner=self.owner)
        if accepted:
            await self.publisher.end("failed", (code, message))
        return accepted


class ReadingWorker:
    """What one worker process holds: the state, the runner, the job function."""

    def __init__(
        self,
        config: ServiceConfig,
        redis: Redis,
        storage: Storage,
        *,
        policy: AddressPolicy | None = None,
    ) -> None:
        from newsreader.scale.state import RedisState

        self.config = config
        self.redis = redis
        self.state = RedisState(redis)
        self.pools = Pools(config)
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        """The worker's id in the queue (no ``:``: saq splits its keys at colons)."""
        policy = policy or AddressPolicy(
            config.allow_addresses, fetch_deadline=config.fetch_deadline
        )
        clips = load_clips(config.intro, config.outro, config.loudness, config.segment_cache)
        self.runner = ReadingRunner(
            config,
            policy,
            storage,
            limiter=FairLimiter(config.voice_connections, config.segment_concurrency),
            pools=self.pools,
            clips=clips,
            staging=staging_folder(config),
        )

    def close(self) -> None:
        self.pools.close()

    async def given_up(self, reading_id: str, runs: int) -> None:
        """The queue stopped running the reading's job: each of its runs ended with its
        worker (killed, or stalled past the heartbeat). The reading fails, listeners hear it."""
        from newsreader.scale.live import LivePublisher

        code = SynthesisError.code
        message = (
            f"the workers making this reading stopped {runs} times before it was done; "
            "submit it again later."
        )
        if await self.state.fail(reading_id, code, message):
            await LivePublisher(self.redis, reading_id).end("failed", (code, message))
        log.warning("reading %s: given up after %d runs", reading_id, runs)

    async def make_reading(self, ctx: Context, *, reading_id: str) -> str:
        """The job function (``queue.JOB_FUNCTION``): make ``reading_id``; what happened, for
        the queue's record (``done``, ``failed``, ``done elsewhere``, ``nothing to do``)."""
        job = ctx["job"]
        heartbeat = Heartbeat(job)
        try:
            return await self._make(reading_id, f"{self.name}/{job.attempts}")
        finally:
            # stopped before the job's end is reported: no beat writes after saq's finish
            await heartbeat.stop()

    async def _make(self, reading_id: str, owner: str) -> str:
        from redis.exceptions import RedisError

        from newsreader.scale.live import LivePublisher, LiveSuperseded

        publisher = LivePublisher(self.redis, reading_id)
        if not await self.state.claim(reading_id, owner):
            row = await self.state.get(reading_id)
            if row is not None and row.status in ("done", "failed"):
                error = (row.error_code or "", row.error_message or "")
                await publisher.end(row.status, error if row.status == "failed" else None)
            log.info("reading %s: nothing to do (%s)", reading_id, row.status if row else "gone")
            return "nothing to do"
        row = await self.state.get(reading_id)
        if row is None:
            return "nothing to do"
        ports = ClusterReading(self.state, publisher, reading_id, owner)
        log.info("reading %s: started (%s)", reading_id, owner)
        try:
            request = JobRequest.from_dict(row.request)
            won = await self.runner.run(reading_id, request, ports, ports, accepted=row.created)
        except asyncio.CancelledError:
            await _release(self.state, reading_id, owner)
            raise
        except LiveSuperseded:
            log.info("reading %s: another run of its job took over", reading_id)
            return "superseded"
        except RedisError:
            raise  # the cluster's own trouble: the queue retries the job
        except Exception as error:
            code, _ = await self.runner.fail(reading_id, error, ports, ports)
            log.info("reading %s: failed (%s)", reading_id, code)
            return "failed"
        log.info("reading %s: %s", reading_id, "done" if won else "done elsewhere")
        return "done" if won else "done elsewhere"


class Heartbeat:
    """A running job's heartbeat (``await job.update()`` every ``BEAT_EVERY`` seconds), in a
    task of its own from its making to ``stop``.

    Stopped by a flag, not by cancelling it: on Python 3.11 redis-py writes a command inside
    ``asyncio.wait_for``, which returns the command's result instead of raising when the
    cancellation lands just as the write completes; a beat cancelled that way went on beating
    for ever, ``stop`` never returned and the job stayed active, kept alive by its own beats.
    """

    def __init__(self, job: Job, every: float | None = None) -> None:
        self.job = job
        self.every = BEAT_EVERY if every is None else every
        self._stopped = asyncio.Event()
        self._task = asyncio.create_task(self._beat(), name=f"heartbeat-{job.key}")

    async def _beat(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.every):
                    await self._stopped.wait()
            if self._stopped.is_set():
                return
            try:
                await self.job.update()
            except Exception as error:  # a lost beat is tolerated; the next one may get through
                log.warning("heartbeat of %s failed: %s", self.job.key, error)

    async def stop(self) -> None:
        """Return once the beat has ended: a beat in flight completes first (each Redis
        command has the client's socket timeout; after ``STOP_WAIT`` s it is cancelled). A
        cancellation of the caller meanwhile is raised after that, not instead of it."""
        self._stopped.set()
        cancelled = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_WAIT
        while not self._task.done():
            left = deadline - loop.time()
            if left <= 0:
                self._task.cancel()  # it ends at its next look at the flag even if this is lost
                deadline = loop.time() + STOP_WAIT
            try:
                await asyncio.wait({self._task}, timeout=max(left, 0.05))
            except asyncio.CancelledError:
                cancelled = True
        if not self._task.cancelled() and self._task.exception() is not None:
            log.warning("heartbeat of %s ended: %s", self.job.key, self._task.exception())
        if cancelled:
            raise asyncio.CancelledError


async def _release(state: RedisState, reading_id: str, owner: str) -> None:
    """A cancelled run hands its reading back (running -> queued), briefly, never raising."""
    try:
        async with asyncio.timeout(RELEASE_TIMEOUT):
            await state.release(reading_id, owner)
    except Exception as error:
        log.warning("reading %s: not handed back (%s)", reading_id, error)


def redis_connections(concurrency: int) -> int:
    """The most Redis connections a worker of ``concurrency`` reading slots holds."""
    return REDIS_PER_JOB * concurrency + REDIS_SPARE


async def open_worker_storage(config: ServiceConfig) -> Storage:
    """The storage finished readings go to, checked (``StorageError``, one line, if unusable)."""
    storage = open_reading_storage(config)
    await asyncio.to_thread(storage.check)
    return storage


async def run_worker(
    config: ServiceConfig,
    *,
    concurrency: int,
    metrics_port: int,
    shutdown_grace: float,
    metrics_host: str = "0.0.0.0",
) -> None:
    """Run a worker until SIGTERM or SIGINT (see the module's docstring).

    Checks first, each a one-line ``NewsreaderError``: ``config.redis_url`` is set and Redis
    answers; the audio settings agree with the cluster's (``scale.settings``); the storage can
    be written; the metrics port can be listened on. ``concurrency``:
    readings made at once; ``metrics_port``: where ``/metrics`` is served (0: off);
    ``shutdown_grace``: seconds running readings may take to finish after a stop signal.
    """
    from saq.worker import Worker

    from newsreader.errors import ConfigError
    from newsreader.scale.queue import JOB_FUNCTION, make_queue
    from newsreader.scale.redisurl import connect
    from newsreader.scale.settings import agree_worker
    from newsreader.service import metrics

    if config.redis_url is None:
        raise ConfigError("a worker needs --redis URL (or NEWSREADER_REDIS_URL).")
    if concurrency < 1:
        raise ConfigError("--concurrency must be at least 1.")
    # A stop signal during the checks below ends the worker before it takes any job.
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stopped.set)
    try:
        # Sized for --concurrency: saq takes jobs with one blocking read per slot, so redis-py's
        # default pool (100, failing past it) broke the upkeep of a worker of 100 slots or more
        redis = await connect(
            config.redis_url,
            max_connections=redis_connections(concurrency),
            pool_timeout=REDIS_WAIT,
        )
        try:
            # one sound per cluster (scale.settings): compared now, recorded once all is well
            await agree_worker(redis, config, record=False)
            storage = await open_worker_storage(config)
            reading_worker = ReadingWorker(config, redis, storage)
        except BaseException:
            await redis.aclose()
            raise
        queue = make_queue(redis, given_up=reading_worker.given_up)
        try:
            metrics.start_metrics_server(metrics_port, metrics_host)
            await agree_worker(redis, config)
            worker: Worker[Context] = Worker(
                queue,
                [(JOB_FUNCTION, reading_worker.make_reading)],
                concurrency=concurrency,
                timers={
                    "sweep": SWEEP_EVERY,
                    "worker_info": REPORT_EVERY,
                    "schedule": 1,
                    "abort": 1,
                },
                dequeue_timeout=1.0,
                shutdown_grace_period_s=max(0, math.ceil(shutdown_grace)),
                cancellation_hard_deadline_s=RELEASE_TIMEOUT + 1.0,
                metadata={"name": reading_worker.name, "concurrency": concurrency},
                id=reading_worker.name,
            )
            log.info(
                "worker %s: readings at a time %d, voice connections %d, storage %s",
                reading_worker.name,
                concurrency,
                config.voice_connections,
                storage.describe(),
            )
            if stopped.is_set():
                log.info("worker %s: stopped before it took a job", reading_worker.name)
                return
            # No await that suspends from here to saq's own signal handlers (which replace
            # these): a signal is handled by one or the other.
            await worker.start()
        finally:
            reading_worker.close()
            metrics.stop_metrics_servers()
            await queue.disconnect()
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


__all__ = [
    "ClusterReading",
    "Heartbeat",
    "ReadingWorker",
    "open_worker_storage",
    "redis_connections",
    "run_worker",
]
