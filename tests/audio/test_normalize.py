"""The embedded voice's PCM: one gain for the reading, a limiter, then LAME; ffmpeg judges."""

from __future__ import annotations

import numpy as np
import pytest

from newsreader.audio.encode import encode_pcm
from newsreader.audio.loudness import measure_pcm, pcm_samples
from newsreader.audio.mp3 import silence
from newsreader.audio.normalize import limit, normalize_pieces, sample_peaks
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
