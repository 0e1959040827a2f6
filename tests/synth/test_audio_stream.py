"""Each request's audio is measured as it streams in; only the answer used counts.

The real ``edge_tts`` client talks to the edge stand-in; the scheduler gives every request a
stream of ``AheadLevels`` (wrapped here to record what each stream was told): a request cut off
mid-audio, hung up as stalled or beaten by its hedge drops its stream; the answer used completes
its own, whose bytes are exactly the segment's frames, and the measurement taken as they came
is the one of the whole segment.
"""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest

from newsreader.audio.ahead import AheadLevels
from newsreader.audio.loudness import Measurement
from newsreader.models import Segment, SegmentAudio
from newsreader.synth.base import AudioStream, Progress
from newsreader.synth.cache import LevelCache, SegmentCache
from newsreader.synth.edge import EdgeEngine
from newsreader.synth.scheduler import Scheduler, StallPolicy
from tests.audio import make_script, make_segment
from tests.standin.server import EdgeStandin, FaultChooser, tone_mp3
from tests.synth.test_stalls import edge_settings, segments


class Recorded:
    """One request's stream, and what it was told."""

    def __init__(self, inner: AudioStream) -> None:
        self.inner = inner
        self.fed = bytearray()
        self.outcome: str | None = None
        self.completed = b""

    def feed(self, chunk: bytes) -> None:
        assert self.outcome is None, "fed after it was completed or dropped"
        self.fed += chunk
        self.inner.feed(chunk)

    def complete(self, mp3: bytes) -> None:
        assert self.outcome is None
        self.outcome, self.completed = "complete", mp3
        self.inner.complete(mp3)

    def drop(self) -> None:
        assert self.outcome != "complete", "a completed stream was dropped"
        self.outcome = "drop"
        self.inner.drop()


class Recording:
    """An ``AudioListener``: ``AheadLevels``, with every stream recorded."""

    def __init__(self, levels: AheadLevels) -> None:
        self.levels = levels
        self.streams: list[Recorded] = []
        self.whole: list[bytes] = []

    def __call__(self, mp3: bytes) -> None:
        self.whole.append(mp3)
        self.levels(mp3)

    def stream(self) -> Recorded:
        self.streams.append(Recorded(self.levels.stream()))
        return self.streams[-1]


def _same(a: Measurement, b: Measurement) -> bool:
    return a.peak == b.peak and np.array_equal(a.energy, b.energy)


