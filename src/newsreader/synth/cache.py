"""Content-addressed cache of synthesized segments.

key   = sha256(format version, engine's voice id (engine, voice, rate, pitch, volume), spoken
        sentences)
value = ``segments/ab/<key>.mp3`` (bare frames) + ``segments/ab/<key>.json`` (sentence timings),
        each stored whole (a folder: temporary name and rename; S3: one PUT), the JSON last: an
        entry exists only once both objects are complete.

Re-running an article costs no synthesis; an edited article re-synthesizes only changed segments. A
damaged or missing entry is a miss, never an error. The entries live in a ``Storage``: the cache
folder by default, or a store shared by every worker (``segments/`` of an S3 bucket), where a
second worker finds what the first one made.

Beside the segments, ``LevelCache`` keeps each piece of audio's loudness measurement
(``Measurement.to_bytes()``, ``levels/ab/<sha256 of the frames>.nrl``), made once, the first time
a reading needs it. It is keyed by the frames themselves, not by the segment's key: a measurement
is a function of the bytes alone, so it cannot go stale, and it serves whatever made the frames
(a cached segment, a fresh one, a fallback voice, an intro). It stays in a local folder even
when the segments are shared: a measurement is derived from audio the worker holds anyway and is
cheap to make again, so sharing it would cost a round trip to save little.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from newsreader.audio.atomic import atomic_write
from newsreader.errors import OutputError, StorageError
from newsreader.models import FRAME_BYTES, Segment, SegmentAudio, SentenceTiming

if TYPE_CHECKING:
    from newsreader.audio.loudness import Measurement
    from newsreader.storage import Storage

log = logging.getLogger("newsreader.cache")

FORMAT_VERSION = 1


def cache_key(voice_id: str, segment: Segment) -> str:
    payload = json.dumps(
        [FORMAT_VERSION, voice_id, list(segment.sentences)], ensure_ascii=False
    ).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()


class SegmentCache:
    """Cached segment audio in a folder or a shared ``Storage``. ``root=None`` (and no storage)
    disables caching.

    ``SegmentCache(root)`` keeps the entries under ``root/segments/`` as it always has;
    ``SegmentCache(None, storage=...)`` keeps them under ``segments/`` of that storage (e.g. an S3
    bucket shared by every worker), same keys, same layout. Reads and writes that fail are
    misses and skipped writes; after a failure of a remote storage it is left alone for
    ``PAUSE_AFTER_FAILURE`` seconds so that an unreachable store does not slow every segment.
    """

    PAUSE_AFTER_FAILURE = 30.0

    def __init__(self, root: Path | None, *, storage: Storage | None = None) -> None:
        self.root = root
        if storage is None and root is not None:
            from newsreader.storage.directory import DirectoryStorage

            storage = DirectoryStorage(root)
        self.storage = storage
        self.remote = storage is not None and not isinstance(storage, _local_types())
        """True when the entries are not local files (calls may wait on the network)."""
        self.hits = 0
        self.misses = 0
        self._paused_until = 0.0

    @property
    def enabled(self) -> bool:
        return self.storage is not None

    @staticmethod
    def _keys(key: str) -> tuple[str, str]:
        stem = f"segments/{key[:2]}/{key}"
        return f"{stem}.mp3", f"{stem}.json"

    def _usable(self) -> Storage | None:
        if self.storage is None or time.monotonic() < self._paused_until:
            return None
        return self.storage

    def _failed(self, error: Exception) -> None:
        if self.remote and isinstance(error, StorageError):
            log.warning("segment cache: %s (not used for %.0f s)", error, self.PAUSE_AFTER_FAILURE)
            self._paused_until = time.monotonic() + self.PAUSE_AFTER_FAILURE

    def get(self, key: str, segment: Segment) -> SegmentAudio | None:
        storage = self._usable()
        if storage is None:
            if self.storage is not None:
                self.misses += 1
            return None
        mp3_key, meta_key = self._keys(key)
        try:
            raw = storage.get_bytes(meta_key)
            if raw is None:
                raise KeyError(meta_key)
            meta = json.loads(raw.decode("utf-8"))
            mp3 = storage.get_bytes(mp3_key)
            if mp3 is None:
                raise KeyError(mp3_key)
            timings = tuple(
                SentenceTiming(text=str(t), start=float(s), end=float(e))
                for t, s, e in meta["sentences"]
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError, StorageError) as error:
            self._failed(error)
            self.misses += 1
            return None
        if (
            meta.get("bytes") != len(mp3)
            or len(mp3) % FRAME_BYTES
            or len(timings) != len(segment.sentences)
        ):
            self.misses += 1
            return None
        self.hits += 1
        return SegmentAudio(mp3=mp3, sentences=timings)

    def put(self, key: str, audio: SegmentAudio) -> None:
        """Store the entry: the MP3 first, the JSON last (an entry counts once its JSON is
        there, and the JSON names the MP3's length)."""
        storage = self._usable()
        if storage is None:
            return
        mp3_key, meta_key = self._keys(key)
        meta = {
            "bytes": len(audio.mp3),
            "sentences": [[t.text, t.start, t.end] for t in audio.sentences],
        }
        try:
            storage.put_bytes(mp3_key, audio.mp3, "audio/mpeg")
            storage.put_bytes(
                meta_key, json.dumps(meta, ensure_ascii=False).encode("utf-8"), "application/json"
            )
        except (OSError, OutputError, StorageError, ValueError) as error:
            # A cache that cannot be written costs speed, not correctness.
            self._failed(error)
            return

    async def aget(self, key: str, segment: Segment) -> SegmentAudio | None:
        """``get`` for the event loop: in a thread when the storage is remote."""
        if not self.remote:
            return self.get(key, segment)
        return await asyncio.to_thread(self.get, key, segment)

    async def aput(self, key: str, audio: SegmentAudio) -> None:
        """``put`` for the event loop: in a thread when the storage is remote."""
        if not self.remote:
            self.put(key, audio)
            return
        await asyncio.to_thread(self.put, key, audio)


def _local_types() -> tuple[type, ...]:
    from newsreader.storage.directory import DirectoryStorage

    return (DirectoryStorage,)


def frames_digest(frames: bytes) -> str:
    """The key of a piece of audio's loudness measurement: the sha256 of its frames."""
    return hashlib.sha256(frames).hexdigest()


class LevelCache:
    """Loudness measurements of pieces of bare frames. ``root=None``: measured every time.

    Always a local folder, also when the segments are in a shared storage: a measurement is
    derived from frames the worker already holds and is cheap to make again."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.hits = 0
        self.measured = 0

    def _path(self, digest: str) -> Path:
        assert self.root is not None
        return self.root / "levels" / digest[:2] / f"{digest}.nrl"

    def get(self, digest: str) -> Measurement | None:
        """The stored measurement of the frames with this digest; None when missing or damaged."""
        if self.root is None:
            return None
        from newsreader.audio.loudness import Measurement

        try:
            found = Measurement.from_bytes(self._path(digest).read_bytes())
        except (OSError, ValueError):
            return None
        self.hits += 1
        return found

    def put(self, digest: str, measurement: Measurement) -> None:
        if self.root is None:
            return
        path = self._path(digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, measurement.to_bytes())
        except (OSError, OutputError):
            return  # a cache that cannot be written costs speed, not correctness

    def measure(self, pieces: Sequence[bytes]) -> list[Measurement]:
        """Each piece's measurement: stored ones read, the others measured (each as if alone)
        and stored. Raises ``SynthesisError`` if one cannot be decoded."""
        from newsreader.audio.loudness import measure_apart

        digests = [frames_digest(p) for p in pieces]
        found: list[Measurement | None] = [self.get(d) for d in digests]
        missing = [i for i, m in enumerate(found) if m is None]
        measured = measure_apart([pieces[i] for i in missing])
        for i, measurement in zip(missing, measured, strict=True):
            self.put(digests[i], measurement)
            found[i] = measurement
        self.measured += len(missing)
        return [m for m in found if m is not None]
