"""One loudness gain per reading, for audio written as it comes: measure, plan, finish the body.

A reading's frames go to a body file as they come (``audio/writer``). On the way, a
``LevelMeter`` notes each piece: a segment's frames (measured once and cached by their hash,
``synth.cache.LevelCache``), a pause (a count of silent frames), an intro or outro clip (already
at the target, so *fixed*: measured, never gained). It keeps the K-weighted energy per 100 ms
step of the whole reading, not the pieces' measurements, so its memory grows by 80 bytes a
second of audio (about 290 kB an hour) however the reading is cut (the intro's and outro's
steps are kept apart, as a count where they are silent). Measuring waits for a batch
of about a minute of audio, so ffmpeg starts once a minute, not once a segment.

At the end, ``LevelMeter.finisher(target)`` is the writer's finishing step: it plans one
global_gain step count for all the reading's gained frames (``gain.plan``: within 0.75 dB of the
target, the true peak at most -1 dBTP), rewrites those frames' ``global_gain`` in the body in
place (``finish_body``: chunked, every other bit as it was), and returns the tags with the
resulting ``ReplayGain``. What it did (``Level``) is kept for the summary line.

``article_gain`` is the same plan as a pure function of segment measurements and pauses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from newsreader.audio.gain import STEP_DB, TRUE_PEAK_CEILING, GainPlan, apply_gain, plan, plan_for
from newsreader.audio.loudness import (
    FRAME_RATE,
    FRAME_SAMPLES,
    SILENCE,
    FloatArray,
    Measurement,
    gated_loudness_of,
    hop_chunks,
    programme,
)
from newsreader.audio.mp3 import SILENT_FRAME
from newsreader.audio.replaygain import ReplayGain
from newsreader.models import FRAME_BYTES

if TYPE_CHECKING:
    from newsreader.audio.tags import Tags
    from newsreader.audio.writer import Body
    from newsreader.synth.cache import LevelCache

BODY_CHUNK_FRAMES = 4096
"""Frames read, adjusted and written back at a time by ``finish_body`` (590 kB)."""
BATCH_SECONDS = 60.0
"""Audio a ``LevelMeter`` gathers before measuring it in one ffmpeg run."""

_HOP = hop_chunks(FRAME_RATE)
"""Energy chunks per 100 ms step (25 of 96 samples at 24 kHz)."""
_HOP_SAMPLES = FRAME_RATE // 10
_CHUNKS_PER_FRAME = FRAME_SAMPLES // (_HOP_SAMPLES // _HOP)


def article_gain(
    parts: Sequence[Measurement | int], target: float, ceiling: float = TRUE_PEAK_CEILING
) -> GainPlan:
    """The one gain for a reading: its segments' measurements and its pauses (silent frame
    counts) in playing order, planned as a whole (``gain.plan``)."""
    return plan(programme(parts), target, ceiling)


def finish_body(
    path: Path,
    steps: int,
    spans: Sequence[tuple[int, int]] | None = None,
    *,
    chunk_frames: int = BODY_CHUNK_FRAMES,
) -> int:
    """Add ``steps`` to the global_gain of every coded granule of a body file of bare frames,
    in place; ``spans`` (first frame, end frame) limit it to those frames (default: all).

    Reads, adjusts and writes back ``chunk_frames`` at a time, so memory does not grow with the
    file; the size and every bit but global_gain (and a CRC, where a frame has one) stay.
    Returns how many granules hit the field's limits (0 or 255). ``OSError`` if the file cannot
    be read or written; ``ValueError`` if it is not whole frames in edge's format.
    """
    size = path.stat().st_size
    if size % FRAME_BYTES:
        raise ValueError(f"{path} holds {size} bytes: not a whole number of frames")
    total = size // FRAME_BYTES
    if steps == 0:
        return 0
    clamped = 0
    with path.open("r+b") as body:
        for first, end in spans if spans is not None else [(0, total)]:
            if not 0 <= first <= end <= total:
                raise ValueError(f"frames {first}-{end} are outside the body's {total} frames")
            for at in range(first, end, chunk_frames):
                count = min(chunk_frames, end - at)
                body.seek(at * FRAME_BYTES)
                frames = body.read(count * FRAME_BYTES)
                adjusted = apply_gain(frames, steps)
                clamped += adjusted.clamped
                body.seek(at * FRAME_BYTES)
                body.write(adjusted.mp3)
    return clamped


class Programme:
    """A reading's loudness built piece by piece, as K-weighted energy per 100 ms step.

    Gained and fixed pieces (intro, outro) are kept apart, so the whole can be judged with the
    gained ones made any number of steps louder. The result equals ``programme(parts)`` of the
    same pieces (the gating blocks are the same steps).

    The steps are kept in parts of about ``PART_HOPS`` (a piece's few hundred steps are joined
    into the last part now and then), never copied into one array: judging a 20-hour reading
    needs a part's worth of memory besides them, not a few copies of them all. A run of silent
    steps is kept as its length: the fixed pieces' steps cost nothing over most of a reading.
    """

    PART_HOPS = 1 << 15
    """Steps (100 ms) to a part: about 55 minutes, 256 kB."""

    def __init__(self) -> None:
        self._hops: dict[bool, list[FloatArray | int]] = {True: [], False: []}
        """Each kind's steps: arrays, and ints for that many silent steps."""
        self._recent = 0  # how many of the last arrays in _hops are pieces not yet joined
        self._carry: dict[bool, FloatArray] = {True: np.zeros(0), False: np.zeros(0)}
        self._peak = {True: 0.0, False: 0.0}
        self.frames = 0

    def add(self, piece: Measurement | int, *, gained: bool = True) -> None:
        """Append a measured piece (whole frames at 24 kHz) or that many silent frames."""
        if isinstance(piece, int):
            chunks = piece * _CHUNKS_PER_FRAME
            energy: FloatArray = np.zeros(chunks)
            frames = piece
        else:
            if piece.rate != FRAME_RATE or len(piece.energy) % _CHUNKS_PER_FRAME:
                raise ValueError("a programme takes measurements of whole 24 kHz frames")
            energy = piece.energy
            frames = len(energy) // _CHUNKS_PER_FRAME
            self._peak[gained] = max(self._peak[gained], piece.peak)
        self.frames += frames
        for kind in (True, False):
            mine = energy if kind == gained else np.zeros(len(energy))
            joined = np.concatenate((self._carry[kind], mine))
            whole = len(joined) // _HOP * _HOP
            steps = joined[:whole].reshape(-1, _HOP).sum(axis=1)
            self._hops[kind].append(steps if steps.any() else len(steps))
            self._carry[kind] = joined[whole:]
        self._recent += 1
        if self._recent > 64:
            for kind in (True, False):
                hops = self._hops[kind]
                start = len(hops) - self._recent
                if start and _length(hops[start - 1]) < self.PART_HOPS:
                    start -= 1  # the last part has room: the pieces join it
                hops[start:] = [_joined(hops[start:])]
            self._recent = 0

    def _parts(self, steps: int, fixed: bool) -> Iterator[FloatArray]:
        factor = 10 ** (steps * STEP_DB / 20)
        for gained, kept in zip(self._hops[True], self._hops[False], strict=True):
            energy = np.zeros(gained) if isinstance(gained, int) else gained * factor * factor
            yield energy + kept if fixed and not isinstance(kept, int) else energy

    def measured(self, steps: int = 0, *, fixed: bool = True) -> tuple[float, float]:
        """(integrated LUFS, true peak dBTP) with the gained pieces ``steps`` louder; without
        ``fixed``, of the gained pieces alone (the fixed ones as silence)."""
        factor = 10 ** (steps * STEP_DB / 20)
        peak = self._peak[True] * factor
        if fixed:
            peak = max(peak, self._peak[False])
        loudness = gated_loudness_of(lambda: self._parts(steps, fixed), _HOP_SAMPLES, 1)
        return loudness, (20 * math.log10(peak) if peak > 0 else SILENCE)


