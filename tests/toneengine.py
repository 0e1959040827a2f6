"""A small real voice engine for tests: each sentence is a tone, as long as its text.

It implements the ``Engine`` protocol for real (LAME-encoded frames in edge's format, one
timing per sentence), so registering it exercises everything an added engine goes through:
the registry, the click choices, ``Settings``, ``choose_engine``, the scheduler, assembly.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from newsreader.audio.encode import ENCODER_DELAY, encode_pcm
from newsreader.config import Settings
from newsreader.models import Segment, SegmentAudio, SentenceTiming
from newsreader.synth import registry
from newsreader.synth.base import Voice

RATE = 16_000
SECONDS_PER_CHAR = 0.05
VOICES = ("tone-a", "tone-b")


def _tone(seconds: float, hertz: float) -> bytes:
    count = round(seconds * RATE)
    return b"".join(
        struct.pack("<h", round(8000 * math.sin(2 * math.pi * hertz * n / RATE)))
        for n in range(count)
    )


class ToneEngine:
    name = "tone"
    made: list[ToneEngine] = []  # noqa: RUF012  # every engine made, for tests to look at

    def __init__(self) -> None:
        self.closed = 0
        self.requests = 0
        ToneEngine.made.append(self)

    def voice_id(self, settings: Settings) -> str:
        return f"tone:{settings.voice}:{settings.rate}"

    async def synthesize(self, segment: Segment, settings: Settings) -> SegmentAudio:
        self.requests += 1
        hertz = 660.0 if settings.voice == "tone-b" else 440.0
        pcm = b""
        timings = []
        for sentence in segment.sentences:
            start = len(pcm) / 2 / RATE + ENCODER_DELAY
            pcm += _tone(max(len(sentence), 1) * SECONDS_PER_CHAR, hertz)
            timings.append(SentenceTiming(sentence, start, len(pcm) / 2 / RATE + ENCODER_DELAY))
        return SegmentAudio(encode_pcm(pcm, RATE), tuple(timings))

    async def voices(self) -> list[Voice]:
        return [Voice(name, "zh-CN", "Neutral", self.name, "a test tone") for name in VOICES]

    async def close(self) -> None:
        self.closed += 1


ENTRY = registry.EngineEntry(
    name="tone",
    kind="embedded",
    module=__name__,
    attribute="ToneEngine",
    owns_voice=lambda voice: voice in VOICES,
    help="test tones",
    voice_label="test tone voice",
)


@contextmanager
def tone_registered() -> Iterator[registry.EngineEntry]:
    ToneEngine.made.clear()
    with registry.registered(ENTRY) as entry:
        yield entry
