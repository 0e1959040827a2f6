"""Memory benchmark: peak RSS of ``newsreader read --engine espeak`` as the article grows.

    python -m benchmarks memory            # or: python3 tasks.py bench memory (1×, 4×, 16×, 64×)
    python -m benchmarks memory --sizes 1 4 --startup-runs 3    # a quick look

The article is 27 paragraphs of filler Chinese, each short enough to be one segment. The N×
article repeats them N times, each copy's paragraphs numbered (第3部分第12段), so no two segments
are alike: identical segments would be synthesized once and cost nothing.

Each run is one ``newsreader read`` process with a cache folder of its own (every segment is
synthesized). Its peak RSS is the process's own high-water mark (``VmHWM`` in
``/proc/self/status``), read by the process itself as it exits. The table also gives the wall
time, the audio's length and the MP3's size, and the start-up measures: ``newsreader --help``
and a ``read`` of the 1× article with every segment in the cache (median of several runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.synthesis import ROOT, machine, make_article

PARAGRAPHS = 27
CHARACTERS = 27 * 150
"""About 150 characters a paragraph: one segment each (a segment holds at most 250)."""
NEWSREADER = ROOT / ".venv" / "bin" / "newsreader"

# Run the CLI as installed, and have the process write its own peak RSS as it exits.
_MEASURED = """
import atexit, sys
_OUT = sys.argv.pop(1)
def _peak():
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                with open(_OUT, 'w') as out:
                    out.write(line.split()[1])
atexit.register(_peak)
sys.argv[0] = 'newsreader'
from newsreader.cli import main
main()
"""


def article(copies: int) -> str:
    """The 27-paragraph article, its paragraphs repeated ``copies`` times, each one numbered."""
    lines = make_article(PARAGRAPHS, CHARACTERS).strip().split("\n\n")
    headline, body = lines[0], lines[1:]
    paragraphs = [
        f"第{copy}部分第{number}段。{text}"
        for copy in range(1, copies + 1)
        for number, text in enumerate(body, 1)
    ]
    return "\n\n".join([headline, *paragraphs]) + "\n"


@dataclass(frozen=True)
class Run:
    copies: int
    segments: int
    peak_mb: float
    seconds: float
    audio_seconds: float
    mp3_mb: float


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def measured_read(
    source: Path, out: Path, cache: Path, extra: list[str] | None = None
) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one ``read --engine espeak`` process."""
    peak_file = out.with_suffix(".peak")
    python = ROOT / ".venv" / "bin" / "python"
    args = [python, "-c", _MEASURED, peak_file, "read", source, "-o", out]
    args += ["--engine", "espeak", "--cache-dir", cache, "-q", *(extra or [])]
    started = time.perf_counter()
    done = subprocess.run(
        [str(a) for a in args], env=_env(), capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"read failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(peak_file.read_text()) / 1024, seconds


def segment_count(source: Path) -> int:
    from newsreader.config import Settings
    from newsreader.pipeline import load_article, make_script

    settings = Settings(engine="espeak")
    script = make_script(load_article(str(source), settings), settings)
    texts = [segment.text for segment in script.segments]
    if len(set(texts)) != len(texts):
        raise RuntimeError("the article has identical segments; the benchmark needs none")
    return len(texts)


def audio_seconds(mp3: Path) -> float:
    from newsreader.audio.mp3 import read_info_frame
    from newsreader.models import FRAME_SECONDS

    with mp3.open("rb") as file:
        head = file.read(10)
        tag = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
        file.seek(tag)
        info = read_info_frame(file.read(144))
    if info is None:
        raise RuntimeError(f"{mp3} has no Info frame")
    return info[0] * FRAME_SECONDS


def wall(args: list[str | Path], runs: int) -> float:
    """Median wall time of ``runs`` runs of a command."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([str(a) for a in args], env=_env(), capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks memory")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--startup-runs", type=int, default=7)
    parser.add_argument(
        "--read-args", default="", help="more options for every read, e.g. '--concurrency 2'"
    )
    args = parser.parse_args(argv)

    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="newsreader-memory-") as temp:
        folder = Path(temp)
        for copies in args.sizes:
            source = folder / f"article-{copies}x.txt"
            source.write_text(article(copies), encoding="utf-8")
            out = folder / f"out-{copies}x.mp3"
            cache = folder / f"cache-{copies}x"
            print(f"… {copies}×", file=sys.stderr, flush=True)
            peak, seconds = measured_read(source, out, cache, args.read_args.split())
            runs.append(
                Run(
                    copies,
                    segment_count(source),
                    peak,
                    seconds,
                    audio_seconds(out),
                    out.stat().st_size / 1e6,
                )
            )
            print(f"  {json.dumps(runs[-1].__dict__)}", file=sys.stderr, flush=True)
            out.unlink()
            if copies != min(args.sizes):
                for path in sorted(cache.rglob("*"), reverse=True):
                    path.rmdir() if path.is_dir() else path.unlink()

        smallest = min(args.sizes)
        help_seconds = wall([NEWSREADER, "--help"], args.startup_runs)
        cached: list[str | Path] = [NEWSREADER, "read", folder / f"article-{smallest}x.txt"]
        cached += ["-o", folder / "cached.mp3", "--engine", "espeak", "--cache-dir"]
        cached += [folder / f"cache-{smallest}x", "-q"]
        cached_seconds = wall(cached, args.startup_runs)

    base = runs[0].peak_mb
    print(f"Machine: {machine()}")
    print(f"read options: --engine espeak {args.read_args}".rstrip() + "\n")
    print("| article | segments | audio | MP3 | wall time | peak RSS | ÷ 1× |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for run in runs:
        hours = run.audio_seconds / 3600
        print(
            f"| {run.copies}× | {run.segments:,} | {hours:.2f} h | {run.mp3_mb:.0f} MB | "
            f"{run.seconds:.1f} s | {run.peak_mb:.0f} MB | {run.peak_mb / base:.2f} |"
        )
    print()
    print(f"| start-up (median of {args.startup_runs}) | wall time | target |")
    print("| --- | ---: | ---: |")
    print(f"| `newsreader --help` | {help_seconds:.2f} s | < 0.5 s |")
    print(f"| `read` of the {smallest}× article, all cached | {cached_seconds:.2f} s | < 0.5 s |")


if __name__ == "__main__":
    main(sys.argv[1:])
