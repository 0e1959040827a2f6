"""Where finished readings and cached segments live: a local folder, or an S3 bucket.

One small, synchronous interface, ``Storage``, with two backends: ``DirectoryStorage`` (a folder,
the default; also a folder shared between machines) and ``S3Storage`` (any S3-protocol store).
Callers on an event loop run its methods in a thread pool.

Keys are relative, ``/``-separated names such as ``readings/<id>.mp3`` or
``segments/ab/<key>.json``: only ``[A-Za-z0-9._-]`` in each part, no empty part, no part that
starts with a dot (so no ``.``/``..``, and the backends' hidden temporary names cannot be
addressed), no leading ``/``. A bad key raises ``ValueError`` before anything is touched.

Every object appears whole or not at all: a reader sees the old object, the complete new one, or
none; never a part. ``etag`` is a strong validator: it changes whenever the bytes change.

Errors: a missing object is ``None`` (``get_bytes``, ``stat``, ``local_path``) or a no-op
(``delete``); a storage that cannot be used (folder not writable, bucket missing, endpoint
unreachable, bad credentials, a failed upload) raises ``StorageError`` with one line saying what
is wrong and what to do.

``open_storage`` picks the backend from the ``--storage`` value. ``boto3`` is imported only when
an S3 storage is opened.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from newsreader.errors import StorageError

__all__ = [
    "Storage",
    "StorageError",
    "StoredObject",
    "check_key",
    "open_storage",
]

_PART = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
MAX_KEY = 512
"""Longest key accepted (S3 allows 1024 bytes; a prefix is added in front)."""
MAX_PART = 200
"""Longest part of a key (file systems allow 255 bytes per name)."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What the storage knows about one complete object."""

    key: str
    size: int
    """Length in bytes."""
    etag: str
    """Strong validator, without quotes: it changes whenever the bytes change."""
    modified: datetime
    """When the object was last written (timezone-aware, UTC)."""


@runtime_checkable
class Storage(Protocol):
    """Objects under keys; every method is synchronous and safe to call from several threads."""

    def describe(self) -> str:
        """Where the objects are, for messages: a folder path or ``s3://bucket/prefix``."""
        ...

    def check(self) -> None:
        """Make sure the storage can be read and written, or raise ``StorageError`` (one line:
        folder not writable, bucket missing (named, with the advice to create it), endpoint
        unreachable, bad credentials). Call it once at start, before accepting work."""
        ...

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        """Store the file at ``path`` under ``key`` and consume it: on success ``path`` is gone
        (the directory backend renames it into place when it can). The object appears whole or
        not at all; on failure ``path`` is left as it was and any old object stays."""
        ...

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """Store ``data`` under ``key``, whole or not at all (for small objects)."""
        ...

    def get_bytes(self, key: str) -> bytes | None:
        """The whole object (for small objects), or None if there is none."""
        ...

    def stat(self, key: str) -> StoredObject | None:
        """The object's size, ETag and time, or None if there is none."""
        ...

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` (inclusive) in chunks; at most one chunk or piece in memory.

        Raises ``StorageError`` when the object is missing or changes while it is read. Close
        the iterator (or exhaust it) to release the file or connection."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; no error if there is none."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The object's file when it is a local file (directory backend), else None."""
        ...


def check_key(key: str) -> str:
    """``key`` if it is a valid storage key, else ``ValueError`` naming what is wrong."""
    if not isinstance(key, str) or not key:
        raise ValueError("a storage key must be a non-empty string")
    if len(key) > MAX_KEY:
        raise ValueError(f"storage key {key[:40]!r}... is longer than {MAX_KEY} characters")
    if key.startswith("/"):
        raise ValueError(f"storage key {key[:60]!r} must be relative (no leading /)")
    for part in key.split("/"):
        if not _PART.match(part) or len(part) > MAX_PART:
            raise ValueError(
                f"storage key {key[:60]!r} has a bad part {part[:40]!r}: use only A-Z a-z 0-9 . _ -"
                f", no empty part, no part starting with a dot, at most {MAX_PART} characters"
            )
    return key


def open_storage(spec: str | None, root: Path, *, endpoint: str | None = None) -> Storage:
    """The storage that ``--storage`` names.

    - ``None`` or ``""``: a folder at ``root`` (the default: e.g. ``--data`` for readings, the
      cache folder for segments).
    - a path (absolute, relative, ``~``, or ``file://PATH``): a folder at that path, e.g. one
      shared between machines.
    - ``s3://BUCKET`` or ``s3://BUCKET/PREFIX``: that bucket, keys under ``PREFIX/``. The endpoint
      is ``endpoint`` or env ``AWS_ENDPOINT_URL`` (else AWS itself); credentials and region come
      from the usual AWS environment variables and files (region default ``us-east-1``).
    - anything else (another scheme, a bad bucket name): ``StorageError``, one line.

    Nothing is contacted here: call ``check()`` to find out whether the storage can be used.
    """
    if spec is None or not spec.strip():
        from newsreader.storage.directory import DirectoryStorage

        return DirectoryStorage(root)
    spec = spec.strip()
    scheme, sep, rest = spec.partition("://")
    if not sep:
        from newsreader.storage.directory import DirectoryStorage

        return DirectoryStorage(Path(os.path.expanduser(spec)))
    scheme = scheme.lower()
    if scheme == "file":
        from newsreader.storage.directory import DirectoryStorage

        if not rest.startswith("/"):
            raise StorageError(
                f"--storage {spec!r}: a file:// URL needs an absolute path, e.g. "
                "file:///srv/newsreader."
            )
        return DirectoryStorage(Path(rest))
    if scheme == "s3":
        from newsreader.storage.s3 import S3Storage, parse_s3_spec

        bucket, prefix = parse_s3_spec(spec)
        chosen = endpoint or os.environ.get("AWS_ENDPOINT_URL") or None
        return S3Storage(bucket, prefix, endpoint=chosen)
    raise StorageError(
        f"--storage {spec[:80]!r}: use a folder path or s3://BUCKET/PREFIX "
        f"(the scheme {scheme[:20]!r}:// is not supported)."
    )
