"""Loudness of one hour of speech in edge's format: measuring, planning and adjusting the gain.

    python -m benchmarks loudness [MINUTES]

The audio is the embedded voice's MP3 (real LAME frames) joined with pauses to MINUTES (default
60). Rows:

- per-segment measurement: decoding each segment with ffmpeg and measuring it (K-weighted chunk
  energies, true peak): done once per segment when it is synthesized, then kept with it;
- combine + plan: joining the kept measurements of the whole reading and gating them;
- adjust: rewriting every granule's global_gain (the lossless path's only change);
- the whole file measured at once (one ffmpeg decode), and ffmpeg's ebur128 on the whole file, for
  comparison.

The lossless path at assembly time is "combine + plan" plus "adjust": the target is <= 1 s for an
hour. Each row is the best of three runs.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable

NEWS = (
    "国务院近日印发通知，部署进一步优化营商环境。",
    "通知要求各地区各部门加强协调配合。",
    "记者从市科技局了解到，院地合作联席会议制度已经建立。",
    "今年以来，全市新开城市书房二十三家，市民借阅量同比增长百分之四十。",
)
PAUSE_FRAMES = 20


def best(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str]) -> None:
    from newsreader.audio.encode import encode_pcm
    from newsreader.audio.ffmpeg import ffmpeg_exe
    from newsreader.audio.gain import apply_gain, plan
    from newsreader.audio.loudness import measure_frames, measure_pieces, programme
    from newsreader.audio.mp3 import silence
    from newsreader.models import FRAME_BYTES, FRAME_SECONDS
    from newsreader.synth.espeak import SAMPLE_RATE, render_pcm

    minutes = float(argv[0]) if argv else 60.0
    segments = [encode_pcm(pcm, SAMPLE_RATE) for pcm in asyncio.run(render_pcm(NEWS))]
    cycle_frames = sum(len(s) // FRAME_BYTES + PAUSE_FRAMES for s in segments)
    repeats = max(1, round(minutes * 60 / (cycle_frames * FRAME_SECONDS)))
    order = [segments[i % len(segments)] for i in range(repeats * len(segments))]
    mp3 = b"".join(s + silence(PAUSE_FRAMES) for s in order)
    hours = len(mp3) // FRAME_BYTES * FRAME_SECONDS / 3600

    measure_frames(segments[0])  # scipy's first import is start-up, not measuring
    per_segment = best(3, lambda: [measure_frames(s) for s in segments])
    batch = order[: 16 * len(segments)]
    batched = best(3, lambda: measure_pieces(batch))
    batch_seconds = len(b"".join(batch)) // FRAME_BYTES * FRAME_SECONDS
    segment_seconds = sum(len(s) // FRAME_BYTES for s in segments) * FRAME_SECONDS
    kept = {id(s): measure_frames(s) for s in segments}
    parts: list[object] = []
    for s in order:
        parts += [kept[id(s)], PAUSE_FRAMES]

    def combine_and_plan() -> object:
        return plan(programme(parts), -16.0)  # type: ignore[arg-type]

    combine = best(3, combine_and_plan)
    chosen = plan(programme(parts), -16.0)  # type: ignore[arg-type]
    adjust = best(3, lambda: apply_gain(mp3, chosen.steps or 1))
    whole = best(1, lambda: measure_frames(mp3))

    def ffmpeg_meter() -> None:
        subprocess.run(
            [
                *(ffmpeg_exe(), "-nostdin", "-v", "error", "-f", "mp3", "-i", "pipe:0"),
                *("-af", "ebur128=peak=true", "-f", "null", "-"),
            ],
            input=mp3,
            capture_output=True,
            check=True,
        )

    ebur = best(1, ffmpeg_meter)
    stored = sum(len(m.to_bytes()) for m in kept.values()) / segment_seconds * 3600

    print(f"Loudness, {hours * 60:.0f} min of speech ({len(mp3) / 1e6:.1f} MB, "
          f"{len(mp3) // FRAME_BYTES:,} frames), {sys.platform}\n")  # fmt: skip
    print("| step | seconds | per hour of audio |")
    print("| --- | ---: | ---: |")
    rows = [
        ("measure each segment, one ffmpeg run each (kept)", None,
         per_segment / segment_seconds * 3600),
        ("measure segments 64 at a time, one ffmpeg run (kept)", None,
         batched / batch_seconds * 3600),
        ("combine kept measurements + plan the gain", combine, combine / hours),
        ("adjust global_gain of every frame", adjust, adjust / hours),
        ("**lossless path at assembly (combine + plan + adjust)**", combine + adjust,
         (combine + adjust) / hours),
        ("whole file measured at once (one ffmpeg decode)", whole, whole / hours),
        ("ffmpeg ebur128 on the whole file (comparison)", ebur, ebur / hours),
    ]  # fmt: skip
    for name, seconds, hourly in rows:
        shown = "" if seconds is None else f"{seconds:.3f}"
        print(f"| {name} | {shown} | {hourly:.3f} |")
    print(f"\nKept measurements: {stored / 1e6:.1f} MB per hour of audio. "
          f"Plan: {chosen.steps:+d} steps -> {chosen.loudness:.1f} LUFS, "
          f"true peak {chosen.true_peak:.1f} dBTP.")  # fmt: skip
