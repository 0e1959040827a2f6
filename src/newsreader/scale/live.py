"""Live audio across machines: a Redis Stream per reading, and its progress in a hash beside it.

A worker publishes (``LivePublisher``); any API node follows (``follow``) and answers
``GET /api/readings/{id}`` from the progress (``progress``). Keys:

- ``newsreader:live:<id>``: the stream. Entries, each with its ``run`` (one per fresh start):
  ``begin`` (a take starts), ``seg`` (``take``, ``index``, ``audio``: one segment's frames and
  its pause, exactly what the embedded live stream appends), ``restart`` (the take ends and a
  new one begins: the ``--fallback`` voice, or a re-delivered job that got another voice or
  another script), ``end`` (``status`` done or failed, ``code``, ``message``).
- ``newsreader:live:<id>:progress``: status, title, total, done, the sentences (and each
  segment's sentence times, ``t<index>``), engine, warnings, audio_seconds, takes, and where the
  current take starts in the stream.

Rules, each enforced by one Lua script so that they hold across machines:

- A segment is appended only if it is the next index of the current take: an index the stream
  has already is skipped (a job re-delivered to another worker renders from segment 0 again,
  instantly from the segment cache, and listeners hear one unbroken stream); an index past the
  next one is refused (``ValueError``): a later segment never comes before an earlier one.
- A publisher whose take was replaced (a second execution restarted the reading) is refused
  (``LiveSuperseded``) instead of mixing its audio into the new take.
- A follower reads the current take from its first byte, then blocks for more; it ends at the
  ``end`` entry, or at a ``restart`` entry (the first voice's listeners hear it end, as in the
  embedded service; who joins later gets the new take), or raises ``LiveFailed`` at a failed end
  (the embedded ``LiveAudio.follow`` just stops there, its ``failed`` flag set beside it; here
  the failure travels with the iteration, so the HTTP layer decides how the response ends).
- After ``end`` both keys expire in ``keep_seconds`` (the finished file is stored by then);
  a follower still reading keeps them at least ``FOLLOWER_KEEP`` seconds longer.

Worker protocol: ``begin`` after ``RedisState.claim``; ``end("done")`` after
``RedisState.finish`` and ``end("failed", …)`` after ``RedisState.fail`` returned True; a job
whose claim failed calls ``end`` with the row's status (idempotent: the first ``end`` wins).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, Literal, Protocol, TypeVar, cast

from redis.asyncio import Redis

from newsreader.errors import NewsreaderError
from newsreader.service.payloads import SentencePayload
from newsreader.service.status import LiveStatus

T = TypeVar("T")

PREFIX = "newsreader:live:"
KEEP_SECONDS = 300
"""How long an ended stream stays: the finished file is stored by then."""
FOLLOWER_KEEP = 60
"""A follower still reading an ended stream keeps it this long after each of its reads."""
_TOUCH_EVERY = 10.0


def live_keys(reading_id: str) -> tuple[str, str]:
    """The reading's stream and its progress hash."""
    stream = f"{PREFIX}{reading_id}"
    return stream, f"{stream}:progress"


class TimedSentenceLike(Protocol):
    """A sentence timed in the reading, in milliseconds (``audio.assemble.TimedSentence``)."""

    @property
    def start_ms(self) -> int: ...

    @property
    def end_ms(self) -> int: ...


# -- errors ----------------------------------------------------------------------------------------


class LiveError(NewsreaderError):
    """Live audio could not be followed or published."""


class LiveFailed(LiveError):
    """The reading failed while it was followed: the HTTP layer cuts the response."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


class LiveNotStarted(LiveError):
    """No live audio began within the time the follower would wait (the job is still queued)."""


class LiveStalled(LiveError):
    """Nothing came for the follower's ``idle`` seconds, or the stream vanished under it."""


class LiveSuperseded(LiveError):
    """Another execution of the job replaced this publisher's take: it should stop."""


# -- progress --------------------------------------------------------------------------------------


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


async def call(command: Awaitable[T]) -> T:
    """Await a Redis command, then re-raise a cancellation it swallowed.

    On Python 3.11, ``asyncio.wait_for`` (which redis-py uses to write a command within its
    ``socket_timeout``) returns the result instead of raising when the task is cancelled just
    as the write completes: a listener who left would be followed for ever, a stopped job would
    go on. A task with a cancellation pending (``cancelling()``) after a command that returned
    has lost one that way.
    """
    result = await command
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    return result


