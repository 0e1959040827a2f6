"""Loudness measured ahead: a segment's measurement taken when its audio arrives is the one the
level meter gets later, taken once; failures reach the meter; ``read`` measures ahead."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from newsreader.audio.ahead import AheadLevels
from newsreader.audio.level import LevelMeter
from newsreader.audio.loudness import Measurement
from newsreader.audio.mp3 import silence
from newsreader.errors import SynthesisError
from newsreader.models import FRAME_BYTES
from newsreader.synth.cache import LevelCache
from tests.standin.server import tone_mp3


def _same(a: Measurement, b: Measurement) -> bool:
    return a.rate == b.rate and a.peak == b.peak and a.energy.tolist() == b.energy.tolist()


def _until(predicate: object, timeout: float = 20.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the worker never finished"
        time.sleep(0.01)


def test_a_piece_told_ahead_is_measured_then_and_not_again() -> None:
    first, second, other = tone_mp3(200), tone_mp3(120), tone_mp3(80) + silence(5)
    levels = AheadLevels(None)
    levels.ahead(first)
    levels.ahead(second)
    levels.ahead(first)  # told twice: measured once
    _until(lambda: levels.measured == 2)
    found = levels.measure([second, other, first])
    assert levels.measured == 3  # only ``other`` was measured when asked
    plain = LevelCache(None).measure([second, other, first])
    assert all(_same(a, b) for a, b in zip(found, plain, strict=True))
    # told twice, asked for twice: the second ask gets it too, and then it is let go
    levels.measure([first])
    assert levels.measured == 3
    levels.measure([first])
    assert levels.measured == 4


def test_identical_audio_told_three_times_is_measured_once_for_all_three_asks() -> None:
    # Three segments with the same audio (different texts): the meter asks for each in its own
    # batch, and each ask gets the one measurement taken ahead.
    piece = tone_mp3(150)
    levels = AheadLevels(None)
    for _ in range(3):
        levels.ahead(piece)
    _until(lambda: levels.measured == 1)
    for _ in range(3):
        levels.measure([piece])
    assert levels.measured == 1


def test_the_meter_gets_the_same_reading_with_or_without_measuring_ahead() -> None:
    pieces = [tone_mp3(150), silence(30), tone_mp3(90), silence(30), tone_mp3(260)]
    ahead = AheadLevels(None)
    for piece in reversed(pieces[::2]):  # arrived out of order
        ahead.ahead(piece)
    results = []
    for levels in (ahead, LevelCache(None)):
        meter = LevelMeter(levels)
        for piece in pieces:
            meter.add(piece)
        results.append(meter.plan(-16.0))
    assert results[0] == results[1]


def test_a_piece_that_cannot_be_measured_fails_when_the_meter_asks() -> None:
    bad = b"\xff" * FRAME_BYTES * 4  # not MP3 frames ffmpeg can decode
    levels = AheadLevels(None)
    levels.ahead(bad)
    with pytest.raises(SynthesisError):
        levels.measure([bad])


def test_measured_ahead_and_cached_beside_the_segments(tmp_path: Path) -> None:
    piece = tone_mp3(100)
    levels = AheadLevels(tmp_path)
    levels.ahead(piece)
    _until(lambda: levels.measured == 1)
    again = AheadLevels(tmp_path)
    again.ahead(piece)  # found in the cache by the worker: not measured
    _until(lambda: again.hits == 1)
    assert again.measured == 0
    assert _same(again.measure([piece])[0], LevelCache(tmp_path).measure([piece])[0])


def test_audio_with_a_tag_is_measured_as_the_frames_the_meter_will_see() -> None:
    frames = tone_mp3(90)
    tagged = b"ID3\x03\x00\x00\x00\x00\x00\x00" + frames  # an empty ID3v2 tag in front
    levels = AheadLevels(None)
    levels.ahead(tagged)
    levels.ahead(b"\x00" * 10)  # not audio: ignored here, reported where it is placed
    _until(lambda: levels.measured == 1)
    levels.measure([frames])
    assert levels.measured == 1  # the one measured ahead


def test_two_workers_at_most_and_every_piece_its_own_measurement() -> None:
    pieces = [tone_mp3(60 + 20 * n) for n in range(6)]
    before = set(threading.enumerate())  # other tests' workers may still be waiting
    levels = AheadLevels(None, batch_frames=50)  # a batch a piece: both workers busy
    seen = 0
    for piece in pieces:
        levels.ahead(piece)
        alive = [t for t in _workers() if t not in before and t.is_alive()]
        seen = max(seen, len(alive))
    assert 1 <= seen <= 2
    _until(lambda: levels.measured == len(pieces))
    found = levels.measure(pieces)
    plain = LevelCache(None).measure(pieces)
    assert all(_same(a, b) for a, b in zip(found, plain, strict=True))
    levels.close()


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "levels-ahead"]


def test_a_worker_waits_for_more_work_and_ends_when_closed() -> None:
    before = set(_workers())
    levels = AheadLevels(None)
    levels.ahead(tone_mp3(60))
    _until(lambda: levels.measured == 1)
    (worker,) = [t for t in _workers() if t not in before]
    assert worker.is_alive()  # waiting for the next piece (a reading's audio comes in bursts)
    levels.ahead(tone_mp3(80))
    _until(lambda: levels.measured == 2)
    assert [t for t in _workers() if t not in before] == [worker]  # it took the next piece
    levels.close()
    worker.join(timeout=2)
    assert not worker.is_alive()  # ended at once, not after LINGER
    with levels:  # work given after the close is still done, by a worker started for it
        levels.ahead(tone_mp3(100))
        _until(lambda: levels.measured == 3)


def test_silence_is_not_measured_ahead_nor_kept() -> None:
    # The meter counts a run of silent frames as a pause and never asks for its measurement:
    # one measured ahead would be kept to the end of the run (memory growing with the article).
    levels = AheadLevels(None)
    levels.ahead(silence(40))
    levels.ahead(tone_mp3(30))
    _until(lambda: levels.measured == 1)
    time.sleep(0.05)
    assert levels.measured == 1  # the tone only
    meter = LevelMeter(levels)
    meter.add(silence(40))
    meter.add(tone_mp3(30))
    meter.plan(None)
    assert levels.measured == 1  # the tone's measurement, taken ahead, was the one used
