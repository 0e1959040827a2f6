"""Memory does not grow with the reading: segments go to the file as they come, none is kept,
and the work done on each (levelling, measuring) needs memory of a block, not of the whole.

The peak RSS of whole runs is the memory benchmark's (``benchmarks/memory.py``); here Python's
and numpy's own allocations are traced: while a streaming render writes 400 segments to an MP3
file, while a long segment is levelled, while a batch of segments is measured.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from newsreader import pipeline
from newsreader.audio.encode import encode_pcm
from newsreader.audio.loudness import measure_apart, pcm_samples
from newsreader.audio.mp3 import bare_frames, silence
from newsreader.audio.writer import Mp3Writer
from newsreader.config import Settings
from newsreader.models import FRAME_BYTES, Pause, Segment, SegmentAudio, SentenceTiming
from newsreader.pipeline import Written
from newsreader.synth.base import Voice
from newsreader.synth.espeak import SAMPLE_RATE as ESPEAK_RATE
from newsreader.synth.espeak import level_pcm
from newsreader.synth.scheduler import AHEAD
from newsreader.synth.select import EngineChoice
from tests.audio import make_script, make_segment
from tests.audio.meter import speech_pcm

SEGMENTS = 400
FRAMES = 200
"""Each segment's audio: 200 frames, 28.8 KB, 4.8 s."""


class SilentEngine:
    """A real engine of the ``Engine`` protocol, as cheap as can be: each segment is silence."""

    name = "silent"

    def __init__(self, delay: float = 0.002) -> None:
        self.delay = delay
        """Seconds each segment takes: 0 answers in the event loop's own order, the same way
        every run (no timer decides which results are ready before the listener takes them)."""

    def voice_id(self, settings: Settings) -> str:
        return "silent"

    async def synthesize(self, segment: Segment, settings: Settings) -> SegmentAudio:
        await asyncio.sleep(self.delay)  # as a voice takes time: results do not all come at once
        timings = tuple(SentenceTiming(s, 0.1, 4.0) for s in segment.sentences)
        return SegmentAudio(silence(FRAMES), timings)

    async def voices(self) -> list[Voice]:
        return []

    async def close(self) -> None:
        pass


def test_a_long_reading_streams_to_its_file_without_keeping_its_audio(tmp_path: Path) -> None:
    script = make_script(
        tuple(
            make_segment(i, (f"第{i}段。",), pause=Pause.PARAGRAPH if i % 5 else Pause.HEADING)
            for i in range(SEGMENTS)
        ),
        ("标题",),
    )
    settings = Settings(engine="espeak", use_cache=False)
    traced: dict[int, int] = {}

    def on_ready(index: int, _cached: bool) -> None:
        if index in (50, SEGMENTS - 1):
            traced[index] = tracemalloc.get_traced_memory()[0]

    path = tmp_path / "long.mp3"
    tracemalloc.start()
    try:
        with Mp3Writer(path) as writer:
            written = asyncio.run(
                pipeline.render_to(
                    script,
                    settings,
                    writer,
                    choice=EngineChoice(SilentEngine()),
                    on_ready=on_ready,
                )
            )
            writer.finish(written.timeline.chapters, pipeline.tags_for(script.article, script))
    finally:
        tracemalloc.stop()

    audio = (SEGMENTS - 50) * FRAMES * FRAME_BYTES  # 10 MB more audio between the two points
    growth = traced[SEGMENTS - 1] - traced[50]
    assert growth < audio / 10, f"{growth:,} bytes more for {audio:,} bytes more audio"
    # and the file has it all
    frames = bare_frames(path.read_bytes())
    assert len(frames) // FRAME_BYTES == written.timeline.frames
    pauses = sum(int(segment.pause) for segment in script.segments)
    assert written.timeline.frames == SEGMENTS * FRAMES + pauses


