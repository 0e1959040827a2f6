"""BS.1770 measurement: the standard's coefficients, known signals, ffmpeg's ebur128 as judge."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from newsreader.audio import loudness
from newsreader.audio.encode import encode_pcm
from newsreader.audio.loudness import Measurement, measure_frames, measure_samples
from newsreader.audio.mp3 import silence
from newsreader.errors import SynthesisError
from newsreader.synth.espeak import SAMPLE_RATE as ESPEAK_RATE
from tests.audio.meter import ebur128, speech_pcm

ROOT = Path(__file__).resolve().parents[2]


def sine(rate: int, seconds: float, frequency: float, amplitude: float, phase: float = 0.0):  # type: ignore[no-untyped-def]
    t = np.arange(round(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * frequency * t + phase)


@pytest.fixture(scope="module")
def speech_frames() -> list[bytes]:
    return [encode_pcm(pcm, ESPEAK_RATE) for pcm in speech_pcm()]


def test_k_weighting_at_48_khz_is_the_standards_table() -> None:
    # ITU-R BS.1770-4, tables 1 and 2.
    shelf, highpass = loudness.k_weighting(48_000)
    assert shelf == pytest.approx(
        [1.53512485958697, -2.69169618940638, 1.19839281085285, 1.0, -1.69065929318241,
         0.73248077421585], abs=1e-10)  # fmt: skip
    assert highpass == pytest.approx([1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621])


@pytest.mark.parametrize("rate", [24_000, 22_050, 48_000])
def test_a_full_scale_997_hz_sine_reads_minus_3_lufs(rate: int) -> None:
    # BS.1770's calibration: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS.
    measured = measure_samples(sine(rate, 5.0, 997, 1.0), rate)
    assert measured.integrated == pytest.approx(-3.01, abs=0.05)
    quieter = measure_samples(sine(rate, 5.0, 997, 0.1), rate)
    assert quieter.integrated == pytest.approx(-23.01, abs=0.05)


def test_true_peak_finds_the_peak_between_samples() -> None:
    # A sine at a quarter of the rate, sampled 45 degrees off its crests: every sample is at
    # 0.707 of the amplitude; the true peak is the amplitude.
    samples = sine(24_000, 1.0, 6000, 0.5, phase=math.pi / 4)
    assert np.abs(samples).max() == pytest.approx(0.5 / math.sqrt(2), rel=1e-6)
    # (the abrupt start and end ring a little above it)
    assert loudness.true_peak(samples, 24_000) == pytest.approx(0.5, abs=0.01)


def test_true_peak_over_candidates_equals_oversampling_everything() -> None:
    from scipy.signal import resample_poly

    rng = np.random.default_rng(7)
    noise = rng.standard_normal(48_000) * 0.05
    noise[[1000, 20_000, 20_003, 47_990]] = [0.4, -0.5, 0.45, 0.3]
    full = float(np.abs(resample_poly(noise, 8, 1)).max())
    assert loudness.true_peak(noise, 24_000) == pytest.approx(full, rel=1e-9)


def test_speech_frames_measure_as_ffmpeg_measures_them(speech_frames: list[bytes]) -> None:
    mp3 = b"".join(speech_frames)
    ours = measure_frames(mp3)
    theirs = ebur128(mp3)
    assert ours.integrated == pytest.approx(theirs[0], abs=0.15)
    assert ours.true_peak == pytest.approx(theirs[1], abs=0.25)


def test_segments_measured_apart_combine_into_the_whole(speech_frames: list[bytes]) -> None:
    gaps = [17, 9, 30, 5]
    whole = b"".join(part + silence(gap) for part, gap in zip(speech_frames, gaps, strict=True))
    parts = loudness.programme(
        [
            x
            for part, gap in zip(speech_frames, gaps, strict=True)
            for x in (measure_frames(part), gap)
        ]
    )
    together = measure_frames(whole)
    assert len(parts.energy) == len(together.energy) == len(whole) // 144 * 6
    assert parts.integrated == pytest.approx(together.integrated, abs=0.02)
    assert parts.true_peak == pytest.approx(together.true_peak, abs=0.05)
    assert parts.integrated == pytest.approx(ebur128(whole)[0], abs=0.15)


def test_a_measurement_survives_storage_and_gain() -> None:
    measured = measure_samples(sine(24_000, 2.0, 440, 0.25), 24_000)
    back = Measurement.from_bytes(measured.to_bytes())
    assert back.rate == 24_000 and back.peak == measured.peak
    assert back.integrated == pytest.approx(measured.integrated, abs=1e-4)
    louder = measured.scaled(6.0)
    assert louder.integrated == pytest.approx(measured.integrated + 6.0, abs=1e-9)
    assert louder.true_peak == pytest.approx(measured.true_peak + 6.0, abs=1e-9)


@pytest.mark.parametrize("data", [b"", b"NRL1", b"XXXX" + bytes(12), b"NRL1" + bytes(13)])
def test_anything_else_is_not_a_stored_measurement(data: bytes) -> None:
    with pytest.raises(ValueError, match="stored loudness measurement"):
        Measurement.from_bytes(data)


def test_silence_and_short_audio_have_no_loudness() -> None:
    assert loudness.silent_frames(500).integrated == -math.inf
    assert loudness.silent_frames(500).true_peak == -math.inf
    short = measure_samples(sine(24_000, 0.3, 440, 0.5), 24_000)  # shorter than one 400 ms block
    assert short.integrated == -math.inf
    assert loudness.describe(-math.inf, -math.inf) == "-inf LUFS, true peak -inf dBTP"
    assert loudness.describe(-16.04, -1.26) == "-16.0 LUFS, true peak -1.3 dBTP"


def test_quiet_passages_are_gated_out() -> None:
    loud = measure_samples(sine(24_000, 4.0, 997, 0.1), 24_000)
    whisper = measure_samples(sine(24_000, 4.0, 997, 0.001), 24_000)  # 40 dB down: gated
    both = loudness.join([loud, whisper, loud])
    # Ungated, 4 s of near-silence in 12 s would read 1.76 dB lower; gated, only the few blocks
    # that straddle the edges count against it.
    assert loud.integrated - 0.25 < both.integrated < loud.integrated


def test_measurements_at_different_rates_do_not_join() -> None:
    with pytest.raises(ValueError, match="different rates"):
        loudness.join([loudness.silence(24_000, 100), loudness.silence(22_050, 100)])
    with pytest.raises(ValueError, match="multiple of 10 Hz"):
        loudness.silence(11_025, 100)


def test_only_whole_frames_are_decoded() -> None:
    with pytest.raises(ValueError, match="whole number"):
        loudness.decode_frames(bytes(145))
    assert len(loudness.decode_frames(b"")) == 0


def test_pieces_measured_in_one_run_match_pieces_measured_apart(
    speech_frames: list[bytes],
) -> None:
    together = loudness.measure_pieces(speech_frames)
    apart = [measure_frames(part) for part in speech_frames]
    assert [len(m.energy) for m in together] == [len(m.energy) for m in apart]
    for one, other in zip(together, apart, strict=True):
        assert one.integrated == pytest.approx(other.integrated, abs=0.02)
        assert one.true_peak == pytest.approx(other.true_peak, abs=0.05)


def test_block_by_block_measuring_is_exactly_the_whole_array_recipe() -> None:
    from scipy.signal import sosfilt

    rng = np.random.default_rng(3)
    for rate, count in ((24_000, 3 * loudness.BLOCK + 4_000), (48_000, 100_001), (22_050, 777)):
        x = (rng.standard_normal(count) * 0.2).astype(np.float32)  # as ffmpeg decodes
        wide = x.astype(np.float64)
        chunk = loudness.Measurement(rate, np.zeros(0), 0.0).chunk
        weighted = np.zeros(-(-count // chunk) * chunk)
        weighted[:count] = sosfilt(loudness.k_weighting(rate), wide)
        rows = weighted.reshape(-1, chunk)
        expected = np.einsum("ij,ij->i", rows, rows)
        for samples in (x, wide):
            measured = measure_samples(samples, rate)
            assert np.array_equal(measured.energy, expected)
            assert measured.peak == loudness.true_peak(wide, rate)


def test_a_batch_with_a_piece_ffmpeg_cannot_decode_fails_whole(
    speech_frames: list[bytes],
) -> None:
    noise = np.random.default_rng(1).integers(0, 256, 140 * 40, dtype=np.uint8).tobytes()
    broken = b"".join(b"\xff\xf3\x64\xc4" + noise[i : i + 140] for i in range(0, len(noise), 140))
    with pytest.raises(SynthesisError, match="cannot decode the audio"):
        loudness.measure_apart([speech_frames[0], broken, speech_frames[1]])
    with pytest.raises(SynthesisError, match="cannot decode the audio"):
        loudness.measure_apart([bytes(144 * 30)])
    # and a good batch still measures after a failed one (nothing left behind in the way)
    again = loudness.measure_apart(speech_frames[:2])
    assert [m.integrated for m in again] == [
        measure_frames(p).integrated for p in speech_frames[:2]
    ]


def test_the_k_filter_is_scipys_sosfilt_in_pieces_and_in_its_fallback() -> None:
    from scipy.signal import sosfilt

    rng = np.random.default_rng(5)
    x = (rng.standard_normal(50_001) * 0.3).astype(np.float32)
    sos = loudness.k_weighting(24_000)
    expected, state_after = sosfilt(sos, x.astype(np.float64), zi=np.zeros((2, 2)))
    for kernel in (loudness._sos_kernel(), loudness._public_sosfilt):
        state = np.zeros((1, 2, 2))
        parts = []
        for lo, hi in ((0, 7), (7, 20_000), (20_000, 50_001)):
            part = np.array(x[lo:hi], dtype=np.float64).reshape(1, -1)
            kernel(sos, part, state)
            parts.append(part[0])
        assert np.array_equal(np.concatenate(parts), expected)
        assert np.array_equal(state[0], state_after)
    assert loudness._sos_kernel() is not loudness._public_sosfilt  # scipy's compiled one


def test_the_interpolator_is_scipys_firwin_design() -> None:
    from scipy.signal import firwin

    for up in (4, 5, 8, 9, 12):
        taps, bound = loudness.interpolator(up)
        reference = firwin(2 * loudness.HALF_TAPS * up + 1, 1 / up, window=("kaiser", 5.0)) * up
        np.testing.assert_allclose(taps, reference, rtol=0, atol=1e-15)
        assert bound == pytest.approx(max(np.abs(reference[p::up]).sum() for p in range(up)))


def test_measuring_edge_audio_does_not_import_scipy_signal() -> None:
    # import scipy.signal pulls in scipy.stats, interpolate, optimize and spatial: about 1 s of
    # CPU under the GIL, which a reading paid in the middle of its first requests.
    script = (
        "import sys\n"
        "from tests.standin.server import tone_mp3\n"
        "from newsreader.audio.loudness import FramesLoudness\n"
        "meter = FramesLoudness()\n"
        "meter.add(tone_mp3(400))\n"
        "found = meter.finish()\n"
        "assert found.seconds > 9 and found.true_peak > -40, found\n"
        "print(sorted(m for m in sys.modules if m.startswith('scipy.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    loaded = done.stdout.strip()
    assert "scipy.signal._sosfilt" in loaded
    assert "'scipy.signal'" not in loaded and "scipy.stats" not in loaded, loaded
