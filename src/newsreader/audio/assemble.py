"""Join segment audio into one reading: frames and pauses, chapters, subtitle cues.

Times come from frame counts (24 ms each), so chapter marks and cue shifts are exact; nothing is
decoded or re-encoded. This module is the only place that joins pauses and times sentences:

- ``place`` turns one segment's audio into a ``RenderedSegment``: its bare frames, the pause that
  follows it, its sentences' times in the reading (clamped inside its audio) and the exact frame
  where it starts. The streaming render (``newsreader.pipeline.RenderStream``) yields these, in
  order, as they are ready: a live stream is each one's ``audio()`` in turn;
- an ``Assembler`` takes the same values one by one and makes the ``Reading``: the frames joined,
  the chapters, the subtitle cues. ``assemble`` does it all for a list of parts. Given a sink
  (an MP3 file being written, a pipe), it hands each segment's frames and pause to it at once
  and keeps only the ``Timeline``, so its memory does not grow with the audio.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from newsreader.audio.mp3 import bare_frames, silence
from newsreader.models import (
    FRAME_BYTES,
    FRAME_SECONDS,
    Chapter,
    Cue,
    Reading,
    Script,
    Segment,
    SegmentAudio,
    Timeline,
)

MAX_CUE_CHARS = 24
"""A sentence longer than this (non-space characters) is split into several cues at commas."""

_FRAME_MS = 24
_CLAUSE_ENDS = "，、；：,;:"
# Closing quotes and brackets stay with the clause they close.
_CLOSERS = "”’」』）)》〉】]"


@dataclass
class _Timed:
    """A cue under construction, in whole milliseconds."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class TimedSentence:
    """A sentence as the reader sees it, with its time in the reading, in whole milliseconds."""

    text: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, repr=False)
class RenderedSegment:
    """One segment of a reading, ready to be heard: an item of the streaming render.

    Plain values only (no engine, no file), so a worker can hand it to another process.
    """

    index: int
    """Its place in the script (``segment.index``)."""
    segment: Segment
    frames: bytes
    """Bare MP3 frames in edge's format (no ID3, no Info frame)."""
    pause_frames: int
    """Silent frames that follow it (``segment.pause``)."""
    sentences: tuple[TimedSentence, ...]
    """``segment.display``, each timed from the start of the reading, inside this audio."""
    start: int
    """The frame of the reading where its audio begins: exact."""

    @property
    def frame_count(self) -> int:
        return len(self.frames) // FRAME_BYTES

    @property
    def end(self) -> int:
        """The frame where the next segment begins (after this one's pause)."""
        return self.start + self.frame_count + self.pause_frames

    @property
    def seconds(self) -> float:
        """How long it lasts, pause included."""
        return (self.frame_count + self.pause_frames) * FRAME_SECONDS

    def audio(self) -> bytes:
        """Its frames and its pause: the bytes a live stream sends for it."""
        return self.frames + silence(self.pause_frames)

    def __repr__(self) -> str:
        return (
            f"RenderedSegment(index={self.index}, start={self.start}, "
            f"frames={self.frame_count}, pause_frames={self.pause_frames})"
        )


def place(segment: Segment, part: SegmentAudio, start: int) -> RenderedSegment:
    """``part`` (the audio of ``segment``) placed at frame ``start`` of the reading.

    Each sentence's engine timing is moved to the reading's clock and clamped inside the
    segment's audio. Raises ``SynthesisError`` if the audio is not in edge's format and
    ``ValueError`` if its timings do not match the segment's sentences.
    """
    if len(part.sentences) != len(segment.display):
        raise ValueError(
            f"segment {segment.index} has {len(segment.display)} sentences "
            f"but its audio has {len(part.sentences)} timings"
        )
    frames = bare_frames(part.mp3)
    offset_ms = start * _FRAME_MS
    length_ms = len(frames) // FRAME_BYTES * _FRAME_MS
    sentences = tuple(
        TimedSentence(
            text,
            offset_ms + min(max(round(timing.start * 1000), 0), length_ms),
            offset_ms + min(max(round(timing.end * 1000), 0), length_ms),
        )
        for timing, text in zip(part.sentences, segment.display, strict=True)
    )
    return RenderedSegment(segment.index, segment, frames, int(segment.pause), sentences, start)


FrameSink = Callable[[bytes], object]
"""Where an ``Assembler`` puts the audio as it comes: e.g. ``Mp3Writer.write``."""


