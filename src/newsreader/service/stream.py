"""Audio out: a growing stream while a reading is synthesized, the finished file afterwards.

``LiveAudio`` spills the bytes assembled so far (segment frames and pause frames, in order,
exactly as ``assemble`` joins them) to a file under ``--data``, and wakes every listener when more
arrive; any number of listeners follow that file from the start as it grows. Memory stays flat
however long the reading: only one chunk per listener is held at a time. When the reading ends
the spill file is removed (listeners already reading keep their open handle); a listener who
comes later is given the finished file instead. A finished reading is served from its file with
``Range`` (one range), ``ETag``, ``If-None-Match`` and ``Content-Length``; ``storage_response``
does the same for an object of a ``Storage`` (a local file, or proxied from S3).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from newsreader.errors import StorageError
from newsreader.service.errors import ApiError
from newsreader.service.head import HEAD_MARK

if TYPE_CHECKING:
    from newsreader.storage import Storage

T = TypeVar("T")

log = logging.getLogger("newsreader.service")

CHUNK = 455 * 144
"""About 64 KB, whole 144-byte frames."""
SPILL_SUFFIX = ".live.mp3"
"""A live reading's spill file is ``<id>.live.mp3`` in the live folder under ``--data``."""
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_HUGE = 10**18
"""Larger than any file: a range number longer than 18 digits is read as this."""


def clear_spills(folder: Path) -> int:
    """Remove the spill files a previous run left (its live readings are resumed from scratch)."""
    removed = 0
    for path in folder.glob(f"*{SPILL_SUFFIX}"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


class LiveAudio:
    """The audio of a reading in progress, spilled to ``path`` as it is assembled."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._length = 0
        self._changed = asyncio.Condition()
        self.finished = False
        self.failed = False
        self.final: Path | None = None
        """The finished file, for listeners who join after the spill file is gone."""

    def __len__(self) -> int:
        return self._length

    async def append(self, data: bytes) -> None:
        """Add ``data`` to the spill file (created on the first call, truncating a leftover)."""
        if self.finished:
            raise RuntimeError("the live audio is closed")
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "wb")  # noqa: SIM115  # closed by close()
        # Local, buffered writes of one segment: short enough to do on the event loop, and in
        # order with the length that listeners are told about.
        self._file.write(data)
        self._file.flush()
        async with self._changed:
            self._length += len(data)
            self._changed.notify_all()

    async def close(self, *, failed: bool = False, final: Path | None = None) -> None:
        """End the stream; ``final`` is the finished file that late listeners get instead."""
        async with self._changed:
            self.finished = True
            self.failed = failed
            self.final = None if failed else final
            self._changed.notify_all()
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path.unlink(missing_ok=True)

    async def follow(self) -> AsyncIterator[bytes]:
        """Yield the bytes from the start as they arrive, until the reading ends."""
        position = 0
        handle: BinaryIO | None = None
        try:
            while True:
                async with self._changed:
                    while position >= self._length and not self.finished:
                        await self._changed.wait()
                    length, finished = self._length, self.finished
                if position < length:
                    if handle is None:
                        # No await since the length was read: close() cannot have run between.
                        try:
                            handle = open(self.path, "rb")  # noqa: SIM115  # closed below
                        except FileNotFoundError:
                            break  # the reading has ended and its spill file is gone
                    handle.seek(position)
                    chunk = handle.read(min(CHUNK, length - position))
                    if not chunk:
                        log.warning("live audio %s ended early at %d bytes", self.path, position)
                        return
                    position += len(chunk)
                    yield chunk
                    continue
                if finished:
                    return
        finally:
            if handle is not None:
                handle.close()
        # Joined too late for the spill file: the finished file has the same audio.
        if self.final is not None and position == 0:
            try:
                size = os.stat(self.final).st_size
            except FileNotFoundError:
                return
            async for chunk in _read(self.final, 0, size):
                yield chunk


def _is_head(request: Request) -> bool:
    return request.method == "HEAD" or bool(request.scope.get(HEAD_MARK))


def live_response(
    request: Request, live: LiveAudio | Callable[[], AsyncIterator[bytes]]
) -> Response:
    """Progressive MP3: no length (it is not known yet), no caching, no proxy buffering.

    ``live``: the reading's ``LiveAudio``, or what makes its bytes (a cluster's Redis Stream)."""
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no", "Accept-Ranges": "none"}
    if _is_head(request):
        response = Response(media_type="audio/mpeg", headers=headers)
        del response.headers["content-length"]  # the length is not known, as for GET
        return response
    body = live.follow() if isinstance(live, LiveAudio) else live()
    return StreamingResponse(body, media_type="audio/mpeg", headers=headers)


def _number(digits: str) -> int:
    """A range number; past 18 digits it is bigger than any file (and int() would refuse it)."""
    return int(digits) if len(digits) <= 18 else _HUGE


def _byte_range(header: str, size: int) -> tuple[int, int]:
    """``(start, end)`` (end exclusive) for one ``bytes=`` range, or ``ApiError`` 416."""
    match = _RANGE.match(header.strip())
    unsatisfiable = ApiError(
        416,
        "range_not_satisfiable",
        f"Range {header[:60]!r} does not fit the file's {size} bytes: use one range such as "
        "bytes=0-1023, bytes=1024- or bytes=-500.",
        headers={"Content-Range": f"bytes */{size}"},
    )
    if match is None or not (match.group(1) or match.group(2)):
        raise unsatisfiable
    first, last = match.groups()
    if first:
        start = _number(first)
        end = min(_number(last) + 1, size) if last else size
        if last and _number(last) < start:
            raise unsatisfiable
    else:
        length = _number(last)
        if length == 0:
            raise unsatisfiable
        start, end = max(size - length, 0), size
    if start >= size:
        raise unsatisfiable
    return start, end


def _none_match(header: str, etag: str) -> bool:
    """RFC 9110 13.1.2: ``*`` matches any current file; tags compare weakly (``W/`` ignored)."""
    tags = [tag.strip() for tag in header.split(",")]
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


async def _read(path: Path, start: int, end: int) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as file:
        await file.seek(start)
        remaining = end - start
        while remaining > 0:
            chunk = await file.read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def _answer(
    request: Request, size: int, etag: str, filename: str | None
) -> tuple[int, dict[str, str], int, int] | Response:
    """Status, headers and byte span (end exclusive) for a finished object of ``size`` bytes, or
    the 304 response; ``ApiError`` 416 for a range that does not fit."""
    quoted = f'"{etag}"'
    headers = {
        "ETag": quoted,
        "Accept-Ranges": "bytes",
        "Cache-Control": "public, max-age=3600",
    }
    if filename:
        headers["Content-Disposition"] = f"inline; filename*=UTF-8''{filename}"
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and _none_match(if_none_match, quoted):
        return Response(status_code=304, headers=headers)
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if range_header and (if_range is None or if_range.strip() == quoted):
        start, end = _byte_range(range_header, size)
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        return 206, headers, start, end
    headers["Content-Length"] = str(size)
    return 200, headers, 0, size


def _missing() -> ApiError:
    return ApiError(
        404, "audio_missing", "the reading's file is gone from the server: submit it again."
    )


def file_response(
    request: Request, path: Path, *, etag: str, media_type: str, filename: str | None = None
) -> Response:
    """A finished file with ``ETag``, ``Content-Length`` and single-range ``Range`` support."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise _missing() from None
    answer = _answer(request, size, etag, filename)
    if isinstance(answer, Response):
        return answer
    status, headers, start, end = answer
    if _is_head(request):
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(
        _read(path, start, end), status_code=status, headers=headers, media_type=media_type
    )


