"""The folder backend of ``Storage``: each key is a file under the root folder.

Objects are written like every other output of newsreader: to a hidden temporary name beside the
final one (``audio.atomic.temporary_name``), flushed and fsynced, then renamed into place, so a
reader only ever sees a complete file. ``put_file`` renames the caller's file into place directly
when it is on the same file system, and copies it (temporary name + fsync + rename) when not.

The ETag is the one the service has always given finished readings: the first 32 hex digits of
the file's sha256. Hashing a long reading on every request would be wasteful, so the digests are
remembered per file identity (device, inode, size, modification and change times): a file
replaced by a rename is a new inode with new times, and is hashed again.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from newsreader.audio.atomic import temporary_name
from newsreader.errors import StorageError
from newsreader.storage import StoredObject, check_key

CHUNK = 455 * 144
"""About 64 KB, whole 144-byte frames (the service's streaming chunk)."""

_Identity = tuple[int, int, int, int, int]
_DIGESTS: OrderedDict[_Identity, str] = OrderedDict()
_DIGESTS_LOCK = threading.Lock()
_DIGESTS_MAX = 16384


def etag_of_bytes(data: bytes | memoryview) -> str:
    """The ETag of these bytes: the first 32 hex digits of their sha256."""
    return hashlib.sha256(data).hexdigest()[:32]


def _identity(st: os.stat_result) -> _Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _remember(st: os.stat_result, etag: str) -> None:
    with _DIGESTS_LOCK:
        _DIGESTS[_identity(st)] = etag
        _DIGESTS.move_to_end(_identity(st))
        while len(_DIGESTS) > _DIGESTS_MAX:
            _DIGESTS.popitem(last=False)


def _recall(st: os.stat_result) -> str | None:
    with _DIGESTS_LOCK:
        found = _DIGESTS.get(_identity(st))
        if found is not None:
            _DIGESTS.move_to_end(_identity(st))
        return found


def _sync_directory(folder: Path) -> None:
    """Make a rename durable; best effort, as some systems cannot open directories."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


class DirectoryStorage:
    """Objects as files under ``root`` (created on the first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"DirectoryStorage({str(self.root)!r})"

    def describe(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        """The file that holds ``key`` (whether or not it exists)."""
        return self.root / check_key(key)

    def _fail(self, what: str, path: Path, error: OSError) -> StorageError:
        if isinstance(error, PermissionError):
            why = "permission denied (choose a folder you can write to)"
        elif error.errno == errno.ENOSPC:
            why = "no space left on the device (free some space or choose another folder)"
        elif error.errno == errno.EROFS:
            why = "the file system is read-only (choose a folder you can write to)"
        elif isinstance(error, NotADirectoryError | FileExistsError):
            why = "a file stands where a folder is needed (choose another folder)"
        else:
            why = (error.strerror or str(error)).rstrip(".")
        return StorageError(f"cannot {what} {path} in the storage folder: {why}.")

    def check(self) -> None:
        """The folder exists (or is created) and a file can be written in it and removed."""
        probe = temporary_name(self.root / "check")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                os.write(fd, b"ok")
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as error:
            if isinstance(error, FileExistsError) and not self.root.is_dir():
                raise StorageError(
                    f"the storage folder {self.root} is a file: name a folder with --storage."
                ) from None
            raise StorageError(
                f"the storage folder {self.root} is not writable: "
                f"{(error.strerror or str(error)).rstrip('.').lower()} "
                "(choose a folder you can write to with --storage)."
            ) from None
        finally:
            _remove(probe)

    def _prepare(self, key: str) -> Path:
        target = self.path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise self._fail("write", target, error) from None
        return target

    def _stored(self, key: str, target: Path, etag: str) -> StoredObject:
        st = target.stat()
        _remember(st, etag)
        return StoredObject(key, st.st_size, etag, datetime.fromtimestamp(st.st_mtime, UTC))

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        """Rename ``path`` into place (same file system) or copy it under a temporary name and
        rename that; ``path`` is removed on success. ``content_type`` is not kept: the service
        knows each key's type."""
        target = self._prepare(key)
        source = Path(path)
        try:
            with source.open("rb") as file:
                digest = hashlib.file_digest(file, "sha256")
                os.fsync(file.fileno())
        except OSError as error:
            raise StorageError(
                f"cannot read {source} to store it as {key}: "
                f"{(error.strerror or str(error)).rstrip('.').lower()}."
            ) from None
        etag = digest.hexdigest()[:32]
        try:
            os.replace(source, target)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise self._fail("write", target, error) from None
            self._copy_in(source, target)
            _remove(source)
        _sync_directory(target.parent)
        return self._stored(key, target, etag)

    def _copy_in(self, source: Path, target: Path) -> None:
        """Copy ``source`` to ``target`` through a fsynced temporary file and a rename."""
        temp = temporary_name(target)
        try:
            with source.open("rb") as src, open(temp, "xb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(temp, target)
        except OSError as error:
            _remove(temp)
            raise self._fail("write", target, error) from None
        except BaseException:
            _remove(temp)
            raise

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        target = self._prepare(key)
        temp = temporary_name(target)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, target)
        except OSError as error:
            _remove(temp)
            raise self._fail("write", target, error) from None
        except BaseException:
            _remove(temp)
            raise
        _sync_directory(target.parent)
        return self._stored(key, target, etag_of_bytes(data))

    def get_bytes(self, key: str) -> bytes | None:
        target = self.path(key)
        try:
            return target.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as error:
            raise self._fail("read", target, error) from None

    def stat(self, key: str) -> StoredObject | None:
        target = self.path(key)
        try:
            with target.open("rb") as file:
                st = os.fstat(file.fileno())
                etag = _recall(st)
                if etag is None:
                    etag = hashlib.file_digest(file, "sha256").hexdigest()[:32]
                    _remember(st, etag)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except OSError as error:
            raise self._fail("read", target, error) from None
        return StoredObject(key, st.st_size, etag, datetime.fromtimestamp(st.st_mtime, UTC))

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Opens the file at once (a missing one raises ``StorageError`` here, not later)."""
        target = self.path(key)
        if start < 0 or end < start - 1:
            raise ValueError(f"bad byte range {start}-{end}")
        try:
            file = target.open("rb")
        except OSError as error:
            if isinstance(error, FileNotFoundError | IsADirectoryError | NotADirectoryError):
                raise StorageError(f"{key} is not in the storage folder {self.root}.") from None
            raise self._fail("read", target, error) from None
        return _chunks(file, start, end)

    def delete(self, key: str) -> None:
        target = self.path(key)
        try:
            target.unlink(missing_ok=True)
        except IsADirectoryError:
            return
        except OSError as error:
            raise self._fail("remove", target, error) from None

    def local_path(self, key: str) -> Path | None:
        target = self.path(key)
        return target if target.is_file() else None


def _chunks(file: BinaryIO, start: int, end: int) -> Iterator[bytes]:
    try:
        file.seek(start)
        remaining = end - start + 1
        while remaining > 0:
            chunk = file.read(min(CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
    finally:
        file.close()
