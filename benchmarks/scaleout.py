"""Scale-out benchmark: readings per minute with 1, 2 and 4 workers, first audio at 32 listeners
in embedded mode (``serve`` alone) and in scale-out mode (an API node and workers), and how soon
a killed worker's reading runs again.

    python -m benchmarks scaleout            # or: python3 tasks.py bench scaleout
    python -m benchmarks scaleout --quick    # 1 and 2 workers, 8 listeners: checks it works
    python -m benchmarks scaleout --workers "" --listeners 0   # the dead workers only

Every role is its own process on loopback (``tests/cluster.py``): a real redis-server, API nodes
(``newsreader serve --redis``), workers (``newsreader worker``), all talking to the local edge
stand-in (``tests/standin``, in this process) with the latency model of the service benchmark: a
handshake of ``--handshake`` s, the first audio ``--first-audio`` s after each request, audio at
``--realtime`` x real time, 5 characters of speech a second. Articles are original filler text,
different every time, so no segment is ever a cache hit.

- Throughput: ``--readings-per-worker`` x W readings are posted at once to one API node with W
  workers, each worker with ``--voice-connections`` connections to the voice service and
  ``--concurrency`` readings at once. Readings per minute = readings / (first POST to the last
  one done). The stand-in is the bound: a voice connection is busy for the handshake, the first
  audio and the audio's time at the real-time factor, and W workers have W x N connections; the
  table gives that bound beside the measure, and the CPU the cluster's processes used, to show
  that the two shared cores were not the limit.
- First audio: ``--listeners`` clients each post a different article and follow its
  ``stream.mp3`` to the end, ``--rounds`` times in turn (as ``benchmarks/service.py`` measures:
  from sending the POST to the first byte of audio), once against ``serve`` alone and once
  against one API node with each of ``--latency-workers`` workers, always with
  ``--latency-connections`` voice connections in all (8, the service's default, split among the
  workers; the workers take all the listeners' readings at once between them, each sharing its
  own connections fairly, as ``serve`` does in one process). One listener alone first
  (``--solo-rounds`` readings in turn): what the cluster's hops through Redis add, with no
  queueing for voice connections.
- Dead workers: ``--trials`` times, a long reading (10 paragraphs) is posted to an API node with
  two workers and followed; once 2 of its segments are done, its worker gets SIGKILL. Measured:
  seconds until its job runs again on the other worker (the heartbeat limit and the sweep) and
  until the reading is done, and whether the listener's stream is the finished file's frames.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from socket import gethostname
from typing import TYPE_CHECKING

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``tests`` lives in the repository, not in the package
    sys.path.insert(0, str(ROOT))

from tests.filler import filler_article  # noqa: E402

from newsreader.config import Settings  # noqa: E402
from newsreader.pipeline import make_script  # noqa: E402
from newsreader.text.extract import extract  # noqa: E402

if TYPE_CHECKING:
    from tests.cluster import Cluster, Node
    from tests.standin.server import EdgeStandin

CLK_TCK = os.sysconf("SC_CLK_TCK")


def make_article(number: int, paragraphs: int, characters: int) -> str:
    """A headline and ``paragraphs`` paragraphs of filler Chinese, different for every number."""
    rng = random.Random(f"scaleout:{number}")
    return filler_article(rng, f"第{number}篇 ", paragraphs, characters)


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU of the processes so far (from /proc; 0 for one that is gone)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


@dataclass
class Throughput:
    workers: int
    readings: int
    wall: float
    bound: float
    """Readings per minute the stand-in allows the workers' voice connections."""
    cpu: float
    """CPU seconds of every process (the cluster's, redis-server's and this one's, with the
    stand-in)."""

    @property
    def per_minute(self) -> float:
        return self.readings / self.wall * 60


@dataclass
class FirstAudio:
    mode: str
    listeners: int
    readings: int
    median: float
    p95: float
    wall: float


async def post(client: httpx.AsyncClient, base: str, text: str) -> str:
    response = await client.post(f"{base}/api/readings", json={"text": text})
    response.raise_for_status()
    reading: str = response.json()["id"]
    return reading


async def wait_done(client: httpx.AsyncClient, base: str, readings: Sequence[str]) -> None:
    """Until every reading is done (the queue's counts first: cheap to ask at every turn)."""
    while True:
        health = (await client.get(f"{base}/healthz")).json()
        if not health.get("queued") and not health.get("running"):
            break
        await asyncio.sleep(0.1)
    for reading in readings:
        while True:
            row = (await client.get(f"{base}/api/readings/{reading}")).json()
            if row["status"] == "done":
                break
            if row["status"] == "failed":
                raise RuntimeError(f"reading {reading} failed: {row['error']}")
            await asyncio.sleep(0.1)


