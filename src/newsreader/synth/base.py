"""The engine protocol every voice implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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
    """

    name: str

    def voice_id(self, settings: Settings) -> str:
        """The voice actually used for these settings (part of the cache key)."""
        ...

    async def synthesize(self, segment: Segment, settings: Settings) -> SegmentAudio: ...

    async def voices(self) -> list[Voice]: ...

    async def close(self) -> None: ...
