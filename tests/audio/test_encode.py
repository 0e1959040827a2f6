"""encode_pcm: PCM in, bare MP3 frames in edge's format out, checked by decoding with ffmpeg."""

from __future__ import annotations

import math
import subprocess
from array import array

import pytest

from newsreader.audio.encode import ENCODER_DELAY, encode_pcm
from newsreader.audio.ffmpeg import ffmpeg_exe
from newsreader.models import FRAME_BYTES

OUT_RATE = 24_000


def decode(mp3: bytes) -> array[int]:
    """Decode with ffmpeg to 24 kHz mono samples; any complaint from ffmpeg fails the test."""
    run = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "mp3", "-i", "pipe:0", "-f", "s16le", "pipe:1"],
        input=mp3,
        capture_output=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    assert run.stderr == b"", run.stderr.decode(errors="replace")
    return array("h", run.stdout)


def tone(frequency: float, seconds: float, rate: int, amplitude: int = 8000) -> bytes:
    count = int(seconds * rate)
    step = 2 * math.pi * frequency / rate
    return array("h", (round(amplitude * math.sin(step * i)) for i in range(count))).tobytes()


def fit(samples: array[int], frequency: float) -> tuple[float, float]:
    """Amplitude of the best-fitting sine at ``frequency`` and the signal-to-residual ratio, dB."""
    step = 2 * math.pi * frequency / OUT_RATE
    sines = [math.sin(step * i) for i in range(len(samples))]
    cosines = [math.cos(step * i) for i in range(len(samples))]
    a = 2 * sum(x * s for x, s in zip(samples, sines, strict=True)) / len(samples)
    b = 2 * sum(x * c for x, c in zip(samples, cosines, strict=True)) / len(samples)
    residual = sum(
        (x - a * s - b * c) ** 2 for x, s, c in zip(samples, sines, cosines, strict=True)
    )
    signal = sum(x * x for x in samples)
    return math.hypot(a, b), 10 * math.log10(signal / max(residual, 1e-9))


def test_every_frame_is_an_edge_format_frame() -> None:
    mp3 = encode_pcm(tone(440, 1.0, 22_050), 22_050)

    assert mp3 and len(mp3) % FRAME_BYTES == 0
    for at in range(0, len(mp3), FRAME_BYTES):
        header = mp3[at : at + 4]
        assert header[:3] == b"\xff\xf3\x64", (at, header.hex())
        assert header[3] & 0xC0 == 0xC0, "not mono"
    for marker in (b"ID3", b"Xing", b"Info", b"LAME"):
        assert marker not in mp3[:FRAME_BYTES]
    # The first frame borrows nothing from a bit reservoir (MPEG-2 main_data_begin is the first
    # side-info byte), which is what lets the assembler join streams at frame boundaries.
    assert mp3[4] == 0


def test_decodes_cleanly_to_exactly_frames_times_576_samples() -> None:
    pcm = tone(440, 2.0, 22_050)
    mp3 = encode_pcm(pcm, 22_050)

    samples = decode(mp3)

    assert len(samples) == (len(mp3) // FRAME_BYTES) * 576
    # Nothing is lost at the end: the input fits after the encoder delay.
    assert len(samples) / OUT_RATE >= ENCODER_DELAY + 2.0


@pytest.mark.parametrize("rate", [22_050, 24_000])
@pytest.mark.parametrize("position", [0.2, 0.5, 1.13])
def test_encoder_delay_is_where_a_click_lands(rate: int, position: float) -> None:
    silence = array("h", bytes(2 * int(1.5 * rate)))
    click_at = round(position * rate)
    silence[click_at] = 30_000

    samples = decode(encode_pcm(silence.tobytes(), rate))

    peak = max(range(len(samples)), key=lambda i: abs(samples[i]))
    expected = (click_at / rate + ENCODER_DELAY) * OUT_RATE
    assert abs(peak - expected) <= 1.0, (peak, expected)


def test_a_click_in_the_last_sample_survives() -> None:
    pcm = array("h", bytes(2 * 22_050))
    pcm[-1] = 30_000

    samples = decode(encode_pcm(pcm.tobytes(), 22_050))

    peak = max(range(len(samples)), key=lambda i: abs(samples[i]))
    assert abs(samples[peak]) > 5_000
    assert abs(peak - (1.0 + ENCODER_DELAY) * OUT_RATE) <= 2


@pytest.mark.parametrize("frequency", [300, 1_000, 6_000, 9_000])
def test_resampling_22050_to_24000_keeps_tones_clean(frequency: int) -> None:
    # Linear-interpolation resampling (audioop.ratecv) gets ~16 dB at 6 kHz and ~7 dB at 9 kHz.
    samples = decode(encode_pcm(tone(frequency, 1.0, 22_050), 22_050))

    amplitude, snr = fit(samples[6_000:18_000], frequency)

    assert 0.9 * 8000 <= amplitude <= 1.05 * 8000
    assert snr > 40


def test_empty_input_gives_whole_frames_of_silence() -> None:
    mp3 = encode_pcm(b"", 22_050)

    assert len(mp3) % FRAME_BYTES == 0
    assert max((abs(x) for x in decode(mp3)), default=0) == 0


def test_odd_byte_count_and_silly_rates_are_refused() -> None:
    with pytest.raises(ValueError):
        encode_pcm(b"\x00\x00\x00", 22_050)
    with pytest.raises(ValueError):
        encode_pcm(b"", 96_000)


def _frame(header: bytes, body: bytes = b"") -> bytes:
    return (header + body).ljust(FRAME_BYTES, b"\0")
