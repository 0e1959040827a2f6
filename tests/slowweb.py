"""A real HTTP server on loopback that answers as slowly as a hostile site: a byte at a time.

Each connection reads the request head, then sends ``head`` and ``body`` one byte every
``interval`` seconds. It records every request (path and headers) and, per connection, when it
was opened and when the client hung up. Everything stops after ``lifetime`` seconds at most.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    opened: float
    closed: float | None = None
    """When the client hung up (monotonic), or None while it still reads."""


@dataclass
class SlowWeb:
    host: str = "127.0.0.1"
    port: int = 0
    interval: float = 0.2
    lifetime: float = 15.0
    head: bytes = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n"
    body: bytes = b"<p>" + "字".encode() * 30000
    drip_head: bool = False
    """Drip the status line and headers too (else they go at once and the body drips)."""
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.create_server((self.host, self.port))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.started = time.monotonic()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    @property
    def open_connections(self) -> int:
        return sum(1 for s in self.seen if s.closed is None)

    def _accept(self) -> None:
        while not self.stopping.is_set() and time.monotonic() - self.started < self.lifetime:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            data = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in data and len(data) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
            lines = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            parts = lines[0].split(" ")
            seen = Seen(parts[1] if len(parts) > 1 else "", headers, time.monotonic())
            self.seen.append(seen)
            try:
                if not self.drip_head:
                    conn.sendall(self.head)
                out = (self.head if self.drip_head else b"") + self.body
                for i in range(len(out)):
                    if self.stopping.wait(self.interval):
                        break
                    if time.monotonic() - self.started > self.lifetime:
                        break
                    conn.sendall(out[i : i + 1])
            except OSError:
                pass
            seen.closed = time.monotonic()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        for thread in self.threads:
            thread.join(timeout=5)
        self.sock.close()


@contextlib.contextmanager
def slow_web(**options: object) -> Iterator[SlowWeb]:
    server = SlowWeb(**options)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