def _length(steps: FloatArray | int) -> int:
    return steps if isinstance(steps, int) else len(steps)


def _joined(runs: Sequence[FloatArray | int]) -> FloatArray | int:
    """Runs of steps as one (silent runs stay a count when all of them are)."""
    if all(isinstance(run, int) for run in runs):
        return sum(_length(run) for run in runs)
    return np.concatenate([np.zeros(run) if isinstance(run, int) else run for run in runs])


@dataclass(frozen=True)
class Level:
    """What the finishing step did to a reading, and what the result measures."""

    steps: int
    """global_gain steps added to the reading's own frames (1.5 dB each)."""
    loudness: float
    """Integrated loudness of the finished audio, LUFS (intro and outro included)."""
    true_peak: float
    """True peak of the finished audio, dBTP."""
    clamped: int = 0
    """Granules whose global_gain hit 0 or 255 (should be none)."""

    @property
    def gain_db(self) -> float:
        return self.steps * STEP_DB

    @property
    def replaygain(self) -> ReplayGain:
        return ReplayGain(self.loudness, self.true_peak)

    def describe(self) -> str:
        """``-16.2 LUFS, true peak -2.9 dBTP`` for the summary line."""
        from newsreader.audio.loudness import describe

        return describe(self.loudness, self.true_peak)


@dataclass
class _Piece:
    start: int
    frames: bytes | None
    """Frames still to measure (None once measured or for silence)."""
    measurement: Measurement | int | None
    gained: bool


