"""Reading state shared by every node of a cluster: one Redis hash per reading.

The hash ``newsreader:reading:<id>`` holds the fields of ``service.store.Row`` (so the API's
``describe()`` works unchanged), plus ``owner``: the execution that last claimed it. Beside it:

- ``newsreader:readings:queued`` and ``newsreader:readings:running``: sets of ids (``counts()``);
- ``newsreader:readings:finished``: finished readings by finish time (``finished()``), and
  ``newsreader:readings:listed``: those of them the feed lists;
- ``newsreader:idkey``: the secret that keys the ids of posted text, the same on every API node.

Every change of status is one Lua script, so it is atomic across nodes:

    submit   (none | failed | done without audio) -> queued; queued/running/done kept as they are
    claim    queued | running -> running            (a re-delivered job takes its reading again)
    release  running -> queued                      (a worker hands the job back on shutdown)
    finish   running -> done                        (compare-and-set: exactly once)
    fail     queued | running -> failed

Each script touches the reading's hash with the shared sets (and ``submit`` the live keys), so
this needs one Redis server (with replicas or Sentinel if wanted), not Redis Cluster's slots.

Re-delivery. The queue hands a job to another worker when its worker stops sending heartbeats:
it died, or (rarely) it is alive but stalled, and then two executions of one reading run at
once. What that needs:

- ``claim`` succeeds on a ``running`` row (the dead worker left it so) and records the new
  ``owner``; a claim that fails (the row is done or failed meanwhile) means there is nothing to
  do but make sure the live stream is ended (``LivePublisher.end`` is idempotent).
- Progress (``update``) and ``fail`` with ``owner=`` are refused once another execution has
  claimed the reading: a stalled first execution can neither move the progress back nor fail a
  reading that the second one is making.
- ``finish`` is not owner-bound: both executions write identical files (each object whole, the
  MP3 last) before it, so whichever gets there first publishes, and the other loses the
  compare-and-set harmlessly.
"""

from __future__ import annotations

import inspect
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, cast

from redis.asyncio import Redis

from newsreader.errors import NewsreaderError
from newsreader.scale.live import call, live_keys
from newsreader.service.payloads import RequestPayload
from newsreader.service.store import Row

PREFIX = "newsreader:"
QUEUED = f"{PREFIX}readings:queued"
RUNNING = f"{PREFIX}readings:running"
FINISHED = f"{PREFIX}readings:finished"
LISTED = f"{PREFIX}readings:listed"
ID_KEY = f"{PREFIX}idkey"
_KEY_BYTES = 32

AudioCheck = bool | Callable[[], bool] | Callable[[], Awaitable[bool]]
"""Whether a done reading's audio is still stored: known, or asked only when the row is done."""

_FIELDS = tuple(Row.__dataclass_fields__)
_CHANGEABLE = frozenset(_FIELDS) - {"id", "request", "created", "status"}
"""What ``update`` and ``finish`` may set (the status moves only through the methods)."""
_INTS = frozenset({"total", "done", "bytes"})
_FLOATS = frozenset({"duration", "created", "updated", "finished"})


def reading_key(reading_id: str) -> str:
    return f"{PREFIX}reading:{reading_id}"


class StateError(NewsreaderError):
    """The shared state in Redis cannot be used as it is (the message says what to do)."""

    code: ClassVar[str] = "bad_settings"


# -- Lua -------------------------------------------------------------------------------------------
# Fields to set arrive as ARGV pairs after a count, then the names to delete (a value of None).

_APPLY = """
local function apply(key, first)
  local pairs_count = tonumber(ARGV[first])
  local last = first + 2 * pairs_count
  if pairs_count > 0 then
    redis.call('HSET', key, unpack(ARGV, first + 1, last))
  end
  if #ARGV > last then
    redis.call('HDEL', key, unpack(ARGV, last + 1, #ARGV))
  end
end
"""

_SUBMIT = """
-- KEYS: row, queued, running, finished, listed, live stream, live progress
-- ARGV: id, request, has source, source, now, audio ('?' | 'yes' | 'no'),
--       the finish time the audio answer is about ('*': any, the caller knew it beforehand)
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' or status == 'running' then
  return {0, redis.call('HGETALL', KEYS[1])}
end
if status == 'done' then
  local finished = redis.call('HGET', KEYS[1], 'finished') or ''
  if ARGV[6] == '?' or (ARGV[7] ~= '*' and finished ~= ARGV[7]) then
    return {2, finished}
  end
  if ARGV[6] == 'yes' then
    return {0, redis.call('HGETALL', KEYS[1])}
  end
end
if status then
  redis.call('HSET', KEYS[1], 'status', 'queued', 'done', '0', 'total', '0', 'updated', ARGV[5])
  redis.call('HDEL', KEYS[1], 'error_code', 'error_message', 'duration', 'bytes', 'etag',
             'finished', 'owner')
else
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'request', ARGV[2], 'status', 'queued',
             'total', '0', 'done', '0', 'created', ARGV[5], 'updated', ARGV[5], 'listed', '0')
  if ARGV[3] == '1' then
    redis.call('HSET', KEYS[1], 'source', ARGV[4])
  end
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('DEL', KEYS[6], KEYS[7])
return {1, redis.call('HGETALL', KEYS[1])}
"""

