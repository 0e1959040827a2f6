"""The final MP3: one ID3v2.3 tag (metadata, chapters, cover), one Info frame, then the frames.

Every MP3 newsreader writes (``read``, feed episodes, the service's finished files) goes through
``write_mp3``: the Info frame gives players the exact duration and a seek table without scanning
the file, and the frame count stays exact (the Info frame is metadata, not audio).
"""

# mutagen ships py.typed, but its frame classes and ID3.add have no annotations.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from mutagen.id3 import (
    APIC,
    CHAP,
    COMM,
    CTOC,
    ID3,
    TALB,
    TCON,
    TDAT,
    TIME,
    TIT2,
    TLAN,
    TPE1,
    TYER,
    WOAS,
    CTOCFlags,
    Encoding,
    Frame,
    PictureType,
)

from newsreader.audio.atomic import atomic_write
from newsreader.audio.mp3 import info_frame
from newsreader.audio.replaygain import ReplayGain, replaygain_frames
from newsreader.models import FRAME_BYTES, Chapter, Reading

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
    genre: str | None = None
    cover: bytes | None = None
    """Front-cover artwork to embed (APIC): PNG or JPEG bytes."""
    replaygain: ReplayGain | None = None
    """Measured loudness and true peak of the finished audio, written as ReplayGain TXXX."""

    def __post_init__(self) -> None:
        if self.cover is not None:
            image_type(self.cover)  # refuse anything but PNG or JPEG here, not at write time


def image_type(data: bytes) -> str:
    """``image/png`` or ``image/jpeg`` from the bytes themselves; ``ValueError`` otherwise."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    raise ValueError("cover art must be a PNG or JPEG image")


def id3_tag(reading: Reading, tags: Tags) -> bytes:
    """The ID3v2.3 tag bytes for an in-memory reading (see ``chapter_tag``)."""
    return chapter_tag(reading.chapters, tags)


def title_tag(title: str) -> bytes:
    """A minimal ID3v2.3 tag, the title alone: the front of a stream whose chapters and
    length are not known yet (``read -o -``)."""
    return _tag([_rendered([TIT2(encoding=_TEXT, text=[title])])])


def chapter_tag(chapters: Sequence[Chapter], tags: Tags) -> bytes:
    """The ID3v2.3 tag bytes, chapters included, to put in front of the audio.

    The frames are written in this order: text and URL frames, the CHAP frames in time order,
    CTOC, then the cover. mutagen orders the frames of a tag it saves by size, which would put a
    long chapter title after shorter ones, and ffmpeg and some players list chapters in tag
    order; so each group is rendered by mutagen on its own and the tag is put together here.
    """
    frames: list[Frame] = [TIT2(encoding=_TEXT, text=[tags.title])]
    if tags.artist:
        frames.append(TPE1(encoding=_TEXT, text=[tags.artist]))
    if tags.album:
        frames.append(TALB(encoding=_TEXT, text=[tags.album]))
    if tags.genre:
        frames.append(TCON(encoding=_TEXT, text=[tags.genre]))
    if tags.date is not None:
        # v2.3's date frames (v2.4's TDRC does not exist there): year, DDMM and HHMM.
        when = tags.date
        frames.append(TYER(encoding=_TEXT, text=[f"{when.year:04d}"]))
        frames.append(TDAT(encoding=_TEXT, text=[f"{when.day:02d}{when.month:02d}"]))
        if when.hour or when.minute:  # midnight almost always means "date only"
            frames.append(TIME(encoding=_TEXT, text=[f"{when.hour:02d}{when.minute:02d}"]))
    frames.append(TLAN(encoding=_TEXT, text=[tags.language]))
    if tags.url:
        frames.append(WOAS(url=_ascii_url(tags.url)))
    if tags.comment:
        code = _language_code(tags.language)
        frames.append(COMM(encoding=_TEXT, lang=code, desc="", text=[tags.comment]))
    if tags.replaygain is not None:
        frames.extend(replaygain_frames(tags.replaygain))
    body = [_rendered(frames)]

    chapters = sorted(chapters, key=lambda chapter: chapter.start)
    ids = [f"chp{n}" for n in range(len(chapters))]
    for element_id, chapter in zip(ids, chapters, strict=True):
        chap = CHAP(
            element_id=element_id,
            start_time=round(chapter.start * 1000),
            end_time=round(chapter.end * 1000),
            start_offset=_NO_OFFSET,
            end_offset=_NO_OFFSET,
            sub_frames=[TIT2(encoding=_TEXT, text=[chapter.title])],
        )
        body.append(_rendered([chap]))
    if ids:
        toc = CTOC(
            element_id="toc",
            flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED,
            child_element_ids=ids,
            sub_frames=[TIT2(encoding=_TEXT, text=[tags.title])],
        )
        body.append(_rendered([toc]))
    if tags.cover is not None:
        picture = APIC(
            encoding=Encoding.LATIN1,
            mime=image_type(tags.cover),
            type=PictureType.COVER_FRONT,
            desc="",
            data=tags.cover,
        )
        body.append(_rendered([picture]))
    return _tag(body)


def _tag(body: list[bytes]) -> bytes:
    """A v2.3 tag header in front of rendered frames."""
    size = sum(len(part) for part in body)
    if size >= 1 << 28:
        raise ValueError(f"an ID3v2 tag holds at most 256 MB, not {size:,} bytes")
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"".join([b"ID3\x03\x00\x00", syncsafe, *body])


def _rendered(frames: list[Frame]) -> bytes:
    """The frames as mutagen writes them in an ID3v2.3 tag, without the 10-byte tag header."""
    tag = ID3()
    for frame in frames:
        tag.add(frame)
    buffer = io.BytesIO()
    tag.save(buffer, v2_version=3, padding=lambda _info: 0)
    return buffer.getvalue()[10:]


def audio_stream(reading: Reading) -> tuple[bytes, bytes]:
    """What follows the tag: the Info frame (none for a reading without audio), the frames."""
    frames = len(reading.mp3) // FRAME_BYTES
    return (info_frame(frames) if frames else b"", reading.mp3)


def mp3_bytes_with_tags(reading: Reading, tags: Tags) -> bytes:
    """The complete MP3 file: tag, Info frame, frames (a joined copy: ``write_mp3`` makes none)."""
    return b"".join((id3_tag(reading, tags), *audio_stream(reading)))


def write_mp3(path: Path, reading: Reading, tags: Tags) -> None:
    """Write the tagged MP3 atomically: ``path`` never holds a partial or untagged file.

    The tag, the Info frame and the frames are written one after the other, never joined: an
    hour of audio is 21.6 MB, and a joined copy would double the peak memory of writing it.

    Raises ``OutputError`` when it cannot be written; an existing file is then left as it was.
    """
    atomic_write(path, (id3_tag(reading, tags), *audio_stream(reading)))


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
