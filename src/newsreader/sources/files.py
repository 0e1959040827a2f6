"""Local files and standard input."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from newsreader.errors import SourceError
from newsreader.sources.document import Document, decode_named


def read_file(path: Path, *, max_bytes: int) -> Document:
    try:
        if path.is_dir():
            raise SourceError(f"{path} is a directory: give an article file, a URL or - for stdin.")
        size = path.stat().st_size
        if size > max_bytes:
            raise SourceError(
                f"{path} is {size:,} bytes, over the {max_bytes:,}-byte limit for one article."
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file: check the path.") from None
    except PermissionError:
        raise SourceError(f"{path}: permission denied: check the file's permissions.") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}.") from None
    return Document(text=decode_named(data, name=str(path)), source=str(path))


def read_stdin(stream: BinaryIO, *, max_bytes: int) -> Document:
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SourceError(f"standard input is over the {max_bytes:,}-byte limit for one article.")
    return Document(text=decode_named(data, name="standard input"), source="-")
