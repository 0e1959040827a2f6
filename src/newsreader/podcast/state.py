"""The feed's state: one SQLite file beside the output folder, the single source of truth.

feed.xml is always written from it, and a row is written only after the files it names are
complete (one transaction per episode), so after a crash the state never names a missing or
partial file. Three tables:

- ``episodes``: one row per published episode (its guid, slug, revision, files, exact size and
  duration, and the text of its feed item);
- ``entries``: one row per source entry (its id in the source feed and the hash of its text),
  pointing at the episode that reads it. An entry whose episode ``--keep`` removed stays as
  ``retired`` so that it is not made again;
- ``expiring``: files feed.xml no longer names (a replaced revision, an episode ``--keep``
  removed), with when they left it: they stay published for a grace period, for podcast apps
  still holding an older feed.xml, and a later run deletes them once it has passed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from newsreader.errors import OutputError

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS episodes (
    guid TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('article', 'digest')),
    revision INTEGER NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    link TEXT,
    published TEXT NOT NULL,
    audio TEXT NOT NULL,
    audio_bytes INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    transcript TEXT NOT NULL,
    chapters TEXT NOT NULL,
    engine TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,
    episode TEXT,
    status TEXT NOT NULL CHECK (status IN ('live', 'retired')),
    updated TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_episode ON entries (episode);
CREATE TABLE IF NOT EXISTS expiring (
    name TEXT PRIMARY KEY,
    since TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class StoredEpisode:
    guid: str
    slug: str
    kind: str
    """``article`` or ``digest``."""
    revision: int
    """1 for the first audio; +1 each time the text changed and the audio was made again."""
    title: str
    description: str
    link: str | None
    published: datetime
    audio: str
    """File names, relative to the episodes folder."""
    audio_bytes: int
    duration_ms: int
    transcript: str
    chapters: str
    engine: str
    created: datetime
    updated: datetime

    @property
    def files(self) -> tuple[str, str, str]:
        return (self.audio, self.transcript, self.chapters)


@dataclass(frozen=True)
class StoredEntry:
    key: str
    content_hash: str
    episode: str | None
    retired: bool


_EPISODE_COLUMNS = (
    "guid, slug, kind, revision, title, description, link, published, audio, audio_bytes, "
    "duration_ms, transcript, chapters, engine, created, updated"
)


class FeedState:
    """The SQLite store; use as a context manager, or call ``close``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.executescript(_SCHEMA)
            with self._transaction():
                self._db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)",
                    (SCHEMA_VERSION,),
                )
        except sqlite3.DatabaseError as error:
            raise OutputError(f"cannot use the feed state {path}: {error}.") from None
        version = self.meta("schema")
        if version != SCHEMA_VERSION:
            raise OutputError(
                f"{path} was written by another newsreader version (state schema {version}): "
                "use a new output folder."
            )

    def __enter__(self) -> FeedState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ── meta ───────────────────────────────────────────────────────────────────────────────

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # ── reading ────────────────────────────────────────────────────────────────────────────

    def episodes(self) -> list[StoredEpisode]:
        """Every episode, newest first (by date, then by when it was made)."""
        rows = self._db.execute(
            f"SELECT {_EPISODE_COLUMNS} FROM episodes ORDER BY published DESC, created DESC"
        ).fetchall()
        return [_episode(row) for row in rows]

    def episode(self, guid: str) -> StoredEpisode | None:
        row = self._db.execute(
            f"SELECT {_EPISODE_COLUMNS} FROM episodes WHERE guid = ?", (guid,)
        ).fetchone()
        return None if row is None else _episode(row)

    def entry(self, key: str) -> StoredEntry | None:
        row = self._db.execute(
            "SELECT key, content_hash, episode, status FROM entries WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return StoredEntry(row[0], row[1], row[2], row[3] == "retired")

    def expiring(self) -> dict[str, datetime]:
        """Files kept past their episode, with when each left feed.xml."""
        rows = self._db.execute("SELECT name, since FROM expiring").fetchall()
        return {str(name): datetime.fromisoformat(str(since)) for name, since in rows}

    def slug_owner(self, slug: str) -> str | None:
        row = self._db.execute("SELECT guid FROM episodes WHERE slug = ?", (slug,)).fetchone()
        return None if row is None else str(row[0])

    # ── writing: each call is one transaction ──────────────────────────────────────────────

    def save_episode(
        self,
        episode: StoredEpisode,
        entries: Iterable[tuple[str, str]],
        *,
        now: datetime,
        replaced: Sequence[str] = (),
    ) -> None:
        """Insert or replace the episode and point its entries ``(key, content_hash)`` at it.

        ``replaced`` names the files of the revision it replaces: from ``now`` on, expiring.
        """
        values = (
            episode.guid,
            episode.slug,
            episode.kind,
            episode.revision,
            episode.title,
            episode.description,
            episode.link,
            _utc(episode.published),
            episode.audio,
            episode.audio_bytes,
            episode.duration_ms,
            episode.transcript,
            episode.chapters,
            episode.engine,
            _utc(episode.created),
            _utc(episode.updated),
        )
        marks = ", ".join("?" * len(values))
        with self._transaction() as db:
            db.execute(
                f"INSERT OR REPLACE INTO episodes ({_EPISODE_COLUMNS}) VALUES ({marks})", values
            )
            db.executemany(
                "INSERT INTO entries (key, content_hash, episode, status, updated) "
                "VALUES (?, ?, ?, 'live', ?) ON CONFLICT (key) DO UPDATE SET "
                "content_hash = excluded.content_hash, episode = excluded.episode, "
                "status = 'live', updated = excluded.updated",
                [(key, digest, episode.guid, now.isoformat()) for key, digest in entries],
            )
            _expire(db, replaced, now)
            # A name used again (an episode made anew after its files were lost) is not expiring.
            db.executemany(
                "DELETE FROM expiring WHERE name = ?", [(name,) for name in episode.files]
            )

    def forget(self, guids: Sequence[str]) -> None:
        """Drop episodes and their entries, so that those entries count as new again."""
        with self._transaction() as db:
            for guid in guids:
                db.execute("DELETE FROM entries WHERE episode = ?", (guid,))
                db.execute("DELETE FROM episodes WHERE guid = ?", (guid,))

    def retire(self, guids: Sequence[str], *, now: datetime) -> None:
        """Drop episodes, remembering their entries as retired (never made again).

        Their files are expiring from ``now`` on.
        """
        with self._transaction() as db:
            for guid in guids:
                row = db.execute(
                    "SELECT audio, transcript, chapters FROM episodes WHERE guid = ?", (guid,)
                ).fetchone()
                if row is not None:
                    _expire(db, [str(name) for name in row], now)
                db.execute(
                    "UPDATE entries SET status = 'retired', episode = NULL, updated = ? "
                    "WHERE episode = ?",
                    (now.isoformat(), guid),
                )
                db.execute("DELETE FROM episodes WHERE guid = ?", (guid,))

    def forget_expiring(self, names: Sequence[str]) -> None:
        """Stop tracking files that were deleted (or are named by an episode again)."""
        with self._transaction() as db:
            db.executemany("DELETE FROM expiring WHERE name = ?", [(name,) for name in names])


def _expire(db: sqlite3.Connection, names: Sequence[str], since: datetime) -> None:
    db.executemany(
        "INSERT INTO expiring (name, since) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        [(name, _utc(since)) for name in names],
    )


def _utc(when: datetime) -> str:
    """ISO 8601 in UTC: stored dates then sort as text."""
    if when.tzinfo is None:
        raise ValueError(f"a stored date needs a time zone: {when}")
    return when.astimezone(UTC).isoformat()


def _episode(row: Sequence[object]) -> StoredEpisode:
    (
        guid,
        slug,
        kind,
        revision,
        title,
        description,
        link,
        published,
        audio,
        audio_bytes,
        duration_ms,
        transcript,
        chapters,
        engine,
        created,
        updated,
    ) = row
    return StoredEpisode(
        guid=str(guid),
        slug=str(slug),
        kind=str(kind),
        revision=int(str(revision)),
        title=str(title),
        description=str(description),
        link=None if link is None else str(link),
        published=datetime.fromisoformat(str(published)),
        audio=str(audio),
        audio_bytes=int(str(audio_bytes)),
        duration_ms=int(str(duration_ms)),
        transcript=str(transcript),
        chapters=str(chapters),
        engine=str(engine),
        created=datetime.fromisoformat(str(created)),
        updated=datetime.fromisoformat(str(updated)),
    )
