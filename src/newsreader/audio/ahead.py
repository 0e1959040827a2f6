"""Loudness measured ahead: each segment as soon as its audio arrives, not when it is written.

A reading's level meter (``audio.level.LevelMeter``) notes the pieces in playing order, and a
segment's audio is written only when it and all before it are ready. With many requests at once
most segments arrive well before their turn, and on a run of two rounds nearly all are written
at the end, after the network is done: their measuring (an ffmpeg decode and the true-peak
oversampling, a few tenths of a second of CPU for a minute of speech) was the last thing the run
waited for. ``AheadLevels`` starts measuring each segment when the scheduler has it
(``ahead``), in a worker thread while the other requests are still out, and hands those
measurements to the meter when it asks (``measure``): the same numbers, taken earlier.

A worker measures what has come since it last looked in one ffmpeg run, up to about a minute
of audio at a time as the meter batches (the decoded samples of a whole round of segments would
be hundreds of megabytes). Segments come in rounds, a level's worth at once, so a second worker
starts while the first is busy: ffmpeg and most of numpy's work run outside the GIL, and on two
cores the last round is measured in about half the time. A measurement is used once and let go.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

from newsreader.audio.mp3 import SILENT_FRAME, bare_frames
from newsreader.errors import SynthesisError
from newsreader.models import FRAME_BYTES
from newsreader.synth.cache import LevelCache, frames_digest

if TYPE_CHECKING:
    from pathlib import Path

    from newsreader.audio.loudness import Measurement


BATCH_FRAMES = 2500
"""Frames (a minute of audio) a worker measures in one ffmpeg run, at most (one piece more)."""
WORKERS = 2
"""Worker threads measuring at once, at most."""


class AheadLevels(LevelCache):
    """A ``LevelCache`` that can be told of a piece before the meter asks for it."""

    def __init__(
        self, root: Path | None, *, batch_frames: int = BATCH_FRAMES, workers: int = WORKERS
    ) -> None:
        super().__init__(root)
        self.batch_frames = batch_frames
        self.workers = max(1, workers)
        self._lock = threading.Lock()
        self._queue: list[tuple[bytes, Future[Measurement]]] = []
        self._ahead: dict[str, Future[Measurement]] = {}
        self._working = 0

    def ahead(self, mp3: bytes) -> None:
        """A segment's audio, arrived: start measuring its frames (in a worker thread), keyed
        as the meter will see them (bare frames: no tag, no Info frame)."""
        if mp3.count(SILENT_FRAME) * FRAME_BYTES == len(mp3):
            return  # silence: the meter counts it as a pause and never asks for its measurement
        try:
            frames = bare_frames(mp3)
        except SynthesisError:
            return  # not in edge's format: the reading reports it when the segment is placed
        if not frames:
            return
        key = frames_digest(frames)
        with self._lock:
            if key in self._ahead:
                return
            future: Future[Measurement] = Future()
            self._ahead[key] = future
            self._queue.append((frames, future))
            if self._working >= self.workers:
                return
            self._working += 1
        threading.Thread(target=self._work, name="levels-ahead", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._working -= 1
                    return
                batch: list[tuple[bytes, Future[Measurement]]] = []
                frames = 0
                while self._queue and frames < self.batch_frames:
                    batch.append(self._queue.pop(0))
                    frames += len(batch[-1][0]) // FRAME_BYTES
            try:
                found = super().measure([frames for frames, _ in batch])
            except BaseException as exc:  # the meter raises it when it asks for these
                for _, future in batch:
                    future.set_exception(exc)
            else:
                for (_, future), measurement in zip(batch, found, strict=True):
                    future.set_result(measurement)

    def measure(self, pieces: Sequence[bytes]) -> list[Measurement]:
        """Each piece's measurement: those measured ahead (waited for if still under way),
        the others measured now (``LevelCache.measure``)."""
        waiting: list[Future[Measurement] | None] = []
        with self._lock:
            for piece in pieces:
                waiting.append(self._ahead.pop(frames_digest(piece), None))
        missing = [piece for piece, future in zip(pieces, waiting, strict=True) if future is None]
        measured = iter(super().measure(missing) if missing else [])
        return [next(measured) if future is None else future.result() for future in waiting]
