"""Live audio on an API node: one Redis reader per reading, however many people listen.

``scale.live.follow`` holds one Redis connection per listener while it blocks. On a node with a
few hundred listeners that is a few hundred connections (and file descriptors), and redis-py's
pool (100 connections) runs dry: every other request of the node then fails. Here each reading
followed on a node has one *watch*:

- one task waits for the reading to begin (a look at its progress every ``BEGIN_POLL``
  seconds on the shared client: a queued reading holds no connection), then reads its Redis
  Stream with blocking ``XREAD`` on a connection of its own, from a separate pool of
  ``max_reading`` connections (more readings begun at once than that wait for one);
- a node follows ``max_watched`` readings at most; ``LiveHub.full`` says so before a listener
  is answered, so the route can say 503;
- it keeps the last ``WINDOW`` entries it read in memory and wakes the listeners;
- a listener who is caught up takes the entries from that window; one who is behind (it joined
  late, or reads slowly) reads the entries it lacks with short non-blocking ``XRANGE`` calls on
  the node's shared client, until it catches up. Nobody holds a connection while waiting.

A listener hears exactly what ``scale.live.follow`` gives: the current take from its first
byte, ending at the take's end or restart, ``LiveFailed`` at a failed end, ``LiveNotStarted``
if the reading does not begin within ``wait`` seconds, ``LiveStalled`` if the stream stalls or
vanishes; a Redis failure under the watch ends every listener of it with that error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import anyio
from redis.asyncio import Redis

from newsreader.scale.live import (
    FOLLOWER_KEEP,
    LiveFailed,
    LiveNotStarted,
    LiveStalled,
    call,
    live_keys,
    socket_timeout,
)

log = logging.getLogger("newsreader.service")
T = TypeVar("T")

WINDOW = 8
"""Entries (segments, a few hundred KB each at most) a watch keeps for listeners caught up."""
BATCH = 4
"""Entries read at a time, by the watch and by a listener catching up."""
BEGIN_POLL = 0.2
"""Seconds between a watch's looks at a reading that has not begun (the worst extra delay of its
first audio)."""
BLOCK_MS = 2000
"""A watch's blocking read, at most (and at most half the client's socket timeout)."""
IDLE = 300.0
"""Seconds without a new entry after which the listeners are told the reading stalled."""
ANSWER = 3.0
"""Seconds Redis gets to answer a command of a watch or a listener (beyond a blocking read's own
wait): a Redis that hangs ends the listeners within seconds, not after the client's retries of
its socket timeouts (20 s)."""
TOUCH_EVERY = 10.0
"""Seconds between a watch's renewals of an ended stream's expiry while it is listened to."""


@dataclass(frozen=True)
class _Entry:
    after: bytes
    """The id of the entry before it (the cursor it was read after)."""
    id: bytes
    fields: dict[bytes, bytes]


async def _bounded(command: Awaitable[T], waits: float = 0.0) -> T:
    """``command`` answered within ``ANSWER`` seconds (plus the ``waits`` it blocks for), else
    ``TimeoutError``."""
    async with asyncio.timeout(ANSWER + waits):
        return await call(command)


def _xread_entries(reply: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """XREAD's entries of the one stream read (RESP2: a list of pairs; RESP3: a mapping)."""
    streams = list(reply.values()) if isinstance(reply, dict) else [item[1] for item in reply]
    return cast(list[tuple[bytes, dict[bytes, bytes]]], streams[0]) if streams else []


