"""Write a reading's MP3 as its segments come: memory stays flat however long the reading.

Frames are final when they arrive (``audio/assemble``), so they go out at once:

- ``Mp3Writer`` appends them to a temporary *body* file beside the output. At the end the
  finishing step may rework the body in place (``Finisher``), then the final file is written as
  the tag (chapters, whose times are known only now), the Info frame (the frame count) and the
  body copied in chunks, under a second temporary name renamed into place (``atomic_write``, so
  inside ``written_together()`` it lands with its subtitles or not at all). Nothing is left
  behind on failure: the body is removed whatever happens.
- ``PipeWriter`` sends them to a pipe (``read -o -``) after a minimal tag (the title): a player
  starts on the first segment. There is no Info frame (the count is not known when the stream
  starts) and no chapters in the stream.

Both are ``AudioSink``s for ``pipeline.render_to``: ``write`` (from the ``Assembler``),
``drain`` after each segment, ``restart`` when the reading starts again in another voice.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Protocol

from newsreader.audio.atomic import atomic_write, output_error, temporary_name
from newsreader.audio.mp3 import info_frame
from newsreader.errors import OutputError
from newsreader.models import FRAME_BYTES, Chapter

if TYPE_CHECKING:  # the tags (mutagen) are made at the end: read starts without them
    from newsreader.audio.tags import Tags

COPY_CHUNK = 1 << 20
"""Bytes of the body read at a time when the final file is written behind the tag."""


class AudioSink(Protocol):
    """Where a streaming render puts a reading's audio as it comes."""

    def write(self, data: bytes) -> None:
        """Append frames (whole 144-byte frames)."""

    async def drain(self) -> None:
        """Called after each segment: send on what ``write`` took, without blocking the loop."""

    def restart(self) -> None:
        """What was written is void: the reading starts again from its first segment."""


@dataclass(frozen=True)
class Body:
    """A finished reading's audio before its tag is put in front: bare frames in a file."""

    path: Path
    frames: int


Finisher = Callable[[Body, "Tags"], "Tags"]
"""The finishing step: runs on the complete body before the tag goes in front of it.

It may rewrite frames in place (the same number of bytes: e.g. each frame's ``global_gain`` for
a loudness gain) and returns the tags to write (e.g. with ``replaygain`` set).
"""


class Mp3Writer:
    """One MP3 file written as its frames come: ``write`` them, then ``finish`` (or leave the
    ``with`` block by an exception: then nothing is left, and an existing file is untouched).

    The folder of ``path`` must exist. Raises ``OutputError`` when the body or the file cannot
    be written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.body = temporary_name(path)
        self._written = 0
        try:
            fd = os.open(self.body, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            raise output_error(path, error) from error
        self._file: BinaryIO | None = os.fdopen(fd, "wb")

    @property
    def frames(self) -> int:
        return self._written // FRAME_BYTES

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise ValueError(f"the MP3 writer of {self.path} is closed")
        try:
            self._file.write(data)
        except OSError as error:
            self.discard()
            raise output_error(self.path, error) from error
        self._written += len(data)

    async def drain(self) -> None:
        """Nothing to do: the file takes each write at once."""

    def restart(self) -> None:
        if self._file is None:
            raise ValueError(f"the MP3 writer of {self.path} is closed")
        self._file.seek(0)
        self._file.truncate()
        self._written = 0

    def finish(
        self, chapters: Sequence[Chapter], tags: Tags, finisher: Finisher | None = None
    ) -> int:
        """Put the tag and the Info frame in front of the body, at ``path``; the file's size.

        ``finisher`` runs on the complete body first (see ``Finisher``). Inside
        ``written_together()`` the file is complete under its temporary name when this returns
        and lands with the others at the end of the block.
        """
        if self._file is None:
            raise ValueError(f"the MP3 writer of {self.path} is closed")
        if self._written % FRAME_BYTES:
            raise ValueError(f"{self._written} bytes of audio is not a whole number of frames")
        try:
            try:
                self._file.close()
            except OSError as error:  # the last buffered bytes could not be written
                raise output_error(self.path, error) from error
            self._file = None
            frames = self.frames
            if finisher is not None:
                tags = finisher(Body(self.body, frames), tags)
                size = self.body.stat().st_size
                if size != self._written:
                    raise ValueError(
                        f"the finishing step changed the audio's size ({self._written} → {size})"
                    )
            from newsreader.audio.tags import chapter_tag

            head = chapter_tag(chapters, tags) + (info_frame(frames) if frames else b"")
            atomic_write(self.path, self._chunks(head))
            return len(head) + self._written
        finally:
            self.discard()

    def _chunks(self, head: bytes) -> Iterator[bytes]:
        yield head
        with open(self.body, "rb") as body:
            while chunk := body.read(COPY_CHUNK):
                yield chunk

    def discard(self) -> None:
        """Remove the body (it is never needed once the writer is done)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        with contextlib.suppress(OSError):
            self.body.unlink()

    def __enter__(self) -> Mp3Writer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.discard()


class PipeClosed(Exception):
    """The reader of the pipe went away (the player quit): nobody is listening any more."""


class PipeWriter:
    """A reading streamed to a pipe (standard output) as its segments come.

    The stream starts with a minimal ID3v2.3 tag (the title alone), then the frames: no Info
    frame, since the count is not known yet. Each segment is sent in a worker thread, so a
    player that reads slowly holds back the stream, never the synthesis in flight.
    ``PipeClosed`` when the reader has gone; ``OutputError`` for another failure to write.
    """

    def __init__(self, stream: BinaryIO, title: str | None = None) -> None:
        from newsreader.audio.tags import title_tag

        self.stream = stream
        self._pending = bytearray(title_tag(title) if title else b"")
        self._written = 0

    @property
    def frames(self) -> int:
        return self._written // FRAME_BYTES

    def write(self, data: bytes) -> None:
        self._pending += data
        self._written += len(data)

    async def drain(self) -> None:
        if not self._pending:
            return
        data = bytes(self._pending)
        self._pending.clear()
        await asyncio.to_thread(self._send, data)

    def _send(self, data: bytes) -> None:
        try:
            self.stream.write(data)
            self.stream.flush()
        except BrokenPipeError:
            raise PipeClosed from None
        except OSError as error:
            if error.errno in (errno.EPIPE, errno.ECONNRESET):
                raise PipeClosed from None
            reason = error.strerror or type(error).__name__
            raise OutputError(f"cannot write to standard output: {reason}.") from None

    def restart(self) -> None:
        raise ValueError("audio already sent to a pipe cannot be taken back")
