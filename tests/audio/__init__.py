"""Helpers for the audio tests: real MP3 made at test time, real ffmpeg as the judge."""

from __future__ import annotations

import functools
import math
import struct
import subprocess
import tempfile
from pathlib import Path

import lameenc

from newsreader.audio.ffmpeg import ffmpeg_exe
from newsreader.models import (
    Article,
    Block,
    BlockKind,
    Pause,
    Script,
    Segment,
    SegmentKind,
)

SAMPLE_RATE = 24000
SAMPLES_PER_FRAME = 576


def pcm_tone(milliseconds: int, frequency: float = 440.0, amplitude: int = 8000) -> bytes:
    """A sine tone as 16-bit little-endian mono PCM at 24 kHz."""
    count = SAMPLE_RATE * milliseconds // 1000
    step = 2 * math.pi * frequency / SAMPLE_RATE
    return struct.pack(f"<{count}h", *(round(amplitude * math.sin(step * i)) for i in range(count)))


@functools.cache
def lame_tone(milliseconds: int, frequency: float = 440.0) -> bytes:
    """The tone encoded by LAME in edge's format (MPEG-2 L3, 24 kHz, mono, 48 kbit/s CBR)."""
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(48)
    encoder.set_in_sample_rate(SAMPLE_RATE)
    encoder.set_out_sample_rate(SAMPLE_RATE)
    encoder.set_channels(1)
    encoder.set_quality(2)
    return bytes(encoder.encode(pcm_tone(milliseconds, frequency)) + encoder.flush())


@functools.cache
def ffmpeg_tone(milliseconds: int) -> bytes:
    """A tone as ffmpeg writes an .mp3 file: an ID3v2 tag, a LAME Info frame, then audio."""
    # Written to a file, not a pipe: ffmpeg only fills in the Info frame when it can seek back.
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "tone.mp3"
        run = subprocess.run(
            [
                ffmpeg_exe(),
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency=660:duration={milliseconds / 1000}",
                "-ar",
                str(SAMPLE_RATE),
                "-ac",
                "1",
                "-c:a",
                "libmp3lame",
                "-b:a",
                "48k",
                str(out),
            ],
            capture_output=True,
            check=False,
        )
        assert run.returncode == 0, run.stderr.decode()
        return out.read_bytes()


def _ffmpeg(source: Path | bytes, *output: str) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg at ``-v error`` on a file or on bytes fed through stdin."""
    target, stdin = (str(source), None) if isinstance(source, Path) else ("-", source)
    return subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-v", "error", "-i", target, *output],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        check=False,
    )


def ffmpeg_errors(source: Path | bytes) -> str:
    """What ffmpeg reports while decoding the whole file: "" when it decodes cleanly."""
    run = _ffmpeg(source, "-f", "null", "-")
    return f"rc={run.returncode} {run.stderr.decode()}" if run.returncode else run.stderr.decode()


def decode_samples(source: Path | bytes) -> list[int]:
    """Decode with ffmpeg to 24 kHz mono signed 16-bit samples."""
    run = _ffmpeg(source, "-f", "s16le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-")
    assert run.returncode == 0, run.stderr.decode()
    raw = run.stdout
    return list(struct.unpack(f"<{len(raw) // 2}h", raw))


def rms(samples: list[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


def make_segment(
    index: int,
    display: tuple[str, ...],
    *,
    chapter: int = 0,
    pause: Pause = Pause.SENTENCE,
    sentences: tuple[str, ...] | None = None,
    kind: SegmentKind = SegmentKind.BODY,
) -> Segment:
    spoken = sentences if sentences is not None else display
    return Segment(
        index=index,
        text="".join(spoken),
        sentences=spoken,
        display=display,
        kind=kind,
        block=index - 1,
        chapter=chapter,
        pause=pause,
    )


def make_script(segments: tuple[Segment, ...], chapters: tuple[str, ...]) -> Script:
    article = Article(
        title=chapters[0] if chapters else "标题",
        blocks=tuple(Block(BlockKind.PARAGRAPH, "".join(s.display)) for s in segments),
        source="https://news.example.cn/a.html",
    )
    return Script(title=article.title, segments=segments, chapters=chapters, article=article)
