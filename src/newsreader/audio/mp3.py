"""Frame-level MP3 in edge's format: strip containers, check every frame, make silence.

Every engine's audio ends up as MPEG-2 Layer III, 24 kHz, mono, 48 kbit/s CBR. Each frame is 144
bytes and 24 ms, so bare frames can be counted, timed and joined without decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsreader.errors import SynthesisError
from newsreader.models import FRAME_BYTES, FRAME_SECONDS

EXPECTED_FORMAT = "MPEG-2 Layer III, 24 kHz, 48 kbit/s, mono, no padding"

SILENT_FRAME: bytes = b"\xff\xf3\x64\xc4" + bytes(FRAME_BYTES - 4)
"""One 24 ms frame of digital silence: zero side information, so no samples and no reservoir use."""

# Header bits that must match edge's format exactly: sync, version, layer, bitrate, sample rate,
# padding and channel mode. CRC, private, mode-extension, copyright, original and emphasis bits
# do not change a frame's size or duration, so any value is accepted.
_HEADER_MASK = 0xFFFEFEC0
_HEADER_WANTED = 0xFFF364C4 & _HEADER_MASK

_VERSIONS = {0b00: "2.5", 0b10: "2", 0b11: "1"}
_LAYERS = {0b01: 3, 0b10: 2, 0b11: 1}
_SAMPLE_RATES = {
    "1": (44100, 48000, 32000),
    "2": (22050, 24000, 16000),
    "2.5": (11025, 12000, 8000),
}
# kbit/s by bitrate index 1..14 (0 is "free format", 15 is invalid).
_BITRATES = {
    ("1", 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    ("1", 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    ("1", 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    ("2", 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    ("2", 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    ("2", 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_CHANNEL_MODES = ("stereo", "joint stereo", "dual channel", "mono")
_INFO_TAGS = (b"Xing", b"Info")
_ID3V1_SIZE = 128
# For the fast check: per header byte, a translation table that applies the mask, and the result.
_BYTE_CHECKS = tuple(
    (
        i,
        bytes(b & ((_HEADER_MASK >> shift) & 0xFF) for b in range(256)),
        (_HEADER_WANTED >> shift) & 0xFF,
    )
    for i, shift in enumerate((24, 16, 8, 0))
)
# Where an info tag would sit inside an edge-format frame: after the header (+ CRC) and the 9 bytes
# of mono side information for Xing/Info, at a fixed 36 for VBRI.
_TAG_OFFSETS = ((b"Xing", (13, 15)), (b"Info", (13, 15)), (b"VBRI", (36,)))
# Other containers an engine might hand back by mistake, named in the error.
_OTHER_FORMATS = {b"RIFF": "WAV/RIFF data", b"OggS": "Ogg data", b"fLaC": "FLAC data"}


@dataclass(frozen=True)
class FrameHeader:
    """The fields of a 4-byte MPEG audio frame header that matter for size and format."""

    version: str
    layer: int
    bitrate: int
    """kbit/s."""
    sample_rate: int
    padding: bool
    channel_mode: str
    crc: bool

    @property
    def length(self) -> int:
        """Frame size in bytes, header included."""
        bits_per_second = self.bitrate * 1000
        if self.layer == 1:
            return (12 * bits_per_second // self.sample_rate + self.padding) * 4
        if self.layer == 3 and self.version != "1":
            return 72 * bits_per_second // self.sample_rate + self.padding
        return 144 * bits_per_second // self.sample_rate + self.padding

    @property
    def info_tag_offset(self) -> int:
        """Where a Xing/Info tag sits: right after the header, CRC and side information."""
        # Side information size (ISO 11172-3 / 13818-3): (mono, other) per MPEG version.
        mono, other = (17, 32) if self.version == "1" else (9, 17)
        side_info = mono if self.channel_mode == "mono" else other
        return 4 + (2 if self.crc else 0) + side_info

    def describe(self) -> str:
        khz = f"{self.sample_rate / 1000:g}"
        padding = ", padded" if self.padding else ""
        return (
            f"MPEG-{self.version} Layer {'I' * self.layer}, {khz} kHz, {self.bitrate} kbit/s, "
            f"{self.channel_mode}{padding}"
        )


def parse_header(data: bytes, pos: int) -> FrameHeader | None:
    """The frame header at ``pos``, or None if there is no valid header there."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return None
    b1, b2, b3 = data[pos + 1], data[pos + 2], data[pos + 3]
    version = _VERSIONS.get((b1 >> 3) & 0b11)
    layer = _LAYERS.get((b1 >> 1) & 0b11)
    bitrate_index = b2 >> 4
    rate_index = (b2 >> 2) & 0b11
    if version is None or layer is None or bitrate_index in (0, 15) or rate_index == 3:
        return None
    table_version = "1" if version == "1" else "2"
    return FrameHeader(
        version=version,
        layer=layer,
        bitrate=_BITRATES[table_version, layer][bitrate_index - 1],
        sample_rate=_SAMPLE_RATES[version][rate_index],
        padding=bool(b2 & 0b10),
        channel_mode=_CHANNEL_MODES[b3 >> 6],
        crc=not b1 & 1,
    )


