"""Cover art: a plain square cover (PNG, 1400 px) for feeds given no ``--image``, or a file.

Podcast directories want channel artwork of at least 1400 × 1400 px; a feed without any is
refused by some. This writes a valid one with the standard library only (zlib + struct).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from newsreader.errors import UsageError

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


MAX_IMAGE_BYTES = 2_000_000
"""Cover art given as a file is embedded in every episode: kept small (Apple asks for ≤ 512 KB)."""


def local_image(path: Path) -> tuple[bytes, str]:
    """A cover given as a file: its bytes and the file extension it is published under.

    Raises ``UsageError`` when it is missing, too big, or not a PNG or JPEG image.
    """
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise UsageError(f"--image {path} is not a file: give a PNG or JPEG file or a URL.")
        if size > MAX_IMAGE_BYTES:
            raise UsageError(
                f"--image {path} is {size:,} bytes: cover art is embedded in every episode, so "
                f"it may be at most {MAX_IMAGE_BYTES:,} (save it as a JPEG)."
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(
            f"--image {path}: no such file (give a PNG or JPEG file or a URL)."
        ) from None
    except OSError as error:
        raise UsageError(f"--image {path} cannot be read: {error.strerror or error}.") from None
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data, "png"
    if data.startswith(b"\xff\xd8\xff"):
        return data, "jpg"
    raise UsageError(f"--image {path} is not a PNG or JPEG image.")
