"""Listeners benchmark: many ``stream.mp3`` listeners on one API node (``serve --redis``).

    python -m benchmarks listeners                 # 100, 300 and 1000 listeners
    python -m benchmarks listeners --listeners 50  # one row

A private Redis server and one ``newsreader serve --redis`` process; a reading is begun in Redis
as a worker would (``LivePublisher``), with one segment out. N listeners connect (raw sockets,
each asking for the stream), then a second segment is published. Reported per N: the node's
open file descriptors and resident memory, the Redis clients (``CLIENT LIST``, this benchmark's
own included), how many listeners received the second segment, and how long the node took to
answer a status request meanwhile. The node should hold a bounded number of Redis connections
(``service.cluster.REDIS_DESCRIPTORS``) and every listener should get the segment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``tests.redisserver`` lives in the repository
    sys.path.insert(0, str(ROOT))

from tests.redisserver import RedisServer, free_port  # noqa: E402

SEGMENT = 20_000
"""Bytes of each published segment."""


@dataclass(frozen=True)
class Row:
    listeners: int
    descriptors: int
    rss_mb: int
    redis_clients: int
    received: int
    status: str
    status_seconds: float


def _rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def _drain(listener: socket.socket) -> bytes:
    listener.setblocking(False)
    data = bytearray()
    while True:
        try:
            chunk = listener.recv(1 << 20)
        except BlockingIOError:
            return bytes(data)
        if not chunk:
            return bytes(data)
        data += chunk


async def measure(count: int) -> Row:
    from newsreader.scale.live import LivePublisher
    from newsreader.scale.redisurl import connect
    from newsreader.scale.state import RedisState
    from newsreader.service.request import JobRequest

    with RedisServer() as server, tempfile.TemporaryDirectory() as folder:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "newsreader", "serve", "--redis", server.url,
             "--port", str(port), "--data", folder, "--rate-limit", "0",
             "--max-connections", str(count + 100)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "NEWSREADER_REDIS_URL": ""},
        )  # fmt: skip
        listeners: list[socket.socket] = []
        redis = await connect(server.url)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("serve did not start") from None
                    await asyncio.sleep(0.05)
            reading_id = "a" * 24
            state = RedisState(redis)
            request = JobRequest(kind="text", content="标题\n\n正文。").to_dict()
            await state.submit(reading_id, request, None, audio_exists=False)
            await state.claim(reading_id, "benchmark")
            publisher = LivePublisher(redis, reading_id)
            await publisher.begin("title", 2, [], "edge")
            await publisher.segment(0, b"\x01" * SEGMENT, 1.0, [])
            ask = f"GET /api/readings/{reading_id}/stream.mp3 HTTP/1.1\r\nHost: x\r\n\r\n"
            for _ in range(count):
                listener = socket.create_connection(("127.0.0.1", port))
                listener.sendall(ask.encode())
                listeners.append(listener)
            await asyncio.sleep(3)
            await publisher.segment(1, b"\x02" * SEGMENT, 1.0, [])
            await asyncio.sleep(2)
            descriptors = len(os.listdir(f"/proc/{process.pid}/fd"))
            rss = _rss_mb(process.pid)
            clients = len(await redis.client_list())
            received = sum(1 for listener in listeners if b"\x02" * 1000 in _drain(listener))
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", port), timeout=30) as probe:
                probe.sendall(
                    f"GET /api/readings/{reading_id} HTTP/1.1\r\nHost: x\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                status = probe.recv(64).split(b"\r\n")[0].decode(errors="replace")
            took = time.monotonic() - started
            return Row(count, descriptors, rss, clients, received, status, took)
        finally:
            for listener in listeners:
                listener.close()
            await redis.aclose()
            process.terminate()
            process.wait(timeout=15)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks listeners")
    parser.add_argument("--listeners", type=int, action="append", help="listeners (repeatable)")
    options = parser.parse_args(argv)
    counts = options.listeners or [100, 300, 1000]
    print("| listeners | node fds | node RSS MB | Redis clients | got segment 2 | status |")
    print("|---:|---:|---:|---:|---:|---|")
    for count in counts:
        row = asyncio.run(measure(count))
        print(
            f"| {row.listeners} | {row.descriptors} | {row.rss_mb} | {row.redis_clients} | "
            f"{row.received} | {row.status} in {row.status_seconds:.2f} s |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
