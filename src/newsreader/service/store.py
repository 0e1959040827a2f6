"""The job store: one SQLite table of readings, beside the finished audio files.

A reading is accepted only once its row is committed, so a restart loses no accepted job: rows
still ``queued`` or ``running`` are queued again at start-up (the segment cache makes a resumed job
re-synthesize only what it had not finished). A row becomes ``done`` only after its files are
complete (written atomically), never before.

Also here, the rest of what lives under ``--data``: ``prepare_data`` checks at start-up that the
folder can be written (one clear error, not a failure at the first request), and ``id_key``
keeps the secret that makes the ids of posted text unguessable.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sqlite3
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from newsreader.service.payloads import RequestPayload

log = logging.getLogger("newsreader.service")

Status = Literal["queued", "running", "done", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    id            TEXT PRIMARY KEY,
    request       TEXT NOT NULL,
    status        TEXT NOT NULL,
    title         TEXT,
    total         INTEGER NOT NULL DEFAULT 0,
    done          INTEGER NOT NULL DEFAULT 0,
    duration      REAL,
    bytes         INTEGER,
    etag          TEXT,
    engine        TEXT,
    source        TEXT,
    error_code    TEXT,
    error_message TEXT,
    created       REAL NOT NULL,
    updated       REAL NOT NULL,
    finished      REAL,
    listed        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS readings_status ON readings (status, created);
"""
_LISTED = """
ALTER TABLE readings ADD COLUMN listed INTEGER NOT NULL DEFAULT 0;
UPDATE readings SET listed = 1 WHERE json_extract(request, '$.kind') = 'url';
"""
"""A store made before ``listed``: readings of a URL were fetched by the service, so they stay in
the feed; posted text and HTML leave it."""


@dataclass(frozen=True)
class Row:
    id: str
    request: RequestPayload
    status: Status
    title: str | None
    total: int
    done: int
    duration: float | None
    bytes: int | None
    etag: str | None
    engine: str | None
    source: str | None
    error_code: str | None
    error_message: str | None
    created: float
    updated: float
    finished: float | None
    listed: bool = False
    """In /feed.xml: the service fetched it from a public web page."""


class DataDirError(OSError):
    """``--data`` (or a file in it) cannot be used; the message says which and why."""


class JobStore:
    """Thread-safe access to the readings table (calls are short; WAL keeps readers unblocked)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as error:
            raise DataDirError(f"cannot open the job store {path}: {error}") from None
        self._db.row_factory = sqlite3.Row
        try:
            with self._lock:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
                columns = {r["name"] for r in self._db.execute("PRAGMA table_info(readings)")}
                if "listed" not in columns:
                    self._db.executescript(f"BEGIN; {_LISTED} COMMIT;")
                # Taking the write lock proves the store can be written (not a read-only file).
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("ROLLBACK")
        except sqlite3.Error as error:
            self._db.close()
            raise DataDirError(f"cannot write the job store {path}: {error}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _row(self, record: sqlite3.Row | None) -> Row | None:
        if record is None:
            return None
        values = dict(record)
        values["request"] = json.loads(values["request"])
        values["listed"] = bool(values["listed"])
        return Row(**values)

    def get(self, reading_id: str) -> Row | None:
        with self._lock:
            cursor = self._db.execute("SELECT * FROM readings WHERE id = ?", (reading_id,))
            return self._row(cursor.fetchone())

    def add(self, reading_id: str, request: RequestPayload, source: str | None) -> Row:
        """Insert a queued reading, or queue a failed/lost one again; returns the row."""
        now = time.time()
        text = json.dumps(request, ensure_ascii=False, sort_keys=True)
        with self._lock:
            self._db.execute(
                "INSERT INTO readings (id, request, status, source, created, updated) "
                "VALUES (?, ?, 'queued', ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET status = 'queued', done = 0, total = 0, "
                "error_code = NULL, error_message = NULL, duration = NULL, bytes = NULL, "
                "etag = NULL, finished = NULL, updated = excluded.updated",
                (reading_id, text, source, now, now),
            )
        row = self.get(reading_id)
        assert row is not None
        return row

    def unfinished(self) -> list[Row]:
        """Queued and running readings, oldest first (to resume after a restart)."""
        with self._lock:
            cursor = self._db.execute(
                "SELECT * FROM readings WHERE status IN ('queued', 'running') ORDER BY created"
            )
            rows = [self._row(r) for r in cursor.fetchall()]
        return [r for r in rows if r is not None]

    def finished(self, limit: int = 100, *, listed: bool = False) -> list[Row]:
        """The latest finished readings; with ``listed``, only those for the feed."""
        where = "status = 'done'" + (" AND listed = 1" if listed else "")
        with self._lock:
            cursor = self._db.execute(
                f"SELECT * FROM readings WHERE {where} ORDER BY finished DESC LIMIT ?", (limit,)
            )
            rows = [self._row(r) for r in cursor.fetchall()]
        return [r for r in rows if r is not None]

    def update(self, reading_id: str, **fields: Any) -> None:
        allowed = set(Row.__dataclass_fields__) - {"id", "request", "created"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown reading fields: {sorted(unknown)}")
        fields["updated"] = time.time()
        names = ", ".join(f"{name} = ?" for name in fields)
        with self._lock:
            self._db.execute(
                f"UPDATE readings SET {names} WHERE id = ?", (*fields.values(), reading_id)
            )


# -- the rest of --data ----------------------------------------------------------------------------


def prepare_data(*folders: Path) -> None:
    """Make ``folders`` and prove each can be written, or raise ``DataDirError`` saying why."""
    for folder in folders:
        probe = folder / f".write-test-{os.getpid()}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            reason = error.strerror or str(error)
            raise DataDirError(f"{folder} cannot be written ({reason})") from None


ID_KEY_FILE = "id-key"
_KEY_BYTES = 32


def id_key(data_dir: Path) -> bytes:
    """The secret that keys the ids of posted readings: made once, kept in ``data_dir``, 0600.

    Lose it and posted text submitted again becomes a new reading; readings already made keep
    their ids and links.
    """
    path = data_dir / ID_KEY_FILE
    if not path.exists():
        temporary = data_dir / f".{ID_KEY_FILE}-{os.getpid()}-{secrets.token_hex(4)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as file:
                file.write(secrets.token_hex(_KEY_BYTES) + "\n")
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(temporary, path)  # (a link never replaces an existing key)
        finally:
            temporary.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o600)
        log.warning("%s was readable by others (mode %o): now 0600", path, mode)
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != _KEY_BYTES:
        raise DataDirError(
            f"the id key {path} is damaged: restore it, or delete it to make a new one "
            "(readings already made keep their links)"
        )
    return key
