"""Lossless gain for edge-format MP3: shift every granule's ``global_gain``, touch nothing else.

A Layer III decoder scales each granule's dequantized spectrum by ``2 ** (global_gain / 4)``, so
adding ``n`` to the field of every granule makes the decoded audio exactly ``2 ** (n / 4)`` times
louder (n x 1.505 dB) without decoding or re-encoding anything; this is what mp3gain does.

In edge's format (MPEG-2 LSF, mono, one granule per frame, no CRC) the 9 bytes of side
information follow the 4-byte header (ISO/IEC 13818-3, 2.4.1.7):

    main_data_begin 8 | private_bits 1 | part2_3_length 12 | big_values 9 | global_gain 8 | ...

so ``part2_3_length`` is bits 41-52 of the frame and ``global_gain`` bits 62-69 (bytes 7 and 8);
with a CRC (2 bytes after the header) everything sits 16 bits later, and the CRC, which covers the
side information, is recomputed. Granules with no coded bits (``part2_3_length == 0``, e.g. the
silent frames that make pauses) decode to zero at any gain and are left as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from newsreader.audio.loudness import SILENCE, Measurement
from newsreader.models import FRAME_BYTES

STEP_DB = 20 * math.log10(2) / 4
"""One global_gain step: 2 ** (1/4) in amplitude, 1.505 dB."""
MAX_STEPS = 40
"""No adjustment beyond +-60 dB: anything further means the audio is silence or broken."""
TRUE_PEAK_CEILING = -1.0
"""dBTP a normalized output's true peak must not exceed."""

_SIDE_INFO_BIT = 32
_PART2_3_LENGTH = (9, 12)
_GLOBAL_GAIN = (30, 8)
_SIDE_INFO_BYTES = 9


@dataclass(frozen=True)
class GainPlan:
    """What the lossless path will do to a programme, and what it will measure afterwards."""

    steps: int
    """global_gain steps to add to every coded granule (negative: quieter)."""
    loudness: float
    """Integrated loudness after the change, LUFS."""
    true_peak: float
    """True peak after the change, dBTP."""

    @property
    def gain_db(self) -> float:
        return self.steps * STEP_DB


def plan(measurement: Measurement, target: float, ceiling: float = TRUE_PEAK_CEILING) -> GainPlan:
    """The step count that brings ``measurement`` nearest ``target`` LUFS (within 0.75 dB) with
    its true peak at most ``ceiling`` dBTP; when both cannot hold, the ceiling wins and the
    output stays quieter than the target. Silence gets no change."""
    return plan_for(measurement.integrated, measurement.true_peak, target, ceiling)


def plan_for(
    loudness: float, peak: float, target: float, ceiling: float = TRUE_PEAK_CEILING
) -> GainPlan:
    """``plan`` from an integrated loudness (LUFS) and a true peak (dBTP) already known."""
    if loudness == SILENCE or peak == SILENCE:
        return GainPlan(0, loudness, peak)
    steps = round((target - loudness) / STEP_DB)
    # The ceiling is checked with a hair of margin against float rounding at exactly -1.0.
    limit = math.floor((ceiling - peak) / STEP_DB + 1e-9)
    steps = max(-MAX_STEPS, min(MAX_STEPS, steps, limit))
    return GainPlan(steps, loudness + steps * STEP_DB, peak + steps * STEP_DB)


def _field(frames: npt.NDArray[np.uint8], bit: int, width: int) -> npt.NDArray[np.int64]:
    """A big-endian bit field at the same position in every frame (rows of ``frames``)."""
    first = bit // 8
    word = np.zeros(len(frames), dtype=np.int64)
    for i in range(3):
        word = (word << 8) | frames[:, first + i]
    return (word >> (24 - bit % 8 - width)) & ((1 << width) - 1)


