"""Loudness for PCM before it is encoded (the embedded voice, intros and outros).

One gain for the whole reading (no level change between segments), then a gentle look-ahead
limiter that holds the true peak under a ceiling. The ceiling sits below the -1 dBTP that the
MP3 must meet, because MP3 coding at 48 kbit/s moves peaks a little (``ENCODING_MARGIN``); the
tests measure the encoded result with ffmpeg.

The limiter needs no state: the gain each sample needs (ceiling / its oversampled peak) is spread
by a running minimum over the look-ahead and hold time, then smoothed by a moving average no wider
than that minimum; so the smoothed gain never exceeds what any sample needs, and it changes over
``ATTACK`` seconds rather than at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from newsreader.audio.loudness import (
    HALF_TAPS,
    SILENCE,
    FloatArray,
    Measurement,
    interpolator,
    join,
    measure_samples,
    oversampling,
    pcm_samples,
    runs,
)

ENCODING_MARGIN = 0.6
"""dB kept free under the ceiling for what MP3 coding adds to the peaks."""
ATTACK = 0.005
"""Seconds over which the limiter's gain falls before a peak (and rises after the hold)."""
HOLD = 0.040
"""Seconds the limiter's gain stays down after a peak, so it does not flutter within a syllable."""
MAX_GAIN_DB = 40.0
MAX_PASSES = 4
TOLERANCE = 0.1
"""LU: close enough to stop correcting the gain."""
PROBE_SECONDS = 60.0


def gain_for(measurement: Measurement, target: float) -> float:
    """dB that bring ``measurement`` to ``target`` LUFS (0 for silence), before limiting."""
    loudness = measurement.integrated
    if loudness == SILENCE:
        return 0.0
    return max(-MAX_GAIN_DB, min(MAX_GAIN_DB, target - loudness))


def limit(samples: FloatArray, rate: int, ceiling_db: float) -> FloatArray:
    """``samples`` with their true peak held at or under ``ceiling_db`` dBTP by a smooth gain."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    if not len(samples):
        return samples
    ceiling = 10 ** (ceiling_db / 20)
    attack = max(1, round(ATTACK * rate))
    hold = round(HOLD * rate)
    for _ in range(3):  # a second pass catches what smoothing let through; a third is a guard
        peaks = sample_peaks(samples, rate, ceiling)
        if peaks.max() <= ceiling:
            return samples
        needed = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))
        # Window [n - attack - hold, n + attack] (scipy's origin shifts it toward the past).
        size = 2 * attack + hold + 1
        spread: Any = minimum_filter1d(needed, size, mode="nearest", origin=hold // 2)
        smooth: Any = uniform_filter1d(spread, 2 * attack + 1, mode="nearest")
        samples = samples * np.minimum(smooth, needed)
    return samples


def sample_peaks(samples: FloatArray, rate: int, floor: float) -> FloatArray:
    """Per input sample, the largest oversampled value between it and the next one.

    Exact wherever that value could exceed ``floor``; elsewhere the sample's own magnitude
    (which is then known to be below ``floor``).
    """
    from scipy.signal import upfirdn

    up = oversampling(rate)
    taps, bound = interpolator(up)
    delay = (len(taps) - 1) // 2
    peaks = np.abs(samples)
    for start, stop in runs(np.flatnonzero(peaks * bound > floor), 4 * HALF_TAPS):
        lo, hi = max(0, start - 2 * HALF_TAPS), min(len(samples), stop + 2 * HALF_TAPS)
        upsampled: Any = upfirdn(taps, samples[lo:hi], up)[delay : delay + (hi - lo) * up]
        local = np.abs(upsampled).reshape(-1, up).max(axis=1)
        first, last = max(lo, start - HALF_TAPS), min(hi, stop + HALF_TAPS)
        peaks[first:last] = np.maximum(peaks[first:last], local[first - lo : last - lo])
    return peaks


def to_pcm(samples: FloatArray) -> bytes:
    """Floats (full scale 1.0) as 16-bit little-endian PCM, rounded and clipped."""
    return bytes(np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2").tobytes())


def normalize_pieces(
    pieces: Sequence[bytes],
    rate: int,
    target: float,
    ceiling_db: float = -1.0,
) -> tuple[list[bytes], float]:
    """The PCM pieces of one reading, all scaled by one gain and limited, so that once encoded
    they measure ``target`` LUFS with a true peak under ``ceiling_db`` dBTP.

    Returns the new pieces and the gain applied before limiting (dB). The limiter and MP3 coding
    (which drops what lies above its low-pass) both lower the loudness a little: the coding loss
    is measured once on up to ``PROBE_SECONDS`` of the limited audio, encoded and decoded, and
    the gain is corrected until the limited PCM sits that much above the target.
    """
    originals = [pcm_samples(p) for p in pieces]
    if not originals:
        return [], 0.0
    measured = join(measure_samples(s, rate) for s in originals)
    gain = gain_for(measured, target)
    if measured.integrated == SILENCE:
        return list(pieces), 0.0
    peak_ceiling = ceiling_db - ENCODING_MARGIN
    aim = target
    out: list[FloatArray] = []
    loss: float | None = None
    applied = gain
    for _ in range(MAX_PASSES):
        applied = gain
        factor = 10 ** (applied / 20)
        out = [limit(s * factor, rate, peak_ceiling) for s in originals]
        if loss is None:
            loss = coding_loss(out, rate)
            aim = target + loss
        after = join(measure_samples(s, rate) for s in out).integrated
        if abs(aim - after) < TOLERANCE:
            break
        gain = max(-MAX_GAIN_DB, min(MAX_GAIN_DB, gain + aim - after))
    return [to_pcm(s) for s in out], applied


def coding_loss(pieces: Sequence[FloatArray], rate: int) -> float:
    """dB of loudness that MP3 coding in edge's format takes from (up to) the first
    ``PROBE_SECONDS`` of ``pieces``: measured on the PCM and on the encoded, decoded audio."""
    from newsreader.audio.encode import encode_pcm
    from newsreader.audio.loudness import measure_frames

    probe = np.concatenate(list(pieces))[: int(PROBE_SECONDS * rate)]
    before = measure_samples(probe, rate).integrated
    after = measure_frames(encode_pcm(to_pcm(probe), rate)).integrated
    if before == SILENCE or after == SILENCE:
        return 0.0
    return max(0.0, min(3.0, before - after))


def normalize_pcm(pcm: bytes, rate: int, target: float, ceiling_db: float = -1.0) -> bytes:
    """One piece of 16-bit mono PCM brought to ``target`` LUFS with its true peak limited."""
    return normalize_pieces([pcm], rate, target, ceiling_db)[0][0]