def traced_peak(work: Callable[[], object]) -> int:
    """Bytes Python and numpy had allocated at most while ``work`` ran, above where they were."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        work()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def speech() -> bytes:
    """Two minutes of the embedded voice's 22,050 Hz PCM (its news sentences over and over)."""
    once = b"".join(speech_pcm())
    return once * -(-120 * ESPEAK_RATE * 2 // len(once))


def test_levelling_a_segment_takes_a_few_copies_of_it_not_dozens(speech: bytes) -> None:
    # Every segment of the embedded voice is levelled in a worker thread while the next one is
    # rendered and the level meter measures: whole-segment temporaries there set the run's
    # peak (68 MB for a 48 s segment, 32 times its PCM, before the limiter went block-wise).
    level_pcm(speech[:4410], 9.0)  # scipy's modules load: once a process, not each segment
    levelled: list[bytes] = []
    peak = traced_peak(lambda: levelled.append(level_pcm(speech, 9.0)))
    assert len(levelled[0]) == len(speech)
    assert pcm_samples(levelled[0]).max() < pcm_samples(speech).max() * 10 ** (9 / 20)  # limited
    # the float64 samples (4x) and the PCM made of them (2x), and a few blocks besides
    assert peak < 9 * len(speech), f"{peak:,} bytes to level {len(speech):,} bytes of PCM"


def test_measuring_a_batch_takes_the_memory_of_one_piece_not_of_the_batch(speech: bytes) -> None:
    # The level meter measures a minute or more of a reading in one ffmpeg run; before, the run
    # was decoded whole (float64) and every piece's temporaries came on top.
    piece = encode_pcm(speech[: 30 * ESPEAK_RATE * 2], ESPEAK_RATE)  # 30 s of frames
    measure_apart([piece[:1440]])  # scipy's modules load: once a process, not each batch
    one = traced_peak(lambda: measure_apart([piece]))
    six = traced_peak(lambda: measure_apart([piece] * 6))
    # the frames themselves (30 s are 180 kB), handed to ffmpeg, are all six pieces add
    assert six < one + 3 * 6 * len(piece), f"{six:,} bytes for six pieces, {one:,} for one"


def reading_peak(tmp_path: Path, segments: int, *, cached: bool = False) -> int:
    """Traced peak of ``write_reading`` (level meter and all) of a script of silent segments;
    ``cached``: every segment is in the cache already (a first run put them there)."""
    script = make_script(
        tuple(
            make_segment(i, (f"第{i}段。这一段的文字不长。",), pause=Pause.PARAGRAPH)
            for i in range(segments)
        ),
        ("标题",),
    )
    settings = Settings(engine="espeak", use_cache=cached, cache_dir=tmp_path / f"c{segments}")
    out = tmp_path / f"reading-{segments}.mp3"
    # Instant answers: how many results wait for the listener is then the same in every run.
    # With a timer (2 ms a segment) it was not: once the adaptive limiter had climbed past
    # about 8 requests, the engine outran the listener (150-300 us a segment) and the results
    # waiting filled the scheduler's window, up to 128 segments (3.7 MB here), or not, as the
    # timers fell; a 150-segment run ends before that climb, so a 600-segment run peaked 0.1
    # to 1.9 MB higher from one run to the next, bounded by the window, not by the reading.
    choice = EngineChoice(SilentEngine(delay=0))

    def read() -> Written:
        return asyncio.run(
            pipeline.write_reading(script.article, script, settings, out, choice=choice)
        )

    if cached:
        assert read().stats.cache_hits == 0
    return traced_peak(read)


class CountingEngine(SilentEngine):
    """A ``SilentEngine`` that counts the segments it has answered."""

    def __init__(self) -> None:
        super().__init__()
        self.answered = 0

    async def synthesize(self, segment: Segment, settings: Settings) -> SegmentAudio:
        audio = await super().synthesize(segment, settings)
        self.answered += 1
        return audio


def test_results_wait_for_a_slow_listener_only_as_far_as_the_window(tmp_path: Path) -> None:
    # The one buffer between the engine and the listener: results not yet taken. Requests are
    # made only so far ahead of the listener (``scheduler.AHEAD``, 8 x the concurrency if more),
    # so a listener slower than the engine (a player on a pipe; here 1 ms a segment against 16
    # requests of 2 ms) holds that many segments' audio, not the rest of the reading. (Texts of
    # one length: the work order is the script's.)
    count = 400
    script = make_script(
        tuple(make_segment(i, (f"第{i:03}段。",), pause=Pause.PARAGRAPH) for i in range(count)),
        ("标题",),
    )
    settings = Settings(engine="espeak", use_cache=False, cache_dir=tmp_path / "cache")
    engine = CountingEngine()
    waiting: list[int] = []

    async def listen() -> None:
        stream = pipeline.RenderStream(script, settings, choice=EngineChoice(engine))
        async for _item in stream:
            waiting.append(engine.answered - len(waiting) - 1)  # answered, not taken yet
            await asyncio.sleep(0.001)

    asyncio.run(listen())
    window = max(AHEAD, 8 * settings.max_concurrency)
    assert len(waiting) == count
    assert max(waiting) <= window, f"{max(waiting)} results waited; the window is {window}"
    assert max(waiting) > window // 2  # the listener was slow: the window is what held it back


def test_a_reading_four_times_as_long_peaks_no_higher(tmp_path: Path) -> None:
    # Every segment's task was made at the start and waited there for its turn (5 kB each:
    # 12 MB for 1,729 segments); a result that came early stayed until the listener reached it.
    # What is left is the reading's own notes (cues, starts, keys): about 1.5 kB a segment.
    reading_peak(tmp_path, 20)  # modules load: once a process
    short = reading_peak(tmp_path, 150)
    long = reading_peak(tmp_path, 600)
    assert long - short < 450 * 3000, f"{long:,} bytes at most for 600 segments, {short:,} for 150"


def test_a_cached_reading_four_times_as_long_peaks_no_higher(tmp_path: Path) -> None:
    # With every segment in the cache, every task finished at once, and the whole reading's
    # audio waited in memory for its turn to be written (28.8 kB a segment here).
    reading_peak(tmp_path, 20, cached=True)
    short = reading_peak(tmp_path, 150, cached=True)
    long = reading_peak(tmp_path, 600, cached=True)
    assert long - short < 450 * 3000, f"{long:,} bytes at most for 600 segments, {short:,} for 150"
