"""Write files so that each path only ever holds the old content or the complete new content.

``atomic_write`` writes one file. Files that belong together (an MP3 and its subtitles) are
written inside ``written_together()``: then either all of them are replaced or none is.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from newsreader.errors import OutputError

Chunk = bytes | bytearray | memoryview
Content = Chunk | Iterable[Chunk]


@dataclass
class _Together:
    pending: list[tuple[Path, Path]] = field(default_factory=list)
    """(temporary file, final path) in the order written."""


_TOGETHER: ContextVar[_Together | None] = ContextVar("newsreader_written_together", default=None)


def temporary_name(path: Path) -> Path:
    """A hidden name beside ``path`` for its next content: ``.<name>.<8 hex>.tmp``.

    Same directory, so ``os.replace`` is a rename within one file system (atomic); the dot keeps
    it out of sight, the shortened name keeps it within name-length limits. Cleanup code (the
    podcast feed's) recognizes stray files by this pattern.
    """
    return path.with_name(f".{path.name[:64]}.{secrets.token_hex(4)}.tmp")


def atomic_write(path: Path, data: Content) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename.

    ``data`` is the content, or its pieces in order: written one after another, so a large file
    made of a small header and a large body (a tagged MP3) needs no joined copy in memory.

    On any failure the temporary file is removed and an existing file at ``path`` is untouched;
    an ``OSError`` (missing folder, no permission, disk full, ...) becomes ``OutputError``.
    Inside ``written_together()`` the rename waits for the end of the block.
    """
    together = _TOGETHER.get()
    if together is not None and any(same == path for _, same in together.pending):
        raise ValueError(f"{path} is written twice in one written_together() block")
    temp = _write_temporary(path, data)
    if together is not None:
        together.pending.append((temp, path))
        return
    try:
        os.replace(temp, path)
    except OSError as error:
        _remove(temp)
        raise OutputError(_explain(path, error)) from error
    except BaseException:
        _remove(temp)
        raise
    _sync_directory(path.parent)


@contextlib.contextmanager
def written_together() -> Iterator[None]:
    """Every ``atomic_write`` in the block lands at its path when the block ends, or none does.

    Inside the block, each file is written completely (flushed and fsynced) under its temporary
    name; no path changes yet. If the block raises, the temporary files are removed. When it
    ends, ``_commit`` renames them all into place, or, if one rename fails, puts back what was
    there before and raises ``OutputError``.
    """
    together = _Together()
    token = _TOGETHER.set(together)
    try:
        yield
    except BaseException:
        for temp, _ in together.pending:
            _remove(temp)
        raise
    finally:
        _TOGETHER.reset(token)
    _commit(together.pending)


def _commit(pending: list[tuple[Path, Path]]) -> None:
    """Rename complete temporary files into place: all of them, or none.

    1. An existing file is kept under a second (temporary) name: a hard link, or a copy where
       links are not supported, so that it can be put back.
    2. The temporary files are renamed into place in order. If one rename fails, the paths
       already renamed get their old file back (or are removed if they had none).
    3. The kept old files are removed.

    Only a crash of the machine in the middle of step 2 can leave a mix of old and new files;
    every path still holds one complete file then, old or new.
    """
    backups: dict[Path, Path] = {}
    done: list[Path] = []
    try:
        for _, path in pending:
            backup = _keep_old(path)
            if backup is not None:
                backups[path] = backup
        for temp, path in pending:
            try:
                os.replace(temp, path)
            except OSError as error:
                raise OutputError(_explain(path, error)) from error
            done.append(path)
    except BaseException as error:
        stuck = _roll_back(done, backups)
        for temp, _ in pending:
            _remove(temp)
        for path, backup in backups.items():
            if path not in stuck:
                _remove(backup)
        if stuck and isinstance(error, OutputError):
            left = "; ".join(
                f"the old {p} is kept as {backups[p]}" if p in backups else f"{p} is the new one"
                for p in stuck
            )
            raise OutputError(
                f"{error.message.rstrip('.')}, and undoing failed: {left}."
            ) from error
        raise
    for backup in backups.values():
        _remove(backup)
    for folder in {path.parent for _, path in pending}:
        _sync_directory(folder)


def _write_temporary(path: Path, data: Content) -> Path:
    """A complete, fsynced temporary file beside ``path`` holding ``data``."""
    # Created with 0o666 so the umask gives the final file the usual permissions.
    chunks = (data,) if isinstance(data, bytes | bytearray | memoryview) else data
    temp = temporary_name(path)
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
    except BaseException as error:
        _remove(temp)
        if isinstance(error, OSError):
            raise OutputError(_explain(path, error)) from error
        raise
    return temp


def _keep_old(path: Path) -> Path | None:
    """A second name for the file now at ``path`` (None if there is none), to restore it from."""
    if not os.path.lexists(path):
        return None
    backup = temporary_name(path)
    try:
        # A link to the symlink itself, not its target: putting it back restores the symlink.
        os.link(path, backup, follow_symlinks=False)
    except OSError as link_error:
        if path.is_dir():
            raise OutputError(_explain(path, IsADirectoryError(21, "Is a directory"))) from None
        try:
            shutil.copy2(path, backup, follow_symlinks=False)
        except OSError:
            _remove(backup)
            raise OutputError(_explain(path, link_error)) from link_error
    return backup


def _roll_back(done: list[Path], backups: dict[Path, Path]) -> list[Path]:
    """Put the old files back at the paths already renamed; return those that could not be."""
    stuck = []
    for path in reversed(done):
        try:
            backup = backups.get(path)
            if backup is None:
                path.unlink()
            else:
                os.replace(backup, path)
        except OSError:
            stuck.append(path)
    return stuck


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _sync_directory(folder: Path) -> None:
    """Make the rename itself durable; best effort, as some systems cannot open directories."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def output_error(path: Path, error: OSError) -> OutputError:
    """The ``OutputError`` for failing to write ``path``: one line saying why and what to do."""
    return OutputError(_explain(path, error))


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