async def progress(redis: Redis, reading_id: str) -> LiveStatus | None:
    """The live status of a reading begun by a worker (None before ``begin`` and after expiry),
    as the embedded service keeps it in memory (``service.status.LiveStatus``)."""
    raw = await call(redis.hgetall(live_keys(reading_id)[1]))
    values = {_text(k): _text(v) for k, v in raw.items()}
    if "status" not in values:
        return None
    sentences: list[SentencePayload] = json.loads(values.get("sentences", "[]"))
    firsts: dict[int, int] = {}
    for position, sentence in enumerate(sentences):
        firsts.setdefault(sentence["segment"], position)
    for name, text in values.items():
        if name.startswith("t") and name[1:].isdigit() and int(name[1:]) in firsts:
            first = firsts[int(name[1:])]
            for n, (start_ms, end_ms) in enumerate(json.loads(text)):
                if first + n < len(sentences):
                    sentences[first + n]["start"] = start_ms / 1000
                    sentences[first + n]["end"] = end_ms / 1000
    code, message = values.get("error_code"), values.get("error_message")
    status = values["status"]
    return LiveStatus(
        status=status if status in ("running", "done", "failed") else "running",  # type: ignore[arg-type]
        title=json.loads(values.get("title", "null")),
        total=int(values.get("total", 0)),
        done=int(values.get("done", 0)),
        sentences=sentences,
        engine=values.get("engine") or None,
        audio_seconds=float(values.get("audio_seconds", 0.0)),
        error=(code, message or "") if code else None,
        warnings=json.loads(values.get("warnings", "[]")),
        takes=int(values.get("takes", 1)),
    )


# -- publishing ------------------------------------------------------------------------------------

_CLEAR_TIMES = """
local function clear_times(progress)
  local total = tonumber(redis.call('HGET', progress, 'total') or '0')
  for i = 0, total - 1 do
    redis.call('HDEL', progress, 't' .. i)
  end
end
local function new_take(stream, progress, run)
  local take = tonumber(redis.call('HGET', progress, 'takes')) + 1
  local id = redis.call('XADD', stream, '*', 'kind', 'restart', 'run', run, 'take', take)
  clear_times(progress)
  redis.call('HSET', progress, 'takes', take, 'take_start', id, 'done', 0, 'audio_seconds', 0)
  return take
end
"""

_BEGIN = (
    _CLEAR_TIMES
    + """
-- KEYS: stream, progress   ARGV: run, title, total, sentences, engine, script fingerprint
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'running' then
  local run = redis.call('HGET', KEYS[2], 'run')
  if redis.call('HGET', KEYS[2], 'script') == ARGV[6]
      and redis.call('HGET', KEYS[2], 'engine') == ARGV[5] then
    return {'resume', run, tonumber(redis.call('HGET', KEYS[2], 'takes'))}
  end
  -- another voice or another script (the page changed): listeners of the old take hear it end
  local take = new_take(KEYS[1], KEYS[2], run)
  redis.call('HSET', KEYS[2], 'title', ARGV[2], 'total', ARGV[3], 'sentences', ARGV[4],
             'engine', ARGV[5], 'script', ARGV[6])
  return {'take', run, take}
end
redis.call('DEL', KEYS[1], KEYS[2])
local id = redis.call('XADD', KEYS[1], '*', 'kind', 'begin', 'run', ARGV[1], 'take', 1)
redis.call('HSET', KEYS[2], 'run', ARGV[1], 'status', 'running', 'title', ARGV[2],
           'total', ARGV[3], 'done', 0, 'sentences', ARGV[4], 'engine', ARGV[5],
           'script', ARGV[6], 'warnings', '[]', 'audio_seconds', 0, 'takes', 1,
           'take_start', id)
return {'begin', ARGV[1], 1}
"""
)

_OWN = """
local function own(progress, run, take)
  local status = redis.call('HGET', progress, 'status')
  if not status then
    return -3
  end
  if status ~= 'running' then
    return 0
  end
  if redis.call('HGET', progress, 'run') ~= run
      or redis.call('HGET', progress, 'takes') ~= take then
    return -1
  end
  return 1
end
"""

