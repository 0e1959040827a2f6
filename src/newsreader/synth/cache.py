"""Content-addressed cache of synthesized segments.

key   = sha256(format version, engine's voice id (engine, voice, rate, pitch, volume), spoken
        sentences)
value = ``<key>.mp3`` (bare frames) + ``<key>.json`` (sentence timings), each written to a temporary
        name and renamed, the JSON last: an entry exists only once both files are complete.

Re-running an article costs no synthesis; an edited article re-synthesizes only changed segments. A
damaged entry is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from newsreader.audio.atomic import atomic_write
from newsreader.errors import OutputError
from newsreader.models import FRAME_BYTES, Segment, SegmentAudio, SentenceTiming

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
