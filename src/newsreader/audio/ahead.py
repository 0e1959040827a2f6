"""Loudness measured ahead: each segment while its audio streams in, not when it is written.

A reading's level meter (``audio.level.LevelMeter``) notes the pieces in playing order, and a
segment's audio is written only when it and all before it are ready. With many requests at once
most segments arrive well before their turn, and on a run of two rounds nearly all are written
at the end, after the network is done: their measuring (decoding and the true-peak
oversampling, a tenth of a second of CPU for a minute of speech) was the last thing the run
waited for. ``AheadLevels`` measures each request's audio as it arrives (``stream()``, fed by
the engine's ``Progress``), in worker threads while the other requests are still out, and hands
those measurements to the meter when it asks (``measure``): the same numbers, taken earlier.

A stream's bytes gather until ``STEP_FRAMES`` frames are there; then a worker decodes and
measures them (``loudness.FramesLoudness``: the decoder's and K-filter's state carried, a block
of samples for the true peak, never the segment's samples whole), a stream's steps in order.
When the request's answer is the one used (``complete``) and its frames are exactly the bytes
streamed, only the last step is left: the measurement is ready a few milliseconds after the
last byte. Otherwise (the engine does not stream, the frames differ from the bytes, a step
failed) the segment is measured whole, as one that came from the cache (``__call__``). A
request hung up, hedged, retried or failed drops its stream and its work.

Two workers at most: decoding and most of numpy's work run outside the GIL, and the event loop
only appends bytes. Segments measured whole go up to about a minute of audio at a time
(``BATCH_FRAMES``). A measurement is kept until the meter has asked for it as many times as
the segment was told (identical audio, from different texts, is measured once), then let go.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

from newsreader.audio.mp3 import SILENT_FRAME, bare_frames
from newsreader.errors import SynthesisError
from newsreader.models import FRAME_BYTES
from newsreader.synth.cache import LevelCache, frames_digest

if TYPE_CHECKING:
    from pathlib import Path

    from newsreader.audio.loudness import FramesLoudness, Measurement


BATCH_FRAMES = 2500
"""Frames (a minute of audio) a worker measures whole in one go, at most (one piece more)."""
STEP_FRAMES = 100
"""Frames (2.4 s of audio) a stream gathers before a worker decodes and measures them: few
enough that little is left when the last byte comes, enough that a step's overhead is small."""
WORKERS = 2
"""Worker threads measuring at once, at most."""
LINGER = 1.0
"""Seconds a worker with nothing to do waits for more before it ends. A reading's audio comes
in bursts (a step of each stream every few milliseconds while the requests are out), and a
worker started afresh for each burst (380 for the 16-minute benchmark article) made its
scratch buffers and heap anew each time: the measuring took 2.0 to 2.3 s of CPU in such a run,
1.5 s with workers that wait (0.6 s measured in one piece, alone; the rest is handing the GIL
back and forth with a busy event loop). ``close`` ends the waiting at once when the reading is
done."""


