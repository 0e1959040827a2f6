"""One gain per reading on a body file of bare frames: measured as written, judged by ffmpeg."""

from __future__ import annotations

import asyncio
import functools
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from mutagen.id3 import ID3

from newsreader.audio import loudness
from newsreader.audio.encode import encode_pcm
from newsreader.audio.gain import STEP_DB, apply_gain, global_gains, plan
from newsreader.audio.intro import load_clip
from newsreader.audio.level import LevelMeter, MeasuredSink, Programme, article_gain, finish_body
from newsreader.audio.loudness import (
    SILENCE,
    Measurement,
    decode_frames,
    measure_apart,
    measure_frames,
    programme,
)
from newsreader.audio.mp3 import SILENT_FRAME, silence
from newsreader.audio.normalize import normalize_pieces
from newsreader.audio.replaygain import REFERENCE
from newsreader.audio.tags import Tags
from newsreader.audio.writer import Mp3Writer
from newsreader.config import Settings
from newsreader.models import FRAME_BYTES, Pause
from newsreader.synth.cache import LevelCache
from newsreader.synth.edge import EdgeEngine
from newsreader.synth.espeak import SAMPLE_RATE as ESPEAK_RATE
from tests.audio import ffmpeg_errors, make_segment
from tests.audio.meter import NEWS, ebur128, speech_pcm
from tests.audio.test_intro import make_file
from tests.standin.server import EdgeStandin

# Bits 62..69 of each 144-byte frame: global_gain in MPEG-2 mono side information.
GLOBAL_GAIN_MASK = np.zeros(FRAME_BYTES, dtype=np.uint8)
GLOBAL_GAIN_MASK[7], GLOBAL_GAIN_MASK[8] = 0b0000_0011, 0b1111_1100
PAUSES = (int(Pause.SENTENCE), int(Pause.PARAGRAPH), int(Pause.HEADING), int(Pause.PARAGRAPH))


@pytest.fixture(scope="module")
def speech_segments() -> list[bytes]:
    """Speech in edge's format at an edge-like level (about -21 LUFS, peaks near -8 dBTP): the
    embedded voice's sentences, levelled and limited, each encoded on its own like a segment."""
    pieces, _ = normalize_pieces(speech_pcm(), ESPEAK_RATE, -21.0, ceiling_db=-7.0)
    return [encode_pcm(p, ESPEAK_RATE) for p in pieces]


def standin_segments(server: EdgeStandin) -> list[bytes]:
    """Segments as the real edge client gets them from the stand-in (a quiet 250 Hz tone)."""
    settings = Settings(request_timeout=5.0, voice="zh-CN-XiaoxiaoNeural")

    async def run() -> list[bytes]:
        engine = EdgeEngine()
        try:
            return [
                (await engine.synthesize(make_segment(i, (text,)), settings)).mp3
                for i, text in enumerate(NEWS)
            ]
        finally:
            await engine.close()

    return asyncio.run(run())


def write_body(path: Path, segments: list[bytes], meter: LevelMeter) -> bytes:
    """The body as the writer makes it: each segment's frames, then its pause, noted as they go."""
    body = bytearray()
    for frames, pause in zip(segments, PAUSES, strict=False):
        for piece in (frames, silence(pause)):
            body += piece
            meter.add(piece)
    path.write_bytes(body)
    return bytes(body)


def changed_bits(before: bytes, after: bytes) -> np.ndarray:
    old = np.frombuffer(before, dtype=np.uint8).reshape(-1, FRAME_BYTES)
    new = np.frombuffer(after, dtype=np.uint8).reshape(-1, FRAME_BYTES)
    return np.asarray(old ^ new)


def test_pieces_measured_together_measure_as_if_alone(speech_segments: list[bytes]) -> None:
    together = measure_apart(speech_segments)
    for piece, measured in zip(speech_segments, together, strict=True):
        alone = measure_frames(piece)
        assert len(measured.energy) == len(alone.energy) == len(piece) // FRAME_BYTES * 6
        assert np.allclose(measured.energy, alone.energy, rtol=1e-9, atol=1e-12)
        assert measured.peak == pytest.approx(alone.peak, rel=1e-9)


def test_the_meter_adds_up_to_the_whole_programme(
    tmp_path: Path, speech_segments: list[bytes]
) -> None:
    meter = LevelMeter(LevelCache(None), batch_seconds=2.0)  # several batches, folded in order
    write_body(tmp_path / "body", speech_segments, meter)
    parts: list[object] = []
    for frames, pause in zip(speech_segments, PAUSES, strict=False):
        parts += [measure_frames(frames), pause]
    whole = programme(parts)  # type: ignore[arg-type]
    level = meter.plan(-16.0)
    chosen = article_gain(parts, -16.0)  # type: ignore[arg-type]
    assert chosen == plan(whole, -16.0)
    assert level.steps == chosen.steps > 0
    assert level.loudness == pytest.approx(chosen.loudness, abs=1e-6)
    assert level.true_peak == pytest.approx(chosen.true_peak, abs=1e-6)


