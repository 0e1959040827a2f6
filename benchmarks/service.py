"""Service benchmark: time to first audio and readings per minute at 1, 8 and 32 clients.

    python -m benchmarks service            # or: python3 tasks.py bench service
    python -m benchmarks service --quick    # 1 and 4 clients, short articles: checks it works
    python -m benchmarks service --fifo     # also run with a first-come voice queue, to compare

The service runs on uvicorn on loopback (engine edge, default settings: 8 voice connections for
the whole process, 4 per reading), talking to the local edge stand-in (``tests/standin``) with the
same latency model as the synthesis benchmark: a handshake of ``--handshake`` s, the first audio
``--first-audio`` s after each request, audio delivered at ``--realtime`` x real time, 5
characters of speech a second. Every client submits a different article (original filler text,
so no segment is ever a cache hit), opens ``stream.mp3`` at once and reads it to the end, as a
listener's player would; then it submits its next one. Measured (a table, not a pass/fail test):

- time to first audio: from sending the POST to the first byte of the stream, median and 95th
  percentile over all readings of the run;
- readings per minute: readings completed (the stream read to its end) per minute of wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``tests.standin`` lives in the repository, not in the package
    sys.path.insert(0, str(ROOT))

from tests.filler import filler_article  # noqa: E402

from newsreader.service.app import create_app  # noqa: E402
from newsreader.service.config import ServiceConfig  # noqa: E402
from newsreader.service.fairness import FairLimiter  # noqa: E402


def make_article(number: int, paragraphs: int, characters: int) -> str:
    """A headline and ``paragraphs`` paragraphs of filler Chinese, different for every number."""
    rng = random.Random(number)
    return filler_article(rng, f"第{number}篇 ", paragraphs, characters)


class FirstComeLimiter(FairLimiter):
    """For comparison: the oldest reading first, whatever the others' listeners need (no hold)."""

    def __init__(self, limit: int, per_job: int) -> None:
        super().__init__(limit, per_job, hold=0.0)

    def _urgency(self, share: Any, now: float) -> tuple[float, int]:
        return (0.0, share.arrived)


@dataclass
class Result:
    first_audio: float
    done: float


class Server:
    def __init__(self, data: Path, fifo: bool) -> None:
        app = create_app(ServiceConfig(data_dir=data, engine="edge", rate_limit=0))
        if fifo:
            readings = app.state.service.readings
            readings.limiter = FirstComeLimiter(readings.limiter.limit, readings.limiter.per_job)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


async def listen(client: httpx.AsyncClient, text: str) -> Result:
    start = time.monotonic()
    posted = await client.post("/api/readings", json={"text": text})
    posted.raise_for_status()
    first = None
    async with client.stream("GET", posted.json()["links"]["stream"]) as response:
        async for _chunk in response.aiter_raw():
            if first is None:
                first = time.monotonic() - start
    if first is None:
        raise RuntimeError("the stream ended without audio")
    return Result(first, time.monotonic() - start)


async def level(base: str, clients: int, rounds: int, args: argparse.Namespace) -> dict[str, float]:
    numbers = iter(range(10**6))
    offset = clients * 1000

    async def client_loop(client: httpx.AsyncClient) -> list[Result]:
        results = []
        for _ in range(rounds):
            text = make_article(offset + next(numbers), args.paragraphs, args.characters)
            results.append(await listen(client, text))
        return results

    limits = httpx.Limits(max_connections=4 * clients, max_keepalive_connections=4 * clients)
    async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as client:
        started = time.monotonic()
        batches = await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        wall = time.monotonic() - started
    results = [r for batch in batches for r in batch]
    firsts = sorted(r.first_audio for r in results)
    return {
        "readings": len(results),
        "median": statistics.median(firsts),
        "p95": firsts[min(len(firsts) - 1, round(0.95 * (len(firsts) - 1)))],
        "per_minute": len(results) / wall * 60,
        "wall": wall,
    }


def main(argv: list[str]) -> None:
    from tests.standin.client import point_edge_tts_at
    from tests.standin.server import EdgeStandin

    parser = argparse.ArgumentParser(prog="python -m benchmarks service")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated levels")
    parser.add_argument("--paragraphs", type=int, default=5)
    parser.add_argument("--characters", type=int, default=400, help="per article")
    parser.add_argument("--handshake", type=float, default=0.15, help="seconds")
    parser.add_argument("--first-audio", type=float, default=0.4, help="seconds")
    parser.add_argument("--realtime", type=float, default=5.0, help="x real time")
    parser.add_argument("--fifo", action="store_true", help="also run with a first-come queue")
    parser.add_argument("--quick", action="store_true", help="1 and 4 clients, short articles")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.paragraphs, args.characters = "1,4", 2, 80
    levels = [int(n) for n in args.clients.split(",")]

    rows = []
    with EdgeStandin(
        handshake_latency=args.handshake,
        first_audio_latency=args.first_audio,
        realtime_multiple=args.realtime,
    ) as edge:
        undo = point_edge_tts_at(edge)
        try:
            for fifo in (False, True) if args.fifo else (False,):
                for clients in levels:
                    with tempfile.TemporaryDirectory() as data, Server(Path(data), fifo) as base:
                        rounds = max(1, -(-4 // clients))  # at least 4 readings per level
                        stats = asyncio.run(level(base, clients, rounds, args))
                    rows.append((clients, "first come" if fifo else "fair", stats))
                    print(
                        f"  {clients} clients ({rows[-1][1]}): {stats['readings']} readings "
                        f"in {stats['wall']:.1f} s",
                        file=sys.stderr,
                    )
        finally:
            undo()

    print(
        "| clients | voice queue | readings | first audio, median | first audio, p95 "
        "| readings per minute |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for clients, queue, stats in rows:
        print(
            f"| {clients} | {queue} | {stats['readings']:.0f} | {stats['median']:.2f} s "
            f"| {stats['p95']:.2f} s | {stats['per_minute']:.1f} |"
        )
    print()
    print(
        f"Stand-in: handshake {args.handshake:g} s, first audio {args.first_audio:g} s after each "
        f"request, audio at {args.realtime:g}x real time; articles of {args.paragraphs} "
        f"paragraphs, about {args.characters} characters (a title segment of about 2 s of speech "
        f"first). Service: 8 voice connections in all, 4 per reading. {platform.machine()}, "
        f"Python {platform.python_version()}."
    )
