"""The engine protocol every voice implements."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from newsreader.config import Settings
from newsreader.models import Segment, SegmentAudio


@dataclass(frozen=True)
class Voice:
    short_name: str
    locale: str
    gender: str
    engine: str
    description: str = ""


class Engine(Protocol):
    """A voice that turns one segment's text into MP3 frames in edge's format.

    ``synthesize`` makes exactly one attempt and raises ``SynthesisError`` subclasses; a failure a
    retry may fix is a ``TransientError`` (the scheduler owns retries, back-off and concurrency).
    The returned audio is bare MP3 frames in edge's format (no ID3, no Xing/Info frame) with one
    ``SentenceTiming`` per ``segment.sentences`` entry.

    An engine that talks to a service reports how each request is going through the
    ``Progress`` in ``REQUEST_PROGRESS`` (when the scheduler set one): ``begin()`` as the request
    sets off, ``accept()`` when the service has taken its connection (the websocket handshake
    done: a service that refuses for load, HTTP 429, says so there), ``heard()`` at every message
    of the answer, and ``audio(chunk)`` with the bytes of every audio message, in order (a level
    meter measures them as they come). The scheduler tells a stalled request from a slow one by
    that, and knows a connection above the proven level went through at ``accept()`` (see
    ``newsreader.synth.scheduler``); an engine that reports nothing is never judged stalled, and
    its requests count as taken when they are answered.
    """

    name: str

    def voice_id(self, settings: Settings) -> str:
        """The voice actually used for these settings (part of the cache key)."""
        ...

    async def synthesize(self, segment: Segment, settings: Settings) -> SegmentAudio: ...

    async def voices(self) -> list[Voice]: ...

    async def close(self) -> None: ...


class Progress:
    """How one engine request is going: when it set off, when the service took its connection,
    when the service first answered, and when it last sent anything (``time.monotonic()``
    seconds)."""

    def __init__(
        self,
        on_first: Callable[[float], None] | None = None,
        on_accepted: Callable[[], None] | None = None,
    ) -> None:
        self.started: float | None = None
        """Set by ``begin()``: None while the engine reports nothing (or has not set off)."""
        self.accepted: float | None = None
        """Set by ``accept()``: when the service took the connection (its handshake done)."""
        self.on_accepted = on_accepted
        """Called once, when the service took the connection."""
        self.first: float | None = None
        """When the first message of the answer came."""
        self.last: float | None = None
        """When the last message came (``started`` before the first)."""
        self.longest_gap = 0.0
        """The longest silence between two messages of the answer so far."""
        self.on_first = on_first
        """Called once, with the seconds from ``begin()`` to the first message."""
        self.on_audio: Callable[[bytes], None] | None = None
        """Called with the bytes of each audio message of the answer, in order."""

    def begin(self) -> None:
        self.started = self.last = time.monotonic()

    def accept(self) -> None:
        """The service took the request's connection (it answers later: not a message)."""
        if self.accepted is None:
            self.accepted = time.monotonic()
            if self.on_accepted is not None:
                self.on_accepted()

    def heard(self) -> None:
        now = time.monotonic()
        if self.started is None:
            self.started = now
        if self.first is None:
            self.first = now
            if self.on_first is not None:
                self.on_first(now - self.started)
        elif self.last is not None:
            self.longest_gap = max(self.longest_gap, now - self.last)
        self.last = now

    def audio(self, chunk: bytes) -> None:
        """The bytes of one audio message of the answer (after its ``heard()``)."""
        if self.on_audio is not None:
            self.on_audio(chunk)


class AudioStream(Protocol):
    """One request's audio, told as it arrives: ``feed`` each chunk, then either ``complete``
    with the segment's audio when the request's answer is the one used, or ``drop`` (hung up,
    failed, or a copy whose answer was not used)."""

    def feed(self, chunk: bytes) -> None: ...

    def complete(self, mp3: bytes) -> None: ...

    def drop(self) -> None: ...


@runtime_checkable
class AudioListener(Protocol):
    """Told each segment's audio: a segment that comes whole (from the cache, or from an engine
    that does not stream) by a call, a request's as it streams in by an ``AudioStream`` from
    ``stream()`` (one per request)."""

    def __call__(self, mp3: bytes) -> None: ...

    def stream(self) -> AudioStream: ...


REQUEST_PROGRESS: contextvars.ContextVar[Progress | None] = contextvars.ContextVar(
    "newsreader_request_progress", default=None
)
"""The ``Progress`` of the engine request being made in this task, if the scheduler watches it."""
