"""Audio out: a growing stream while a reading is synthesized, the finished file afterwards.

``LiveAudio`` holds the bytes assembled so far (segment frames and pause frames, in order,
exactly as ``assemble`` joins them) and wakes every listener when more arrive; any number of
listeners follow it from the start. A finished reading is served from its file with ``Range``
(one range), ``ETag`` and ``Content-Length``.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from newsreader.service.errors import ApiError

CHUNK = 455 * 144
"""About 64 KB, whole 144-byte frames."""
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class LiveAudio:
    """The audio of a reading in progress, as it is assembled."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._changed = asyncio.Condition()
        self.finished = False
        self.failed = False

    def __len__(self) -> int:
        return len(self._buffer)

    async def append(self, data: bytes) -> None:
        async with self._changed:
            self._buffer += data
            self._changed.notify_all()

    async def close(self, *, failed: bool = False) -> None:
        async with self._changed:
            self.finished = True
            self.failed = failed
            self._changed.notify_all()

    def snapshot(self) -> bytes:
        return bytes(self._buffer)

    async def follow(self, start: int = 0) -> AsyncIterator[bytes]:
        """Yield the bytes from ``start`` as they arrive, until the reading ends."""
        position = start
        while True:
            async with self._changed:
                while position >= len(self._buffer) and not self.finished:
                    await self._changed.wait()
                chunk = bytes(self._buffer[position : position + CHUNK])
                done = self.finished and position + len(chunk) >= len(self._buffer)
            if chunk:
                position += len(chunk)
                yield chunk
            if done:
                return


def live_response(live: LiveAudio) -> StreamingResponse:
    """Progressive MP3: no length (it is not known yet), no caching, no proxy buffering."""
    return StreamingResponse(
        live.follow(),
        media_type="audio/mpeg",
        headers={
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
            "Accept-Ranges": "none",
        },
    )


def _byte_range(header: str, size: int) -> tuple[int, int]:
    """``(start, end)`` (end exclusive) for one ``bytes=`` range, or ``ApiError`` 416."""
    match = _RANGE.match(header.strip())
    unsatisfiable = ApiError(
        416,
        "range_not_satisfiable",
        f"Range {header!r} does not fit the file's {size} bytes: use one range such as "
        "bytes=0-1023, bytes=1024- or bytes=-500.",
        headers={"Content-Range": f"bytes */{size}"},
    )
    if match is None or not (match.group(1) or match.group(2)):
        raise unsatisfiable
    first, last = match.groups()
    if first:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
        if last and int(last) < start:
            raise unsatisfiable
    else:
        length = int(last)
        if length == 0:
            raise unsatisfiable
        start, end = max(size - length, 0), size
    if start >= size:
        raise unsatisfiable
    return start, end


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


def file_response(
    request: Request, path: Path, *, etag: str, media_type: str, filename: str | None = None
) -> Response:
    """A finished file with ``ETag``, ``Content-Length`` and single-range ``Range`` support."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise ApiError(
            404, "audio_missing", "the reading's file is gone from the server: submit it again."
        ) from None
    quoted = f'"{etag}"'
    headers = {
        "ETag": quoted,
        "Accept-Ranges": "bytes",
        "Cache-Control": "public, max-age=3600",
    }
    if filename:
        headers["Content-Disposition"] = f"inline; filename*=UTF-8''{filename}"
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and quoted in [tag.strip() for tag in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if range_header and (if_range is None or if_range.strip() == quoted):
        start, end = _byte_range(range_header, size)
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        status = 206
    else:
        start, end = 0, size
        headers["Content-Length"] = str(size)
        status = 200
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(
        _read(path, start, end), status_code=status, headers=headers, media_type=media_type
    )
