"""Throughput benchmark: adaptive concurrency against fixed levels and the edge-tts CLI.

    python -m benchmarks throughput            # or: python3 tasks.py bench throughput
    python -m benchmarks throughput --quick    # a short article, to check that it works
    python -m benchmarks throughput --sizes 1 --levels 16 --edge-tts-sizes '' --repeat 3
                                               # the 1× part, each run three times (median)

Everything talks to the local edge stand-in (``tests/standin``), which answers with a latency
model — a handshake of ``--handshake`` s, the first audio ``--first-audio`` s after the request,
audio at ``--realtime`` × real time, 5 characters of speech a second — and refuses connections
beyond ``--cap`` at once with HTTP 429 and ``Retry-After``, as the real service blocks clients
that open many. Each contender runs as its own process (``benchmarks/synthesis.py``), on a
1× article (``--paragraphs``) and on one 4× as long:

- the edge-tts CLI (``--file … --write-media …``: one request after another);
- ``newsreader read`` with its defaults (adaptive concurrency, the loudness step to -16 LUFS),
  the same streamed to standard output (``-o -``: no loudness step, so the synthesis alone;
  ``--no-streamed`` leaves it out), and pinned at 4, 8 and 16.

The edge-tts CLI runs on the 1× article only, unless ``--edge-tts-sizes 1,4``: it makes one
request after another, so its time on the 4× article is the 1× time scaled by audio length
(measured once both ways: 256.7 s run, against 64.7 s × 3.99 = 258 s scaled).

For each newsreader run: the wall time, its ratio to the edge-tts CLI, the most connections
the stand-in saw at once (refused ones included), the level adaptive concurrency settled at
(from ``read``'s summary line), and the *zero-overhead bound* at that level: when the last
answer would end if every request took exactly what the latency model says, in newsreader's
own work order (as the stand-in received it), on that many connections from the start, with
nothing else taking any time.
The default run has to climb to that level, so for it the table also gives the bound *with the
climb*: the same schedule on connections that open as adaptive concurrency opens them at best
(4 and the first probe at once, then one more per handshake, as each probe is taken); the
difference between the two bounds is the cost of the climb. Every episode is checked segment
by segment against the stand-in's answers (``without_gain`` first takes off the one gain the
loudness step put on every frame). *Start-up* is how long the process took to send its first
request. Targets: the default run within 0.15 × the edge-tts CLI's time and within 1.15 × its
zero-overhead bound at the level it settled at.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

_HERE = Path(__file__).resolve().parents[1]
if str(_HERE) not in sys.path:  # ``tests.standin`` lives in the repository, not in the package
    sys.path.insert(0, str(_HERE))

from benchmarks.synthesis import (  # noqa: E402
    OURS,
    ROOT,
    VOICE,
    Timed,
    _env,
    audio_seconds,
    edge_tts_cli,
    machine,
    make_article,
    newsreader_read,
    zero_overhead_schedule,
)

if TYPE_CHECKING:
    from tests.standin.server import EdgeStandin

    from newsreader.models import Segment

SETTLED = re.compile(r"concurrency settled at (\d+) \(at most (\d+)\)")


@dataclass(frozen=True)
class Run:
    article: str
    label: str
    seconds: float
    requests: int
    refused: int
    asked_at_once: int
    level: int | None
    """Adaptive: the level it settled at; pinned: the level."""
    bound: float | None
    climb_bound: float | None
    """The default run: the bound with the climb to its level."""
    problems: list[str]
    startup: float
    """Seconds from the process's start to its first request's handshake being sent."""
    times: tuple[float, ...] = ()
    """Every run's wall time, when it was run more than once (``seconds`` is their median)."""


def climb_bound(
    segments: Sequence[Segment],
    edge: EdgeStandin,
    level: int,
    latency: dict[str, float],
    order: Sequence[int],
    start: int,
) -> float:
    """``zero_overhead_schedule`` on connections that open as adaptive concurrency opens them
    at best: ``start`` and one probe at t=0, then one more per handshake, up to ``level``."""
    handshake = latency["handshake_latency"]
    slots = [0.0] * min(level, start + 1) + [k * handshake for k in range(1, level - start)]
    heapq.heapify(slots)
    for position in order:
        took = latency["handshake_latency"] + latency["first_audio_latency"]
        took += edge.plan(segments[position].text).duration / latency["realtime_multiple"]
        heapq.heapreplace(slots, slots[0] + took)
    return max(slots)