_SEGMENT = (
    _OWN
    + """
-- KEYS: stream, progress   ARGV: run, take, index, audio, seconds, timings
local owned = own(KEYS[2], ARGV[1], ARGV[2])
if owned ~= 1 then
  return owned
end
local index = tonumber(ARGV[3])
local next_index = tonumber(redis.call('HGET', KEYS[2], 'done'))
if index < next_index then
  return 2
end
if index > next_index then
  return -2
end
redis.call('XADD', KEYS[1], '*', 'kind', 'seg', 'run', ARGV[1], 'take', ARGV[2],
           'index', index, 'audio', ARGV[4])
redis.call('HSET', KEYS[2], 'done', index + 1, 't' .. index, ARGV[6])
redis.call('HINCRBYFLOAT', KEYS[2], 'audio_seconds', ARGV[5])
return 1
"""
)

_RESTART = (
    _CLEAR_TIMES
    + _OWN
    + """
-- KEYS: stream, progress   ARGV: run, take, engine, warning (as JSON)
local owned = own(KEYS[2], ARGV[1], ARGV[2])
if owned ~= 1 then
  return owned
end
local take = new_take(KEYS[1], KEYS[2], ARGV[1])
local warnings = redis.call('HGET', KEYS[2], 'warnings') or '[]'
if warnings == '[]' then
  warnings = '[' .. ARGV[4] .. ']'
else
  warnings = string.sub(warnings, 1, -2) .. ',' .. ARGV[4] .. ']'
end
redis.call('HSET', KEYS[2], 'engine', ARGV[3], 'warnings', warnings)
return 10 + take
"""
)

_END = (
    _OWN
    + """
-- KEYS: stream, progress   ARGV: run ('' = any), take, status, code, message, keep seconds
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'done' or status == 'failed' then
  return 0
end
local run = ARGV[1]
if status and run ~= '' then
  local owned = own(KEYS[2], run, ARGV[2])
  if owned ~= 1 then
    return owned
  end
end
if not status then
  if run ~= '' then
    return -1  -- begun, and the keys are gone: the reading was submitted again since
  end
  -- ended before it began (the article could not be read): waiting followers learn it now
  run = 'ended'
  redis.call('HSET', KEYS[2], 'run', run, 'takes', 1, 'take_start', '0-0', 'total', 0,
             'done', 0, 'audio_seconds', 0, 'warnings', '[]', 'sentences', '[]')
else
  run = redis.call('HGET', KEYS[2], 'run')
end
redis.call('XADD', KEYS[1], '*', 'kind', 'end', 'run', run, 'status', ARGV[3],
           'code', ARGV[4], 'message', ARGV[5])
redis.call('HSET', KEYS[2], 'status', ARGV[3])
if ARGV[3] == 'failed' then
  redis.call('HSET', KEYS[2], 'error_code', ARGV[4], 'error_message', ARGV[5])
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return 1
"""
)


