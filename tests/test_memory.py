"""Memory does not grow with the reading: segments go to the file as they come, none is kept.

The peak RSS of whole runs is the memory benchmark's (``benchmarks/memory.py``); here Python's
own allocations are traced while a streaming render writes 400 segments to an MP3 file.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

from newsreader import pipeline
from newsreader.audio.mp3 import bare_frames, silence
from newsreader.audio.writer import Mp3Writer
from newsreader.config import Settings
from newsreader.models import FRAME_BYTES, Pause, Segment, SegmentAudio, SentenceTiming
from newsreader.synth.base import Voice
from newsreader.synth.select import EngineChoice
from tests.audio import make_script, make_segment

SEGMENTS = 400
FRAMES = 200
"""Each segment's audio: 200 frames, 28.8 KB, 4.8 s."""


class SilentEngine:
    """A real engine of the ``Engine`` protocol, as cheap as can be: each segment is silence."""

    name = "silent"

    def voice_id(self, settings: Settings) -> str:
        return "silent"

    async def synthesize(self, segment: Segment, settings: Settings) -> SegmentAudio:
        await asyncio.sleep(0.002)  # as a voice takes time: results do not all pile up at once
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