class Watch:
    """One reading followed on this node: its reader task and the listeners' shared window."""

    def __init__(
        self, reading_id: str, redis: Redis, reader: Redis, readers: asyncio.Semaphore
    ) -> None:
        self.reading_id = reading_id
        self.redis = redis
        self.reader = reader
        self.readers = readers
        self.stream, self.progress_key = live_keys(reading_id)
        self.window: deque[_Entry] = deque(maxlen=WINDOW)
        self.start: bytes | None = None
        """Where the current take starts (``take_start``), once the reading has begun."""
        self.run: bytes | None = None
        self.last: bytes | None = None
        """The newest entry the watch has read (the take's start before any)."""
        self.over = False
        """The watch read the take's last entry (end, restart, or another run's entry)."""
        self.error: Exception | None = None
        self.changed = asyncio.Condition()
        self.listeners = 0
        self.task: asyncio.Task[None] | None = None

    # -- the reader -----------------------------------------------------------------------------

    async def read(self) -> None:
        try:
            await self._read()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # Redis went away, the stream stalled: every listener ends
            self.error = error
        async with self.changed:
            self.changed.notify_all()

    async def _read(self) -> None:
        timeout = socket_timeout(self.reader)
        block = BLOCK_MS if not timeout else max(1, min(BLOCK_MS, int(timeout * 500)))
        while True:  # 1. until the live reading begins (its listeners each wait a while)
            start, run = await _bounded(self.redis.hmget(self.progress_key, ["take_start", "run"]))
            if start is not None and run is not None:
                break
            await asyncio.sleep(BEGIN_POLL)
        async with self.changed:
            self.start = self.last = cast(bytes, start)
            self.run = cast(bytes, run)
            self.changed.notify_all()
        async with self.readers:  # 2. the take's entries (a listener may catch up meanwhile)
            await self._follow(block)

    async def _follow(self, block: int) -> None:
        quiet_since = touched = time.monotonic()
        while True:  # the take's entries, a batch at a time
            assert self.last is not None
            reply = await _bounded(
                self.reader.xread({self.stream: self.last}, count=BATCH, block=block),
                block / 1000,
            )
            now = time.monotonic()
            if now - touched >= TOUCH_EVERY:
                touched = now
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.expire(self.stream, FOLLOWER_KEEP, gt=True)
                    pipe.expire(self.progress_key, FOLLOWER_KEEP, gt=True)
                    await _bounded(pipe.execute())
            if not reply:
                if now - quiet_since >= IDLE:
                    raise LiveStalled(f"reading {self.reading_id}: no audio for {IDLE:g} s")
                if not await _bounded(self.redis.exists(self.stream)):
                    raise LiveStalled(f"reading {self.reading_id}: its live audio is gone")
                continue
            quiet_since = now
            async with self.changed:
                for entry_id, fields in _xread_entries(reply):
                    self.window.append(_Entry(self.last, entry_id, fields))
                    self.last = entry_id
                    if fields.get(b"run") != self.run or fields.get(b"kind") in (
                        b"restart",
                        b"end",
                    ):
                        self.over = True
                        break
                self.changed.notify_all()
            del reply
            if self.over:
                return

    # -- a listener -----------------------------------------------------------------------------

    def _after(self, cursor: bytes) -> list[_Entry] | None:
        """The window's entries after ``cursor``; [] if caught up; None if behind the window."""
        if cursor == self.last:
            return []
        entries = list(self.window)
        for position, entry in enumerate(entries):
            if entry.after == cursor:
                return entries[position:]
        return None

    async def _range(self, cursor: bytes) -> list[_Entry]:
        """The entry after ``cursor`` from Redis (a listener behind the window): one at a time,
        so a slow listener holds one segment of its own at most."""
        assert self.last is not None
        reply = await _bounded(
            self.redis.xrange(self.stream, min=b"(" + cursor, max=self.last, count=1)
        )
        entries = []
        for entry_id, fields in cast(list[tuple[bytes, dict[bytes, bytes]]], reply or []):
            entries.append(_Entry(cursor, entry_id, fields))
            cursor = entry_id
        if not entries:
            raise LiveStalled(f"reading {self.reading_id}: its live audio is gone")
        return entries

    async def follow(self, wait: float) -> AsyncIterator[bytes]:
        """As ``scale.live.follow``: the take from its first byte until it ends."""
        deadline = time.monotonic() + wait
        async with self.changed:
            while self.start is None and self.error is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LiveNotStarted(
                        f"reading {self.reading_id} has not started within {wait:g} s; "
                        "try again shortly."
                    )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self.changed.wait()
        if self.start is None:
            assert self.error is not None
            raise self.error
        cursor, run = self.start, self.run
        while True:
            batch = self._after(cursor)
            if batch is None:
                batch = await self._range(cursor)
            if not batch:
                if self.over:
                    return  # (the last entry was read by this listener already)
                async with self.changed:
                    while cursor == self.last and not self.over and self.error is None:
                        await self.changed.wait()
                if cursor == self.last and self.error is not None:
                    raise self.error
                continue
            for entry in batch:
                cursor = entry.id
                fields = entry.fields
                if fields.get(b"run") != run:
                    return  # the reading started afresh (submitted again): this one is over
                kind = fields.get(b"kind")
                if kind == b"seg":
                    yield fields[b"audio"]
                elif kind == b"restart":
                    return
                elif kind == b"end":
                    if fields.get(b"status") == b"failed":
                        raise LiveFailed(
                            fields.get(b"code", b"").decode("utf-8", "replace"),
                            fields.get(b"message", b"").decode("utf-8", "replace"),
                        )
                    return
            del batch


