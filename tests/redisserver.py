"""A real Redis server for tests and benchmarks: Debian's redis-server on a free loopback port.

    with RedisServer() as redis:          # started, answers PING
        redis.url                         # "redis://127.0.0.1:PORT/0"
        redis.stop()                      # now unreachable (connection refused)
        redis.start()                     # back on the same port, empty

Nothing is saved to disk (``--save "" --appendonly no``); its working directory is a temporary
one, removed at exit. As a pytest plugin (``tests.conftest`` lists it in ``pytest_plugins``) it
gives the fixtures ``redis_server`` (the session's one server), ``redis_url`` (that server,
flushed, as a URL) and ``own_redis_server`` (a private server a test may stop and restart without
disturbing the others). Benchmarks import ``RedisServer`` from here as they import the stand-in.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

REDIS_SERVER = Path("/usr/bin/redis-server")
STARTUP_TIMEOUT = 10.0
"""Seconds a fresh server gets to answer PING."""

__all__ = ["RedisServer", "RedisServerMissing", "own_redis_server", "redis_server", "redis_url"]


class RedisServerMissing(RuntimeError):
    """Debian's redis-server is not installed."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _encode(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1; ``start``/``stop`` may be called again."""

    def __init__(
        self, executable: Path = REDIS_SERVER, *, startup_timeout: float = STARTUP_TIMEOUT
    ) -> None:
        self.executable = executable
        self.startup_timeout = startup_timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the server (on its old port after a ``stop``) and wait until it answers PING."""
        if self.running:
            return
        if not self.executable.exists():
            raise RedisServerMissing(
                f"{self.executable} is missing: `python3 tasks.py test` installs Debian's "
                "redis-server (apt-get install redis-server)."
            )
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="newsreader-redis-"))
        fixed = self.port != 0
        for _ in range(1 if fixed else 5):  # a fresh port may be taken between probe and bind
            if not fixed:
                self.port = free_port()
            if self._launch():
                return
        log = self._log_tail()
        self.close()
        raise RuntimeError(f"redis-server did not start: {log}")

    def _launch(self) -> bool:
        assert self._dir is not None
        log = (self._dir / "redis.log").open("ab")
        with log:
            self.process = subprocess.Popen(
                [str(self.executable), *self._arguments()],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False
            try:
                if self.command("PING") == b"+PONG":
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        self._kill()
        return False

    def _arguments(self) -> list[str]:
        assert self._dir is not None
        return [
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._dir),
            "--daemonize", "no",
        ]  # fmt: skip

    def command(self, *args: str, timeout: float = 2.0) -> bytes:
        """Send one command; its reply's first line (``+OK``, ``+PONG``, ``-ERR …``, ``:1``)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as conn:
            conn.sendall(_encode(*args))
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    raise ConnectionError("redis-server closed the connection")
                reply += chunk
        return reply.split(b"\r\n", 1)[0]

    def flush(self) -> None:
        """Empty every database."""
        reply = self.command("FLUSHALL")
        if reply != b"+OK":
            raise RuntimeError(f"FLUSHALL answered {reply!r}")

    def stop(self) -> None:
        """Kill the server (the port then refuses connections); ``start`` brings it back."""
        self._kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _kill(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(timeout=10)

    def _log_tail(self) -> str:
        if self._dir is None or not (self._dir / "redis.log").exists():
            return "no output"
        lines = (self._dir / "redis.log").read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no output"

    def close(self) -> None:
        """Kill the server and remove its directory."""
        self._kill()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _started() -> RedisServer:
    server = RedisServer()
    try:
        server.start()
    except RedisServerMissing as missing:
        pytest.fail(str(missing), pytrace=False)
    return server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's one redis-server (not flushed: use ``redis_url``)."""
    server = _started()
    with server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """``redis://127.0.0.1:PORT/0`` of the session's server, flushed for this test."""
    if not redis_server.running:  # a test stopped it: bring it back
        redis_server.start()
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A private redis-server for this test, which it may ``stop()`` and ``start()`` again."""
    server = _started()
    with server:
        yield server