class Assembler:
    """A reading built as its segments come: ``add`` each in script order, then ``finish``.

    Without ``sink``, the frames are kept and ``finish`` returns the ``Reading`` (tests, short
    uses). With ``sink``, each segment's frames and pause go to it as they are added, nothing
    of the audio is kept, and ``timeline`` says where everything is.
    """

    def __init__(self, script: Script, sink: FrameSink | None = None) -> None:
        self.script = script
        self._sink = sink
        self._chunks: list[bytes] = []
        self._starts: list[int] = []  # frame index where each segment's audio begins
        self._timed: list[_Timed] = []
        self.position = 0
        """Frames so far: where the next segment must start."""

    def add(self, rendered: RenderedSegment) -> None:
        expected = len(self._starts)
        if expected >= len(self.script.segments):
            raise ValueError(f"more audio parts than the script's {expected} segments")
        if rendered.index != expected or rendered.start != self.position:
            raise ValueError(
                f"segment {rendered.index} at frame {rendered.start} came where segment "
                f"{expected} at frame {self.position} belongs"
            )
        self._starts.append(rendered.start)
        self._timed.extend(_sentence_cues(rendered.sentences))
        if self._sink is None:
            self._chunks.append(rendered.frames)
            self._chunks.append(silence(rendered.pause_frames))
        else:
            self._sink(rendered.frames)
            self._sink(silence(rendered.pause_frames))
        self.position = rendered.end

    def timeline(self) -> Timeline:
        """Frame count, chapters, cues and segment starts of the whole reading (all added)."""
        if len(self._starts) != len(self.script.segments):
            raise ValueError(
                f"{len(self._starts)} audio parts for {len(self.script.segments)} segments"
            )
        return Timeline(
            frames=self.position,
            chapters=_chapters(self.script, self._starts, self.position),
            cues=_finish_cues(self._timed, self.position * FRAME_SECONDS),
            segment_starts=tuple(start * FRAME_SECONDS for start in self._starts),
        )

    def finish(self) -> Reading:
        """The reading with its audio joined in memory (an ``Assembler`` without a sink)."""
        if self._sink is not None:
            raise ValueError("the audio went to the sink: ask for the timeline() instead")
        timeline = self.timeline()
        return Reading(
            mp3=b"".join(self._chunks),
            chapters=timeline.chapters,
            cues=timeline.cues,
            segment_starts=timeline.segment_starts,
        )


def placed(script: Script, parts: Iterable[SegmentAudio]) -> Iterator[RenderedSegment]:
    """``parts[i]`` (the audio of ``script.segments[i]``) placed one after the other."""
    position = 0
    for segment, part in zip(script.segments, parts, strict=False):
        rendered = place(segment, part, position)
        position = rendered.end
        yield rendered


def assemble_segments(script: Script, segments: Iterable[RenderedSegment]) -> Reading:
    assembler = Assembler(script)
    for rendered in segments:
        assembler.add(rendered)
    return assembler.finish()


def assemble(script: Script, parts: Sequence[SegmentAudio]) -> Reading:
    """One MP3 stream for the script: each part's frames followed by its segment's pause.

    ``parts[i]`` is the audio of ``script.segments[i]``. Raises ``SynthesisError`` if a part is not
    in edge's format and ``ValueError`` if parts and segments do not match up.
    """
    if len(parts) != len(script.segments):
        raise ValueError(f"{len(parts)} audio parts for {len(script.segments)} segments")
    return assemble_segments(script, placed(script, parts))


def _chapters(script: Script, starts: Sequence[int], total: int) -> tuple[Chapter, ...]:
    """A chapter from its first segment to the next chapter's start (or the end)."""
    first: dict[int, int] = {}  # chapter index -> start frame, in order of appearance
    previous = 0
    for segment, start in zip(script.segments, starts, strict=True):
        if not 0 <= segment.chapter < len(script.chapters):
            raise ValueError(
                f"segment {segment.index} names chapter {segment.chapter}, "
                f"but the script has {len(script.chapters)}"
            )
        if segment.chapter < previous:
            raise ValueError(f"segment {segment.index} goes back to chapter {segment.chapter}")
        previous = segment.chapter
        first.setdefault(segment.chapter, start)

    marks = list(first.items())
    chapters: list[Chapter] = []
    for n, (index, start) in enumerate(marks):
        end = marks[n + 1][1] if n + 1 < len(marks) else total
        if end > start:  # a chapter whose segments hold no audio has nothing to point at
            chapters.append(
                Chapter(script.chapters[index], start * FRAME_SECONDS, end * FRAME_SECONDS)
            )
    return tuple(chapters)