async def storage_response(
    request: Request,
    storage: Storage,
    key: str,
    media_type: str,
    *,
    etag: str | None = None,
    filename: str | None = None,
    limiter: anyio.CapacityLimiter | None = None,
) -> Response:
    """The object ``key`` of ``storage``, as ``file_response`` serves a file: ``ETag``,
    ``If-None-Match`` (304, ``*``), one ``Range`` (206/416), ``HEAD``.

    ``etag`` is the tag to send (e.g. the one recorded for the reading); by default the
    object's own. A local file (directory backend) goes through ``file_response``; an object in
    S3 is proxied, fetched by ranged GETs chunk by chunk while the client reads (never a
    redirect: the page's CSP allows media only from 'self'). The storage's blocking calls run
    in threads (``limiter``: anyio's default one if None). A missing object is 404
    ``audio_missing``; a storage that cannot be reached is 503 ``storage_unavailable``.
    """

    async def blocking(function: Callable[..., T], *args: object) -> T:
        try:
            # abandoned if the request is cancelled (a caller's deadline on a silent store)
            return await anyio.to_thread.run_sync(
                function, *args, limiter=limiter, abandon_on_cancel=True
            )
        except StorageError as error:
            raise ApiError(503, error.code, error.message) from None

    path = await blocking(storage.local_path, key)
    if path is not None and etag is not None:
        return file_response(request, path, etag=etag, media_type=media_type, filename=filename)
    found = await blocking(storage.stat, key)
    if found is None:
        raise _missing()
    if path is not None:
        return file_response(
            request, path, etag=found.etag, media_type=media_type, filename=filename
        )
    answer = _answer(request, found.size, etag or found.etag, filename)
    if isinstance(answer, Response):
        return answer
    status, headers, start, end = answer
    if _is_head(request) or start >= end:
        return Response(status_code=status, headers=headers, media_type=media_type)
    chunks = await blocking(storage.read_range, key, start, end - 1)
    return StreamingResponse(
        _pull(chunks, key, limiter), status_code=status, headers=headers, media_type=media_type
    )


async def _pull(
    chunks: Iterator[bytes], key: str, limiter: anyio.CapacityLimiter | None
) -> AsyncIterator[bytes]:
    """The chunks of a blocking iterator, each fetched in a thread; closed at the end, also
    when the client goes away. A storage failure mid-way ends the body early (logged): the
    client sees fewer bytes than the ``Content-Length`` it was promised."""
    try:
        while True:
            try:
                chunk = await anyio.to_thread.run_sync(next, chunks, None, limiter=limiter)
            except StorageError as error:
                log.warning("serving %s stopped: %s", key, error.message)
                return
            if chunk is None:
                return
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(close, limiter=limiter)
