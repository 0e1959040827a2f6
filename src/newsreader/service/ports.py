"""Where a running reading's live audio, progress and row go: the ``ReadingRunner``'s ports.

The embedded service (``readings``) and a scale-out worker (``scale.worker``) each give the
runner their own.
"""

from __future__ import annotations

from typing import Any, Protocol

from newsreader.audio.assemble import RenderedSegment
from newsreader.service.status import Progress


class LivePort(Protocol):
    """Where a running reading's live audio and progress go: in the embedded service a
    ``LiveReading`` and its spill file; in scale-out mode a Redis Stream any node can follow."""

    async def running(self) -> None:
        """The reading has started (its article is not loaded yet)."""

    async def scripted(self, progress: Progress) -> None:
        """The script is made: ``title``, ``total`` and the (untimed) ``sentences`` are known."""

    async def engine(self, progress: Progress) -> None:
        """The voice engine is chosen (``progress.engine``)."""

    async def segment(self, item: RenderedSegment, progress: Progress) -> bool:
        """Segment ``item.index``'s audio (``item.audio()``: its frames and its pause) follows
        the segments before it; ``progress`` has its sentences timed. A job run again after its
        worker was lost calls this again from index 0: a port that has an index keeps it and
        returns False (True: listeners got new audio)."""

    async def restart(self, progress: Progress, warning: str) -> None:
        """The reading starts again in another voice (``--fallback``): the audio so far is void."""

    async def done(self, progress: Progress) -> None:
        """The finished files are stored and the state is ``done``."""

    async def failed(self, code: str, message: str) -> None:
        """The reading failed; ``code`` and ``message`` say why."""


class StatePort(Protocol):
    """Where a reading's row goes: the SQLite ``JobStore`` (embedded) or Redis (scale-out)."""

    async def update(self, **fields: Any) -> None:
        """Set fields of the row: ``status="running"``, then ``title`` and ``total``."""

    async def finish(self, **fields: Any) -> bool:
        """Mark the row ``done`` with ``fields`` (duration, bytes, etag, engine, finished,
        listed, done); False if it is not this run's to finish (another run did it first)."""

    async def fail(self, code: str, message: str) -> bool:
        """Mark the row ``failed``; False if it is not this run's to fail (it ended already, or
        another run has claimed it since)."""


__all__ = [
    "LivePort",
    "StatePort",
]
