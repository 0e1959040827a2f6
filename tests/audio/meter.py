"""The independent loudness meter for tests: ffmpeg's ebur128 filter, and speech to measure."""

from __future__ import annotations

import asyncio
import functools
import re
import subprocess
from pathlib import Path

from newsreader.audio.ffmpeg import ffmpeg_exe
from newsreader.synth.espeak import render_pcm

NEWS = (
    "国务院近日印发通知，部署进一步优化营商环境。",
    "通知要求各地区各部门加强协调配合。",
    "记者从市科技局了解到，院地合作联席会议制度已经建立。",
    "今年以来，全市新开城市书房二十三家，市民借阅量同比增长百分之四十。",
)


def ebur128(source: Path | bytes) -> tuple[float, float]:
    """(integrated loudness LUFS, true peak dBTP) as ffmpeg's ebur128 filter measures them.

    Bytes are read as MP3 from stdin. The decoding must be clean: any error fails the test.
    """
    target, stdin = (str(source), b"") if isinstance(source, Path) else ("pipe:0", source)
    fmt = [] if isinstance(source, Path) else ["-f", "mp3"]
    run = subprocess.run(
        [
            *(ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats", *fmt, "-i", target),
            *("-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-"),
        ],
        input=stdin,
        capture_output=True,
        check=False,
    )
    log = run.stderr.decode(errors="replace")
    assert run.returncode == 0, log[-2000:]
    errors = [line for line in log.splitlines() if "rror" in line]
    assert not errors, errors
    summary = log.split("Summary:")[-1]
    loudness = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    peak = re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    assert loudness and peak, summary
    return float(loudness[1]), float(peak[1])


@functools.cache
def speech_pcm(sentences: tuple[str, ...] = NEWS) -> tuple[bytes, ...]:
    """The embedded voice's 22,050 Hz 16-bit PCM, one piece per sentence."""
    return tuple(asyncio.run(render_pcm(sentences)))