def run(parts: tuple[Segment, ...], listener: Recording, policy: StallPolicy) -> Scheduler:
    scheduler = Scheduler(
        EdgeEngine(),
        edge_settings(concurrency=3),
        SegmentCache(None),
        stalls=policy,
        rng=random.Random(1),
        on_audio=listener,
    )

    async def go() -> list[SegmentAudio]:
        return [audio async for audio in scheduler.run(make_script(parts, ("标题",)))]

    done = asyncio.run(asyncio.wait_for(go(), 30))
    assert [audio.mp3 for audio in done] == [tone_mp3(len(a.mp3) // 144) for a in done]
    return scheduler


def faults(script: dict[str, list[str | None]]) -> FaultChooser:
    """The faults each text's requests meet, in order (then none)."""
    left = {text: list(names) for text, names in script.items()}

    def choose(_number: int, asked: str | None) -> str | None:
        names = left.get(asked or "", [])
        return names.pop(0) if names else None

    return choose


def test_only_the_answer_used_is_measured_from_its_stream(edge_standin: EdgeStandin) -> None:
    edge_standin.configure(first_audio_latency=0.05, frames_per_message=3)
    parts = segments(6, words=5)
    cut, stalled = parts[1].text, parts[4].text
    edge_standin.set_faults(chooser=faults({cut: ["close_mid_audio"], stalled: ["stall"]}))
    levels = AheadLevels(None, step_frames=7)  # steps of 7 frames: many, split mid-message
    listener = Recording(levels)
    scheduler = run(parts, listener, StallPolicy(floor=10.0, hedge_floor=0.1))
    stats = scheduler.stats
    assert stats.failures["truncated"] == 1 and stats.hedges == 1  # both faults were met
    used = [s for s in listener.streams if s.outcome == "complete"]
    dropped = [s for s in listener.streams if s.outcome == "drop"]
    assert len(used) == len(parts) and len(dropped) == len(listener.streams) - len(parts) == 2
    assert any(s.fed for s in dropped)  # the cut request's half of its audio, not used
    assert all(bytes(s.fed) == s.completed for s in used)
    assert not listener.whole  # every segment's measurement came from its stream
    mp3s = [s.completed for s in used]
    found = levels.measure(mp3s)
    distinct = len(set(mp3s))  # the stand-in's audio is a tone as long as the text
    assert distinct > 1
    assert levels.streamed == levels.measured == distinct  # identical audio: measured once
    plain = LevelCache(None).measure(mp3s)
    assert all(_same(a, b) for a, b in zip(found, plain, strict=True))


def test_a_stream_whose_bytes_are_not_the_frames_is_measured_whole() -> None:
    frames = tone_mp3(120)
    levels = AheadLevels(None, step_frames=10)
    stream = levels.stream()
    stream.feed(b"ID3\x03\x00\x00\x00\x00\x00\x00")  # a tag the engine strips: other bytes
    stream.feed(frames)
    stream.complete(frames)
    assert _same(levels.measure([frames])[0], LevelCache(None).measure([frames])[0])
    assert (levels.streamed, levels.measured) == (0, 1)
    # an engine that never streams: the same
    quiet = levels.stream()
    quiet.complete(tone_mp3(30))
    levels.measure([tone_mp3(30)])
    assert (levels.streamed, levels.measured) == (0, 2)


def test_a_stream_that_cannot_be_decoded_reaches_the_meter_as_its_error() -> None:
    from newsreader.errors import SynthesisError

    noise = np.random.default_rng(1).integers(0, 256, 140 * 8, dtype=np.uint8).tobytes()
    bad = b"".join(b"\xff\xf3\x64\xc4" + noise[i : i + 140] for i in range(0, len(noise), 140))
    mp3 = tone_mp3(20) + bad + tone_mp3(20)  # edge's frame headers, noise after them
    levels = AheadLevels(None, step_frames=5)
    stream = levels.stream()
    for at in range(0, len(mp3), 300):
        stream.feed(mp3[at : at + 300])
    stream.complete(mp3)
    with pytest.raises(SynthesisError, match="cannot decode the audio"):
        levels.measure([mp3])
    assert levels.streamed == 0


def test_a_dropped_stream_keeps_nothing_and_identical_audio_is_measured_once() -> None:
    levels = AheadLevels(None, step_frames=5)
    lost = levels.stream()
    lost.feed(tone_mp3(200)[:5000])
    lost.drop()
    lost.feed(b"more")  # late: ignored
    lost.complete(tone_mp3(200))  # never so in the scheduler; ignored as dropped, measured whole
    streams = [levels.stream() for _ in range(3)]
    for stream in streams:
        stream.feed(tone_mp3(90))
    for stream in streams:
        stream.complete(tone_mp3(90))  # three segments with the same audio
    for _ in range(3):
        levels.measure([tone_mp3(90)])
    levels.measure([tone_mp3(200)])
    assert (levels.streamed, levels.measured) == (1, 2)  # streamed once; the other one whole
    levels.measure([tone_mp3(90)])  # asked for a fourth time, told three: measured again
    assert levels.measured == 3


def test_progress_hands_each_audio_message_on(edge_standin: EdgeStandin) -> None:
    from newsreader.synth.base import REQUEST_PROGRESS

    edge_standin.configure(frames_per_message=4)
    (segment,) = segments(1, words=6)
    chunks: list[bytes] = []

    async def go() -> SegmentAudio:
        progress = Progress()
        progress.on_audio = chunks.append
        REQUEST_PROGRESS.set(progress)
        return await EdgeEngine().synthesize(segment, edge_settings())

    audio = asyncio.run(go())
    assert len(chunks) > 3 and b"".join(chunks) == audio.mp3


def test_a_text_the_script_has_twice_is_measured_once_for_both(edge_standin: EdgeStandin) -> None:
    edge_standin.configure(first_audio_latency=0.02)
    first, second = segments(2, words=5)
    parts = (first, second, make_segment(3, first.sentences))  # the first text again
    levels = AheadLevels(None, step_frames=20)
    listener = Recording(levels)
    scheduler = run(parts, listener, StallPolicy())
    assert scheduler.stats.duplicates == 1 and scheduler.stats.requests == 2
    completed = [s.completed for s in listener.streams if s.outcome == "complete"]
    assert len(completed) == 2  # one stream a request
    assert len(listener.whole) == 1 and listener.whole[0] in completed  # and the second use
    repeated = listener.whole[0]
    levels.measure([m for m in completed if m != repeated])
    # the meter asks for each use of it, in its own batch: both get the measurement taken ahead
    levels.measure([repeated])
    levels.measure([repeated])
    assert levels.measured == levels.streamed == 2
