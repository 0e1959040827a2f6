"""Lossless gain: only global_gain bits change, by exact 1.5 dB steps, judged by ffmpeg."""

from __future__ import annotations

import math

import numpy as np
import pytest

from newsreader.audio import gain
from newsreader.audio.encode import encode_pcm
from newsreader.audio.gain import STEP_DB, apply_gain, global_gains, plan
from newsreader.audio.loudness import decode_frames, measure_frames, programme
from newsreader.audio.mp3 import SILENT_FRAME, bare_frames, silence
from newsreader.audio.normalize import normalize_pieces
from newsreader.models import FRAME_BYTES
from newsreader.synth.espeak import SAMPLE_RATE as ESPEAK_RATE
from tests.audio import ffmpeg_errors, lame_tone
from tests.audio.meter import ebur128, speech_pcm

# Bits 62..69 of each 144-byte frame: global_gain in MPEG-2 mono side information.
GLOBAL_GAIN_MASK = np.zeros(FRAME_BYTES, dtype=np.uint8)
GLOBAL_GAIN_MASK[7], GLOBAL_GAIN_MASK[8] = 0b0000_0011, 0b1111_1100


@pytest.fixture(scope="module")
def edge_like() -> bytes:
    """Speech in edge's format at an edge-like level: about -21 LUFS, peaks near -8 dBTP.

    Real LAME frames from the embedded voice, levelled and limited before encoding so the
    peak-to-loudness ratio leaves room to reach -16 LUFS under -1 dBTP by gain alone.
    """
    pieces, _ = normalize_pieces(speech_pcm(), ESPEAK_RATE, -21.0, ceiling_db=-7.0)
    parts = [encode_pcm(p, ESPEAK_RATE) for p in pieces]
    return b"".join(part + silence(12) for part in parts)


def test_one_step_is_exactly_2_to_the_quarter_in_amplitude() -> None:
    mp3 = bare_frames(lame_tone(2000))
    before = decode_frames(mp3)
    for steps in (1, 2, -3):
        after = decode_frames(apply_gain(mp3, steps).mp3)
        assert np.abs(after - before * 2 ** (steps / 4)).max() < 1e-5
        level = 20 * math.log10(np.sqrt(np.mean(after**2)) / np.sqrt(np.mean(before**2)))
        assert level == pytest.approx(steps * 1.50515, abs=1e-3)
    assert pytest.approx(1.50515, abs=1e-5) == STEP_DB


def test_frames_differ_only_in_global_gain_bits(edge_like: bytes) -> None:
    adjusted = apply_gain(edge_like, 3)
    assert adjusted.clamped == 0
    out = adjusted.mp3
    assert len(out) == len(edge_like)
    before = np.frombuffer(edge_like, dtype=np.uint8).reshape(-1, FRAME_BYTES)
    after = np.frombuffer(out, dtype=np.uint8).reshape(-1, FRAME_BYTES)
    changed = before ^ after
    assert not np.any(changed & ~GLOBAL_GAIN_MASK)  # nothing outside the field moved
    moved = np.array(global_gains(out)) - np.array(global_gains(edge_like))
    coded = gain._field(before, 41, 12) > 0
    assert coded.sum() > 0.8 * len(before)
    assert set(moved[coded]) == {3}  # every granule with coded bits moved by exactly 3
    assert not np.any(changed[~coded])  # the rest (silent frames among them) stay as they were
    silent = np.all(before == np.frombuffer(SILENT_FRAME, dtype=np.uint8), axis=1)
    assert silent.sum() >= 12 * len(speech_pcm()) and not np.any(changed[silent])
    assert ffmpeg_errors(out) == ""


def test_the_plan_reaches_the_target_under_the_ceiling(edge_like: bytes) -> None:
    measured = measure_frames(edge_like)
    before = ebur128(edge_like)
    assert before[0] < -19.5  # the premise: well below the target to begin with
    chosen = plan(measured, -16.0)
    assert abs(chosen.loudness - -16.0) <= STEP_DB / 2
    assert chosen.true_peak <= -1.0
    out = apply_gain(edge_like, chosen.steps).mp3
    loudness, peak = ebur128(out)
    assert loudness == pytest.approx(-16.0, abs=1.0)
    assert loudness == pytest.approx(chosen.loudness, abs=0.15)
    assert peak <= -1.0
    assert len(out) // FRAME_BYTES == len(edge_like) // FRAME_BYTES
    assert ffmpeg_errors(out) == ""


