"""The embedded voice's PCM: one gain for the reading, a limiter, then LAME; ffmpeg judges."""

from __future__ import annotations

import numpy as np
import pytest

from newsreader.audio.encode import encode_pcm
from newsreader.audio.loudness import measure_pcm, pcm_samples
from newsreader.audio.mp3 import silence
from newsreader.audio.normalize import (
    limit,
    limit_in_place,
    normalize_pieces,
    sample_peaks,
    to_pcm,
)
from newsreader.synth.espeak import SAMPLE_RATE as ESPEAK_RATE
from tests.audio import ffmpeg_errors
from tests.audio.meter import ebur128, speech_pcm


def encoded(pieces: list[bytes]) -> bytes:
    return b"".join(encode_pcm(p, ESPEAK_RATE) + silence(20) for p in pieces)


def test_the_voice_as_it_is_misses_the_podcast_level() -> None:
    loudness, peak = ebur128(encoded(list(speech_pcm())))
    assert loudness < -17.5 and peak > -1.0  # the premise: too quiet, and peaks too high


@pytest.mark.parametrize("target", [-16.0, -19.0])
def test_the_encoded_reading_meets_the_target_and_the_ceiling(target: float) -> None:
    pieces, gain = normalize_pieces(speech_pcm(), ESPEAK_RATE, target)
    assert len(pieces) == len(speech_pcm())
    assert [len(p) for p in pieces] == [len(p) for p in speech_pcm()]
    mp3 = encoded(pieces)
    loudness, peak = ebur128(mp3)
    assert loudness == pytest.approx(target, abs=1.0)
    assert peak <= -1.0
    assert ffmpeg_errors(mp3) == ""
    assert gain > 0


def test_one_gain_for_every_piece() -> None:
    # Where the limiter is not working, every piece is the original times the same factor.
    pieces, gain = normalize_pieces(speech_pcm(), ESPEAK_RATE, -16.0)
    factor = 10 ** (gain / 20)
    ratios = []
    for before, after in zip(speech_pcm(), pieces, strict=True):
        x, y = pcm_samples(before), pcm_samples(after)
        quiet = (np.abs(x) > 0.02) & (np.abs(x) * factor < 0.1)  # far from any limiting
        ratios.append(np.median(y[quiet] / x[quiet]))
    assert ratios == pytest.approx([factor] * len(ratios), rel=0.01)


def test_a_quiet_target_needs_no_limiter() -> None:
    pieces, gain = normalize_pieces(speech_pcm(), ESPEAK_RATE, -30.0)
    x = np.concatenate([pcm_samples(p) for p in speech_pcm()])
    y = np.concatenate([pcm_samples(p) for p in pieces])
    assert np.abs(y - x * 10 ** (gain / 20)).max() <= 1 / 32768  # only rounding
    assert measure_pcm(b"".join(pieces), ESPEAK_RATE).integrated == pytest.approx(-30, abs=0.6)


def test_the_limiter_holds_the_true_peak_and_changes_gain_smoothly() -> None:
    x = pcm_samples(b"".join(speech_pcm())) * 4  # +12 dB: peaks far over full scale
    y = limit(x, ESPEAK_RATE, -3.0)
    assert sample_peaks(y, ESPEAK_RATE, 0.0).max() <= 10 ** (-3 / 20) * 1.001
    gain = np.where(np.abs(x) > 1e-3, y / np.where(x == 0, 1, x), np.nan)
    steps = np.abs(np.diff(gain))
    assert np.nanmax(steps) < 0.02  # no sample-to-sample gain jump (no hard clipping)


def test_silence_stays_silence() -> None:
    pieces, gain = normalize_pieces([bytes(44_100)], ESPEAK_RATE, -16.0)
    assert pieces == [bytes(44_100)] and gain == 0.0
    assert normalize_pieces([], ESPEAK_RATE, -16.0) == ([], 0.0)


def whole_array_limit(samples: np.ndarray, rate: int, ceiling_db: float) -> np.ndarray:
    """The limiter's recipe (module docstring) done on the whole array at once, with scipy."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ceiling = 10 ** (ceiling_db / 20)
    attack, hold = max(1, round(0.005 * rate)), round(0.040 * rate)
    for _ in range(3):
        peaks = sample_peaks(samples, rate, ceiling)
        if peaks.max() <= ceiling:
            break
        needed = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))
        spread = minimum_filter1d(needed, 2 * attack + hold + 1, mode="nearest", origin=hold // 2)
        smooth = uniform_filter1d(spread, 2 * attack + 1, mode="nearest")
        samples = samples * np.minimum(smooth, needed)
    return samples


@pytest.mark.parametrize("block", [1, 4000, 1 << 16])
def test_the_limiter_block_by_block_is_exactly_the_whole_array_recipe(block: int) -> None:
    rng = np.random.default_rng(11)
    speech = pcm_samples(b"".join(speech_pcm()))[:300_000] * 4  # +12 dB: limited hard
    noise = rng.standard_normal(70_001) * 0.4 * np.sin(np.arange(70_001) / 900) ** 2
    for x, rate, ceiling in ((speech, ESPEAK_RATE, -2.1), (noise, 24_000, -4.0)):
        expected = whole_array_limit(x, rate, ceiling)
        assert np.array_equal(limit_in_place(x.copy(), rate, ceiling, block=block), expected)
    assert np.array_equal(
        limit(noise[:50], 24_000, -30.0), whole_array_limit(noise[:50], 24_000, -30.0)
    )
    quiet = noise * 0.01  # nothing to limit: as it was
    assert np.array_equal(limit(quiet, 24_000, -1.0), quiet)


def test_pcm_is_made_block_by_block_as_a_whole() -> None:
    x = np.random.default_rng(5).standard_normal(200_003) * 0.7  # clips here and there
    whole = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2").tobytes()
    assert to_pcm(x) == whole
