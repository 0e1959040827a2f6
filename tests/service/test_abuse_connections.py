"""Slow and half-open connections on a real server: heads and bodies have deadlines, open
connections are capped below the file limit, the log stays quiet, and forwarded headers are
believed only from configured proxies."""

from __future__ import annotations

import json
import logging
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from newsreader.service.app import create_app
from newsreader.service.connections import server_config
from tests.service.conftest import make_config


def get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(base + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post(base: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(
        base + "/api/readings",
        data=body,
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[str]:
    """The service on uvicorn as ``newsreader serve`` configures it, with small limits."""
    config = make_config(tmp_path, header_timeout=0.5, body_timeout=0.5, max_connections=50)
    server = uvicorn.Server(server_config(create_app(config), config, "127.0.0.1", 0))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing, or None if it is still open after ``seconds``."""
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return data


def test_half_open_connections_are_closed_and_capped(
    guarded: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = int(guarded.rsplit(":", 1)[1])
    caplog.set_level(logging.WARNING)
    half_open = []
    try:
        for n in range(300):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            if n % 2:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # unfinished head
            half_open.append(sock)
        # A normal request still gets through, at once.
        start = time.monotonic()
        status, body = get(guarded, "/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert time.monotonic() - start < 1.0
        # Every half-open connection is closed: the oldest to make room, the rest at the
        # head deadline; one that sent part of a head is told 408.
        answers = [closed_within(sock, 3.0) for sock in half_open]
        assert all(answer is not None for answer in answers)
        timed_out = [a for a in answers if a]
        assert timed_out and all(a.startswith(b"HTTP/1.1 408 ") for a in timed_out)
    finally:
        for sock in half_open:
            sock.close()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 6, [r.getMessage() for r in warnings]  # counted, not one a socket


def test_a_body_sent_too_slowly_is_cut_off(guarded: str) -> None:
    port = int(guarded.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"text": "'
        )
        start = time.monotonic()
        answer = closed_within(sock, 3.0)
        assert answer is not None and answer.startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - start < 1.5


def test_a_keep_alive_connection_cannot_drip_its_next_request(guarded: str) -> None:
    port = int(guarded.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        start = time.monotonic()
        for byte in b"GET /healthz HTTP/1.1\r\n":  # a byte every 0.1 s, never finished
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.1)
        assert closed_within(sock, 3.0) is not None
        assert time.monotonic() - start < 3.0


# -- the real command, in its own process, with a low open-files limit ----------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_newsreader_serve_survives_300_half_open_connections_and_ignores_spoofed_headers(
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

    def low_limit() -> None:  # 256 open files, as on a small deployment
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    command = [sys.executable, "-m", "newsreader", "serve", "--port", str(port)]
    command += ["--data", str(tmp_path / "data"), "--engine", "espeak", "--rate-limit", "30"]
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=low_limit,
        env={**os.environ, "FORWARDED_ALLOW_IPS": "127.0.0.1"},
    )
    half_open: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(base, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, Path(log.name).read_text()
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.1)
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            half_open.append(sock)
        time.sleep(0.5)
        assert get(base, "/healthz")[0] == 200
        for sock in half_open:
            sock.close()
        # X-Forwarded-For from loopback is not believed: the burst of 10 is the peer's.
        statuses = [post(base, b"{}", {"X-Forwarded-For": f"198.51.100.{n}"}) for n in range(1, 13)]
        assert statuses[:10] == [422] * 10 and statuses[10:] == [429, 429]
    finally:
        for sock in half_open:
            sock.close()
        process.terminate()
        process.wait(timeout=15)
        log.seek(0)
        output = log.read()
        log.close()
    assert "Too many open files" not in output
    assert len(output.splitlines()) < 40, output[-3000:]