def _is_info_frame(data: bytes, pos: int, header: FrameHeader) -> bool:
    """A Xing/Info (LAME) or VBRI header frame: metadata shaped like a frame, not audio."""
    offset = pos + header.info_tag_offset
    if data[offset : offset + 4] in _INFO_TAGS:
        return True
    return header.layer == 3 and data[pos + 36 : pos + 40] == b"VBRI"


def _skip_id3v2(data: bytes, pos: int) -> int:
    """Position after any ID3v2 tags at ``pos`` (some tools write more than one)."""
    while data[pos : pos + 3] == b"ID3" and len(data) - pos >= 10:
        size_bytes = data[pos + 6 : pos + 10]
        if any(b & 0x80 for b in size_bytes):
            break  # not a syncsafe size, so not a tag
        size = 0
        for b in size_bytes:
            size = (size << 7) | b
        footer = 10 if data[pos + 5] & 0x10 else 0
        pos += 10 + size + footer
    if pos > len(data):
        # Returning nothing here would silently drop audio behind a corrupt size.
        raise _unexpected(f"an ID3v2 tag claims {pos} bytes but there are only {len(data)}")
    return pos


def _find_first_frame(data: bytes, pos: int) -> int | None:
    """The first header after ``pos`` that is followed by another header or the end of data.

    Requiring a second header keeps a stray 0xFF byte in leading junk from passing as a frame.
    """
    end = len(data)
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0:
            return None
        header = parse_header(data, pos)
        if header is not None:
            following = pos + header.length
            if following >= end or parse_header(data, following) is not None:
                return pos
            if end - following == _ID3V1_SIZE and data[following : following + 3] == b"TAG":
                return pos
        pos += 1


def _unexpected(detail: str) -> SynthesisError:
    return SynthesisError(
        f"engine returned MP3 in an unexpected format: {detail} (expected {EXPECTED_FORMAT})"
    )


def _fast_run(data: bytes, start: int) -> bytes | None:
    """The rest of ``data`` from ``start`` if it is all edge-format audio frames, else None.

    Checks every header at once with strided slices (C speed, ~40 ms per hour of audio); returns
    None whenever the frame-by-frame walk must decide or explain instead: a foreign header, a
    length off the frame grid, or an info tag at a frame's tag offset.
    """
    stop = len(data)
    # A trailing ID3v1 tag; it cannot be mistaken for the end of a frame on the 144-byte grid.
    if (stop - start) % FRAME_BYTES and data[stop - _ID3V1_SIZE : stop - _ID3V1_SIZE + 3] == b"TAG":
        stop -= _ID3V1_SIZE
    if stop <= start or (stop - start) % FRAME_BYTES:
        return None
    body = data[start:stop]
    count = len(body) // FRAME_BYTES
    for i, table, wanted in _BYTE_CHECKS:
        if body[i::FRAME_BYTES].translate(table).count(wanted) != count:
            return None
    for tag, offsets in _TAG_OFFSETS:
        found = body.find(tag)
        while found >= 0:
            if found % FRAME_BYTES in offsets:
                return None
            found = body.find(tag, found + 1)
    return body


