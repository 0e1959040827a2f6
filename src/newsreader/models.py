"""Typed values that flow between the pipeline's stages (all frozen).

source ─► Article ─► Script(Segment…) ─► SegmentAudio… ─► Reading (MP3 + chapters + cues)
                                                          or Timeline (audio written as it came)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

# Edge's output format, which every engine's audio is brought to: MPEG-2 Layer III, 24 kHz, mono,
# 48 kbit/s CBR. One frame is 144 bytes and 576 samples, i.e. exactly 24 ms.
FRAME_BYTES = 144
FRAME_SECONDS = 0.024


class BlockKind(enum.StrEnum):
    HEADING = "heading"
    PARAGRAPH = "paragraph"


@dataclass(frozen=True)
class Block:
    """One heading or paragraph of an article's body, in reading order."""

    kind: BlockKind
    text: str


@dataclass(frozen=True)
class Article:
    """What extraction found: the headline and the body, nothing else."""

    title: str
    blocks: tuple[Block, ...]
    source: str = ""
    """Where it came from: a URL, a file path or ``-`` for standard input."""
    site: str | None = None
    published: datetime | None = None
    notes: tuple[str, ...] = ()
    """Things the reader should know (text dropped as unrecoverable, ...), shown on stderr."""

    @property
    def paragraphs(self) -> tuple[str, ...]:
        return tuple(b.text for b in self.blocks if b.kind is BlockKind.PARAGRAPH)

    @property
    def headings(self) -> tuple[str, ...]:
        return tuple(b.text for b in self.blocks if b.kind is BlockKind.HEADING)


class Pause(enum.IntEnum):
    """Silence after a segment, in 24 ms frames: sentence < paragraph < heading."""

    SENTENCE = 10  # 0.24 s
    PARAGRAPH = 30  # 0.72 s
    HEADING = 45  # 1.08 s
    END = 0


class SegmentKind(enum.StrEnum):
    TITLE = "title"
    HEADING = "heading"
    BODY = "body"


@dataclass(frozen=True)
class Segment:
    """One request to a voice engine: whole sentences, well under the engine's size limit."""

    index: int
    text: str
    """The text exactly as sent to the engine: ``"".join(sentences)``."""
    sentences: tuple[str, ...]
    """Spoken sentences: normalized for speech, in the voice's script (简/繁)."""
    display: tuple[str, ...]
    """The same sentences as a reader sees them (voice's script, not normalized); for subtitles."""
    kind: SegmentKind
    block: int
    """Index of the article block it comes from; -1 for the title."""
    chapter: int
    """Index into ``Script.chapters``."""
    pause: Pause


@dataclass(frozen=True)
class Script:
    """The article as it will be spoken."""

    title: str
    segments: tuple[Segment, ...]
    chapters: tuple[str, ...]
    """Chapter titles; segment.chapter indexes this."""
    article: Article


@dataclass(frozen=True)
class SentenceTiming:
    """A sentence's place in a piece of audio, in seconds from the audio's start.

    Engines return exactly one per ``Segment.sentences`` entry, in order.
    """

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class SegmentAudio:
    """A segment's synthesized audio: bare MP3 frames in edge's format, plus measured timings."""

    mp3: bytes
    sentences: tuple[SentenceTiming, ...]

    @property
    def frames(self) -> int:
        return len(self.mp3) // FRAME_BYTES

    @property
    def duration(self) -> float:
        return self.frames * FRAME_SECONDS


@dataclass(frozen=True)
class Chapter:
    title: str
    start: float
    end: float


@dataclass(frozen=True)
class Cue:
    """One subtitle cue."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Timeline:
    """Where everything is in a reading whose audio went elsewhere (a file, a pipe): its frame
    count, chapters, cues and segment starts. Small, whatever the length of the audio."""

    frames: int
    chapters: tuple[Chapter, ...]
    cues: tuple[Cue, ...]
    segment_starts: tuple[float, ...] = field(default=())

    @property
    def duration(self) -> float:
        return self.frames * FRAME_SECONDS

    def shifted(self, before: int, after: int = 0) -> Timeline:
        """The timeline with ``before`` frames (an intro) in front and ``after`` frames (an
        outro) behind: every chapter, cue and segment start moves by ``before`` frames."""
        if not before and not after:
            return self
        by = before * FRAME_SECONDS
        return Timeline(
            self.frames + before + after,
            tuple(Chapter(c.title, c.start + by, c.end + by) for c in self.chapters),
            tuple(Cue(c.start + by, c.end + by, c.text) for c in self.cues),
            tuple(start + by for start in self.segment_starts),
        )


@dataclass(frozen=True)
class Reading:
    """The assembled result in memory: one MP3 stream (no tags yet) with its chapters and cues."""

    mp3: bytes
    chapters: tuple[Chapter, ...]
    cues: tuple[Cue, ...]
    segment_starts: tuple[float, ...] = field(default=())

    @property
    def duration(self) -> float:
        return (len(self.mp3) // FRAME_BYTES) * FRAME_SECONDS

    @property
    def timeline(self) -> Timeline:
        frames = len(self.mp3) // FRAME_BYTES
        return Timeline(frames, self.chapters, self.cues, self.segment_starts)
