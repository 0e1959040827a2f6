"""Synthesis benchmark: ``newsreader read`` against the edge-tts CLI, on the same edge stand-in.

    python -m benchmarks synthesis           # or: python3 tasks.py bench synthesis
    python -m benchmarks synthesis --quick   # a small run, to check that the benchmark works

No internet is used: both contenders talk to the local edge stand-in (``tests/standin``), which
answers with a latency model — a handshake of ``--handshake`` s, the first audio ``--first-audio``
s after the request, audio delivered at ``--realtime`` × real time — and speaks 5 characters a
second. Each contender runs as its own process, pointed at the stand-in first thing, so start-up
time counts as it does for a user. The article (20 paragraphs, about 5,000 characters) is filler
text made here. What is measured (a table, not a pass/fail test):

1. ``newsreader read`` against ``edge-tts --file … --write-media …`` (one request after another):
   wall-time ratio, at the default ``--concurrency`` and at a higher one.
2. ``newsreader read`` against the parallel limit: the slowest single segment (its request timed
   alone) plus assembling and writing the episode.
3. Assembling one hour of audio from 240 segments: newsreader's frame-level join against a pydub
   join (decode every segment, join the samples, encode again): wall time and peak RSS, each in
   its own process (``benchmarks/synthesis_assembly.py``).
4. A second ``newsreader read`` of the article: requests to the service, and wall time.
5. The embedded voice: real-time factor of ``read --engine espeak`` on the article.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.standin.server import EdgeStandin

    from newsreader.models import Segment

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``tests.standin`` lives in the repository, not in the package
    sys.path.insert(0, str(ROOT))

VOICE = "zh-CN-YunyangNeural"
FRAME_SECONDS = 0.024

# A contender's process: point edge_tts at the stand-in (argv[1]) once something imports it, then
# run the CLI as installed. (Importing it up front would charge a run that never needs the client,
# such as newsreader's from the cache, for its 0.4 s of imports.)
_POINT = (
    "import sys; from tests.standin.client import point_edge_tts_at_on_import; "
    "point_edge_tts_at_on_import(sys.argv.pop(1)); "
)
OURS = _POINT + "sys.argv[0] = 'newsreader'; from newsreader.cli import main; main()"
EDGE_TTS = _POINT + "sys.argv[0] = 'edge-tts'; from edge_tts.util import main; main()"

_VOCABULARY = (
    "城市 社区 居民 书房 图书馆 阅读 服务 志愿者 活动 孩子 老人 周末 文化 公园 街道 讲座 展览 "
    "政府 部门 工作 发展 建设 项目 企业 群众 生活 环境 交通 教育 医疗 科技 创新 合作 交流 经验 "
    "问题 措施 制度 机制 质量 水平 能力 需求 资源 设施 空间 时间 方式 特色 品牌 平台 渠道 效果"
)
_WORDS = _VOCABULARY.split()
_CONNECTIVES = ("同时", "此外", "另外", "目前", "据介绍", "记者了解到", "与此同时", "接下来")


def make_article(paragraphs: int, characters: int, seed: int = 2024) -> str:
    """A headline and ``paragraphs`` paragraphs of original filler Chinese, about ``characters``
    characters in all, paragraph lengths varying by ±30% as in real news."""
    rng = random.Random(seed)
    per_paragraph = characters / paragraphs
    lines = ["城市书房开到家门口 社区阅读服务再升级"]
    for _ in range(paragraphs):
        target = per_paragraph * rng.uniform(0.7, 1.3)
        paragraph = ""
        while True:
            clause = "".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 6)))
            more = "".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 7)))
            sentence = f"{rng.choice(_CONNECTIVES)}，{clause}，{more}。"
            if paragraph and len(paragraph) + len(sentence) / 2 > target:
                break
            paragraph += sentence
        lines.append(paragraph)
    return "\n\n".join(lines) + "\n"


# -- measuring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    seconds: float
    stderr: str
    returncode: int


def timed_run(args: Sequence[str | Path], *, check: bool = True) -> Timed:
    started = time.perf_counter()
    done = subprocess.run(
        [str(a) for a in args], cwd=ROOT, env=_env(), capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args[:4]))} … failed:\n{done.stderr[-2000:]}")
    return Timed(seconds, done.stderr, done.returncode)


def measured_process(args: Sequence[str | Path]) -> tuple[dict[str, float], float]:
    """(what the process printed as JSON, its peak RSS in MB, its children's included).

    The peak is the one the process reports itself (``peak_rss_mb``) when it can: the
    ``ru_maxrss`` that ``wait4`` gives starts at this process's own peak (Linux carries it over
    through exec), so it never reads below what the benchmark itself holds at that point.
    """
    process = subprocess.Popen(
        [str(a) for a in args], cwd=ROOT, env=_env(), stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed with {process.returncode}")
    result = json.loads(output.strip().splitlines()[-1])
    reported = result.pop("peak_rss_mb", None)
    return result, reported if reported is not None else usage.ru_maxrss / 1024


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.pop("PYTHONWARNINGS", None)
    # Byte-code caching as Python does by default (some sandboxes turn it off): an installed
    # newsreader does not recompile itself at every start.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def audio_seconds(mp3_file: Path) -> float:
    """The audio's length: its frames, without the ID3 tag or the Info frame (not audio)."""
    from newsreader.audio.mp3 import bare_frames, duration

    return duration(bare_frames(mp3_file.read_bytes()))


def machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.1f} GB RAM"
    return (
        f"{model}, {os.cpu_count()} cores{memory}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}"
    )


# -- the contenders ------------------------------------------------------------------------------


@dataclass
class Row:
    measure: str
    result: str
    target: str
    met: bool | None  # None: no target (context only)

    @property
    def verdict(self) -> str:
        return "—" if self.met is None else "met" if self.met else "**missed**"


def newsreader_read(
    address: str, article: Path, out: Path, cache: Path | None, *options: str
) -> Timed:
    cache_options = ["--cache-dir", str(cache)] if cache else ["--no-cache"]
    return timed_run(
        [sys.executable, "-c", OURS, address, "read", article, "-o", out, *cache_options, *options]
    )


def edge_tts_cli(address: str, article: Path, out: Path) -> Timed:
    files: tuple[str | Path, ...] = ("--file", article, "--write-media", out)
    return timed_run([sys.executable, "-c", EDGE_TTS, address, *files, "--voice", VOICE])


def slowest_single_segment(script_segments: Sequence[object], count: int = 3) -> float:
    """The longest segments' requests, each timed alone (in this process, no start-up)."""
    from newsreader.config import Settings
    from newsreader.models import Segment
    from newsreader.synth.edge import EdgeEngine

    settings = Settings(engine="edge", voice=VOICE, request_timeout=600)
    segments = [s for s in script_segments if isinstance(s, Segment)]
    longest = sorted(segments, key=lambda s: len(s.text), reverse=True)[:count]
    times = []
    for segment in longest:
        started = time.perf_counter()
        asyncio.run(EdgeEngine().synthesize(segment, settings))
        times.append(time.perf_counter() - started)
    return max(times)


def assembly_seconds(article: Path, cache: Path, folder: Path) -> float:
    """Assembling and writing the episode from cached segments, as ``read`` does at its end."""
    from newsreader import pipeline
    from newsreader.audio.assemble import assemble
    from newsreader.config import Settings
    from newsreader.synth.cache import SegmentCache, cache_key
    from newsreader.synth.edge import EdgeEngine
    from newsreader.synth.scheduler import RunStats

    settings = Settings(engine="edge", voice=VOICE, cache_dir=cache)
    loaded = pipeline.load_article(str(article), settings)
    script = pipeline.make_script(loaded, settings)
    segment_cache = SegmentCache(cache)
    voice = EdgeEngine().voice_id(settings)
    parts = [segment_cache.get(cache_key(voice, s), s) for s in script.segments]
    if any(p is None for p in parts):
        raise RuntimeError("the cache does not hold every segment")
    started = time.perf_counter()
    reading = assemble(script, [p for p in parts if p is not None])
    rendered = pipeline.Rendered(reading, RunStats(), "edge")
    pipeline.write_outputs(rendered, loaded, script, folder / "limit.mp3", folder / "limit.vtt")
    return time.perf_counter() - started


def zero_overhead_schedule(
    segments: Sequence[Segment],
    edge: EdgeStandin,
    connections: int,
    latency: dict[str, float],
    order: Sequence[int] | None = None,
) -> float:
    """When the last answer would end if the requests, in script order (or ``order``: positions
    in ``segments``), each took exactly what the latency model says (handshake + first audio +
    audio ÷ real-time multiple) on ``connections`` connections, with nothing else taking any
    time: the best our scheduler could do at that concurrency."""
    slots = [0.0] * connections
    for position in order if order is not None else range(len(segments)):
        segment = segments[position]
        took = latency["handshake_latency"] + latency["first_audio_latency"]
        took += edge.plan(segment.text).duration / latency["realtime_multiple"]
        heapq.heapreplace(slots, slots[0] + took)
    return max(slots)


