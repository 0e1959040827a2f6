"""True peak: the pruned evaluation against oversampling every sample, on hard signals."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsreader.audio import loudness

RATES = [24_000, 48_000, 44_100, 22_050]


def everything(samples: npt.NDArray[np.floating], rate: int) -> float:
    """The true peak by brute force: every sample oversampled, plus the samples themselves."""
    from scipy.signal import upfirdn

    up = loudness.oversampling(rate)
    taps, _ = loudness.interpolator(up)
    wide = np.asarray(samples, dtype=np.float64)
    delay = (len(taps) - 1) // 2
    oversampled = upfirdn(taps, wide, up)[delay : delay + len(wide) * up]
    return max(float(np.abs(wide).max()), float(np.abs(oversampled).max()))


def same_peak(samples: npt.NDArray[np.floating], rate: int) -> None:
    expected = everything(samples, rate)
    assert loudness.true_peak(samples, rate) == pytest.approx(expected, rel=1e-9, abs=0)


def tone(
    count: int, cycles_per_sample: float, phase: float, amplitude: float
) -> npt.NDArray[np.float64]:
    angles = 2 * np.pi * cycles_per_sample * np.arange(count, dtype=np.float64) + phase
    out: npt.NDArray[np.float64] = amplitude * np.sin(angles)
    return out


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(1, 3000),
    seed=st.integers(0, 2**32 - 1),
    rate=st.sampled_from(RATES),
    scale=st.floats(1e-6, 4.0),
)
def test_random_signals(count: int, seed: int, rate: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    same_peak(rng.standard_normal(count) * scale, rate)


@settings(max_examples=80, deadline=None)
@given(
    count=st.integers(1, 5000),
    frequency=st.floats(0.0, 0.5),
    phase=st.floats(0.0, 2 * math.pi),
    amplitude=st.floats(1e-4, 1.0),
    rate=st.sampled_from(RATES),
)
def test_tones_at_any_frequency_and_phase(
    count: int, frequency: float, phase: float, amplitude: float, rate: int
) -> None:
    same_peak(tone(count, frequency, phase, amplitude), rate)


@settings(max_examples=40, deadline=None)
@given(
    frequency=st.floats(0.0, 0.5),
    phase=st.floats(0.0, 2 * math.pi),
    drive=st.floats(1.0, 20.0),
)
def test_clipped_tones(frequency: float, phase: float, drive: float) -> None:
    # Clipping makes flat tops and sharp corners: the oversampled signal overshoots between them.
    same_peak(np.clip(tone(4000, frequency, phase, drive), -1.0, 1.0), 24_000)


@settings(max_examples=40, deadline=None)
@given(offset=st.floats(0.0, 0.02), phase=st.floats(0.0, 2 * math.pi))
def test_near_nyquist_tones(offset: float, phase: float) -> None:
    # Samples alternate in sign: every smoothness bound is at its loosest.
    same_peak(tone(3000, 0.5 - offset, phase, 0.9), 24_000)


@pytest.mark.parametrize("count", [loudness.BLOCK - 1, loudness.BLOCK, loudness.BLOCK + 7])
def test_peaks_at_block_edges(count: int) -> None:
    # A tone whose loudest stretch straddles the edge between two blocks of the evaluation.
    samples = tone(count + loudness.BLOCK, 1 / 96, 0.3, 0.02).astype(np.float32)
    samples[loudness.BLOCK - 3 : loudness.BLOCK + 3] = [0.1, -0.2, 0.25, 0.25, -0.2, 0.1]
    same_peak(samples, 24_000)
    same_peak(samples[: count + 5], 24_000)


def test_a_long_quiet_tone_with_coding_noise_in_float32() -> None:
    # Like decoded speech or the stand-in's tone: float32, smooth, with a little noise on top.
    rng = np.random.default_rng(3)
    samples = (
        tone(3 * loudness.BLOCK, 1 / 96, 1.0, 0.03) + rng.standard_normal(3 * loudness.BLOCK) * 1e-5
    )
    same_peak(samples.astype(np.float32), 24_000)


def test_the_same_as_resample_poly() -> None:
    from scipy.signal import resample_poly

    rng = np.random.default_rng(11)
    samples = np.cumsum(rng.standard_normal(20_000)) * 1e-3  # smooth but not periodic
    samples[5000:5003] = [0.9, -0.9, 0.9]
    full = max(float(np.abs(resample_poly(samples, 8, 1)).max()), float(np.abs(samples).max()))
    assert loudness.true_peak(samples, 24_000) == pytest.approx(full, rel=1e-9)


def test_silence_and_single_samples() -> None:
    assert loudness.true_peak(np.zeros(0), 24_000) == 0.0
    assert loudness.true_peak(np.zeros(5000, dtype=np.float32), 24_000) == 0.0
    for value in (1e-30, -0.5, 1.0):
        same_peak(np.array([value]), 24_000)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), smooth=st.booleans())
def test_the_parabola_remainder_bound_holds(seed: int, smooth: bool) -> None:
    # Newton's remainder, which the pruning rests on: an input d away differs from the parabola
    # through the three around t by at most (|d|^3 - |d|) / 6 times the largest third difference.
    rng = np.random.default_rng(seed)
    half = loudness.HALF_TAPS
    x = rng.standard_normal(2 * half + 1)
    if smooth:
        x = np.cumsum(np.cumsum(x))
    t = half
    slope, curve = (x[t + 1] - x[t - 1]) / 2, (x[t + 1] + x[t - 1]) / 2 - x[t]
    third = float(np.abs(np.diff(x, 3)).max())
    for d in range(-half, half + 1):
        apart = abs(d)
        remainder = x[t + d] - (x[t] + slope * d + curve * d * d)
        assert abs(remainder) <= (apart**3 - apart) / 6 * third * (1 + 1e-9) + 1e-12


def test_the_kernel_gives_upfirdn_values() -> None:
    rng = np.random.default_rng(5)
    samples = rng.standard_normal(200)
    kernel, gains, slack = loudness.phase_kernel(8)
    from scipy.signal import upfirdn

    taps, _ = loudness.interpolator(8)
    half = loudness.HALF_TAPS
    full = upfirdn(taps, samples, 8)[half * 8 : half * 8 + len(samples) * 8].reshape(-1, 8)
    for t in range(half, len(samples) - half):
        assert samples[t - half : t + half + 1] @ kernel == pytest.approx(
            full[t], rel=1e-12, abs=1e-15
        )
    assert gains[0] == pytest.approx(1.0, abs=0.01) and slack > 0


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 200), width=st.integers(1, 40))
def test_the_running_max_behind_the_bound(seed: int, length: int, width: int) -> None:
    values = np.random.default_rng(seed).standard_normal(length + width)
    expected = [values[i : i + width].max() for i in range(len(values) - width + 1)]
    got = loudness._running_max(values.copy(), width, np.empty(len(values)))
    assert list(got) == expected
