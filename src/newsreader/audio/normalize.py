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


BLOCK = 1 << 16
"""Samples the limiter and ``to_pcm`` work on at a time: their working memory is a few blocks,
not a few copies of the whole segment."""


def limit(samples: FloatArray, rate: int, ceiling_db: float) -> FloatArray:
    """``samples`` with their true peak held at or under ``ceiling_db`` dBTP by a smooth gain
    (a new array; ``limit_in_place`` changes the samples themselves)."""
    return limit_in_place(samples.copy(), rate, ceiling_db)


def limit_in_place(
    samples: FloatArray, rate: int, ceiling_db: float, *, block: int = BLOCK
) -> FloatArray:
    """``limit``, done on ``samples`` themselves, ``block`` samples at a time; returns them.

    The result is exactly that of the whole-array recipe (the module docstring): each block is
    worked out from its own samples and a margin on either side wide enough for every step
    (oversampling, running minimum, moving average), the margin before it as it was before this
    pass changed it, and the moving average's running sum is carried from block to block.
    """
    if not len(samples):
        return samples
    ceiling = 10 ** (ceiling_db / 20)
    attack = max(1, round(ATTACK * rate))
    hold = round(HOLD * rate)
    for _ in range(3):  # a second pass catches what smoothing let through; a third is a guard
        if not _limit_pass(samples, rate, ceiling, attack, hold, max(block, 1)):
            break
    return samples


def _limit_pass(
    samples: FloatArray, rate: int, ceiling: float, attack: int, hold: int, block: int
) -> bool:
    """One pass of the limiter over ``samples``, in place; False when no sample needed it (the
    samples are then as they were: every gain is exactly 1)."""
    from scipy.ndimage import minimum_filter1d

    count = len(samples)
    # Window [n - attack - hold, n + attack] (scipy's origin shifts it toward the past), then a
    # moving average over [n - attack, n + attack].
    size = 2 * attack + hold + 1
    width = 2 * attack + 1
    margin = attack + 1 + size + 8 * HALF_TAPS
    block = max(block, margin)
    before = samples[:0].copy()  # the samples before the block, as they were
    total = 0.0  # the moving average's running sum (scipy's: sequential, never re-summed)
    loudest = 0.0
    for start in range(0, count, block):
        stop = min(count, start + block)
        lo, hi = max(0, start - margin), min(count, stop + margin)
        span = np.concatenate((before[len(before) - (start - lo) :], samples[start:hi]))
        peaks = sample_peaks(span, rate, ceiling)
        loudest = max(loudest, float(peaks[start - lo : stop - lo].max()))
        needed = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))
        spread: Any = minimum_filter1d(needed, size, mode="nearest", origin=hold // 2)
        # spread at n - attack - 1 ... stop + attack - 1, held at the ends of the samples
        at = np.clip(np.arange(start - attack - 1, stop + attack), 0, count - 1) - lo
        window = spread[at]
        steps = window[width:] - window[:-width]
        if start == 0:
            total = float(np.cumsum(window[1 : width + 1])[-1])
            steps = steps[1:]
        sums = np.cumsum(np.concatenate(([total], steps)))
        if start > 0:
            sums = sums[1:]
        total = float(sums[-1])
        before = samples[max(0, stop - margin) : stop].copy()
        samples[start:stop] *= np.minimum(sums / width, needed[start - lo : stop - lo])
    return loudest > ceiling


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
    """Floats (full scale 1.0) as 16-bit little-endian PCM, rounded and clipped (``BLOCK``
    samples at a time)."""
    pcm = np.empty(len(samples), dtype="<i2")
    for start in range(0, len(samples), BLOCK):
        part = samples[start : start + BLOCK] * 32768.0
        np.round(part, out=part)
        np.clip(part, -32768, 32767, out=part)
        pcm[start : start + BLOCK] = part
    return pcm.tobytes()


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
        out = [limit_in_place(s * factor, rate, peak_ceiling) for s in originals]
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