class LevelMeter:
    """Notes a reading's pieces as they go to the body file, in playing order (see module)."""

    def __init__(self, cache: LevelCache, *, batch_seconds: float = BATCH_SECONDS) -> None:
        self.cache = cache
        self.batch_frames = max(1, round(batch_seconds / 0.024))
        self.restart()

    def restart(self) -> None:
        """The reading starts again (another voice): forget everything noted."""
        self.programme = Programme()
        self._queue: list[_Piece] = []
        self._pending_frames = 0
        self._spans: list[tuple[int, int]] = []
        self._position = 0
        self.level: Level | None = None
        """Set by the finishing step."""

    def add(self, frames: bytes, *, gained: bool = True) -> None:
        """The next piece of the body: bare frames as written (a run of silent frames counts
        as a pause). ``gained=False`` for an intro or outro already at the target."""
        if not frames:
            return
        if len(frames) % FRAME_BYTES:
            raise ValueError(f"{len(frames)} bytes is not a whole number of frames")
        count = len(frames) // FRAME_BYTES
        start = self._position
        self._position += count
        if frames == SILENT_FRAME * count:
            self._queue.append(_Piece(start, None, count, gained))
        else:
            self._queue.append(_Piece(start, frames, None, gained))
            self._pending_frames += count
            if gained:
                if self._spans and self._spans[-1][1] >= start:
                    self._spans[-1] = (self._spans[-1][0], self._position)
                else:
                    self._spans.append((start, self._position))
        if self._pending_frames >= 2 * self.batch_frames:
            self.measure_pending()  # drain() was not called: keep the memory bounded anyway
        else:
            self._fold()

    async def settle(self) -> None:
        """After each segment: measure in a worker thread once a batch has gathered."""
        if self._pending_frames >= self.batch_frames:
            await asyncio.to_thread(self.measure_pending)

    def measure_pending(self) -> None:
        """Measure every piece not measured yet (``SynthesisError`` if ffmpeg cannot decode)."""
        waiting = [p for p in self._queue if p.measurement is None]
        results = self.cache.measure([p.frames for p in waiting if p.frames is not None])
        for piece, measurement in zip(waiting, results, strict=True):
            piece.measurement, piece.frames = measurement, None
        self._pending_frames = 0
        self._fold()

    def _fold(self) -> None:
        while self._queue and self._queue[0].measurement is not None:
            piece = self._queue.pop(0)
            assert piece.measurement is not None
            self.programme.add(piece.measurement, gained=piece.gained)

    @property
    def frames(self) -> int:
        return self._position

    def plan(self, target: float | None, ceiling: float = TRUE_PEAK_CEILING) -> Level:
        """Measure what is left and choose the gain (0 steps when ``target`` is None)."""
        self.measure_pending()
        if target is None:
            steps = 0
        else:
            loudness, peak = self.programme.measured(fixed=False)
            steps = plan_for(loudness, peak, target, ceiling).steps
        loudness, peak = self.programme.measured(steps)
        return Level(steps, loudness, peak)

    def finish(self, path: Path, target: float | None) -> Level:
        """Plan the gain, apply it to the body file at ``path`` in place; the result."""
        level = self.plan(target)
        size = path.stat().st_size
        if size != self._position * FRAME_BYTES:
            raise ValueError(
                f"the body holds {size // FRAME_BYTES} frames but {self._position} were noted"
            )
        clamped = finish_body(path, level.steps, self._spans)
        self.level = dataclasses.replace(level, clamped=clamped)
        return self.level

    def finisher(self, target: float | None) -> Callable[[Body, Tags], Tags]:
        """The writer's finishing step (``audio.writer.Finisher``): one gain for the reading,
        then the tags with its ReplayGain."""

        def finish(body: Body, tags: Tags) -> Tags:
            level = self.finish(body.path, target)
            return dataclasses.replace(tags, replaygain=level.replaygain)

        return finish


class AudioSink(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def restart(self) -> None: ...


class MeasuredSink:
    """An ``AudioSink`` that notes what it passes on to ``sink`` in ``meter``.

    ``intro`` (bare frames at the target) goes first, now and again after a restart; the
    reading's own frames then start ``len(intro) // 144`` frames in.
    """

    def __init__(self, sink: AudioSink, meter: LevelMeter, intro: bytes = b"") -> None:
        self.sink = sink
        self.meter = meter
        self.intro = intro
        self.write_clip(intro)

    def write(self, data: bytes) -> None:
        self.sink.write(data)
        self.meter.add(data)

    def write_clip(self, data: bytes) -> None:
        """An intro or outro: written, measured, never gained (it is at the target already)."""
        if data:
            self.sink.write(data)
            self.meter.add(data, gained=False)

    async def drain(self) -> None:
        await self.sink.drain()
        await self.meter.settle()

    def restart(self) -> None:
        self.sink.restart()
        self.meter.restart()
        self.write_clip(self.intro)