class LiveHub:
    """The readings followed on one API node, one watch each (see the module docstring).

    ``redis``: the node's shared client (short commands); ``reader``: a client whose pool has
    room for ``max_reading`` blocking reads, used only by the watches of readings begun;
    ``max_watched``: readings followed at most (begun or not)."""

    def __init__(self, redis: Redis, reader: Redis, *, max_watched: int, max_reading: int) -> None:
        for client in (redis, reader):
            if client.connection_pool.connection_kwargs.get("decode_responses"):
                raise ValueError("live audio needs a Redis client without decode_responses")
        self.redis = redis
        self.reader = reader
        self.max_watched = max_watched
        self.readers = asyncio.Semaphore(max_reading)
        self._watches: dict[str, Watch] = {}

    @property
    def watched(self) -> int:
        """Readings followed on this node now (each one blocking Redis connection)."""
        return len(self._watches)

    @property
    def listeners(self) -> int:
        return sum(watch.listeners for watch in self._watches.values())

    def full(self, reading_id: str) -> bool:
        """Whether a new listener of ``reading_id`` would need a watch the node cannot have."""
        return reading_id not in self._watches and len(self._watches) >= self.max_watched

    @contextlib.asynccontextmanager
    async def watching(self, reading_id: str) -> AsyncIterator[Watch]:
        """The reading's watch (started by its first listener, stopped after its last)."""
        watch = self._watches.get(reading_id)
        if watch is not None and (watch.over or watch.error is not None):
            watch = None  # ended: a new listener looks again (the reading may be running anew)
        if watch is None:
            if len(self._watches) >= self.max_watched:
                raise LiveStalled(f"this node follows {self.max_watched} readings already")
            watch = Watch(reading_id, self.redis, self.reader, self.readers)
            watch.task = asyncio.create_task(watch.read(), name=f"live-watch-{reading_id}")
            self._watches[reading_id] = watch
        watch.listeners += 1
        try:
            yield watch
        finally:
            watch.listeners -= 1
            if watch.listeners == 0:
                if self._watches.get(reading_id) is watch:
                    del self._watches[reading_id]
                assert watch.task is not None
                watch.task.cancel()
                with anyio.CancelScope(shield=True):  # the listener is leaving (cancelled)
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await watch.task

    async def close(self) -> None:
        """Stop every watch (the node is stopping)."""
        watches, self._watches = list(self._watches.values()), {}
        for watch in watches:
            if watch.task is not None:
                watch.task.cancel()
        for watch in watches:
            if watch.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watch.task


__all__ = ["BATCH", "IDLE", "WINDOW", "LiveHub", "Watch"]