def bare_frames(data: bytes) -> bytes:
    """Edge-format MP3 frames only: no ID3v2/ID3v1 tags, no Xing/Info/LAME/VBRI frame, no junk.

    Raises ``SynthesisError`` when a frame has another format or the data does not end on a frame
    boundary. Empty input (or a tag alone) gives ``b""``.
    """
    pos = _skip_id3v2(data, 0)
    end = len(data)
    if pos >= end or (end - pos == _ID3V1_SIZE and data[pos : pos + 3] == b"TAG"):
        return b""
    other = _OTHER_FORMATS.get(data[pos : pos + 4])
    if other is not None:
        raise _unexpected(other)
    first = _find_first_frame(data, pos)
    if first is None:
        raise _unexpected(f"no MPEG audio frame in {end - pos} bytes")

    kept: list[bytes] = []
    pos = first
    try_fast = True  # at the start and after each info frame; never per frame, to stay linear
    while pos < end:
        if try_fast:
            run = _fast_run(data, pos)
            if run is not None:
                kept.append(run)
                break
            try_fast = False
        if end - pos == _ID3V1_SIZE and data[pos : pos + 3] == b"TAG":
            break
        header = parse_header(data, pos)
        if header is None and end - pos < 4:
            raise _unexpected(f"it does not end on a frame boundary ({end - pos} stray bytes)")
        if header is None:
            raise _unexpected(f"no frame header at byte {pos} (lost frame sync)")
        if pos + header.length > end:
            raise _unexpected(
                f"it does not end on a frame boundary (the last frame has {end - pos} of its "
                f"{header.length} bytes)"
            )
        if _is_info_frame(data, pos, header):
            pos += header.length
            try_fast = True
            continue
        word = int.from_bytes(data[pos : pos + 4], "big")
        if word & _HEADER_MASK != _HEADER_WANTED:
            raise _unexpected(f"{header.describe()} at byte {pos}")
        kept.append(data[pos : pos + FRAME_BYTES])
        pos += FRAME_BYTES
    return b"".join(kept)


def silence(frames: int) -> bytes:
    """``frames`` silent frames (24 ms each)."""
    if frames < 0:
        raise ValueError(f"silence needs a frame count of 0 or more, not {frames}")
    return SILENT_FRAME * frames


def frame_count(data: bytes) -> int:
    """How many frames bare edge-format MP3 data holds."""
    if len(data) % FRAME_BYTES:
        raise ValueError(
            f"{len(data)} bytes is not a whole number of {FRAME_BYTES}-byte frames; "
            "pass the output of bare_frames()"
        )
    return len(data) // FRAME_BYTES


def duration(data: bytes) -> float:
    """Duration of bare edge-format MP3 data, seconds (exact: frames x 24 ms)."""
    return frame_count(data) * FRAME_SECONDS


# ── the Info frame of a finished file ─────────────────────────────────────────────────────────

INFO_FLAGS = 0x0001 | 0x0002 | 0x0004
"""Frames, bytes and the 100-entry seek table (TOC) are present."""
_INFO_TAG_AT = 4 + 9  # after the header and the 9 bytes of MPEG-2 mono side information
_TOC_ENTRIES = 100


def info_frame(audio_frames: int) -> bytes:
    """A LAME-style "Info" frame (the CBR form of a Xing header) for ``audio_frames`` frames.

    It is one frame in edge's format whose side information is all zero (a decoder that does not
    know the tag hears 24 ms of silence), carrying the audio frame count (the Info frame itself
    not counted, as LAME, ffmpeg and mutagen do), the stream's byte count (the Info frame
    included) and a seek table: entry ``i`` is the byte position of ``i`` % of the duration, in
    256ths of the audio. With it, players report the exact duration without scanning the file
    and seek by time exactly. The LAME extension (encoder delay and padding to trim) does not fit
    in a 144-byte frame and is not written, so decoders keep every sample of every audio frame:
    exactly what the frame count promises.
    """
    if not 0 < audio_frames < 2**32 // FRAME_BYTES:
        raise ValueError(f"an Info frame needs 1 to {2**32 // FRAME_BYTES - 1} audio frames")
    toc = bytes(
        min(255, 256 * (i * audio_frames // _TOC_ENTRIES) // audio_frames)
        for i in range(_TOC_ENTRIES)
    )
    body = (
        b"Info"
        + INFO_FLAGS.to_bytes(4, "big")
        + audio_frames.to_bytes(4, "big")
        + ((audio_frames + 1) * FRAME_BYTES).to_bytes(4, "big")
        + toc
    )
    frame = SILENT_FRAME[:_INFO_TAG_AT] + body
    return frame + bytes(FRAME_BYTES - len(frame))


def read_info_frame(data: bytes) -> tuple[int, int, bytes] | None:
    """(frames, bytes, TOC) of an Info/Xing frame at the start of ``data``, if there is one."""
    header = parse_header(data, 0)
    if header is None or not _is_info_frame(data, 0, header):
        return None
    at = header.info_tag_offset
    flags = int.from_bytes(data[at + 4 : at + 8], "big")
    fields = at + 8
    values: list[int] = []
    for bit in (0x0001, 0x0002):
        if flags & bit:
            values.append(int.from_bytes(data[fields : fields + 4], "big"))
            fields += 4
        else:
            values.append(-1)
    toc = data[fields : fields + _TOC_ENTRIES] if flags & 0x0004 else b""
    return values[0], values[1], toc
