"""Loudness measured as audio streams in: any cutting of the samples or of the frames gives the
measurement of the whole, bit for bit; the in-process decoder gives ffmpeg's samples."""

from __future__ import annotations

import subprocess

import numpy as np
import numpy.typing as npt
import pytest

from newsreader.audio import loudness
from newsreader.audio.decode import FrameDecoder
from newsreader.audio.encode import encode_pcm
from newsreader.audio.ffmpeg import ffmpeg_exe
from newsreader.audio.loudness import (
    FRAME_RATE,
    FramesLoudness,
    LoudnessStream,
    Measurement,
    TruePeak,
    measure_frames,
    measure_samples,
    pcm_samples,
)
from newsreader.audio.mp3 import silence
from newsreader.errors import SynthesisError
from newsreader.models import FRAME_BYTES
from newsreader.synth.espeak import SAMPLE_RATE as ESPEAK_RATE
from tests.audio.meter import speech_pcm
from tests.standin.server import tone_mp3


def _same(a: Measurement, b: Measurement) -> None:
    assert a.rate == b.rate
    assert np.array_equal(a.energy, b.energy)
    assert a.peak == b.peak


def _cuts(rng: np.random.Generator, length: int, largest: int) -> list[tuple[int, int]]:
    """Random pieces covering ``range(length)``: many tiny, some empty, some long."""
    pieces, at = [], 0
    while at < length:
        size = int(rng.choice([0, 1, 7, int(rng.integers(1, largest))], p=[0.1, 0.1, 0.1, 0.7]))
        pieces.append((at, min(length, at + size)))
        at += size
    return pieces


def _ffmpeg_decode(mp3: bytes) -> npt.NDArray[np.float32]:
    command = [ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "mp3", "-i", "pipe:0"]
    done = subprocess.run(
        [*command, "-f", "f32le", "-ac", "1", "pipe:1"], input=mp3, capture_output=True, check=True
    )
    assert not done.stderr
    return np.frombuffer(done.stdout, dtype="<f4")


@pytest.fixture(scope="module")
def speech_frames() -> list[bytes]:
    return [encode_pcm(pcm, ESPEAK_RATE) for pcm in speech_pcm()]


def _signals() -> list[tuple[str, npt.NDArray[np.floating], int]]:
    rng = np.random.default_rng(7)
    speech = np.concatenate([pcm_samples(pcm) for pcm in speech_pcm()])
    t = np.arange(3 * loudness.BLOCK + 999) / FRAME_RATE
    return [
        ("tone", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), FRAME_RATE),
        ("espeak speech", speech, ESPEAK_RATE),
        ("noise", rng.standard_normal(2 * loudness.BLOCK + 123) * 0.2, FRAME_RATE),
        ("float32 noise", rng.uniform(-1, 1, 150_001).astype(np.float32), 48_000),
    ]


@pytest.mark.parametrize(("name", "samples", "rate"), _signals(), ids=lambda v: str(v)[:14])
def test_samples_in_any_pieces_measure_as_the_whole(
    name: str,
    samples: npt.NDArray[np.floating],
    rate: int,
) -> None:
    whole = measure_samples(samples, rate)
    assert len(whole.energy) and whole.peak > 0
    rng = np.random.default_rng(len(samples))
    for largest in (3_000, 30_000, 200_000) * 2:
        stream = LoudnessStream(rate)
        for start, stop in _cuts(rng, len(samples), largest):
            stream.add(samples[start:stop])
        _same(stream.finish(), whole)


def test_the_true_peak_is_the_same_however_it_is_cut() -> None:
    # The peak near the border of two blocks, where a block's context comes from the next piece.
    rng = np.random.default_rng(3)
    samples = rng.standard_normal(2 * loudness.BLOCK) * 0.01
    samples[loudness.BLOCK - 4 : loudness.BLOCK + 4] = [0.2, -0.5, 0.7, 0.7, -0.5, 0.2, 0.1, 0.0]
    whole = loudness.true_peak(samples, FRAME_RATE)
    assert whole > 0.7  # between the two equal samples
    for cut in (loudness.BLOCK - 3, loudness.BLOCK, loudness.BLOCK + 1, loudness.BLOCK + 13):
        peak = TruePeak(FRAME_RATE)
        peak.add(samples[:cut])
        peak.add(samples[cut:])
        assert peak.finish() == whole


