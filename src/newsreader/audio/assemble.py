"""Join segment audio into one reading: frames and pauses, chapters, subtitle cues.

Times come from frame counts (24 ms each), so chapter marks and cue shifts are exact; nothing is
decoded or re-encoded.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
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


def assemble(script: Script, parts: Sequence[SegmentAudio]) -> Reading:
    """One MP3 stream for the script: each part's frames followed by its segment's pause.

    ``parts[i]`` is the audio of ``script.segments[i]``. Raises ``SynthesisError`` if a part is not
    in edge's format and ``ValueError`` if parts and segments do not match up.
    """
    segments = script.segments
    if len(parts) != len(segments):
        raise ValueError(f"{len(parts)} audio parts for {len(segments)} segments")

    chunks: list[bytes] = []
    starts: list[int] = []  # frame index where each segment's audio begins
    timed: list[_Timed] = []
    position = 0
    for segment, part in zip(segments, parts, strict=True):
        frames = bare_frames(part.mp3)
        count = len(frames) // FRAME_BYTES
        starts.append(position)
        timed.extend(_sentence_cues(segment, part, position * _FRAME_MS, count * _FRAME_MS))
        chunks.append(frames)
        chunks.append(silence(segment.pause))
        position += count + segment.pause

    return Reading(
        mp3=b"".join(chunks),
        chapters=_chapters(script, starts, position),
        cues=_finish_cues(timed, position * FRAME_SECONDS),
        segment_starts=tuple(start * FRAME_SECONDS for start in starts),
    )


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


def _sentence_cues(
    segment: Segment, part: SegmentAudio, offset_ms: int, length_ms: int
) -> Iterator[_Timed]:
    """Cues for one part's sentences, shifted to ``offset_ms`` and kept inside its audio."""
    if len(part.sentences) != len(segment.display):
        raise ValueError(
            f"segment {segment.index} has {len(segment.display)} sentences "
            f"but its audio has {len(part.sentences)} timings"
        )
    for timing, text in zip(part.sentences, segment.display, strict=True):
        start = offset_ms + min(max(round(timing.start * 1000), 0), length_ms)
        end = offset_ms + min(max(round(timing.end * 1000), 0), length_ms)
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