class AheadLevels(LevelCache):
    """A ``LevelCache`` that can be told of a piece before the meter asks for it: whole
    (``ahead``, or a call) or as it streams in (``stream``): an ``AudioListener``."""

    def __init__(
        self,
        root: Path | None,
        *,
        batch_frames: int = BATCH_FRAMES,
        workers: int = WORKERS,
        step_frames: int = STEP_FRAMES,
    ) -> None:
        super().__init__(root)
        self.batch_frames = batch_frames
        self.workers = max(1, workers)
        self.step_bytes = max(1, step_frames) * FRAME_BYTES
        self.streamed = 0
        """Measurements taken as their audio streamed in (counted in ``measured`` too)."""
        self._lock = threading.Lock()
        self._queue: deque[_Whole | _Stream] = deque()
        self._ahead: dict[str, Future[Measurement]] = {}
        self._told: dict[str, int] = {}  # times each piece in ``_ahead`` is still to be asked for
        self._working = 0
        self._idle = 0  # workers waiting for work (``LINGER``)
        self._ready = threading.Condition(self._lock)
        self._closed = False

    def __enter__(self) -> AheadLevels:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Workers no longer wait for more work: those waiting end now, the others when their
        queue is empty (work given later is still done, by a worker started for it)."""
        with self._lock:
            self._closed = True
            self._ready.notify_all()

    def __call__(self, mp3: bytes) -> None:
        """A segment's audio, whole (``ahead``)."""
        self.ahead(mp3)

    def stream(self) -> _Stream:
        """The ``AudioStream`` of one request's audio, measured as it arrives."""
        return _Stream(self)

    def ahead(self, mp3: bytes) -> None:
        """A segment's audio, arrived: start measuring its frames (in a worker thread), keyed
        as the meter will see them (bare frames: no tag, no Info frame)."""
        found = _frames_of(mp3)
        if found is None:
            return
        frames, key = found
        with self._lock:
            future = self._told_locked(key)
            if future is None:
                return
            start = self._queue_locked(_Whole(frames, future))
        if start:
            self._start()

    def _told_locked(self, key: str) -> Future[Measurement] | None:
        """One more telling of the piece ``key``: the future to measure it into, or None when it
        is already measured or under way."""
        if key in self._ahead:
            self._told[key] += 1
            return None
        future: Future[Measurement] = Future()
        self._ahead[key], self._told[key] = future, 1
        return future

    def _queue_locked(self, job: _Whole | _Stream) -> bool:
        """Queue ``job``; True when a worker is to be started for it (none is waiting for it,
        and fewer than ``workers`` are at work)."""
        self._queue.append(job)
        if self._idle >= len(self._queue):
            self._ready.notify()
            return False
        if self._working >= self.workers:
            return False
        self._working += 1
        return True

    def _start(self) -> None:
        threading.Thread(target=self._work, name="levels-ahead", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue and not self._closed:
                    self._idle += 1
                    self._ready.wait_for(lambda: self._queue or self._closed, LINGER)
                    self._idle -= 1
                if not self._queue:
                    self._working -= 1
                    return
                job = self._queue.popleft()
                if isinstance(job, _Stream):
                    batch = None
                else:
                    batch = [job]
                    frames = len(job.frames) // FRAME_BYTES
                    while self._queue and frames < self.batch_frames:
                        following = self._queue[0]
                        if not isinstance(following, _Whole):
                            break
                        self._queue.popleft()
                        batch.append(following)
                        frames += len(following.frames) // FRAME_BYTES
            if batch is None:
                assert isinstance(job, _Stream)
                job.step()
            else:
                self._whole(batch)

    def _whole(self, batch: list[_Whole]) -> None:
        try:
            found = LevelCache.measure(self, [whole.frames for whole in batch])
        except BaseException as exc:  # the meter raises it when it asks for these
            for whole in batch:
                whole.future.set_exception(exc)
        else:
            for whole, measurement in zip(batch, found, strict=True):
                whole.future.set_result(measurement)

    def measure(self, pieces: Sequence[bytes]) -> list[Measurement]:
        """Each piece's measurement: those measured ahead (waited for if still under way),
        the others measured now (``LevelCache.measure``)."""
        waiting: list[Future[Measurement] | None] = []
        with self._lock:
            for piece in pieces:
                key = frames_digest(piece)
                future = self._ahead.get(key)
                if future is not None:
                    self._told[key] -= 1
                    if self._told[key] <= 0:  # asked for as often as told: let go
                        del self._ahead[key], self._told[key]
                waiting.append(future)
        missing = [piece for piece, future in zip(pieces, waiting, strict=True) if future is None]
        measured = iter(super().measure(missing) if missing else [])
        return [next(measured) if future is None else future.result() for future in waiting]


def _frames_of(mp3: bytes) -> tuple[bytes, str] | None:
    """The bare frames of a segment's audio and their digest; None when the meter never asks
    for their measurement (silence: a pause to it) or they are not in edge's format (the
    reading reports that when the segment is placed)."""
    if mp3.count(SILENT_FRAME) * FRAME_BYTES == len(mp3):
        return None
    try:
        frames = bare_frames(mp3)
    except SynthesisError:
        return None
    return (frames, frames_digest(frames)) if frames else None


class _Whole:
    """A segment to measure whole, and where its measurement goes."""

    __slots__ = ("frames", "future")

    def __init__(self, frames: bytes, future: Future[Measurement]) -> None:
        self.frames = frames
        self.future = future


class _Stream:
    """One request's audio, measured in ``AheadLevels``' workers as it arrives.

    The event loop only appends (``feed``); a worker decodes and measures what has gathered
    (``step``), one step of a stream at a time (``queued``), until ``complete`` gives the
    segment and where its measurement goes, or ``drop`` lets it all go. Every field but the
    running digest is guarded by the levels' lock; ``measuring`` belongs to the step under way.
    """

    def __init__(self, levels: AheadLevels) -> None:
        self.levels = levels
        self.pending = bytearray()
        """Bytes not decoded yet."""
        self.length = 0
        self.digest = hashlib.sha256()  # of every byte fed (the event loop's alone)
        self.queued = False
        """A step is queued or under way."""
        self.dropped = False
        self.failed = False
        """A step could not decode or measure: the segment is measured whole."""
        self.closing: _Whole | None = None
        """Set by ``complete``: the last step finishes the measurement into it."""
        self.measuring: FramesLoudness | None = None

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.digest.update(chunk)
        levels = self.levels
        with levels._lock:
            if self.dropped or self.closing is not None:
                return
            self.length += len(chunk)
            if not self.failed:
                self.pending += chunk
            if self.queued or len(self.pending) < levels.step_bytes:
                return
            self.queued = True
            start = levels._queue_locked(self)
        if start:
            levels._start()

    def drop(self) -> None:
        with self.levels._lock:
            if self.closing is not None:
                return  # completed: its measurement is the one the meter will get
            self.dropped = True
            self.pending = bytearray()
            if not self.queued:
                self.measuring = None

    def complete(self, mp3: bytes) -> None:
        """The segment's audio (the answer of this request): finish the measurement if its
        frames are the bytes streamed, else measure it whole."""
        levels = self.levels
        found = _frames_of(mp3)
        with levels._lock:
            dropped = self.dropped
        if found is None or dropped:
            self.drop()
            if found is not None:
                levels.ahead(mp3)
            return
        frames, key = found
        same = len(frames) == self.length and self.digest.hexdigest() == key
        with levels._lock:
            future = levels._told_locked(key)
            if future is None or not same:
                self.dropped, self.pending = True, bytearray()
                if not self.queued:
                    self.measuring = None
                if future is None:
                    return  # measured or under way already
                start = levels._queue_locked(_Whole(frames, future))
            else:
                self.closing = _Whole(frames, future)
                start = False
                if not self.queued:
                    self.queued = True
                    start = levels._queue_locked(self)
        if start:
            levels._start()

    def step(self) -> None:
        """Decode and measure what has gathered (in a worker); at the end, the measurement."""
        from newsreader.audio.loudness import FramesLoudness

        levels = self.levels
        with levels._lock:
            if self.dropped:
                self.queued, self.measuring = False, None
                return
            data, self.pending = bytes(self.pending), bytearray()
            closing, failed = self.closing, self.failed
        measurement: Measurement | None = None
        if not failed:
            try:
                if self.measuring is None:
                    self.measuring = FramesLoudness()
                self.measuring.add(data)
                if closing is not None:
                    measurement = self.measuring.finish()
            except Exception:  # measured whole instead: its error, if any, reaches the meter
                failed = True
        with levels._lock:
            self.failed = failed
            if closing is None:
                if self.dropped:
                    self.queued, self.measuring = False, None
                elif self.closing is not None or len(self.pending) >= levels.step_bytes:
                    levels._queue.append(self)  # this worker is running: no new one needed
                else:
                    self.queued = False
                return
            self.queued, self.measuring = False, None
        if measurement is None:
            levels._whole([closing])
            return
        levels.put(frames_digest(closing.frames), measurement)
        levels.measured += 1
        levels.streamed += 1
        closing.future.set_result(measurement)