def asked_order(edge: EdgeStandin, segments: Sequence[Segment]) -> list[int]:
    """The run's own work order, as the stand-in received it: positions in ``segments`` of each
    text's first request (the order depends on the run's level, so it is read, not recomputed)."""
    position: dict[str, int] = {}
    for index, segment in enumerate(segments):
        position.setdefault(segment.text, index)
    order = list(dict.fromkeys(position[r.text] for r in edge.requests if r.text in position))
    if len(order) != len(position):
        raise RuntimeError(f"the stand-in saw {len(order)} of {len(position)} distinct texts")
    return order


_FIELDS_AT = 4
"""The side information starts after the 4-byte frame header (edge's frames carry no CRC)."""
_PART2_3_LENGTH = (9, 12)
_GLOBAL_GAIN = (30, 8)
"""(first bit in the side information, bits) of MPEG-2 mono's one granule (ISO 13818-3)."""


def _field(frame: bytes, at: int, bits: int) -> int:
    word = int.from_bytes(frame[_FIELDS_AT : _FIELDS_AT + 6], "big")
    return word >> (48 - at - bits) & ((1 << bits) - 1)


def without_gain(mp3_file: bytes) -> tuple[bytes, int]:
    """The reading as the stand-in sent it, and the gain ``read``'s loudness step had added.

    That step adds one number of steps to the global_gain of every coded granule of the
    reading's own frames and changes no other bit (silent frames carry no coded granule); here
    it is taken off again, read from the first coded frame against the stand-in's own first tone
    frame, so ``episode_problems`` can compare every frame byte for byte. Written from the
    format, not with newsreader's code. A reading whose gain was not one number everywhere, or
    that hit the field's limits, comes out different from the stand-in's frames: a problem.
    """
    from tests.standin.server import FRAME_BYTES, tone_mp3
    from tests.standin.verify import strip_id3v2

    head = len(mp3_file) - len(strip_id3v2(mp3_file))
    if mp3_file[head + 13 : head + 17] == b"Info":
        head += FRAME_BYTES
    frames = [mp3_file[i : i + FRAME_BYTES] for i in range(head, len(mp3_file), FRAME_BYTES)]
    coded = [f for f in frames if len(f) == FRAME_BYTES and _field(f, *_PART2_3_LENGTH)]
    if not coded:
        return mp3_file, 0
    steps = _field(coded[0], *_GLOBAL_GAIN) - _field(tone_mp3(1), *_GLOBAL_GAIN)
    if steps == 0:
        return mp3_file, 0
    out = bytearray(mp3_file)
    at, bits = _GLOBAL_GAIN
    shift = 48 - at - bits
    for number, frame in enumerate(frames):
        if len(frame) < FRAME_BYTES or not _field(frame, *_PART2_3_LENGTH):
            continue
        start = head + number * FRAME_BYTES + _FIELDS_AT
        word = int.from_bytes(out[start : start + 6], "big")
        gain = (word >> shift & 0xFF) - steps
        word = word & ~(0xFF << shift) | (gain & 0xFF) << shift
        out[start : start + 6] = word.to_bytes(6, "big")
    return bytes(out), steps


def read_to_stdout(address: str, article: Path, out: Path, *options: str) -> Timed:
    """``newsreader read ARTICLE -o -`` (in ``options``) with its standard output in ``out``."""
    command = [sys.executable, "-c", OURS, address, "read", str(article), "--no-cache"]
    started = time.perf_counter()
    with out.open("wb") as sink:
        done = subprocess.run(
            [*command, "--engine", "edge", *options],
            cwd=ROOT,
            env=_env(),
            stdout=sink,
            stderr=subprocess.PIPE,
            check=False,
        )
    seconds = time.perf_counter() - started
    stderr = done.stderr.decode(errors="replace")
    if done.returncode:
        raise RuntimeError(f"read -o - failed:\n{stderr[-2000:]}")
    return Timed(seconds, stderr, done.returncode)


