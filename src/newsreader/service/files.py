"""Where finished readings are kept: their storage keys, where they are made before they are
stored, and the clean-up of what a stopped run left."""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Literal

from newsreader.service.config import ServiceConfig
from newsreader.storage import Storage, open_storage

FileKind = Literal["mp3", "vtt", "json"]
CONTENT_TYPES: dict[FileKind, str] = {
    "mp3": "audio/mpeg",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
}


def reading_key(reading_id: str, kind: FileKind) -> str:
    """The storage key of a finished reading's file: ``readings/<id>.mp3|.vtt|.json``."""
    return f"readings/{reading_id}.{kind}"


def open_reading_storage(config: ServiceConfig) -> Storage:
    """Where finished readings go: the data folder (keys under ``--data``), or ``--storage``."""
    return open_storage(config.storage, config.data_dir, endpoint=config.s3_endpoint)


def is_object_store(spec: str | None) -> bool:
    """Whether ``--storage`` names an object store (``s3://``) rather than a folder."""
    return spec is not None and spec.lower().startswith("s3://")


def staging_folder(config: ServiceConfig) -> Path:
    """Where finished files are made before they are stored. With the data folder as storage,
    its own ``readings/`` folder: the files are made in place, as ``read`` makes its output."""
    return config.readings_dir if config.storage is None else config.data_dir / "outgoing"


def clear_temporary_files(folder: Path, *, older_than: float = 0.0) -> int:
    """Remove what a run stopped midway left in ``folder``: the temporary names ``atomic_write``
    and ``Mp3Writer`` use (``.<name>.<8 hex>.tmp``), never a finished file. ``older_than``:
    only files not written to for that many seconds (a folder other processes write in too)."""
    removed = 0
    cutoff = time.time() - older_than
    for path in folder.glob(".*.tmp"):
        if _TEMPORARY.match(path.name):
            with contextlib.suppress(FileNotFoundError):
                if older_than and path.stat().st_mtime > cutoff:
                    continue
                path.unlink()
                removed += 1
    return removed


def clear_staged_files(folder: Path) -> int:
    """Remove files a stopped run made but did not store (the staging folder of one process)."""
    removed = 0
    for path in folder.iterdir():
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


__all__ = [
    "CONTENT_TYPES",
    "FileKind",
    "clear_staged_files",
    "clear_temporary_files",
    "is_object_store",
    "open_reading_storage",
    "reading_key",
    "staging_folder",
]
