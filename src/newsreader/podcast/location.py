"""Where a feed's state lives: beside the published folder, never inside it.

The output folder (``--out``) is published as it is, so the SQLite state and the lock file live in
a state folder of their own: ``--state``, by default ``<out>.newsreader-state`` next to the output
folder (``site/news`` → ``site/news.newsreader-state``). A state folder inside the output folder is
refused.

Feeds made before the state moved out keep working: their ``.newsreader-feed.sqlite3`` is copied
to the state folder (SQLite's backup, so a journal left by a crash is honoured), renamed into
place, and only then deleted from the output folder. A run killed in between finds both copies;
the new one carries a mark that it was migrated, so the old one is then simply deleted.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from newsreader.errors import OutputError, UsageError

STATE_SUFFIX = ".newsreader-state"
STATE_FILE = "feed.sqlite3"
LOCK_FILE = "feed.lock"
LEGACY_STATE_FILE = ".newsreader-feed.sqlite3"
LEGACY_LOCK_FILE = ".newsreader-feed.lock"
_MIGRATED = "migrated_from"


@dataclass(frozen=True)
class StateLocation:
    """The state folder of one output folder."""

    out: Path
    folder: Path

    @property
    def database(self) -> Path:
        return self.folder / STATE_FILE

    @property
    def lock(self) -> Path:
        return self.folder / LOCK_FILE

    @property
    def legacy_database(self) -> Path:
        return self.out / LEGACY_STATE_FILE


def default_state_folder(out: Path) -> Path:
    """``<out>.newsreader-state`` beside the output folder."""
    resolved = out.resolve()
    if not resolved.name:
        raise UsageError(
            f"--out {out} has no folder beside it for the feed's state: give --state DIR."
        )
    return resolved.with_name(resolved.name + STATE_SUFFIX)


def state_location(out: Path, state: Path | None) -> StateLocation:
    """The state folder to use, refused when it is inside the (published) output folder."""
    folder = default_state_folder(out) if state is None else state
    inside = folder.resolve()
    published = out.resolve()
    if inside == published or inside.is_relative_to(published):
        raise UsageError(
            f"--state {state} is inside --out {out}, which is published: "
            "give a folder outside it, so that nobody can download the state."
        )
    return StateLocation(out=out, folder=folder)


def make_state_folder(location: StateLocation) -> None:
    try:
        location.folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(
            f"cannot use {location.folder} as the state folder: a file is in the way."
        ) from None
    except OSError as error:
        raise OutputError(f"cannot create {location.folder}: {error.strerror or error}.") from None


@contextlib.contextmanager
def locked(path: Path, folder: Path) -> Iterator[None]:
    """One run per feed: a second one stops at once instead of racing the first."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise OutputError(f"cannot create {path}: {error.strerror or error}.") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(
                f"another `newsreader feed` run is updating {folder}: wait for it to finish."
            ) from None
        yield
    finally:
        os.close(fd)  # closing releases the lock (so does the process dying)


def migrate_legacy_state(location: StateLocation) -> str | None:
    """Move a state kept in the output folder (older versions) to the state folder.

    Call with the state folder locked. Returns a note for the user when something was moved.
    """
    old = location.legacy_database
    if not old.is_file():
        return None
    new = location.database
    # An older newsreader still running on this folder holds the old lock: wait for nothing.
    # (No lock file, no older run: none is created in the published folder.)
    legacy_lock = location.out / LEGACY_LOCK_FILE
    guard = locked(legacy_lock, location.out) if legacy_lock.exists() else contextlib.nullcontext()
    with guard:
        if new.exists():
            if _meta(new, _MIGRATED) is None:
                raise UsageError(
                    f"there is a feed state both in {old} and in {new}: delete the one that "
                    "does not belong to this feed (or give --state)."
                )
            # A run killed after the copy was in place and before the old one was deleted.
        else:
            for stray in location.folder.glob(f".{STATE_FILE}.*.tmp"):  # an earlier copy, cut off
                stray.unlink(missing_ok=True)
            _copy_database(old, new)
        for leftover in (old, old.with_name(old.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    with contextlib.suppress(FileNotFoundError):
        (location.out / LEGACY_LOCK_FILE).unlink()
    return (
        f"moved the feed state out of the published folder: {old} is now {new} "
        "(keep that folder with the feed, and unpublished)"
    )


def _copy_database(old: Path, new: Path) -> None:
    temp = new.with_name(f".{new.name}.{secrets.token_hex(4)}.tmp")
    try:
        source = sqlite3.connect(old)
        try:
            target = sqlite3.connect(temp)
            try:
                source.backup(target)
                target.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    (_MIGRATED, str(old.resolve())),
                )
                target.commit()
            finally:
                target.close()
        finally:
            source.close()
        with open(temp, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temp, new)
    except (sqlite3.Error, OSError) as error:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise OutputError(f"cannot move the feed state {old} to {new}: {error}.") from None


def _meta(database: Path, key: str) -> str | None:
    try:
        connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        finally:
            connection.close()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])
