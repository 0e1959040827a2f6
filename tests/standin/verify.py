"""Check an episode made from the stand-in's answers: every segment once, complete, in order.

The stand-in's audio is a steady tone whose length follows the text (``EdgeStandin.plan``), and an
assembled episode puts silent frames between segments. So the episode's frames fall into runs:
tone, silence, tone, ... Each tone run must be byte for byte the complete answer for the next
segment's text (``tone_mp3(plan.frames)``), each silence run that segment's pause. A missing,
repeated, reordered or cut-off segment changes the runs. The subtitles are checked the same way:
one cue per sentence, with the boundary text and times the stand-in sent, shifted to where the
segment starts. Nothing here uses newsreader's own MP3 or subtitle code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from newsreader.models import Segment
from tests.standin.server import (
    FRAME_BYTES,
    FRAME_SECONDS,
    TICKS_PER_SECOND,
    SpeechPlan,
    tone_mp3,
)

_CUE = re.compile(
    r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})\n(.+)$", re.MULTILINE
)


@dataclass(frozen=True)
class VttCue:
    start: float
    end: float
    text: str


def strip_id3v2(data: bytes) -> bytes:
    """The bytes after a leading ID3v2 tag (size from its syncsafe header), if there is one."""
    if data[:3] != b"ID3":
        return data
    size = 0
    for byte in data[6:10]:
        size = size << 7 | (byte & 0x7F)
    footer = 10 if data[5] & 0x10 else 0
    return data[10 + size + footer :]


def parse_vtt(text: str) -> list[VttCue]:
    def seconds(h: str, m: str, s: str, ms: str) -> float:
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    return [
        VttCue(seconds(*match.groups()[:4]), seconds(*match.groups()[4:8]), match.group(9))
        for match in _CUE.finditer(text)
    ]


def frame_runs(mp3: bytes) -> list[tuple[str, bytes]]:
    """The stream cut into ("tone", bytes) and ("silence", bytes) runs of whole frames."""
    tone = set(_frames(tone_mp3(400)))
    runs: list[tuple[str, bytearray]] = []
    for frame in _frames(mp3):
        kind = "tone" if frame in tone else "silence"
        if runs and runs[-1][0] == kind:
            runs[-1][1].extend(frame)
        else:
            runs.append((kind, bytearray(frame)))
    return [(kind, bytes(data)) for kind, data in runs]


def _frames(mp3: bytes) -> list[bytes]:
    return [mp3[i : i + FRAME_BYTES] for i in range(0, len(mp3), FRAME_BYTES)]


def episode_problems(
    mp3_file: bytes,
    segments: Sequence[Segment],
    plan: Callable[[str], SpeechPlan],
    vtt: str | None = None,
) -> list[str]:
    """What is wrong with an episode (an empty list if nothing): see the module docstring.

    ``plan`` is ``EdgeStandin.plan`` with the run's rate (``lambda text: edge.plan(text, rate)``).
    Assumes every segment has something to say and the stand-in splits its sentences as the
    script does (true for text whose sentences end in 。！？).
    """
    problems: list[str] = []
    mp3 = strip_id3v2(mp3_file)
    if mp3[13:17] == b"Info":  # the file's Info frame: metadata (its frame count), not audio
        if int.from_bytes(mp3[21:25], "big") != len(mp3) // FRAME_BYTES - 1:
            problems.append("the Info frame's frame count is not the number of audio frames")
        mp3 = mp3[FRAME_BYTES:]
    if len(mp3) % FRAME_BYTES:
        problems.append(f"{len(mp3)} bytes of audio is not a whole number of frames")
    runs = frame_runs(mp3)
    silences = {data[:FRAME_BYTES] for kind, data in runs if kind == "silence"}
    if len(silences) > 1:
        problems.append(f"{len(silences)} different kinds of non-speech frame")

    expected: list[tuple[str, int]] = []
    for segment in segments:
        expected.append(("tone", plan(segment.text).frames))
        if segment.pause:
            expected.append(("silence", int(segment.pause)))
    got = [(kind, len(data) // FRAME_BYTES) for kind, data in runs]
    if got != expected:
        problems.append(f"frame runs {_first_difference(got, expected)}")
    for index, (kind, data) in enumerate(runs):
        if kind == "tone" and data != tone_mp3(len(data) // FRAME_BYTES):
            problems.append(f"tone run {index // 2} is not one complete answer")

    if vtt is not None:
        problems += _cue_problems(parse_vtt(vtt), segments, plan)
    return problems


def _cue_problems(
    cues: list[VttCue], segments: Sequence[Segment], plan: Callable[[str], SpeechPlan]
) -> list[str]:
    expected: list[VttCue] = []
    start = 0
    for segment in segments:
        answer = plan(segment.text)
        if len(answer.sentences) != len(segment.sentences):
            return [f"segment {segment.index}: the stand-in splits its sentences differently"]
        for sentence, text in zip(answer.sentences, segment.display, strict=True):
            offset = start * FRAME_SECONDS + sentence.offset / TICKS_PER_SECOND
            expected.append(
                VttCue(offset, offset + sentence.duration / TICKS_PER_SECOND, text.strip())
            )
        start += answer.frames + int(segment.pause)
    if [c.text for c in cues] != [c.text for c in expected]:
        return [
            f"cue texts {_first_difference([c.text for c in cues], [c.text for c in expected])}"
        ]
    return [
        f"cue {n} ({cue.text}) at {cue.start:.3f}-{cue.end:.3f} s, "
        f"the stand-in's boundary says {want.start:.3f}-{want.end:.3f} s"
        for n, (cue, want) in enumerate(zip(cues, expected, strict=True))
        if abs(cue.start - want.start) > 0.0015 or abs(cue.end - want.end) > 0.0015
    ]


def _first_difference(got: Sequence[object], expected: Sequence[object]) -> str:
    for index, (a, b) in enumerate(zip(got, expected, strict=False)):
        if a != b:
            return f"differ first at {index}: got {a!r}, expected {b!r}"
    return f"have {len(got)} entries, expected {len(expected)}"
