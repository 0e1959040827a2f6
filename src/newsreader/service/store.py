"""The job store: one SQLite table of readings, beside the finished audio files.

A reading is accepted only once its row is committed, so a restart loses no accepted job: rows
still ``queued`` or ``running`` are queued again at start-up (the segment cache makes a resumed job
re-synthesize only what it had not finished). A row becomes ``done`` only after its files are
complete (written atomically), never before.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
    finished      REAL
);
CREATE INDEX IF NOT EXISTS readings_status ON readings (status, created);
"""


@dataclass(frozen=True)
class Row:
    id: str
    request: dict[str, Any]
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


class JobStore:
    """Thread-safe access to the readings table (calls are short; WAL keeps readers unblocked)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _row(self, record: sqlite3.Row | None) -> Row | None:
        if record is None:
            return None
        values = dict(record)
        values["request"] = json.loads(values["request"])
        return Row(**values)

    def get(self, reading_id: str) -> Row | None:
        with self._lock:
            cursor = self._db.execute("SELECT * FROM readings WHERE id = ?", (reading_id,))
            return self._row(cursor.fetchone())

    def add(self, reading_id: str, request: dict[str, Any], source: str | None) -> Row:
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

    def finished(self, limit: int = 100) -> list[Row]:
        with self._lock:
            cursor = self._db.execute(
                "SELECT * FROM readings WHERE status = 'done' ORDER BY finished DESC LIMIT ?",
                (limit,),
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
