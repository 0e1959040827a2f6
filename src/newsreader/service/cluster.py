"""The cluster backend: the service as a stateless API node (``newsreader serve --redis URL``).

Nothing of a reading lives in this process:

- rows in Redis (``scale.state.RedisState``), with the secret that keys the ids of posted text
  shared by every node (so any node gives the same content the same id);
- the job on the queue (``scale.queue``), keyed by the reading id: one job however many nodes
  are asked, taken by any ``newsreader worker``;
- live audio and progress on a Redis Stream per reading (``scale.live``), followed from any node;
- finished files in Storage (the data folder, a shared folder, or S3), served with Range/ETag;
- the per-client rate limit in Redis (``scale.ratelimit``), shared by every node.

``--jobs-per-client`` is not enforced here: in one process it makes a client's extra readings
wait their turn, but on a cluster the readings are taken by whichever worker is free, and no
node knows which client's readings the others are running. The shared rate limit (POSTs per
client per minute) is what bounds one client; the workers' ``--concurrency`` bounds the rest.

Redis going away while serving: requests that need it get 503 ``unavailable`` (one line), and
``/healthz`` says why; nothing is retried behind the client's back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import Response

from newsreader._version import __version__
from newsreader.errors import NewsreaderError, RedisUnavailable, StorageError
from newsreader.models import Article
from newsreader.service.backend import ClusterHealthOut, FileKind, Health
from newsreader.service.config import ServiceConfig
from newsreader.service.errors import ApiError
from newsreader.service.files import open_reading_storage, reading_key
from newsreader.service.payloads import TimelinePayload, parse_timeline
from newsreader.service.pools import Pools
from newsreader.service.request import JobRequest
from newsreader.service.security import AddressPolicy
from newsreader.service.status import LiveStatus
from newsreader.service.store import Row
from newsreader.service.stream import live_response, storage_response

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from saq.queue.redis import RedisQueue

    from newsreader.scale.fanout import LiveHub
    from newsreader.scale.ratelimit import RedisRateLimiter
    from newsreader.scale.state import RedisState
    from newsreader.storage import Storage

log = logging.getLogger("newsreader.service")
T = TypeVar("T")

CONNECT_TIMEOUT = 3.0
"""Seconds Redis gets to answer at start and for ``/healthz``."""
ENQUEUE_TRIES = 10
ENQUEUE_PAUSE = 0.1
"""Asking the queue again for a reading whose previous job is still being wound up."""
REQUEST_TIMEOUT = 5.0
"""Seconds the Redis work of one request may take (a hung server: 503, not a hung request)."""
NOT_STARTED_POLL = 5.0
"""A listener of a queued reading: seconds between looks at the row while no worker has begun."""
REDIS_CONNECTIONS = 48
"""The node's shared Redis connections at most (short commands of requests, the queue); past it
a request gets 503 at once instead of opening more."""
STORAGE_TIMEOUT = 5.0
"""Seconds the storage gets to begin answering a request (an S3 endpoint that accepts and never
answers would otherwise hold it for minutes of the client's retries)."""
STORAGE_PAUSE = 10
"""Seconds after such a timeout during which requests that need the storage get 503 at once
(no thread more is spent on a store that does not answer)."""
MAX_WATCHED = 256
"""Readings one node follows live at most, however many listen to each (``scale.fanout``); a
listener of one more gets 503 with Retry-After."""
MAX_READING = 64
"""Of those, readings read at once, each with one blocking Redis connection (a reading not begun
holds none; more begun at once wait for a connection)."""
REDIS_DESCRIPTORS = REDIS_CONNECTIONS + MAX_READING
"""File descriptors an API node's Redis clients may hold, beside its client connections (the
open-files limit is raised for both by ``serve``)."""
_MEDIA = {"audio": ("mp3", "audio/mpeg"), "captions": ("vtt", "text/vtt; charset=utf-8")}


@dataclass(frozen=True)
class Numbers:
    queued: int
    running: int
    queue_depth: int
    workers: int
    settings: dict[str, str] | None


def _unavailable(error: BaseException) -> ApiError:
    reason = error.message if isinstance(error, NewsreaderError) else str(error) or "no answer"
    return ApiError(
        503,
        "unavailable",
        f"the service cannot reach its job store (Redis: {reason}); try again shortly.",
        headers={"Retry-After": "5"},
    )


@contextlib.asynccontextmanager
async def _redis_errors(seconds: float | None = None) -> AsyncIterator[None]:
    """Redis failing or hanging under a request: 503 with one line (not a 500, not a request
    that waits forever)."""
    from redis.exceptions import ConnectionError
    from redis.exceptions import TimeoutError as RedisTimeout

    try:
        async with asyncio.timeout(REQUEST_TIMEOUT if seconds is None else seconds):
            yield
    except TimeoutError:
        raise _unavailable(TimeoutError(f"no answer within {REQUEST_TIMEOUT:g} s")) from None
    except (ConnectionError, RedisTimeout, RedisUnavailable, OSError) as error:
        raise _unavailable(error) from None


async def preflight(config: ServiceConfig, given: Collection[str] = ()) -> None:
    """Before serving: Redis answers, the audio options ``given`` on the command line (e.g.
    ``--engine``) agree with the cluster's (``scale.settings``), and the storage can be used,
    or one line says why (``RedisUnavailable``, ``ConfigError``, ``StorageError``)."""
    from newsreader.scale.redisurl import connect
    from newsreader.scale.settings import OPTIONS, agree_api_node

    assert config.redis_url is not None
    redis = await connect(config.redis_url, timeout=CONNECT_TIMEOUT)
    try:
        names = [name for name, option in OPTIONS.items() if option in given]
        await agree_api_node(redis, config, names)
    finally:
        await redis.aclose()
    storage = open_reading_storage(config)
    await anyio.to_thread.run_sync(storage.check)


class ClusterBackend:
    def __init__(self, config: ServiceConfig, policy: AddressPolicy) -> None:
        assert config.redis_url is not None
        self.config = config
        self.policy = policy
        self.pools = Pools(config)
        self.storage: Storage = open_reading_storage(config)
        self._redis: Redis | None = None
        self._state: RedisState | None = None
        self._queue: RedisQueue | None = None
        self._rate: RedisRateLimiter | None = None
        self._hub: LiveHub | None = None
        self._key = b""
        self._storage_down_until = 0.0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (``RedisUnavailable`` if Redis does not answer) and read the shared id key."""
        from newsreader.scale.fanout import LiveHub
        from newsreader.scale.queue import make_queue
        from newsreader.scale.ratelimit import RedisRateLimiter
        from newsreader.scale.redisurl import connect
        from newsreader.scale.state import RedisState

        assert self.config.redis_url is not None
        url = self.config.redis_url
        self._redis = await connect(url, timeout=CONNECT_TIMEOUT, max_connections=REDIS_CONNECTIONS)
        reader = await connect(url, timeout=CONNECT_TIMEOUT, max_connections=MAX_READING)
        self._hub = LiveHub(self._redis, reader, max_watched=MAX_WATCHED, max_reading=MAX_READING)
        self._state = RedisState(self._redis)
        self._key = await self._state.id_key()
        self._rate = RedisRateLimiter(self._redis, self.config.rate_limit, self.config.rate_burst)
        self._queue = make_queue(self._redis)
        await self._queue.connect()

    async def stop(self) -> None:
        if self._hub is not None:
            await self._hub.close()
            await self._hub.reader.aclose()
        if self._queue is not None:
            with contextlib.suppress(Exception):
                await self._queue.disconnect()
        if self._redis is not None:
            await self._redis.aclose()
        self.pools.close()

    @property
    def redis(self) -> Redis:
        assert self._redis is not None, "the backend is not started"
        return self._redis

    @property
    def state(self) -> RedisState:
        assert self._state is not None, "the backend is not started"
        return self._state

    @property
    def hub(self) -> LiveHub:
        assert self._hub is not None, "the backend is not started"
        return self._hub

    @property
    def queue(self) -> RedisQueue:
        assert self._queue is not None, "the backend is not started"
        return self._queue

    # -- readings -------------------------------------------------------------------------------

    async def submit(
        self, job: JobRequest, client: str | None, article: Article | None
    ) -> tuple[Row, bool]:
        # ``client`` and ``article`` stay here: a worker extracts the posted text again from the
        # job (it is in the request), and --jobs-per-client is not enforced (module docstring).
        reading_id = job.reading_id(self._key)
        async with _redis_errors():
            row, created = await self.state.submit(
                reading_id,
                job.to_dict(),
                job.source,
                audio_exists=lambda: self._stored(reading_key(reading_id, "mp3")),
            )
            if created:
                try:
                    await self._enqueue(reading_id)
                except BaseException as error:
                    # Not left queued with no job (nobody would take it): a resubmission tries
                    # again.
                    with contextlib.suppress(Exception):
                        await self.state.fail(
                            reading_id, "unavailable", "the job could not be queued."
                        )
                    if isinstance(error, Exception):
                        raise _unavailable(error) from None
                    raise
        return row, created

    async def _enqueue(self, reading_id: str) -> None:
        """Queue the reading's job. The queue refuses a key whose job is still incomplete: a
        reading failed and submitted again while its last job was being wound up. That job ends
        within moments, so ask again a few times before giving up (with a line in the log)."""
        from newsreader.scale.queue import enqueue

        for _ in range(ENQUEUE_TRIES):
            if await enqueue(self.queue, reading_id):
                return
            await asyncio.sleep(ENQUEUE_PAUSE)
        log.warning("reading %s: its previous job is still on the queue; not queued", reading_id)

    def _storage_unavailable(self, message: str) -> ApiError:
        return ApiError(
            503, StorageError.code, message, headers={"Retry-After": str(STORAGE_PAUSE)}
        )

    @contextlib.asynccontextmanager
    async def _storage_bounded(self) -> AsyncIterator[None]:
        """The storage's part of a request: ``STORAGE_TIMEOUT`` seconds to answer, else 503 with
        Retry-After (and 503 at once for ``STORAGE_PAUSE`` seconds); its errors are 503 too."""
        if time.monotonic() < self._storage_down_until:
            raise self._storage_unavailable(
                f"the storage ({self.storage.describe()}) did not answer moments ago; "
                "try again shortly."
            )
        try:
            async with asyncio.timeout(STORAGE_TIMEOUT):
                yield
        except TimeoutError:
            self._storage_down_until = time.monotonic() + STORAGE_PAUSE
            log.warning("the storage did not answer within %g s", STORAGE_TIMEOUT)
            raise self._storage_unavailable(
                f"the storage ({self.storage.describe()}) did not answer within "
                f"{STORAGE_TIMEOUT:g} s; try again shortly."
            ) from None
        except StorageError as error:
            raise self._storage_unavailable(error.message) from None
        except ApiError as error:
            if error.status == 503 and "Retry-After" not in error.headers:
                raise self._storage_unavailable(error.message) from None
            raise

    async def _blocking(self, function: Callable[..., T], *args: Any) -> T:
        """A storage call in a thread, abandoned (not awaited) past ``_storage_bounded``'s
        deadline."""
        return await anyio.to_thread.run_sync(function, *args, abandon_on_cancel=True)

    async def _stored(self, key: str) -> bool:
        async with self._storage_bounded():
            return await self._blocking(self.storage.stat, key) is not None

    async def get(self, reading_id: str) -> Row | None:
        async with _redis_errors():
            return await self.state.get(reading_id)

    async def live(self, reading_id: str) -> LiveStatus | None:
        from newsreader.scale.live import progress

        async with _redis_errors():
            return await progress(self.redis, reading_id)

    async def timeline(self, reading_id: str) -> TimelinePayload:
        key = reading_key(reading_id, "json")
        async with self._storage_bounded():
            raw = await self._blocking(self.storage.get_bytes, key)
        return parse_timeline(raw)

    async def file(
        self, request: Request, row: Row, kind: FileKind, *, filename: str | None = None
    ) -> Response:
        assert row.etag is not None  # the route serves only finished readings
        suffix, media_type = _MEDIA[kind]
        etag = row.etag if kind == "audio" else f"{row.etag}-vtt"
        async with self._storage_bounded():  # until the body begins (it has its own limits)
            return await storage_response(
                request,
                self.storage,
                reading_key(row.id, suffix),  # type: ignore[arg-type]  # "mp3" or "vtt"
                media_type,
                etag=etag,
                filename=filename,
            )

    async def stream(self, request: Request, row: Row) -> Response:
        """While the reading is queued or running: its live audio from the Redis Stream, from the
        start (the same headers as the embedded live stream). Done: the stored file."""
        if row.status == "done" and row.etag is not None:
            return await self.file(request, row, "audio")
        if row.status == "failed":
            raise ApiError(
                409, "reading_failed", f"the reading failed: {row.error_message or 'unknown'}"
            )
        if self.hub.full(row.id):
            raise ApiError(
                503,
                "too_many_streams",
                f"this server streams {MAX_WATCHED} readings live already; try again shortly "
                "or listen once the reading is done.",
                headers={"Retry-After": "10"},
            )
        return live_response(request, lambda: self._live_audio(row.id))

    async def _live_audio(self, reading_id: str) -> AsyncIterator[bytes]:
        """The live audio as ``LiveAudio.follow`` gives it in one process: from the first byte,
        until the reading ends; a failure or a restart ends it where it is; a listener who came
        after the live stream was gone gets the finished file instead. Every listener of the
        reading on this node shares one Redis reader (``scale.fanout``); a listener of a
        reading not begun yet looks at its row every ``NOT_STARTED_POLL`` seconds."""
        from newsreader.scale.live import LiveFailed, LiveNotStarted, LiveStalled

        while True:
            sent = 0
            try:
                async with self.hub.watching(reading_id) as watch:
                    async for chunk in watch.follow(NOT_STARTED_POLL):
                        sent += len(chunk)
                        yield chunk
                return
            except LiveNotStarted:
                pass  # still queued (or its live stream expired): look at the row
            except (LiveFailed, LiveStalled) as error:
                log.info("live audio of %s ended: %s", reading_id, error)
                return
            except Exception as error:  # Redis went away: end the body, as a failure does
                log.warning("live audio of %s cut: %s", reading_id, error or type(error).__name__)
                return
            if sent:
                return
            try:
                async with _redis_errors():
                    row = await self.state.get(reading_id)
            except ApiError as error:
                log.warning("live audio of %s cut: %s", reading_id, error.message)
                return
            if row is None or row.status == "failed":
                return
            if row.status == "done":
                async for chunk in self._stored_audio(reading_id):
                    yield chunk
                return

    async def _stored_audio(self, reading_id: str) -> AsyncIterator[bytes]:
        key = reading_key(reading_id, "mp3")
        try:
            async with self._storage_bounded():
                found = await self._blocking(self.storage.stat, key)
                if found is None or found.size == 0:
                    return
                chunks = await self._blocking(self.storage.read_range, key, 0, found.size - 1)
        except ApiError as error:
            log.warning("live audio of %s: the finished file cannot be read: %s", reading_id, error)
            return
        try:
            while True:
                try:
                    chunk = await anyio.to_thread.run_sync(next, chunks, None)
                except StorageError as error:
                    log.warning("live audio of %s cut: %s", reading_id, error)
                    return
                if chunk is None:
                    return
                yield chunk
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(close)

    async def finished(self, *, listed: bool) -> list[Row]:
        async with _redis_errors():
            return await self.state.finished(listed=listed)

    async def take(self, client: str) -> float | None:
        if self._rate is None:
            return None
        async with _redis_errors():
            return await self._rate.take(client)

    # -- health and metrics ---------------------------------------------------------------------

    async def _numbers(self) -> Numbers:
        from newsreader.scale.queue import live_workers, queue_depth
        from newsreader.scale.settings import recorded_settings

        async with asyncio.timeout(CONNECT_TIMEOUT):
            counts = await self.state.counts()
            return Numbers(
                queued=counts["queued"],
                running=counts["running"],
                queue_depth=await queue_depth(self.queue),
                workers=await live_workers(self.queue),
                settings=await recorded_settings(self.redis),
            )

    async def health(self) -> Health:
        try:
            numbers = await self._numbers()
        except Exception as error:  # any failure to answer is the reason, in one line
            text = str(error).strip()
            reason = text.splitlines()[0] if text else type(error).__name__
            if isinstance(error, TimeoutError):
                reason = f"no answer within {CONNECT_TIMEOUT:g} s"
            body = ClusterHealthOut(
                status="unavailable", version=__version__, engine=self.config.engine, redis=reason
            )
            return Health(ok=False, body=body)
        body = ClusterHealthOut(
            status="ok",
            version=__version__,
            engine=self.config.engine,
            redis="ok",
            queued=numbers.queued,
            running=numbers.running,
            queue_depth=numbers.queue_depth,
            workers=numbers.workers,
            settings=numbers.settings,
        )
        return Health(ok=True, body=body)

    async def gauges(self) -> dict[str, Any]:
        try:
            numbers = await self._numbers()
        except Exception:
            return {}
        return {
            "queue_depth": numbers.queue_depth,
            "workers": numbers.workers,
            "readings_running": numbers.running,
        }