def segments_on_disk(folder: Path, minutes: int, segments: int) -> float:
    """``segments`` cached-segment files, with a paragraph pause after each but the last, that
    add up to ``minutes`` of audio. Returns the total, seconds."""
    from tests.standin.server import tone_mp3

    total = round(minutes * 60 / FRAME_SECONDS)
    pause = 30  # a paragraph's pause, 0.72 s
    speech = (total - pause * (segments - 1)) // segments
    folder.mkdir(parents=True, exist_ok=True)
    pauses = [pause] * (segments - 1) + [0]
    lengths = [speech] * (segments - 1) + [total - pause * (segments - 1) - speech * (segments - 1)]
    for index, frames in enumerate(lengths):
        (folder / f"{index:04d}.mp3").write_bytes(tone_mp3(frames))
    (folder / "pauses.json").write_text(json.dumps(pauses))
    return (sum(lengths) + sum(pauses)) * FRAME_SECONDS


# -- the run --------------------------------------------------------------------------------------


@contextlib.contextmanager
def standin(latency: dict[str, float]) -> Iterator[object]:
    from tests.standin.server import EdgeStandin, StandinOptions

    options = StandinOptions(
        handshake_latency=latency["handshake_latency"],
        first_audio_latency=latency["first_audio_latency"],
        realtime_multiple=latency["realtime_multiple"],
    )
    with EdgeStandin(options) as server:
        yield server


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks synthesis")
    parser.add_argument("--paragraphs", type=int, default=20)
    parser.add_argument("--characters", type=int, default=5000)
    parser.add_argument("--handshake", type=float, default=0.15, help="seconds")
    parser.add_argument("--first-audio", type=float, default=0.4, help="seconds")
    parser.add_argument("--realtime", type=float, default=5.0, help="× real time")
    parser.add_argument(
        "--concurrency",
        default="4,8,16",
        help="comma-separated; the first is compared with edge-tts (4 is the default of read), "
        "the last with the parallel limit",
    )
    parser.add_argument("--quick", action="store_true", help="6 paragraphs, 10 minutes to join")
    args = parser.parse_args(argv)
    if args.quick:
        args.paragraphs, args.characters = 6, 1200
    levels = [int(c) for c in args.concurrency.split(",")]
    latency = {
        "handshake_latency": args.handshake,
        "first_audio_latency": args.first_audio,
        "realtime_multiple": args.realtime,
    }

    from tests.standin.client import point_edge_tts_at
    from tests.standin.server import EdgeStandin
    from tests.standin.verify import episode_problems

    from newsreader import pipeline
    from newsreader.config import Settings

    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="newsreader-bench-") as temp, standin(latency) as s:
        assert isinstance(s, EdgeStandin)
        edge = s
        work = Path(temp)
        undo = point_edge_tts_at(edge)
        address = f"127.0.0.1:{edge.port}"
        article = work / "article.txt"
        article.write_text(make_article(args.paragraphs, args.characters), encoding="utf-8")
        settings = Settings(engine="edge", voice=VOICE)
        script = pipeline.make_script(pipeline.load_article(str(article), settings), settings)
        body = sum(len(b.text) for b in script.article.blocks)
        _say(
            f"article: {args.paragraphs} paragraphs, {body} characters, "
            f"{len(script.segments)} segments; stand-in: {latency}"
        )

        # 1. edge-tts, one request after another
        _say("edge-tts CLI …")
        theirs = edge_tts_cli(address, article, work / "edge-tts.mp3")
        notes.append(
            f"edge-tts CLI: {theirs.seconds:.1f} s for "
            f"{audio_seconds(work / 'edge-tts.mp3'):.0f} s of audio"
        )

        # newsreader at each concurrency, from an empty cache
        ours: dict[int, Timed] = {}
        for level in levels:
            _say(f"newsreader read --concurrency {level} …")
            out = work / f"ours-{level}.mp3"
            before = edge.handshakes
            ours[level] = newsreader_read(
                address, article, out, work / f"cache-{level}", "--engine", "edge", "-q",
                "--concurrency", str(level),
            )  # fmt: skip
            problems = episode_problems(out.read_bytes(), script.segments, edge.plan)
            if problems:
                raise RuntimeError(f"newsreader's episode is not complete: {problems[:3]}")
            notes.append(
                f"newsreader read --concurrency {level}: {ours[level].seconds:.1f} s, "
                f"{edge.handshakes - before} requests, {audio_seconds(out):.0f} s of audio "
                "(pauses included), every segment present once, complete, in order"
            )
        for level in levels[:2]:
            ratio = ours[level].seconds / theirs.seconds
            rows.append(
                Row(
                    f"1. `read` (--concurrency {level}) ÷ `edge-tts` CLI, wall time",
                    f"{ours[level].seconds:.1f} s ÷ {theirs.seconds:.1f} s = **{ratio:.2f}**",
                    "≤ 0.25",
                    ratio <= 0.25,
                )
            )

        # 2. the parallel limit
        _say("parallel limit …")
        top = levels[-1]
        slowest = slowest_single_segment(script.segments)
        joining = assembly_seconds(article, work / f"cache-{top}", work)
        limit = slowest + joining
        ratio = ours[top].seconds / limit
        rows.append(
            Row(
                f"2. `read` (--concurrency {top}) ÷ parallel limit (slowest segment + assembly)",
                f"{ours[top].seconds:.1f} s ÷ ({slowest:.1f} s + {joining:.2f} s) "
                f"= **{ratio:.2f}×**",
                "≤ 1.3×",
                ratio <= 1.3,
            )
        )
        for level in (levels[0], top):
            ideal = zero_overhead_schedule(script.segments, edge, level, latency)
            took = ours[level].seconds
            rows.append(
                Row(
                    f"2. context: `read` (--concurrency {level}) ÷ the same requests with "
                    f"{level} connections and no overhead at all",
                    f"{took:.1f} s ÷ {ideal:.1f} s = {took / ideal:.2f}×",
                    "",
                    None,
                )
            )

        # 4. a second run, from the cache (the usual command: --engine auto), five times
        _say("second run from the cache …")
        before = edge.handshakes + edge.voice_list_requests
        again = sorted(
            newsreader_read(
                address, article, work / "again.mp3", work / f"cache-{top}", "-q"
            ).seconds
            for _ in range(5)
        )
        made = edge.handshakes + edge.voice_list_requests - before
        rows.append(
            Row("4. second run from the cache: requests (5 runs)", f"**{made}**", "0", made == 0)
        )
        rows.append(
            Row(
                "4. second run from the cache: wall time, whole process (median of 5)",
                f"**{again[2]:.2f} s** (fastest {again[0]:.2f} s)",
                "< 1 s",
                again[2] < 1,
            )
        )
        undo()

    with tempfile.TemporaryDirectory(prefix="newsreader-bench-") as temp:
        work = Path(temp)
        article = work / "article.txt"
        article.write_text(make_article(args.paragraphs, args.characters), encoding="utf-8")

        # 5. the embedded voice
        _say("read --engine espeak …")
        out = work / "espeak.mp3"
        embedded = newsreader_read("127.0.0.1:9", article, out, None, "--engine", "espeak", "-q")
        spoken = audio_seconds(out)
        rtf = embedded.seconds / spoken
        rows.append(
            Row(
                "5. `read --engine espeak`: real-time factor",
                f"{embedded.seconds:.1f} s ÷ {spoken:.0f} s of audio = **{rtf:.3f}**",
                "≤ 0.02",
                rtf <= 0.02,
            )
        )

        # 3. one hour of audio, joined
        minutes = 10 if args.quick else 60
        _say(f"assembling {minutes} minutes …")
        segments = work / "segments"
        count = 240 * minutes // 60
        total = segments_on_disk(segments, minutes, count)
        ours_join, ours_rss = measured_process(
            [sys.executable, "-m", "benchmarks.synthesis_assembly", "frames", segments,
             work / "frames.mp3"]
        )  # fmt: skip
        pydub_join, pydub_rss = measured_process(
            [sys.executable, "-m", "benchmarks.synthesis_assembly", "pydub", segments,
             work / "pydub.mp3"]
        )  # fmt: skip
        joined = audio_seconds(work / "frames.mp3")
        notes.append(
            f"assembly: {count} segments, {total:.0f} s of audio in, {joined:.0f} s out "
            f"(pydub's output: {audio_seconds(work / 'pydub.mp3'):.0f} s)"
        )
        speedup = pydub_join["seconds"] / ours_join["seconds"]
        rows += [
            Row(
                "3. join 1 h of audio, frame level: wall time",
                f"**{ours_join['seconds']:.2f} s**",
                "≤ 1 s",
                ours_join["seconds"] <= 1,
            ),
            Row(
                "3. join 1 h of audio, frame level: peak RSS (whole process)",
                f"**{ours_rss:.0f} MB**",
                "≤ 100 MB",
                ours_rss <= 100,
            ),
            Row(
                "3. join 1 h of audio: pydub (decode, join, re-encode)",
                f"{pydub_join['seconds']:.1f} s, {pydub_rss:.0f} MB peak RSS",
                "",
                None,
            ),
            Row(
                "3. frame-level join speed-up over pydub",
                f"**{speedup:.0f}×**",
                "≥ 20×",
                speedup >= 20,
            ),
        ]

    rows.sort(key=lambda row: row.measure[:2])
    print()
    print(f"Machine: {machine()}")
    print(
        f"Stand-in latency model: handshake {args.handshake:g} s, first audio "
        f"{args.first_audio:g} s after the request, audio at {args.realtime:g}× real time, "
        "speech at 5 characters per second."
    )
    print()
    print("| measure | result | target | verdict |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row.measure} | {row.result} | {row.target} | {row.verdict} |")
    print()
    for note in notes:
        print(f"- {note}")


def _say(message: str) -> None:
    print(f"… {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