_CLAIM = """
-- KEYS: row, queued, running   ARGV: id, owner, now
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'running', 'owner', ARGV[2], 'updated', ARGV[3])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""

_RELEASE = """
-- KEYS: row, queued, running   ARGV: id, owner ('' = any), now
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then
  return 0
end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'updated', ARGV[3])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

_UPDATE = (
    _APPLY
    + """
-- KEYS: row   ARGV: owner ('' = any), pairs count, pairs..., names to delete...
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then
  return 0
end
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
apply(KEYS[1], 2)
return 1
"""
)

_FINISH = (
    _APPLY
    + """
-- KEYS: row, running, finished, listed   ARGV: id, finish time, pairs count, pairs..., names...
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then
  return 0
end
apply(KEYS[1], 3)
redis.call('HSET', KEYS[1], 'status', 'done', 'finished', ARGV[2])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'listed') == '1' then
  redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
end
return 1
"""
)

_FAIL = """
-- KEYS: row, queued, running   ARGV: id, owner ('' = any), code, message, now
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then
  return 0
end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], 'status', 'failed', 'error_code', ARGV[3], 'error_message', ARGV[4],
           'updated', ARGV[5])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
"""


# -- values in and out of the hash -----------------------------------------------------------------


def _text(value: bytes | str) -> str:
    """A reply as text, whether or not the client decodes responses."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _encode(name: str, value: Any) -> str:
    if name == "request":
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _field_args(fields: Mapping[str, Any]) -> list[str]:
    """``[count, name, value, …, name to delete, …]`` for the scripts' ``apply``."""
    unknown = set(fields) - _CHANGEABLE
    if unknown:
        raise ValueError(f"unknown or protected reading fields: {sorted(unknown)}")
    present = [(name, value) for name, value in fields.items() if value is not None]
    args = [str(len(present))]
    for name, value in present:
        args += [name, _encode(name, value)]
    args += [name for name, value in fields.items() if value is None]
    return args


def _row(flat: Sequence[bytes | str] | Mapping[Any, Any]) -> Row | None:
    """A ``Row`` from HGETALL's reply (a mapping, or Lua's flat list), or None if empty."""
    if isinstance(flat, Mapping):
        raw = {_text(k): _text(v) for k, v in flat.items()}
    else:
        raw = {_text(flat[n]): _text(flat[n + 1]) for n in range(0, len(flat), 2)}
    if not raw:
        return None
    values: dict[str, Any] = {}
    for name in _FIELDS:
        text = raw.get(name)
        if text is None:
            values[name] = None
        elif name == "request":
            values[name] = json.loads(text)
        elif name == "listed":
            values[name] = text == "1"
        elif name in _INTS:
            values[name] = int(text)
        elif name in _FLOATS:
            values[name] = float(text)
        else:
            values[name] = text
    values["listed"] = bool(values["listed"])
    return Row(**values)


# -- the state -------------------------------------------------------------------------------------