def _sentence_cues(sentences: Sequence[TimedSentence]) -> Iterator[_Timed]:
    """Cues for one segment's placed sentences: long ones split at clause marks."""
    for sentence in sentences:
        start, end, text = sentence.start_ms, sentence.end_ms, sentence.text
        pieces = split_sentence(text)
        weights = [max(_char_count(piece), 1) for piece in pieces]
        total = sum(weights)
        done = 0
        piece_start = start
        for piece, weight in zip(pieces, weights, strict=True):
            done += weight
            # Time shared by character count: the best estimate inside a measured sentence.
            piece_end = start + round((end - start) * done / total)
            yield _Timed(piece_start, piece_end, piece)
            piece_start = piece_end


def _char_count(text: str) -> int:
    return sum(1 for char in text if not char.isspace())


def _clauses(text: str) -> list[str]:
    """Text cut after each clause mark (，、；：,;:), keeping the marks and closing quotes."""
    clauses: list[str] = []
    begin = 0
    i = 0
    while i < len(text):
        char = text[i]
        # "1,000" and "10:30" are numbers, not clauses.
        in_number = (
            char in ",:"
            and 0 < i < len(text) - 1
            and text[i - 1].isdigit()
            and text[i + 1].isdigit()
        )
        i += 1
        if char in _CLAUSE_ENDS and not in_number:
            while i < len(text) and (text[i] in _CLAUSE_ENDS or text[i] in _CLOSERS):
                i += 1
            clauses.append(text[begin:i])
            begin = i
    if begin < len(text):
        clauses.append(text[begin:])
    return clauses


def split_sentence(text: str, limit: int = MAX_CUE_CHARS) -> list[str]:
    """A sentence as one or more readable cue texts, cut only at clause marks.

    Uses as few pieces as the marks allow with every piece within ``limit`` where possible, and
    among those the most even split (so no tiny tail). A clause longer than ``limit`` stays whole.
    """
    text = text.strip()
    if _char_count(text) <= limit:
        return [text] if text else []
    clauses = _clauses(text)
    sizes = [_char_count(clause) for clause in clauses]
    # best[i] = (piece count, longest piece, -start of the last piece) for clauses[:i], smallest
    # first; on a tie the later cut wins, so the first pieces are the fuller ones. A piece may
    # exceed the limit only when it is a single clause.
    best: list[tuple[int, int, int]] = [(0, 0, 0)]
    for i in range(1, len(clauses) + 1):
        options: list[tuple[int, int, int]] = []
        size = 0
        for j in range(i - 1, -1, -1):
            size += sizes[j]
            if size > limit and j < i - 1:
                break
            count, longest, _ = best[j]
            options.append((count + 1, max(longest, size), -j))
        best.append(min(options))
    cuts: list[int] = []
    i = len(clauses)
    while i > 0:
        cuts.append(i)
        i = -best[i][2]
    cuts.append(0)
    cuts.reverse()
    texts = ["".join(clauses[a:b]).strip() for a, b in itertools.pairwise(cuts)]
    return [text for text in texts if text]


def _join(left: str, right: str) -> str:
    """Two cue texts as one: Chinese needs no space, Latin words do."""
    if left and right and left[-1].isascii() and right[0].isascii() and left[-1].isalnum():
        return f"{left} {right}"
    return left + right


def _finish_cues(timed: list[_Timed], total_seconds: float) -> tuple[Cue, ...]:
    """Cues in order, not overlapping, each at least 1 ms long, with no text lost.

    Engines' timings can overlap or collapse; a cue left with no time of its own joins the one
    before it (or, at the very start, the one after it).
    """
    kept: list[_Timed] = []
    carried = ""
    for cue in timed:
        text = cue.text.strip()
        if not text:
            continue
        start = max(cue.start, kept[-1].end) if kept else cue.start
        if cue.end > start:
            kept.append(_Timed(start, cue.end, _join(carried, text)))
            carried = ""
        elif kept:
            kept[-1].text = _join(kept[-1].text, text)
        else:
            carried = _join(carried, text)
    # Milliseconds are exact; seconds for the frame-aligned end of the audio can differ by a float
    # ulp, so no cue may end after the audio as Reading.duration reports it.
    return tuple(Cue(c.start / 1000, min(c.end / 1000, total_seconds), c.text) for c in kept)