@pytest.mark.parametrize("chunk_frames", [7, 4096])
def test_speech_body_reaches_the_target_with_only_global_gain_changed(
    tmp_path: Path, speech_segments: list[bytes], chunk_frames: int
) -> None:
    path = tmp_path / "body"
    meter = LevelMeter(LevelCache(None))
    before = write_body(path, speech_segments, meter)
    assert ebur128(before)[0] < -19.5  # the premise: well below the target
    level = meter.plan(-16.0)
    assert finish_body(path, level.steps, chunk_frames=chunk_frames) == 0
    after = path.read_bytes()
    assert after == apply_gain(before, level.steps).mp3  # chunks change nothing
    changed = changed_bits(before, after)
    assert not np.any(changed & ~GLOBAL_GAIN_MASK)
    assert ffmpeg_errors(after) == ""
    loudness, peak = ebur128(after)
    assert loudness == pytest.approx(-16.0, abs=1.0)
    assert loudness == pytest.approx(level.loudness, abs=0.15)
    assert peak <= -1.0


def test_standin_frames_reach_the_target_with_only_global_gain_changed(
    tmp_path: Path, edge_standin: EdgeStandin
) -> None:
    segments = standin_segments(edge_standin)
    samples = decode_frames(segments[0])
    assert np.sqrt(np.mean(samples**2)) > 0.01  # real, non-silent frames (a 250 Hz tone)
    path = tmp_path / "body"
    meter = LevelMeter(LevelCache(tmp_path / "cache"))
    before = write_body(path, segments, meter)
    assert ebur128(before)[0] < -25  # the stand-in's tone is quiet
    level = meter.finish(path, -16.0)
    after = path.read_bytes()
    assert len(after) == len(before)
    changed = changed_bits(before, after)
    assert not np.any(changed & ~GLOBAL_GAIN_MASK)
    moved = np.array(global_gains(after)) - np.array(global_gains(before))
    assert set(moved[np.any(changed, axis=1)]) == {level.steps}
    assert ffmpeg_errors(after) == ""
    loudness, peak = ebur128(after)
    assert loudness == pytest.approx(-16.0, abs=1.0)
    assert loudness == pytest.approx(level.loudness, abs=0.15)
    assert peak <= -1.0


def test_measurements_are_cached_by_the_frames(
    tmp_path: Path, speech_segments: list[bytes]
) -> None:
    cache = LevelCache(tmp_path / "cache")
    first = LevelMeter(cache)
    write_body(tmp_path / "a", speech_segments, first)
    planned = first.plan(-16.0)
    assert cache.measured == len(NEWS) and cache.hits == 0
    stored = sorted((tmp_path / "cache" / "levels").rglob("*.nrl"))
    assert len(stored) == len(NEWS)
    stored[0].write_bytes(b"NRL1 damaged")  # a damaged entry is measured again
    again = LevelCache(tmp_path / "cache")
    second = LevelMeter(again)
    write_body(tmp_path / "b", speech_segments, second)
    replanned = second.plan(-16.0)  # stored as float32: the same to a millionth of a dB
    assert replanned.steps == planned.steps
    assert replanned.loudness == pytest.approx(planned.loudness, abs=1e-6)
    assert (again.hits, again.measured) == (len(NEWS) - 1, 1)


