"""Write a file so that its path only ever holds the old content or the complete new content."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from newsreader.errors import OutputError

Chunk = bytes | bytearray | memoryview


def atomic_write(path: Path, data: Chunk | Iterable[Chunk]) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename.

    ``data`` is the content, or its pieces in order: written one after another, so a large file
    made of a small header and a large body (a tagged MP3) needs no joined copy in memory.

    On any failure the temporary file is removed and an existing file at ``path`` is untouched;
    an ``OSError`` (missing folder, no permission, disk full, ...) becomes ``OutputError``.
    """
    # Same directory, so os.replace is a rename within one file system (atomic); a dot name keeps
    # it out of sight, a shortened one keeps it within name-length limits. Created with 0o666 so
    # the umask gives the final file the usual permissions.
    chunks = (data,) if isinstance(data, bytes | bytearray | memoryview) else data
    temp = path.with_name(f".{path.name[:64]}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise OutputError(_explain(path, error)) from error
    try:
        with os.fdopen(fd, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temp.unlink()
        if isinstance(error, OSError):
            raise OutputError(_explain(path, error)) from error
        raise
    _sync_directory(path.parent)


def _sync_directory(folder: Path) -> None:
    """Make the rename itself durable; best effort, as some systems cannot open directories."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _explain(path: Path, error: OSError) -> str:
    """One line that says what went wrong and what to do."""
    folder = path.parent
    if isinstance(error, FileNotFoundError) and not folder.is_dir():
        return f"cannot write {path}: the folder {folder} does not exist."
    if isinstance(error, PermissionError):
        return f"cannot write {path}: permission denied (choose a folder you can write to)."
    if isinstance(error, IsADirectoryError) or path.is_dir():
        return f"cannot write {path}: it is a directory (give a file name)."
    reason = error.strerror or str(error)
    return f"cannot write {path}: {reason}."