class RedisState:
    """The readings of a cluster, kept in Redis; every method is one round trip (or a few)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._submit = redis.register_script(_SUBMIT)
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._update = redis.register_script(_UPDATE)
        self._finish = redis.register_script(_FINISH)
        self._fail = redis.register_script(_FAIL)

    async def get(self, reading_id: str) -> Row | None:
        return _row(await call(self.redis.hgetall(reading_key(reading_id))))

    async def submit(
        self,
        reading_id: str,
        request: RequestPayload,
        source: str | None,
        *,
        audio_exists: AudioCheck,
    ) -> tuple[Row, bool]:
        """The reading's row: ``(row, False)`` if it is queued, running, or done with its audio
        still stored; else it is created (or a failed/lost one reset) as queued: ``(row, True)``.

        Atomic across nodes: of any number of simultaneous submits of one id, one gets True.
        ``audio_exists`` is asked only when the row is done (it may be a coroutine function:
        a storage look-up); if the row changes meanwhile the question is asked again.
        Resetting a row also removes the previous attempt's live stream (it had ended).
        """
        stream, progress = live_keys(reading_id)
        keys = [reading_key(reading_id), QUEUED, RUNNING, FINISHED, LISTED, stream, progress]
        text = _encode("request", request)
        audio = ("yes" if audio_exists else "no") if isinstance(audio_exists, bool) else "?"
        seen = "*" if isinstance(audio_exists, bool) else ""
        while True:
            args = [reading_id, text, "0" if source is None else "1", source or "", time.time()]
            reply = await call(self._submit(keys=keys, args=[*args, audio, seen]))
            outcome = int(reply[0])
            if outcome != 2:
                row = _row(reply[1])
                assert row is not None
                return row, outcome == 1
            # Done: is its audio still stored? Asked outside the script, then checked again.
            seen = _text(reply[1])
            assert not isinstance(audio_exists, bool)
            answer = audio_exists()
            if inspect.isawaitable(answer):
                answer = await answer
            audio = "yes" if answer else "no"

    async def claim(self, reading_id: str, owner: str = "") -> bool:
        """Queued or running -> running, recording ``owner`` (e.g. the queue job's attempt).

        True also for a row already running: a job re-delivered after its worker died takes the
        reading again, from its first segment (the segment cache makes the done part instant;
        ``LivePublisher`` skips the segments listeners already have). False if the reading is
        missing, done or failed: the job has nothing to make.
        """
        reply = await call(
            self._claim(
                keys=[reading_key(reading_id), QUEUED, RUNNING],
                args=[reading_id, owner, time.time()],
            )
        )
        return bool(reply)

    async def release(self, reading_id: str, owner: str | None = None) -> bool:
        """Running -> queued: the job goes back to the queue (a worker shutting down)."""
        reply = await call(
            self._release(
                keys=[reading_key(reading_id), QUEUED, RUNNING],
                args=[reading_id, owner or "", time.time()],
            )
        )
        return bool(reply)

    async def update(self, reading_id: str, *, owner: str | None = None, **fields: Any) -> bool:
        """Set ``fields`` (None deletes) of a queued or running reading; False if it is done,
        failed or missing, or (with ``owner``) claimed since by another execution."""
        fields["updated"] = time.time()
        reply = await call(
            self._update(keys=[reading_key(reading_id)], args=[owner or "", *_field_args(fields)])
        )
        return bool(reply)

    async def finish(self, reading_id: str, **fields: Any) -> bool:
        """Running -> done with ``fields`` (duration, bytes, etag, engine, listed, …): a
        compare-and-set, true for exactly one caller; any later call changes nothing."""
        finished = fields.pop("finished", None) or time.time()
        fields["updated"] = time.time()
        reply = await call(
            self._finish(
                keys=[reading_key(reading_id), RUNNING, FINISHED, LISTED],
                args=[reading_id, repr(float(finished)), *_field_args(fields)],
            )
        )
        return bool(reply)

    async def fail(
        self, reading_id: str, code: str, message: str, *, owner: str | None = None
    ) -> bool:
        """Queued or running -> failed with the error; False if it had ended already (or,
        with ``owner``, another execution claimed it since)."""
        reply = await call(
            self._fail(
                keys=[reading_key(reading_id), QUEUED, RUNNING],
                args=[reading_id, owner or "", code, message, time.time()],
            )
        )
        return bool(reply)

    async def finished(self, limit: int = 100, *, listed: bool = False) -> list[Row]:
        """The latest finished readings, newest first; with ``listed``, only the feed's."""
        if limit <= 0:
            return []
        ids = await call(self.redis.zrevrange(LISTED if listed else FINISHED, 0, limit - 1))
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for reading_id in ids:
                pipe.hgetall(reading_key(_text(cast(bytes | str, reading_id))))
            replies = await call(pipe.execute())
        rows = [_row(reply) for reply in replies]
        return [row for row in rows if row is not None and row.status == "done"]

    async def counts(self) -> dict[str, int]:
        """How many readings are queued and running, over the whole cluster."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.scard(QUEUED)
            pipe.scard(RUNNING)
            queued, running = await call(pipe.execute())
        return {"queued": int(queued), "running": int(running)}

    async def id_key(self) -> bytes:
        """The secret that keys the ids of posted text: made once by whichever node asks first
        (SET NX), then the same for every API node. Kept as hex text."""
        await call(self.redis.set(ID_KEY, secrets.token_hex(_KEY_BYTES), nx=True))
        stored = await call(self.redis.get(ID_KEY))
        try:
            key = bytes.fromhex(_text(stored or ""))
        except ValueError:
            key = b""
        if len(key) != _KEY_BYTES:
            raise StateError(
                f"the id key in Redis ({ID_KEY}) is damaged: delete it to make a new one "
                "(readings already made keep their links; posted text submitted again becomes "
                "a new reading)"
            )
        return key


__all__ = ["AudioCheck", "RedisState", "StateError", "reading_key"]
