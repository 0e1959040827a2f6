"""Subtitles from a reading's cues: WebVTT (podcast transcripts, browsers) and SRT (players)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from newsreader.audio.atomic import atomic_write
from newsreader.errors import UsageError
from newsreader.models import Cue


def _timestamp(seconds: float, separator: str) -> str:
    if seconds < 0:
        raise ValueError(f"a cue time cannot be negative: {seconds}")
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _lines(text: str) -> str:
    """Cue text without blank lines, which would end the cue early in both formats."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def _escape_vtt(text: str) -> str:
    # WebVTT cue text is markup: & and < start entities and tags, and "-->" is not allowed.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(cues: Sequence[Cue]) -> str:
    """A WebVTT document (``HH:MM:SS.mmm --> HH:MM:SS.mmm`` timings)."""
    blocks = ["WEBVTT\n"]
    for cue in cues:
        timing = f"{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}"
        blocks.append(f"{timing}\n{_escape_vtt(_lines(cue.text))}\n")
    return "\n".join(blocks)


def to_srt(cues: Sequence[Cue]) -> str:
    """An SRT document (1-based numbers, ``HH:MM:SS,mmm`` timings)."""
    blocks = []
    for number, cue in enumerate(cues, start=1):
        timing = f"{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}"
        blocks.append(f"{number}\n{timing}\n{_lines(cue.text)}\n")
    return "\n".join(blocks)


def write_subtitles(path: Path, cues: Sequence[Cue]) -> None:
    """Write ``cues`` as WebVTT or SRT, chosen by the suffix, atomically and in UTF-8.

    Raises ``UsageError`` for another suffix and ``OutputError`` when the file cannot be written.
    """
    suffix = path.suffix.lower()
    if suffix == ".vtt":
        text = to_vtt(cues)
    elif suffix == ".srt":
        text = to_srt(cues)
    else:
        raise UsageError(f"subtitles must end in .vtt or .srt, not {path.name!r}.")
    atomic_write(path, text.encode("utf-8"))