def _set_field(
    frames: npt.NDArray[np.uint8], bit: int, width: int, value: npt.NDArray[np.int64]
) -> None:
    first = bit // 8
    shift = 24 - bit % 8 - width
    mask = ((1 << width) - 1) << shift
    word = np.zeros(len(frames), dtype=np.int64)
    for i in range(3):
        word = (word << 8) | frames[:, first + i]
    word = (word & ~mask) | ((value << shift) & mask)
    for i in range(3):
        frames[:, first + i] = (word >> (16 - 8 * i)) & 0xFF


def _frames(mp3: bytes) -> npt.NDArray[np.uint8]:
    if len(mp3) % FRAME_BYTES:
        raise ValueError(
            f"{len(mp3)} bytes is not a whole number of {FRAME_BYTES}-byte frames; "
            "pass the output of bare_frames()"
        )
    frames = np.frombuffer(mp3, dtype=np.uint8).reshape(-1, FRAME_BYTES)
    if len(frames) and not (
        np.all(frames[:, 0] == 0xFF)
        and np.all(frames[:, 1] & 0xFE == 0xF2)
        and np.all(frames[:, 3] >> 6 == 0b11)
    ):
        raise ValueError("gain needs MPEG-2 Layer III mono frames (edge's format)")
    return frames


def _protected(frames: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Frames that carry a CRC (protection bit 0)."""
    return np.asarray((frames[:, 1] & 1) == 0)


def global_gains(mp3: bytes) -> list[int]:
    """Each frame's global_gain (edge's format: one granule per frame)."""
    frames = _frames(mp3)
    values = np.zeros(len(frames), dtype=np.int64)
    for crc, rows in _groups(frames):
        base = _SIDE_INFO_BIT + (16 if crc else 0)
        values[rows] = _field(frames[rows], base + _GLOBAL_GAIN[0], _GLOBAL_GAIN[1])
    return [int(v) for v in values]


def _groups(frames: npt.NDArray[np.uint8]) -> list[tuple[bool, npt.NDArray[np.intp]]]:
    protected = _protected(frames)
    return [
        (crc, rows)
        for crc, rows in ((False, np.flatnonzero(~protected)), (True, np.flatnonzero(protected)))
        if len(rows)
    ]


@dataclass(frozen=True)
class Adjusted:
    mp3: bytes
    clamped: int
    """Granules whose global_gain hit 0 or 255 (their gain differs from the rest)."""


def apply_gain(mp3: bytes, steps: int) -> Adjusted:
    """Bare edge-format frames with ``steps`` added to every coded granule's global_gain.

    Every other bit stays as it was (the CRC is recomputed where a frame has one); the frame
    count and so the duration are unchanged.
    """
    if not -255 <= steps <= 255:
        raise ValueError(f"a global_gain shift of {steps} steps is out of range")
    frames = _frames(mp3)
    if steps == 0 or not len(frames):
        return Adjusted(mp3, 0)
    out = frames.copy()
    clamped = 0
    for crc, rows in _groups(out):
        base = _SIDE_INFO_BIT + (16 if crc else 0)
        group = out[rows]
        coded = _field(group, base + _PART2_3_LENGTH[0], _PART2_3_LENGTH[1]) > 0
        gains = _field(group, base + _GLOBAL_GAIN[0], _GLOBAL_GAIN[1])
        shifted = gains + steps
        clamped += int(np.count_nonzero(coded & ((shifted < 0) | (shifted > 255))))
        new = np.where(coded, np.clip(shifted, 0, 255), gains)
        _set_field(group, base + _GLOBAL_GAIN[0], _GLOBAL_GAIN[1], new)
        if crc:
            for row in group:
                row[4:6] = np.frombuffer(_crc(row).to_bytes(2, "big"), dtype=np.uint8)
        out[rows] = group
    return Adjusted(out.tobytes(), clamped)


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """The CRC-16 of MPEG audio (polynomial 0x8005, initial value 0xFFFF, no reflection)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _crc(frame: npt.NDArray[np.uint8]) -> int:
    """The CRC of a protected frame: header bytes 2-3 and the side information."""
    raw = frame.tobytes()
    return crc16(raw[2:4] + raw[6 : 6 + _SIDE_INFO_BYTES])