async def throughput_level(
    base: str, texts: Sequence[str], warm: Sequence[str], cpu: Callable[[], float]
) -> tuple[float, float]:
    """Post ``warm`` and wait (every process has imported what it needs), then post ``texts``
    at once: (seconds from the first POST to the last reading done, CPU seconds meanwhile)."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await wait_done(client, base, await asyncio.gather(*(post(client, base, t) for t in warm)))
        started, before = time.monotonic(), cpu()
        readings = await asyncio.gather(*(post(client, base, t) for t in texts))
        await wait_done(client, base, readings)
        return time.monotonic() - started, cpu() - before


async def listen(client: httpx.AsyncClient, base: str, text: str) -> float:
    """Seconds from sending the POST to the first byte of audio of ``stream.mp3``; reads it to
    its end (a stream asked before its reading runs is asked again)."""
    start = time.monotonic()
    stream = f"{base}/api/readings/{await post(client, base, text)}/stream.mp3"
    first: float | None = None
    while first is None:
        async with client.stream("GET", stream) as response:
            if response.status_code == 409:
                await asyncio.sleep(0.02)
                continue
            response.raise_for_status()
            async for _chunk in response.aiter_raw():
                if first is None:
                    first = time.monotonic() - start
            if first is None:
                raise RuntimeError(f"{stream} ended without audio")
    return first


async def first_audio_level(
    base: str, texts: Sequence[Sequence[str]], warm: Sequence[str], mode: str
) -> FirstAudio:
    """Each of ``len(texts)`` listeners posts its texts one after the other, following each
    stream to its end before the next (after ``warm``, all at once and not counted)."""

    async def listener(client: httpx.AsyncClient, mine: Sequence[str]) -> list[float]:
        return [await listen(client, base, text) for text in mine]

    limits = httpx.Limits(max_connections=4 * len(texts), max_keepalive_connections=4 * len(texts))
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        await asyncio.gather(*(listen(client, base, t) for t in warm))
        started = time.monotonic()
        batches = await asyncio.gather(*(listener(client, mine) for mine in texts))
        wall = time.monotonic() - started
    firsts = sorted(first for batch in batches for first in batch)
    return FirstAudio(
        mode,
        len(texts),
        len(firsts),
        statistics.median(firsts),
        firsts[min(len(firsts) - 1, round(0.95 * (len(firsts) - 1)))],
        wall,
    )


@dataclass
class Redelivery:
    done_at_kill: int
    """Segments of the reading done when its worker was killed."""
    total: int
    redelivered: float
    """Seconds from the SIGKILL to the job's second run starting on another worker."""
    finished: float
    """Seconds from the SIGKILL to the reading done."""
    unbroken: bool
    """The listener's stream is the finished file's frames, each once, in order."""


async def redelivery_trial(cluster: Cluster, api: Node, text: str) -> Redelivery:
    """Post ``text``, follow its stream, SIGKILL its worker once 2 segments are done, and time
    the job's second run and the reading's end."""
    from saq import Queue

    from newsreader.audio.mp3 import bare_frames

    queue = Queue.from_url(cluster.redis_url, name="newsreader")
    try:
        async with httpx.AsyncClient(timeout=120) as client:
            reading = await post(client, api.base, text)
            heard = bytearray()

            async def follow() -> None:
                url = f"{api.base}/api/readings/{reading}/stream.mp3"
                async with client.stream("GET", url) as response:
                    async for chunk in response.aiter_raw():
                        heard.extend(chunk)

            following = asyncio.create_task(follow())
            while True:
                row = (await client.get(f"{api.base}/api/readings/{reading}")).json()
                if row["status"] != "running" and row["status"] != "queued":
                    raise RuntimeError("the reading ended before its worker was killed")
                job = await queue.job(reading)
                if row["progress"]["done"] >= 2 and job is not None and job.status == "active":
                    held = [
                        n for n in cluster.workers() if job.worker_id == f"{gethostname()}-{n.pid}"
                    ]
                    if held:
                        break
                await asyncio.sleep(0.05)
            killed = time.time()
            held[0].kill()
            while True:
                job = await queue.job(reading)
                if job is not None and job.attempts >= 2 and job.started:
                    redelivered = job.started / 1000 - killed
                    break
                await asyncio.sleep(0.05)
            await wait_done(client, api.base, [reading])
            finished = time.time() - killed
            await following
            audio = (await client.get(f"{api.base}/api/readings/{reading}/audio.mp3")).content
            return Redelivery(
                row["progress"]["done"],
                row["progress"]["total"],
                redelivered,
                finished,
                bytes(heard) == bare_frames(audio),
            )
    finally:
        await queue.disconnect()