def one_run(
    edge: EdgeStandin,
    address: str,
    article: Path,
    work: Path,
    name: str,
    label: str,
    extra: Sequence[str],
    pinned: int | None,
    segments: Sequence[Segment],
    latency: dict[str, float],
) -> Run:
    """One ``newsreader read`` of ``article``, measured and checked (``-o -`` in ``extra``:
    streamed to standard output, which goes to a file)."""
    from tests.standin.verify import episode_problems

    from newsreader.synth.scheduler import START_CONCURRENCY

    streamed = "-" in extra
    out = work / f"ours-{name}-{pinned or 'default'}{'-streamed' if streamed else ''}.mp3"
    edge.reset()
    started = time.monotonic()
    if streamed:
        timed = read_to_stdout(address, article, out, *extra)
    else:
        timed = newsreader_read(address, article, out, None, "--engine", "edge", *extra)
    edge.wait_idle(5.0)
    log = edge.handshake_log
    startup = log[0].at - latency["handshake_latency"] - started if log else float("nan")
    settled = SETTLED.search(timed.stderr)
    level = pinned if pinned is not None else int(settled[1]) if settled else None
    order = asked_order(edge, segments)
    bound = zero_overhead_schedule(segments, edge, level, latency, order) if level else None
    climb = (
        climb_bound(segments, edge, level, latency, order, START_CONCURRENCY)
        if level and pinned is None
        else None
    )
    reading, _ = without_gain(out.read_bytes())
    return Run(
        name,
        label,
        timed.seconds,
        edge.handshakes,
        edge.refused_by_status.get(429, 0),
        edge.max_asked_connections,
        level,
        bound,
        climb,
        episode_problems(reading, segments, edge.plan),
        startup,
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks throughput")
    parser.add_argument("--paragraphs", type=int, default=27)
    parser.add_argument("--characters", type=int, default=5000)
    parser.add_argument("--handshake", type=float, default=0.1, help="seconds")
    parser.add_argument("--first-audio", type=float, default=0.4, help="seconds")
    parser.add_argument("--realtime", type=float, default=15.0, help="× real time")
    parser.add_argument("--cap", type=int, default=16, help="connections the stand-in takes")
    parser.add_argument("--retry-after", type=float, default=1.0, help="seconds, with each 429")
    parser.add_argument("--levels", default="4,8,16", help="pinned --concurrency levels")
    parser.add_argument("--sizes", default="1,4", help="article sizes, in multiples of the 1×")
    parser.add_argument(
        "--edge-tts-sizes",
        default="1",
        help="sizes to run the edge-tts CLI on (default: 1, which keeps the benchmark under 10 "
        "minutes; 1,4 runs it on both, 4 more minutes); for the others its time is scaled from "
        "the largest one run by audio length: it makes one request after another",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each newsreader contender this many times; the table gives the median run "
        "(the machine is shared: noise)",
    )
    parser.add_argument(
        "--no-streamed",
        dest="streamed",
        action="store_false",
        help="leave out the default run streamed to standard output (-o -: no loudness step)",
    )
    parser.add_argument("--quick", action="store_true", help="8 paragraphs, 1× only")
    args = parser.parse_args(argv)
    if args.quick:
        args.paragraphs, args.characters, args.sizes = 8, 1500, "1"
    sizes = [int(s) for s in args.sizes.split(",")]
    edge_sizes = [int(s) for s in args.edge_tts_sizes.split(",") if s.strip()]
    levels = [int(c) for c in args.levels.split(",") if c.strip()]
    latency = {
        "handshake_latency": args.handshake,
        "first_audio_latency": args.first_audio,
        "realtime_multiple": args.realtime,
    }

    from tests.standin.server import EdgeStandin, StandinOptions

    from newsreader import pipeline
    from newsreader.config import Settings
    from newsreader.synth.scheduler import START_CONCURRENCY

    options = StandinOptions(
        max_connections=args.cap, retry_after=args.retry_after, **latency
    )  # fmt: skip
    runs: list[Run] = []
    edge_tts: dict[str, tuple[float, float, bool]] = {}  # article → (seconds, audio, measured)
    notes: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="newsreader-bench-") as temp,
        EdgeStandin(options) as edge,
    ):
        work = Path(temp)
        address = f"127.0.0.1:{edge.port}"
        for size in sizes:
            name = f"{size}×"
            article = work / f"article-{size}.txt"
            article.write_text(
                make_article(args.paragraphs * size, args.characters * size), encoding="utf-8"
            )
            settings = Settings(engine="edge", voice=VOICE)
            script = pipeline.make_script(pipeline.load_article(str(article), settings), settings)
            segments = script.segments
            notes.append(
                f"{name} article: {args.paragraphs * size} paragraphs, "
                f"{sum(len(b.text) for b in script.article.blocks):,} characters, "
                f"{len(segments)} segments"
            )

            if size in edge_sizes:
                _say(f"{name}: edge-tts CLI …")
                out = work / f"edge-tts-{size}.mp3"
                edge.reset()
                theirs = edge_tts_cli(address, article, out)
                edge_tts[name] = (theirs.seconds, audio_seconds(out), True)

            contenders: list[tuple[str, list[str], int | None]] = [("default", [], None)]
            if args.streamed:
                contenders.append(("default, `-o -`", ["-o", "-"], None))
            contenders += [(f"--concurrency {n}", ["--concurrency", str(n)], n) for n in levels]
            for label, extra, pinned in contenders:
                tries: list[Run] = []
                for attempt in range(max(1, args.repeat)):
                    _say(f"{name}: newsreader read {label} ({attempt + 1}) …")
                    tries.append(
                        one_run(
                            edge, address, article, work, name, label, extra, pinned,
                            segments, latency,
                        )
                    )  # fmt: skip
                ranked = sorted(tries, key=lambda r: r.seconds)
                median = ranked[(len(ranked) - 1) // 2]
                times = tuple(r.seconds for r in tries) if len(tries) > 1 else ()
                runs.append(dataclasses.replace(median, times=times))
            if name not in edge_tts:
                ours = work / f"ours-{name}-default.mp3"
                edge_tts[name] = (0.0, audio_seconds(ours), False)

    # The edge-tts CLI's time where it was not run: scaled by audio length from the largest run.
    measured = [(s, a) for s, a, m in edge_tts.values() if m]
    if measured:
        per_second = max(measured, key=lambda m: m[1])
        for name, (_, audio, was_run) in list(edge_tts.items()):
            if not was_run:
                edge_tts[name] = (per_second[0] / per_second[1] * audio, audio, False)

    print()
    print(f"Machine: {machine()}")
    print(
        f"Stand-in: handshake {args.handshake:g} s, first audio {args.first_audio:g} s after the "
        f"request, audio at {args.realtime:g}× real time, 5 characters of speech a second; "
        f"HTTP 429 (Retry-After {args.retry_after:g} s) beyond {args.cap} connections at once."
    )
    print()
    print(
        "| article | run | wall time | ÷ edge-tts CLI | requests (429s) | most connections "
        "asked at once | level | zero-overhead bound at that level | ÷ bound "
        "| bound with the climb | ÷ that | start-up | episode |"
    )
    print(
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    )
    verdicts: list[str] = []
    for name in dict.fromkeys(run.article for run in runs):
        seconds, _, was_run = edge_tts[name]
        estimated = "" if was_run else " (scaled, not run)"
        if seconds:
            print(
                f"| {name} | edge-tts CLI | {seconds:.1f} s{estimated} | 1.00 | | 1 "
                "| | | | | | | |"
            )  # fmt: skip
        for run in (r for r in runs if r.article == name):
            ratio = run.seconds / seconds if seconds else float("nan")
            over = run.seconds / run.bound if run.bound else None
            episode = "complete" if not run.problems else f"**{len(run.problems)} problems**"
            shown = "" if run.level is None else str(run.level)
            if run.label.startswith("default"):
                shown = f"settled at {shown}" if shown else "not reported"
            cells = [
                name,
                f"`read` {run.label}",
                f"{run.seconds:.1f} s",
                f"{ratio:.2f}" if seconds else "not run",
                f"{run.requests} ({run.refused})",
                str(run.asked_at_once),
                shown,
                _seconds(run.bound),
                _times(over),
                _seconds(run.climb_bound),
                _times(run.seconds / run.climb_bound if run.climb_bound else None),
                f"{run.startup:.2f} s",
                episode,
            ]
            print("| " + " | ".join(cells) + " |")
            if run.times:
                notes.append(
                    f"{name} `read` {run.label}: {len(run.times)} runs, "
                    + ", ".join(f"{t:.2f}" for t in run.times)
                    + " s (the table gives the median)"
                )
            if run.label == "default":
                fast = ratio <= 0.15
                close = over is not None and over <= 1.15
                climb_note = (
                    f"; the climb from {START_CONCURRENCY} costs "
                    f"{run.climb_bound - run.bound:.1f} s of the bound, and the run is "
                    f"{run.seconds / run.climb_bound:.2f} × the bound with the climb"
                    if run.climb_bound is not None and run.bound is not None
                    else ""
                )
                compared = (
                    f"{ratio:.2f} × the edge-tts CLI (target ≤ 0.15: "
                    f"{'met' if fast else 'missed'}); "
                    if seconds
                    else ""
                )
                verdicts.append(
                    f"{name}, default: {compared}"
                    + (
                        f"{over:.2f} × its zero-overhead bound at the level it settled at "
                        f"(target ≤ 1.15: {'met' if close else 'missed'}){climb_note}"
                        if over is not None
                        else "no level reported"
                    )
                )
    print()
    if args.streamed:
        notes.append(
            "`-o -`: the default run streamed to standard output, where audio already sent "
            "cannot be reworked, so no loudness step: the synthesis alone"
        )
    notes.append(
        "start-up: from the process's start to its first request leaving (the stand-in's first "
        "handshake less its latency)"
    )
    for line in notes + verdicts:
        print(f"- {line}")
    for run in runs:
        for problem in run.problems[:3]:
            print(f"- {run.article} {run.label}: {problem}")


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} s"


def _times(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}×"


def _say(message: str) -> None:
    print(f"… {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