def _fingerprint(total: int, sentences: Sequence[SentencePayload]) -> str:
    texts = [[s["segment"], s["text"]] for s in sentences]
    payload = json.dumps([total, texts], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()[:32]


def _check_bytes(redis: Redis) -> None:
    if redis.connection_pool.connection_kwargs.get("decode_responses"):
        raise ValueError("live audio needs a Redis client without decode_responses")


class LivePublisher:
    """The worker's side of one reading's live audio (see the module's rules)."""

    def __init__(self, redis: Redis, reading_id: str, *, keep_seconds: int = KEEP_SECONDS) -> None:
        _check_bytes(redis)
        if int(keep_seconds) != keep_seconds or keep_seconds < 1:
            raise ValueError(
                f"keep_seconds must be a whole number of seconds >= 1, not {keep_seconds}"
            )
        self.redis = redis
        self.reading_id = reading_id
        self.keep_seconds = int(keep_seconds)
        self.stream, self.progress_key = live_keys(reading_id)
        self.run = ""
        self.take = 0
        self._begin = redis.register_script(_BEGIN)
        self._segment = redis.register_script(_SEGMENT)
        self._restart = redis.register_script(_RESTART)
        self._end = redis.register_script(_END)

    async def begin(
        self,
        title: str | None,
        total: int,
        sentences: Sequence[SentencePayload],
        engine: str,
    ) -> Literal["begin", "resume", "take"]:
        """Start the live reading (its sentences as ``payloads.sentence_list`` makes them).

        Returns ``"begin"`` for a fresh stream; ``"resume"`` when a previous execution of the
        job had begun the same script in the same voice (its segments are skipped as this one
        renders them again); ``"take"`` when it had another voice or script: a new take.
        """
        reply = await call(
            self._begin(
                keys=[self.stream, self.progress_key],
                args=[
                    secrets.token_hex(8),
                    json.dumps(title, ensure_ascii=False),
                    total,
                    json.dumps(list(sentences), ensure_ascii=False),
                    engine,
                    _fingerprint(total, sentences),
                ],
            )
        )
        outcome, run, take = _text(reply[0]), _text(reply[1]), int(reply[2])
        self.run, self.take = run, take
        assert outcome in ("begin", "resume", "take")
        return outcome  # type: ignore[return-value]

    def _owned(self, reply: int) -> None:
        # -3: the keys are gone (the reading was submitted again since: a new run will begin)
        if reply in (-1, -3):
            raise LiveSuperseded(
                f"live reading {self.reading_id}: another execution replaced this one's take"
            )

    async def segment(
        self,
        index: int,
        audio: bytes,
        seconds: float,
        timings: Sequence[TimedSentenceLike],
    ) -> bool:
        """Append segment ``index`` (its frames and pause) and its sentences' times.

        True if appended; False if the stream had it already (a re-delivered job) or the
        reading has ended. ``ValueError`` for an index past the next one; ``LiveSuperseded``
        if another execution has replaced this take."""
        if not self.run:
            raise RuntimeError(f"live reading {self.reading_id}: segment() before begin()")
        times = json.dumps([[t.start_ms, t.end_ms] for t in timings])
        reply = int(
            await call(
                self._segment(
                    keys=[self.stream, self.progress_key],
                    args=[self.run, self.take, index, audio, repr(float(seconds)), times],
                )
            )
        )
        self._owned(reply)
        if reply == -2:
            raise ValueError(
                f"live reading {self.reading_id}: segment {index} comes before an earlier one"
            )
        return reply == 1

    async def restart(self, engine: str, warning: str) -> None:
        """The reading starts again in ``engine`` (``--fallback``): the first take's listeners
        hear it end; progress and new followers follow the new take from its first segment."""
        if not self.run:
            raise RuntimeError(f"live reading {self.reading_id}: restart() before begin()")
        reply = int(
            await call(
                self._restart(
                    keys=[self.stream, self.progress_key],
                    args=[self.run, self.take, engine, json.dumps(warning, ensure_ascii=False)],
                )
            )
        )
        self._owned(reply)
        if reply > 10:
            self.take = reply - 10

    async def end(
        self, status: Literal["done", "failed"], error: tuple[str, str] | None = None
    ) -> bool:
        """End the live reading (followers stop; a failure raises ``LiveFailed`` in them);
        both keys then expire in ``keep_seconds``. False if it had ended already, or if this
        publisher's take was replaced. Works without ``begin`` too (a job that failed first)."""
        code, message = error or ("", "")
        if status == "failed" and not code:
            code = NewsreaderError.code
        reply = int(
            await call(
                self._end(
                    keys=[self.stream, self.progress_key],
                    args=[self.run, self.take, status, code, message, self.keep_seconds],
                )
            )
        )
        return reply == 1


# -- following -------------------------------------------------------------------------------------


def socket_timeout(redis: Redis) -> float | None:
    """The client's read timeout: as given, else its connection class's default (redis-py
    gives every connection one, 5 s, unless told otherwise)."""
    pool = redis.connection_pool
    if "socket_timeout" in pool.connection_kwargs:
        given = pool.connection_kwargs["socket_timeout"]
        return float(given) if given else None
    for cls in pool.connection_class.__mro__:
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        parameter = inspect.signature(init).parameters.get("socket_timeout")
        if parameter is not None and isinstance(parameter.default, int | float):
            return float(parameter.default) or None
    return None


def _block_ms(redis: Redis, block_ms: int) -> int:
    """A blocking read must end well before the client's socket timeout would cut it (and
    drop the connection with a ``TimeoutError``)."""
    timeout = socket_timeout(redis)
    if timeout:
        return max(1, min(block_ms, int(timeout * 1000 / 2)))
    return max(1, block_ms)


Entry = tuple[bytes, dict[bytes, bytes]]


def _entries(reply: Any) -> list[Entry]:
    """XREAD's entries of the one stream read (RESP2: a list of pairs; RESP3: a mapping)."""
    streams = list(reply.values()) if isinstance(reply, dict) else [item[1] for item in reply]
    return cast(list[Entry], streams[0]) if streams else []


async def follow(
    redis: Redis,
    reading_id: str,
    *,
    block_ms: int = 2000,
    batch: int = 4,
    wait: float = 60.0,
    idle: float | None = 300.0,
) -> AsyncIterator[bytes]:
    """The current take's audio from its first byte, segment by segment, as it is made.

    Waits up to ``wait`` seconds for the live reading to begin (else ``LiveNotStarted``,
    before anything is yielded). Ends at the end entry, or at a restart; raises ``LiveFailed``
    if the reading fails, ``LiveStalled`` if nothing comes for ``idle`` seconds or the stream
    vanishes. Reads at most ``batch`` entries at a time (each one segment, a few hundred KB at
    most), so memory stays flat however long the reading. Each follower holds one Redis
    connection while it blocks, ``block_ms`` at a time (at most half the client's socket
    timeout).
    """
    _check_bytes(redis)
    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    stream, progress_key = live_keys(reading_id)
    block = _block_ms(redis, block_ms)

    # 1. wait for the live reading to begin
    deadline = time.monotonic() + wait
    while True:
        start, run = await call(redis.hmget(progress_key, ["take_start", "run"]))
        if start is not None and run is not None:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LiveNotStarted(
                f"reading {reading_id} has not started within {wait:g} s; try again shortly."
            )
        # Blocks until the stream's first entry is added (begin writes it with the progress).
        wait_ms = max(1, min(block, int(remaining * 1000)))
        reply = await call(redis.xread({stream: "0-0"}, count=1, block=wait_ms))
        if reply:
            await asyncio.sleep(0.05)  # a stream without progress: expiring; look again shortly

    # 2. the take's entries, a batch at a time
    cursor: bytes | str = start
    quiet_since = touched = time.monotonic()
    while True:
        reply = await call(redis.xread({stream: cursor}, count=batch, block=block))
        now = time.monotonic()
        if now - touched >= _TOUCH_EVERY:
            touched = now
            async with redis.pipeline(transaction=False) as pipe:
                pipe.expire(stream, FOLLOWER_KEEP, gt=True)
                pipe.expire(progress_key, FOLLOWER_KEEP, gt=True)
                await call(pipe.execute())
        if not reply:
            if idle is not None and now - quiet_since >= idle:
                raise LiveStalled(f"reading {reading_id}: no audio for {idle:g} s")
            if not await call(redis.exists(stream)):
                raise LiveStalled(f"reading {reading_id}: its live audio is gone")
            continue
        quiet_since = now
        entries = _entries(reply)
        del reply
        entries.reverse()  # popped from the end: each entry is dropped once it is yielded
        while entries:
            entry_id, fields = entries.pop()
            cursor = entry_id
            if fields.get(b"run") != run:
                return  # the reading started afresh (submitted again): this stream is over
            kind = fields.get(b"kind")
            if kind == b"seg":
                audio = fields[b"audio"]
                del fields
                yield audio
                del audio
            elif kind == b"restart":
                return
            elif kind == b"end":
                if fields.get(b"status") == b"failed":
                    raise LiveFailed(
                        _text(fields.get(b"code", b"")), _text(fields.get(b"message", b""))
                    )
                return


__all__ = [
    "FOLLOWER_KEEP",
    "KEEP_SECONDS",
    "LiveError",
    "LiveFailed",
    "LiveNotStarted",
    "LivePublisher",
    "LiveStalled",
    "LiveSuperseded",
    "follow",
    "live_keys",
    "progress",
]
