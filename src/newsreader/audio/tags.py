"""The final MP3: one ID3v2.3 tag (metadata and chapters) in front of the joined frames."""

# mutagen ships py.typed, but its frame classes and ID3.add have no annotations.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from mutagen.id3 import (
    CHAP,
    COMM,
    CTOC,
    ID3,
    TALB,
    TDAT,
    TIME,
    TIT2,
    TLAN,
    TPE1,
    TYER,
    WOAS,
    CTOCFlags,
    Encoding,
)

from newsreader.audio.atomic import atomic_write
from newsreader.models import Reading

# ID3v2.3 has no UTF-8; UTF-16 with a BOM is what v2.3 readers expect for Chinese text.
_TEXT = Encoding.UTF16
_NO_OFFSET = 0xFFFFFFFF
"""CHAP byte offsets unused: players seek by time."""


@dataclass(frozen=True)
class Tags:
    """What the MP3's tag says about the reading."""

    title: str
    artist: str | None = None
    """The site or source the article comes from."""
    album: str | None = None
    date: datetime | None = None
    """The article's date, written as its own wall-clock time (ID3v2.3 has no time zones)."""
    language: str = "chi"
    """ISO 639-2 code."""
    url: str | None = None
    comment: str | None = None


def id3_tag(reading: Reading, tags: Tags) -> bytes:
    """The ID3v2.3 tag bytes, chapters included, to put in front of ``reading.mp3``."""
    tag = ID3()
    tag.add(TIT2(encoding=_TEXT, text=[tags.title]))
    if tags.artist:
        tag.add(TPE1(encoding=_TEXT, text=[tags.artist]))
    if tags.album:
        tag.add(TALB(encoding=_TEXT, text=[tags.album]))
    if tags.date is not None:
        # v2.3's date frames (v2.4's TDRC does not exist there): year, DDMM and HHMM.
        when = tags.date
        tag.add(TYER(encoding=_TEXT, text=[f"{when.year:04d}"]))
        tag.add(TDAT(encoding=_TEXT, text=[f"{when.day:02d}{when.month:02d}"]))
        if when.hour or when.minute:  # midnight almost always means "date only"
            tag.add(TIME(encoding=_TEXT, text=[f"{when.hour:02d}{when.minute:02d}"]))
    tag.add(TLAN(encoding=_TEXT, text=[tags.language]))
    if tags.url:
        tag.add(WOAS(url=_ascii_url(tags.url)))
    if tags.comment:
        tag.add(
            COMM(encoding=_TEXT, lang=_language_code(tags.language), desc="", text=[tags.comment])
        )

    # Chapters in time order: some players list them in tag order, not by their times.
    chapters = sorted(reading.chapters, key=lambda chapter: chapter.start)
    ids = [f"chp{n}" for n in range(len(chapters))]
    for element_id, chapter in zip(ids, chapters, strict=True):
        tag.add(
            CHAP(
                element_id=element_id,
                start_time=round(chapter.start * 1000),
                end_time=round(chapter.end * 1000),
                start_offset=_NO_OFFSET,
                end_offset=_NO_OFFSET,
                sub_frames=[TIT2(encoding=_TEXT, text=[chapter.title])],
            )
        )
    if ids:
        tag.add(
            CTOC(
                element_id="toc",
                flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
                child_element_ids=ids,
                sub_frames=[TIT2(encoding=_TEXT, text=[tags.title])],
            )
        )

    buffer = io.BytesIO()
    tag.save(buffer, v2_version=3)
    return buffer.getvalue()


def mp3_bytes_with_tags(reading: Reading, tags: Tags) -> bytes:
    """The complete MP3 file: tag, then frames (a copy of the frames: ``write_mp3`` makes none)."""
    return id3_tag(reading, tags) + reading.mp3


def write_mp3(path: Path, reading: Reading, tags: Tags) -> None:
    """Write the tagged MP3 atomically: ``path`` never holds a partial or untagged file.

    The tag and the frames are written one after the other, never joined: an hour of audio is
    21.6 MB, and a joined copy would double the peak memory of writing it.

    Raises ``OutputError`` when it cannot be written; an existing file is then left as it was.
    """
    atomic_write(path, (id3_tag(reading, tags), reading.mp3))


def _language_code(language: str) -> str:
    """COMM needs exactly three ASCII letters; ``xxx`` is ID3's "unknown"."""
    code = language.strip().lower()
    return code if len(code) == 3 and code.isascii() and code.isalpha() else "xxx"


def _ascii_url(url: str) -> str:
    """URL frames are Latin-1 only: IDNA for a non-ASCII host, percent-escapes for the rest."""
    if url.isascii():
        return url
    # Keep reserved characters and existing escapes; escape only what is not ASCII.
    safe = "/:?#[]@!$&'()*+,;=%~"
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        host = parts.hostname
        if host and not host.isascii():
            port = f":{parts.port}" if parts.port is not None else ""
            user, at, _ = netloc.rpartition("@")
            netloc = f"{user}{at}{host.encode('idna').decode('ascii')}{port}"
        return urlunsplit(
            (
                parts.scheme,
                quote(netloc, safe=safe),
                quote(parts.path, safe=safe),
                quote(parts.query, safe=safe),
                quote(parts.fragment, safe=safe),
            )
        )
    except (ValueError, UnicodeError):  # a malformed URL: escape it whole rather than fail
        return quote(url, safe=safe)
