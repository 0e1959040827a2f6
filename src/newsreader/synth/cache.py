"""Content-addressed cache of synthesized segments.

key   = sha256(format version, engine's voice id (engine, voice, rate, pitch, volume), spoken
        sentences)
value = ``<key>.mp3`` (bare frames) + ``<key>.json`` (sentence timings), each written to a temporary
        name and renamed, the JSON last: an entry exists only once both files are complete.

Re-running an article costs no synthesis; an edited article re-synthesizes only changed segments. A
damaged entry is a miss, never an error.

Beside the segments, ``LevelCache`` keeps each piece of audio's loudness measurement
(``Measurement.to_bytes()``, ``levels/ab/<sha256 of the frames>.nrl``), made once, the first time
a reading needs it. It is keyed by the frames themselves, not by the segment's key: a measurement
is a function of the bytes alone, so it cannot go stale, and it serves whatever made the frames
(a cached segment, a fresh one, a fallback voice, an intro).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from newsreader.audio.atomic import atomic_write
from newsreader.errors import OutputError
from newsreader.models import FRAME_BYTES, Segment, SegmentAudio, SentenceTiming

if TYPE_CHECKING:
    from newsreader.audio.loudness import Measurement

FORMAT_VERSION = 1


def cache_key(voice_id: str, segment: Segment) -> str:
    payload = json.dumps(
        [FORMAT_VERSION, voice_id, list(segment.sentences)], ensure_ascii=False
    ).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()


class SegmentCache:
    """A directory of cached segment audio. ``root=None`` disables caching."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.hits = 0
        self.misses = 0

    def _paths(self, key: str) -> tuple[Path, Path]:
        assert self.root is not None
        folder = self.root / "segments" / key[:2]
        return folder / f"{key}.mp3", folder / f"{key}.json"

    def get(self, key: str, segment: Segment) -> SegmentAudio | None:
        if self.root is None:
            return None
        mp3_path, meta_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            mp3 = mp3_path.read_bytes()
            timings = tuple(
                SentenceTiming(text=str(t), start=float(s), end=float(e))
                for t, s, e in meta["sentences"]
            )
        except (OSError, ValueError, KeyError, TypeError):
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
        if self.root is None:
            return
        mp3_path, meta_path = self._paths(key)
        meta = {
            "bytes": len(audio.mp3),
            "sentences": [[t.text, t.start, t.end] for t in audio.sentences],
        }
        try:
            mp3_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(mp3_path, audio.mp3)
            atomic_write(meta_path, json.dumps(meta, ensure_ascii=False).encode("utf-8"))
        except (OSError, OutputError):
            # A cache that cannot be written costs speed, not correctness.
            return


def frames_digest(frames: bytes) -> str:
    """The key of a piece of audio's loudness measurement: the sha256 of its frames."""
    return hashlib.sha256(frames).hexdigest()


class LevelCache:
    """Loudness measurements of pieces of bare frames. ``root=None``: measured every time."""

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
        """Each piece's measurement: stored ones read, the others measured (in one ffmpeg run,
        each as if alone) and stored. Raises ``SynthesisError`` if ffmpeg cannot decode them."""
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