def test_a_cache_that_cannot_be_written_still_measures(
    tmp_path: Path, speech_segments: list[bytes]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    meter = LevelMeter(LevelCache(blocker / "cache"))
    write_body(tmp_path / "body", speech_segments, meter)
    assert meter.plan(-16.0).steps > 0


def test_off_measures_and_changes_nothing(tmp_path: Path, speech_segments: list[bytes]) -> None:
    path = tmp_path / "body"
    meter = LevelMeter(LevelCache(None))
    before = write_body(path, speech_segments, meter)
    level = meter.finish(path, None)
    assert level.steps == 0
    assert path.read_bytes() == before
    assert level.loudness == pytest.approx(ebur128(before)[0], abs=0.15)


def test_a_body_that_does_not_match_what_was_noted_is_refused(
    tmp_path: Path, speech_segments: list[bytes]
) -> None:
    path = tmp_path / "body"
    meter = LevelMeter(LevelCache(None))
    write_body(path, speech_segments, meter)
    with path.open("ab") as body:
        body.write(SILENT_FRAME)
    with pytest.raises(ValueError, match="frames but"):
        meter.finish(path, -16.0)
    with pytest.raises(ValueError, match="outside"):
        finish_body(path, 2, [(0, 10**6)])


def test_a_restart_forgets_what_was_noted(tmp_path: Path, speech_segments: list[bytes]) -> None:
    meter = LevelMeter(LevelCache(None))
    meter.add(speech_segments[0] * 3)
    meter.restart()
    write_body(tmp_path / "body", speech_segments, meter)
    assert meter.finish(tmp_path / "body", -16.0).steps > 0


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("intro.wav", ("-ar", "44100", "-ac", "2")),
        ("intro.m4a", ("-ar", "48000", "-ac", "2", "-c:a", "aac", "-b:a", "96k")),
    ],
)
def test_an_intro_is_written_first_and_kept_while_the_reading_is_gained(
    tmp_path: Path, speech_segments: list[bytes], name: str, codec: tuple[str, ...]
) -> None:
    clip = load_clip(make_file(tmp_path, name, *codec), -16.0, tmp_path / "cache")
    output = tmp_path / "out.mp3"
    meter = LevelMeter(LevelCache(tmp_path / "cache"))
    with Mp3Writer(output) as writer:
        sink = MeasuredSink(writer, meter, intro=clip.mp3)
        for frames, pause in zip(speech_segments, PAUSES, strict=False):
            sink.write(frames)
            sink.write(silence(pause))
            asyncio.run(sink.drain())
        size = writer.finish((), Tags(title="t"), meter.finisher(-16.0))
    level = meter.level
    assert level is not None and level.steps > 0
    data = output.read_bytes()
    assert len(data) == size
    tag = ID3(output)
    assert tag["TXXX:REPLAYGAIN_TRACK_GAIN"].text == [f"{REFERENCE - level.loudness:+.2f} dB"]
    assert float(tag["TXXX:REPLAYGAIN_TRACK_PEAK"].text[0]) == pytest.approx(
        10 ** (level.true_peak / 20), rel=1e-5
    )
    original = b"".join(f + silence(p) for f, p in zip(speech_segments, PAUSES, strict=False))
    frames = data[-(len(clip.mp3) + len(original)) :]  # behind the tag and the Info frame
    assert frames[: len(clip.mp3)] == clip.mp3  # the intro as it was, first
    # The reading starts right after it, gained: chapters and cues shift by clip.seconds.
    assert frames[len(clip.mp3) :] == apply_gain(original, level.steps).mp3
    assert ffmpeg_errors(data) == ""
    loudness, peak = ebur128(data)
    assert loudness == pytest.approx(-16.0, abs=1.0)
    assert loudness == pytest.approx(level.loudness, abs=0.2)
    assert peak <= -1.0
    assert level.gain_db == pytest.approx(level.steps * STEP_DB)


def test_gating_part_by_part_is_exactly_gating_the_whole() -> None:
    rng = np.random.default_rng(4)
    for hop, chunk in ((1, 2400), (25, 96)):
        energy = rng.uniform(0, 1, 50_000) ** 6 * rng.choice([1e-9, 1.0], 50_000) * chunk
        cuts = sorted(rng.choice(np.arange(1, len(energy)), 40, replace=False))
        parts = np.split(energy, cuts)
        whole = loudness.gated_loudness(energy, chunk, hop)
        assert loudness.gated_loudness_of(functools.partial(iter, parts), chunk, hop) == whole
        short = [energy[:2], energy[2:3]]  # not one 400 ms block
        assert loudness.gated_loudness_of(functools.partial(iter, short), chunk, hop) == SILENCE


def test_judging_a_long_reading_needs_little_more_than_its_notes() -> None:
    # 10 hours of segments (45 s, a second's pause between them) noted step by step. The notes
    # were two arrays of every 100 ms step (the intro's and outro's kind all zeros), and judging
    # them took seven more (43 MB for 21 hours, on top of 12).
    rng = np.random.default_rng(8)
    energy = rng.uniform(0, 1e-3, 45 * 250)  # 45 s of 4 ms chunks
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        notes = Programme()
        for _ in range(10 * 3600 // 46):
            notes.add(Measurement(24_000, energy, 0.5))
            notes.add(42, gained=False)
        kept = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.reset_peak()
        loudness_db, _ = notes.measured(3)
        judging = tracemalloc.get_traced_memory()[1] - before - kept
    finally:
        tracemalloc.stop()
    expected = programme([x for _ in range(3) for x in (Measurement(24_000, energy, 0.5), 42)])
    assert loudness_db == pytest.approx(expected.integrated + 3 * STEP_DB, abs=0.01)
    one_copy = notes.frames * 6 // 25 * 8  # float64 bytes for every 100 ms step of the reading
    assert kept < 1.2 * one_copy, f"{kept:,} bytes of notes"
    assert judging < 2.5 * one_copy, f"{judging:,} bytes to judge them"