def test_a_stream_holds_a_block_at_most_not_the_samples() -> None:
    stream = LoudnessStream(FRAME_RATE)
    piece = np.full(10_000, 0.1)
    for _ in range(100):  # 42 s of audio
        stream.add(piece)
        held = stream._peak._held  # what the stream keeps between pieces
        assert len(held) < loudness.BLOCK + 2 * (loudness.HALF_TAPS + 2) + len(piece)
    assert stream.finish().seconds == pytest.approx(1_000_000 / FRAME_RATE, abs=0.005)


def test_frames_in_any_pieces_measure_as_the_whole(speech_frames: list[bytes]) -> None:
    mp3 = b"".join([speech_frames[0], silence(3), speech_frames[1], tone_mp3(400)])
    whole = measure_frames(mp3)
    rng = np.random.default_rng(11)
    for largest in (1_000, 20_000, 100_000) * 3:  # pieces that split frames anywhere
        measuring = FramesLoudness()
        for start, stop in _cuts(rng, len(mp3), largest):
            measuring.add(mp3[start:stop])
        _same(measuring.finish(), whole)


def test_the_decoder_gives_ffmpegs_samples_in_any_pieces(speech_frames: list[bytes]) -> None:
    rng = np.random.default_rng(5)
    for mp3 in (speech_frames[2], tone_mp3(300), speech_frames[3][FRAME_BYTES * 40 :]):
        expected = _ffmpeg_decode(mp3)
        assert len(expected) == len(mp3) // FRAME_BYTES * 576
        assert np.array_equal(loudness.decode_frames(mp3), expected)
        decoder = FrameDecoder()
        parts = [decoder.decode(mp3[a:b]) for a, b in _cuts(rng, len(mp3), 3_000)]
        assert np.array_equal(np.concatenate([*parts, decoder.flush()]), expected)


def test_the_decoder_reads_the_plane_as_pyav_converts_it(speech_frames: list[bytes]) -> None:
    """The first channel read straight from the frame's plane, and as ``to_ndarray`` converts
    the frame (the way for a decoder that gave anything but planar float), are the same."""
    mp3 = speech_frames[2]
    direct, converted = FrameDecoder(), FrameDecoder()
    converted._planar = False  # as if the first frame had not been planar float
    a = np.concatenate([direct.decode(mp3), direct.flush()])
    b = np.concatenate([converted.decode(mp3), converted.flush()])
    assert direct._planar is True
    assert len(a) == len(mp3) // FRAME_BYTES * 576
    assert np.array_equal(a, b)


def _garbage() -> bytes:
    noise = np.random.default_rng(1).integers(0, 256, 140 * 40, dtype=np.uint8).tobytes()
    return b"".join(b"\xff\xf3\x64\xc4" + noise[i : i + 140] for i in range(0, len(noise), 140))


@pytest.mark.parametrize(
    "mp3",
    [
        _garbage(),  # frame headers with noise after them
        bytes(FRAME_BYTES * 30),  # no frames at all
        tone_mp3(20) + bytes(FRAME_BYTES) + tone_mp3(20),  # a frame missing its header
    ],
    ids=["noise", "zeros", "hole"],
)
def test_audio_that_does_not_decode_is_an_error(mp3: bytes) -> None:
    with pytest.raises(SynthesisError, match=r"^cannot decode the audio to measure its loudness"):
        measure_frames(mp3)
    measuring = FramesLoudness()
    with pytest.raises(SynthesisError, match=r"^cannot decode the audio to measure its loudness"):
        for at in range(0, len(mp3), 500):
            measuring.add(mp3[at : at + 500])
        measuring.finish()


def test_a_stream_cut_mid_frame_is_an_error_not_a_measurement() -> None:
    mp3 = tone_mp3(50)
    measuring = FramesLoudness()
    measuring.add(mp3[:-100])  # the last frame cut short
    with pytest.raises(SynthesisError, match="not a whole number of 144-byte frames"):
        measuring.finish()
    with pytest.raises(ValueError, match="not a whole number"):
        measure_frames(mp3[:-100])


def test_the_decoded_pieces_are_the_frames_samples_and_a_short_run_fails() -> None:
    mp3 = tone_mp3(30)
    pieces = list(loudness.decoded(mp3, [576 * 10, 0, 576 * 20]))
    assert [len(p) for p in pieces] == [5760, 0, 11520]
    assert np.array_equal(np.concatenate(pieces), _ffmpeg_decode(mp3))
    hole = tone_mp3(10) + bytes(FRAME_BYTES) + tone_mp3(10)  # decodes to 20 frames, not 21
    with pytest.raises(SynthesisError, match="21 frames gave 11520 samples, not 12096"):
        list(loudness.decoded(hole, [576 * 21]))
