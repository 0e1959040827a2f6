"""A plain square cover (PNG, 1400 px) for feeds given no ``--image``.

Podcast directories want channel artwork of at least 1400 × 1400 px; a feed without any is
refused by some. This writes a valid one with the standard library only (zlib + struct).
"""

from __future__ import annotations

import struct
import zlib

COVER_SIZE = 1400
_BACKGROUND = (0xB7, 0x1C, 0x1C)  # a newsprint red
_BAND = (0xFF, 0xFF, 0xFF)


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def cover_png(size: int = COVER_SIZE) -> bytes:
    """A ``size`` × ``size`` RGB PNG: a red square with a white band, like a masthead."""
    plain = bytes(_BACKGROUND) * size
    band = bytes(_BAND) * size
    top, bottom = size * 3 // 5, size * 3 // 5 + size // 14
    rows = b"".join(
        b"\x00" + (band if top <= y < bottom else plain)  # filter type 0 per row
        for y in range(size)
    )
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows, 9))
        + _chunk(b"IEND", b"")
    )
