"""CPU of measuring the level of the 1× throughput run's audio, part by part.

    python -m benchmarks level_cpu [SEGMENTS] [MINUTES]

The audio is the edge stand-in's steady tone (what the throughput benchmark's default run
measures): MINUTES (default 15.92, the 1× article) in SEGMENTS (default 29) equal pieces, decoded
in this process as ``measure_apart`` decodes them. Rows, in CPU seconds (best of three):

- decode: every segment by its own decoder (PyAV's FFmpeg ``mp3float``);
- K-weighted energy: ``measure_samples`` less its true peak;
- true peak: ``true_peak`` of every segment;
- measured as streamed: every segment's frames decoded and measured in the pieces a reading
  measures them in as they arrive (``FramesLoudness``, ``STEP_FRAMES`` frames at a time): the
  decode, energy and true peak together, to set beside the three rows above;
- true peak, everything oversampled: ``upfirdn`` of every sample, what the true peak equals.

The true peak of every segment is checked against the brute force (1e-9 relative).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def cpu(work: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.process_time()
        result = work()
        best = min(best, time.process_time() - started)
    return best, result


def main(argv: list[str]) -> None:
    import numpy as np
    from scipy.signal import upfirdn
    from tests.standin.server import tone_mp3

    from newsreader.audio import loudness
    from newsreader.audio.ahead import STEP_FRAMES
    from newsreader.audio.decode import FrameDecoder
    from newsreader.audio.loudness import FRAME_SAMPLES, FramesLoudness
    from newsreader.models import FRAME_BYTES

    segments = int(argv[0]) if argv else 29
    minutes = float(argv[1]) if len(argv) > 1 else 15.92
    frames = round(minutes * 60 * loudness.FRAME_RATE / FRAME_SAMPLES) // segments
    mp3 = tone_mp3(frames * segments)
    size = frames * FRAME_BYTES
    pieces = [mp3[i * size : (i + 1) * size] for i in range(segments)]

    def decode() -> list[Any]:
        out: list[Any] = []
        for piece in pieces:
            decoder = FrameDecoder()
            out.append(np.concatenate([decoder.decode(piece), decoder.flush()]))
        return out

    def streamed() -> list[loudness.Measurement]:
        out = []
        step = STEP_FRAMES * FRAME_BYTES
        for piece in pieces:
            measuring = FramesLoudness()
            for at in range(0, len(piece), step):
                measuring.add(piece[at : at + step])
            out.append(measuring.finish())
        return out

    decode_cpu, samples = cpu(decode)
    rate = loudness.FRAME_RATE
    measured, _ = cpu(lambda: [loudness.measure_samples(s, rate) for s in samples])
    peak_cpu, peaks = cpu(lambda: [loudness.true_peak(s, rate) for s in samples])
    streamed_cpu, measurements = cpu(streamed)
    if [m.peak for m in measurements] != peaks:
        raise SystemExit("the streamed true peaks differ from the whole segments'")
    up = loudness.oversampling(rate)
    taps, _ = loudness.interpolator(up)
    delay = (len(taps) - 1) // 2

    def brute() -> list[float]:
        out = []
        for s in samples:
            wide = np.asarray(s, dtype=np.float64)
            values = upfirdn(taps, wide, up)[delay : delay + len(wide) * up]
            out.append(max(float(np.abs(wide).max()), float(np.abs(values).max())))
        return out

    brute_cpu, expected = cpu(brute, repeat=1)
    worst = max(abs(a - b) / b for a, b in zip(peaks, expected, strict=True))
    seconds = frames * segments * FRAME_SAMPLES / rate
    print(f"{segments} segments, {seconds / 60:.2f} min of the stand-in's tone\n")
    print("| part | CPU |")
    print("| --- | ---: |")
    print(f"| decode (in process) | {decode_cpu:.2f} s |")
    print(f"| K-weighted energy | {measured - peak_cpu:.2f} s |")
    print(f"| true peak | {peak_cpu:.2f} s |")
    print(f"| measured as streamed (all three) | {streamed_cpu:.2f} s |")
    print(f"| true peak, everything oversampled | {brute_cpu:.2f} s |")
    print(f"\ntrue peak against everything oversampled: at most {worst:.1e} relative")
    if worst > 1e-9:
        raise SystemExit("the true peak differs from oversampling everything")
