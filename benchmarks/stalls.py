"""Stall benchmark: what stalled requests cost a ``read``, against the same run without faults.

    python -m benchmarks stalls            # or: python3 tasks.py bench stalls
    python -m benchmarks stalls --quick    # one seed, a shorter article: checks that it works

The edge stand-in (``tests/standin``) answers with a latency model (first audio ``--first-audio``
s after the request, audio at ``--realtime`` × real time, 5 characters of speech a second) and,
in the faulty runs, stalls ``--rate`` of the requests: it accepts the connection, reads the
request and then sends nothing until the client hangs up. Which request stalls is drawn from
its text and attempt (``keyed_faults``), so a seed is the same run every time.

``newsreader read`` runs as its own process with its defaults (``--concurrency 4``,
``--timeout 30``), ``--engine edge`` and no cache. Each output is checked segment by segment
against the stand-in's answers (``tests/standin/verify.py``), and the stand-in counts the
connections open at once. The target: each faulty run within 1.5 × the fault-free time + 3 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``tests.standin`` lives in the repository, not in the package
    sys.path.insert(0, str(ROOT))

from benchmarks.synthesis import VOICE, machine, make_article, newsreader_read  # noqa: E402


@dataclass(frozen=True)
class Run:
    label: str
    seconds: float
    requests: int
    stalls: int
    peak_connections: int
    problems: list[str]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks stalls")
    parser.add_argument("--paragraphs", type=int, default=27)
    parser.add_argument("--characters", type=int, default=5000)
    parser.add_argument("--first-audio", type=float, default=0.2, help="seconds")
    parser.add_argument("--realtime", type=float, default=20.0, help="× real time")
    parser.add_argument("--rate", type=float, default=0.3, help="share of requests that stall")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated fault seeds")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="8 paragraphs, one seed")
    args = parser.parse_args(argv)
    if args.quick:
        args.paragraphs, args.characters, args.seeds = 8, 1500, "1"
    seeds = [int(s) for s in args.seeds.split(",")]

    from tests.standin.server import EdgeStandin, StandinOptions, keyed_faults
    from tests.standin.verify import episode_problems

    from newsreader import pipeline
    from newsreader.config import Settings

    options = StandinOptions(first_audio_latency=args.first_audio, realtime_multiple=args.realtime)
    runs: list[Run] = []
    with (
        tempfile.TemporaryDirectory(prefix="newsreader-bench-") as temp,
        EdgeStandin(options) as edge,
    ):
        work = Path(temp)
        address = f"127.0.0.1:{edge.port}"
        article = work / "article.txt"
        article.write_text(make_article(args.paragraphs, args.characters), encoding="utf-8")
        settings = Settings(engine="edge", voice=VOICE)
        script = pipeline.make_script(pipeline.load_article(str(article), settings), settings)
        _say(
            f"article: {args.paragraphs} paragraphs, {len(script.segments)} segments; "
            f"stand-in: first audio {args.first_audio:g} s, {args.realtime:g}× real time"
        )
        plans: list[tuple[str, int | None]] = [("no faults", None)]
        plans += [(f"{args.rate:.0%} stalls, seed {seed}", seed) for seed in seeds]
        for label, seed in plans:
            _say(f"newsreader read: {label} …")
            edge.reset()
            if seed is not None:
                edge.set_faults(chooser=keyed_faults({"stall": args.rate}, seed=seed))
            out = work / f"run-{seed}.mp3"
            timed = newsreader_read(
                address, article, out, None, "--engine", "edge", "-q",
                "--concurrency", str(args.concurrency),
            )  # fmt: skip
            edge.wait_idle(5.0)
            runs.append(
                Run(
                    label,
                    timed.seconds,
                    edge.handshakes,
                    sum(1 for _, fault in edge.faults_applied if fault == "stall"),
                    edge.max_open_connections,
                    episode_problems(out.read_bytes(), script.segments, edge.plan),
                )
            )

    clean = runs[0].seconds
    target = 1.5 * clean + 3
    print()
    print(f"Machine: {machine()}")
    print(
        f"Article: {args.paragraphs} paragraphs, {len(script.segments)} segments. Stand-in: first "
        f"audio {args.first_audio:g} s after the request, audio at {args.realtime:g}× real time. "
        f"`read --concurrency {args.concurrency}`, default `--timeout`. "
        f"Target for a faulty run: ≤ 1.5 × {clean:.1f} s + 3 s = {target:.1f} s."
    )
    print()
    print(
        "| run | wall time | ÷ fault-free | requests (stalled) | most connections at once "
        "| episode | verdict |"
    )
    print("| --- | ---: | ---: | ---: | ---: | --- | --- |")
    for run in runs:
        complete = "complete" if not run.problems else f"**{len(run.problems)} problems**"
        capped = run.peak_connections <= args.concurrency
        if run is runs[0]:
            verdict = "—"
        else:
            verdict = "met" if run.seconds <= target and capped and not run.problems else "missed"
        print(
            f"| {run.label} | {run.seconds:.1f} s | {run.seconds / clean:.2f}× "
            f"| {run.requests} ({run.stalls}) | {run.peak_connections} of {args.concurrency} "
            f"| {complete} | {verdict} |"
        )
    faulty = [run.seconds for run in runs[1:]]
    if faulty:
        print()
        print(
            f"- median of the faulty runs: {statistics.median(faulty):.1f} s "
            f"({statistics.median(faulty) / clean:.2f}× the fault-free run)"
        )
    for run in runs:
        for problem in run.problems[:3]:
            print(f"- {run.label}: {problem}")


def _say(message: str) -> None:
    print(f"… {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