def test_a_measurement_predicts_the_adjusted_audio_exactly(edge_like: bytes) -> None:
    measured = measure_frames(edge_like)
    again = measure_frames(apply_gain(edge_like, -2).mp3)
    assert again.integrated == pytest.approx(measured.integrated - 2 * STEP_DB, abs=0.01)
    assert again.true_peak == pytest.approx(measured.true_peak - 2 * STEP_DB, abs=0.01)


def test_the_true_peak_ceiling_wins_over_the_target() -> None:
    # The embedded voice's own level: about -19 LUFS with peaks at 0 dBTP. Gain alone cannot
    # reach -16 LUFS without clipping, so the plan stays under the ceiling and says so.
    mp3 = encode_pcm(b"".join(speech_pcm()), ESPEAK_RATE)
    measured = measure_frames(mp3)
    chosen = plan(measured, -16.0)
    assert chosen.steps < 0
    assert chosen.true_peak <= -1.0 < chosen.true_peak + STEP_DB
    assert chosen.loudness < -17.0
    assert ebur128(apply_gain(mp3, chosen.steps).mp3)[1] <= -1.0


def test_silence_gets_no_gain() -> None:
    assert plan(programme([200]), -16.0).steps == 0
    assert apply_gain(silence(50), 5).mp3 == silence(50)


def test_gain_saturates_and_counts_the_clamped_granules() -> None:
    mp3 = bare_frames(lame_tone(1000))
    top = max(global_gains(mp3))
    adjusted = apply_gain(mp3, 255 - top + 2)
    assert max(global_gains(adjusted.mp3)) == 255
    assert adjusted.clamped > 0
    with pytest.raises(ValueError, match="out of range"):
        apply_gain(mp3, 300)


def test_only_edge_format_frames_are_adjusted() -> None:
    with pytest.raises(ValueError, match="whole number"):
        apply_gain(bytes(100), 1)
    stereo = bytearray(SILENT_FRAME)
    stereo[3] = 0x44  # joint stereo
    with pytest.raises(ValueError, match="mono"):
        apply_gain(bytes(stereo), 1)


def test_a_crc_protected_frame_gets_its_crc_recomputed() -> None:
    # A frame with a CRC (protection bit 0): after the change ffmpeg's CRC check still passes.
    import subprocess

    from newsreader.audio.ffmpeg import ffmpeg_exe

    plain = bare_frames(lame_tone(200))
    frame = plain[:FRAME_BYTES]
    # Move side info and main data 2 bytes on to make room for the CRC; the first frame's main
    # data starts here (main_data_begin 0) and its coded bits fit in what remains.
    assert (
        frame[4] == 0
        and gain._field(np.frombuffer(frame, dtype=np.uint8).reshape(1, -1), 41, 12)[0]
        <= (FRAME_BYTES - 15) * 8
    )
    body = bytearray(b"\xff\xf2" + frame[2:4] + b"\0\0" + frame[4 : FRAME_BYTES - 2])
    body[4:6] = gain.crc16(bytes(body[2:4] + body[6:15])).to_bytes(2, "big")
    protected = bytes(body)
    assert gain.global_gains(protected) == gain.global_gains(frame)
    adjusted = apply_gain(protected, 2).mp3
    assert gain.global_gains(adjusted) == [gain.global_gains(frame)[0] + 2]

    def crc_errors(data: bytes) -> str:
        run = subprocess.run(
            [
                *(ffmpeg_exe(), "-hide_banner", "-v", "error", "-err_detect", "crccheck+explode"),
                *("-f", "mp3", "-i", "pipe:0", "-f", "null", "-"),
            ],
            input=data * 3,
            capture_output=True,
            check=False,
        )
        return run.stderr.decode()

    assert crc_errors(adjusted) == ""
    broken = bytearray(adjusted)
    broken[8] ^= 0b0000_0100  # one global_gain bit flipped without a new CRC
    assert "CRC" in crc_errors(bytes(broken)) or "crc" in crc_errors(bytes(broken)).lower()
