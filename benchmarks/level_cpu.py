"""CPU of measuring the level of the 1× throughput run's audio, part by part.

    python -m benchmarks level_cpu [SEGMENTS] [MINUTES]

The audio is the edge stand-in's steady tone (what the throughput benchmark's default run
measures): MINUTES (default 15.92, the 1× article) in SEGMENTS (default 29) equal pieces, decoded
by ffmpeg as ``measure_apart`` decodes them. Rows, in CPU seconds (best of three):

- decode: the ffmpeg runs (child CPU), one per two segments;
- K-weighted energy: ``measure_samples`` less its true peak;
- true peak: ``true_peak`` of every segment;
- true peak, everything oversampled: ``upfirdn`` of every sample, what the true peak equals.

The true peak of every segment is checked against the brute force (1e-9 relative).
"""

from __future__ import annotations

import resource
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


def children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> None:
    import numpy as np
    from scipy.signal import upfirdn
    from tests.standin.server import tone_mp3

    from newsreader.audio import loudness
    from newsreader.audio.loudness import FRAME_SAMPLES
    from newsreader.audio.mp3 import silence
    from newsreader.models import FRAME_BYTES

    segments = int(argv[0]) if argv else 29
    minutes = float(argv[1]) if len(argv) > 1 else 15.92
    frames = round(minutes * 60 * loudness.FRAME_RATE / FRAME_SAMPLES) // segments
    mp3 = tone_mp3(frames * segments)
    size = frames * FRAME_BYTES
    pieces = [mp3[i * size : (i + 1) * size] for i in range(segments)]

    def decode() -> list[Any]:
        out: list[Any] = []
        for first in range(0, segments, 2):
            batch = pieces[first : first + 2]
            counts: list[int] = []
            for _ in batch:
                counts += [frames * FRAME_SAMPLES, loudness.ISOLATION_FRAMES * FRAME_SAMPLES]
            stream = loudness.decoded(silence(loudness.ISOLATION_FRAMES).join(batch), counts[:-1])
            out += list(stream)[::2]
        return out

    decodes = []
    for _ in range(3):
        before = children()
        samples = decode()
        decodes.append(children() - before)
    rate = loudness.FRAME_RATE
    measured, _ = cpu(lambda: [loudness.measure_samples(s, rate) for s in samples])
    peak_cpu, peaks = cpu(lambda: [loudness.true_peak(s, rate) for s in samples])
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
    print(f"| decode (ffmpeg) | {min(decodes):.2f} s |")
    print(f"| K-weighted energy | {measured - peak_cpu:.2f} s |")
    print(f"| true peak | {peak_cpu:.2f} s |")
    print(f"| true peak, everything oversampled | {brute_cpu:.2f} s |")
    print(f"\ntrue peak against everything oversampled: at most {worst:.1e} relative")
    if worst > 1e-9:
        raise SystemExit("the true peak differs from oversampling everything")
