"""One contender of the assembly benchmark, run in its own process so its peak RSS is its own.

    python -m benchmarks.synthesis_assembly frames|pydub SEGMENT_DIR OUT.mp3

``SEGMENT_DIR`` holds ``NNNN.mp3`` segments (bare frames in edge's format, as the segment cache
stores them) and ``pauses.json`` (the pause after each, in 24 ms frames). ``frames`` joins them as
``newsreader read`` does (``assemble`` + ``write_mp3``: frame-level, nothing decoded);
``pydub`` decodes each with ffmpeg, joins the samples with silences and encodes the whole once
more, as pydub-based edge-tts wrappers do. Prints ``{"seconds": …, "peak_rss_mb": …}``: the time
from segments on disk to the MP3 on disk, imports and interpreter start-up excluded, and the peak
RSS of this process (imports included) or of a child it ran (pydub's ffmpeg), whichever is larger.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsreader.models import Reading


def _frames(folder: Path, out: Path) -> None:
    from newsreader.audio.tags import Tags, write_mp3

    started = time.perf_counter()
    # As in ``newsreader read``: the segments are let go once joined (pipeline.render returns only
    # the Reading), then the tagged file is written.
    reading = _joined(folder)
    write_mp3(out, reading, Tags(title="一小时", artist="benchmark", album="benchmark"))
    _report(started)


def _joined(folder: Path) -> Reading:
    from newsreader.audio.assemble import assemble
    from newsreader.models import (
        Article,
        Pause,
        Script,
        Segment,
        SegmentAudio,
        SegmentKind,
        SentenceTiming,
    )

    pauses = json.loads((folder / "pauses.json").read_text())
    segments = []
    parts = []
    for index, pause in enumerate(pauses):
        text = f"第{index}段。"
        segments.append(
            Segment(index, text, (text,), (text,), SegmentKind.BODY, index, 0, Pause(pause))
        )
        mp3 = (folder / f"{index:04d}.mp3").read_bytes()
        parts.append(SegmentAudio(mp3, (SentenceTiming(text, 0.0, len(mp3) / 144 * 0.024),)))
    script = Script("一小时", tuple(segments), ("一小时",), Article("一小时", ()))
    return assemble(script, parts)


def _pydub(folder: Path, out: Path) -> None:
    from newsreader.audio.ffmpeg import configure_pydub

    configure_pydub()
    from pydub import AudioSegment

    pauses = json.loads((folder / "pauses.json").read_text())
    started = time.perf_counter()
    joined = AudioSegment.empty()
    for index, pause in enumerate(pauses):
        # codec given: pydub then skips ffprobe, which imageio-ffmpeg does not ship
        part = AudioSegment.from_file(folder / f"{index:04d}.mp3", format="mp3", codec="mp3")
        joined += part
        if pause:
            joined += AudioSegment.silent(duration=pause * 24, frame_rate=part.frame_rate)
    joined.export(out, format="mp3", bitrate="48k", parameters=["-ar", "24000", "-ac", "1"])
    _report(started)


def _report(started: float) -> None:
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss_mb": _peak_rss_mb()}), flush=True)


def _peak_rss_mb() -> float | None:
    """This process's own peak RSS, or its largest child's, MB (None without ``/proc``).

    Not ``ru_maxrss`` of this process: on Linux, exec carries the parent's peak RSS over into the
    child's, so that would report the benchmark's own process whenever it is the larger one.
    ``VmHWM`` is the peak of this process's memory since exec.
    """
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return None
    own = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[0] not in ("frames", "pydub"):
        sys.exit("usage: python -m benchmarks.synthesis_assembly frames|pydub SEGMENT_DIR OUT.mp3")
    mode, folder, out = argv[0], Path(argv[1]), Path(argv[2])
    (_frames if mode == "frames" else _pydub)(folder, out)


if __name__ == "__main__":
    main(sys.argv[1:])