def occupancy(text: str, edge: EdgeStandin, args: argparse.Namespace) -> float:
    """Connection-seconds the stand-in needs for a text: for each segment the reading makes of
    it, the handshake, the first audio's wait and its speech at the real-time factor."""
    script = make_script(extract(text, source="", read_whole=True), Settings())
    handshake: float = args.handshake + args.first_audio
    realtime: float = args.realtime
    return sum(
        handshake + edge.plan(segment.text).duration / realtime for segment in script.segments
    )


def main(argv: list[str]) -> None:
    from tests.cluster import Cluster
    from tests.redisserver import RedisServer
    from tests.standin.server import EdgeStandin

    parser = argparse.ArgumentParser(prog="python -m benchmarks scaleout")
    parser.add_argument("--workers", default="1,2,4", help="comma-separated worker counts")
    parser.add_argument("--voice-connections", type=int, default=4, help="per worker")
    parser.add_argument("--concurrency", type=int, default=4, help="readings per worker at once")
    parser.add_argument("--readings-per-worker", type=int, default=24)
    parser.add_argument("--paragraphs", type=int, default=2)
    parser.add_argument("--characters", type=int, default=120, help="per article")
    parser.add_argument("--listeners", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="readings per listener, in turn")
    parser.add_argument(
        "--solo-rounds", type=int, default=8, help="readings of one listener alone, in turn"
    )
    parser.add_argument(
        "--latency-workers", default="1,2", help="scale-out runs: workers sharing the connections"
    )
    parser.add_argument(
        "--latency-connections", type=int, default=8, help="voice connections in all"
    )
    parser.add_argument("--latency-paragraphs", type=int, default=3)
    parser.add_argument("--latency-characters", type=int, default=150)
    parser.add_argument("--handshake", type=float, default=0.15, help="seconds")
    parser.add_argument("--first-audio", type=float, default=0.4, help="seconds")
    parser.add_argument("--realtime", type=float, default=4.0, help="x real time")
    parser.add_argument("--trials", type=int, default=3, help="workers killed mid-reading")
    parser.add_argument("--quick", action="store_true", help="1 and 2 workers, 8 listeners")
    args = parser.parse_args(argv)
    if args.quick:
        args.workers, args.readings_per_worker, args.listeners, args.rounds = "1,2", 6, 8, 1
        args.solo_rounds, args.trials = 2, 1
        args.characters, args.latency_characters, args.realtime = 60, 60, 8.0
    levels = [int(n) for n in args.workers.split(",") if n.strip()]  # "": first audio only
    numbers = iter(range(1, 10**6))
    shared = ["--engine", "edge", "--loudness", "off"]  # the readings' settings: the workers'
    api_options = ["--rate-limit", "0"]
    worker_options = [
        *shared,
        *("--voice-connections", str(args.voice_connections)),
        *("--concurrency", str(args.concurrency)),
    ]

    def articles(count: int, paragraphs: int, characters: int) -> list[str]:
        return [make_article(next(numbers), paragraphs, characters) for _ in range(count)]

    throughput: list[Throughput] = []
    latency: list[FirstAudio] = []
    with (
        RedisServer() as redis,
        EdgeStandin(
            handshake_latency=args.handshake,
            first_audio_latency=args.first_audio,
            realtime_multiple=args.realtime,
        ) as edge,
        tempfile.TemporaryDirectory(prefix="newsreader-scaleout-") as folder,
    ):
        for workers in levels:
            redis.flush()
            texts = articles(args.readings_per_worker * workers, args.paragraphs, args.characters)
            warm = articles(workers * args.concurrency, 1, 10)
            with Cluster(
                Path(folder) / f"throughput{workers}",
                redis.url,
                edge,
                api_options=api_options,
                worker_options=worker_options,
            ) as cluster:
                api = cluster.api()
                for _ in range(workers):
                    cluster.worker(ready=False)
                cluster.wait(lambda n=workers: cluster.live_workers() >= n, f"{workers} workers")
                pids = [node.pid for node in cluster.nodes]
                if redis.process is not None:
                    pids.append(redis.process.pid)

                def used(pids: list[int] = pids) -> float:
                    return cpu_seconds(pids) + time.process_time()  # the stand-in's too

                wall, cpu = asyncio.run(throughput_level(api.base, texts, warm, used))
            per_reading = statistics.mean(occupancy(t, edge, args) for t in texts)
            bound = workers * args.voice_connections / per_reading * 60
            throughput.append(Throughput(workers, len(texts), wall, bound, cpu))
            print(
                f"  {workers} workers: {len(texts)} readings in {wall:.1f} s, CPU {cpu:.1f} s",
                file=sys.stderr,
            )

        total = args.latency_connections
        modes = [0] + [int(n) for n in args.latency_workers.split(",") if n.strip()]
        for spread in modes if args.listeners else []:  # 0: embedded, else workers
            mode = f"scale-out, {spread} × {total // spread}" if spread else "embedded"
            redis.flush()
            solo = [articles(args.solo_rounds, args.latency_paragraphs, args.latency_characters)]
            turns = [
                articles(args.rounds, args.latency_paragraphs, args.latency_characters)
                for _ in range(args.listeners)
            ]
            with Cluster(
                Path(folder) / f"latency{spread}",
                redis.url,
                edge,
                api_options=api_options,
                worker_options=[
                    *shared,
                    *("--voice-connections", str(total // max(spread, 1))),
                    *("--concurrency", str(-(-args.listeners // max(spread, 1)))),
                ],
            ) as cluster:
                if not spread:
                    api = cluster.embedded(
                        *shared,
                        *("--voice-connections", str(total)),
                        *("--jobs-per-client", str(args.listeners)),  # one client address here
                    )
                    warm = articles(1, 1, 10)
                else:
                    api = cluster.api()
                    for _ in range(spread):
                        cluster.worker(ready=False)
                    cluster.wait(lambda n=spread: cluster.live_workers() >= n, "the workers")
                    warm = articles(2 * spread, 1, 10)
                for listeners in (solo, turns):
                    latency.append(asyncio.run(first_audio_level(api.base, listeners, warm, mode)))
                    warm = []
                    done = latency[-1]
                    print(
                        f"  {mode}: {done.listeners} listeners, {done.readings} readings in "
                        f"{done.wall:.1f} s",
                        file=sys.stderr,
                    )

        redeliveries: list[Redelivery] = []
        redis.flush()
        with Cluster(
            Path(folder) / "redelivery", redis.url, edge, worker_options=worker_options
        ) as cluster:
            api = cluster.api()
            for trial in range(args.trials):
                while len(cluster.workers()) < 2:
                    cluster.worker()
                text = make_article(next(numbers), 10, 600)
                redeliveries.append(asyncio.run(redelivery_trial(cluster, api, text)))
                print(
                    f"  dead worker {trial + 1}: run again after "
                    f"{redeliveries[-1].redelivered:.1f} s",
                    file=sys.stderr,
                )

    print_tables(throughput, latency, redeliveries, args)


def print_redeliveries(redeliveries: Sequence[Redelivery]) -> None:
    if not redeliveries:
        return
    print(
        "| dead worker | segments done at the kill | run again after | reading done after "
        "| listener's stream |"
    )
    print("| ---: | ---: | ---: | ---: | --- |")
    for number, trial in enumerate(redeliveries, 1):
        print(
            f"| {number} | {trial.done_at_kill} of {trial.total} | {trial.redelivered:.1f} s "
            f"| {trial.finished:.1f} s | {'unbroken' if trial.unbroken else 'BROKEN'} |"
        )
    print()


def print_tables(
    throughput: Sequence[Throughput],
    latency: Sequence[FirstAudio],
    redeliveries: Sequence[Redelivery],
    args: argparse.Namespace,
) -> None:
    cores = os.cpu_count() or 1
    if throughput:
        base = throughput[0].per_minute / throughput[0].workers
        print(
            "| workers | readings | wall | readings per minute | × one worker | stand-in bound "
            "| CPU |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for row in throughput:
            busy = row.cpu / (row.wall * cores) * 100
            print(
                f"| {row.workers} | {row.readings} | {row.wall:.1f} s | {row.per_minute:.1f} "
                f"| {row.per_minute / base:.2f}× | {row.bound:.1f} "
                f"| {row.cpu:.1f} s ({busy:.0f}%) |"
            )
        print()
    if latency:
        print("| mode | listeners | readings | first audio, median | first audio, p95 | wall |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for level in latency:
            print(
                f"| {level.mode} | {level.listeners} | {level.readings} | {level.median:.2f} s "
                f"| {level.p95:.2f} s | {level.wall:.1f} s |"
            )
        print()
    print_redeliveries(redeliveries)
    print(
        f"Stand-in: handshake {args.handshake:g} s, first audio {args.first_audio:g} s after each "
        f"request, audio at {args.realtime:g}x real time. Throughput: {args.readings_per_worker} "
        f"readings per worker of {args.paragraphs} paragraphs, about {args.characters} "
        f"characters, posted at once; each worker {args.voice_connections} voice connections, "
        f"{args.concurrency} readings at once; the bound is W x {args.voice_connections} "
        "connections over the connection-seconds a reading needs; CPU is every process's user + "
        f"system time (% of {cores} cores over the wall time). First audio: articles of "
        f"{args.latency_paragraphs} paragraphs, about {args.latency_characters} characters; "
        f"embedded: serve with {args.latency_connections} voice connections; scale-out W × N: 1 "
        f"API node and W workers of N voice connections. "
        f"{platform.machine()}, {cores} cores, Python {platform.python_version()}."
    )
