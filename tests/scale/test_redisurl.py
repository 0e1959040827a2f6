"""The --redis URL is checked before anything starts, and an unusable Redis is one clear line."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsreader.errors import ConfigError, RedisUnavailable, UsageError
from newsreader.scale.redisurl import address, check_redis_url, connect
from tests.redisserver import RedisServer, free_port
from tests.webserver import LocalWeb


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://cache",
        "redis://cache:6379",
        "redis://cache/15",
        "redis://:pass@cache:6379/0",
        "redis://user:pass@cache:6379/0",
        "rediss://cache.example.com:6380/1",
        "redis://[::1]:6379/0",
        "unix:///run/redis/redis.sock",
        "unix:///run/redis/redis.sock?db=2",
        "REDIS://cache:6379/0",
    ],
)
def test_good_urls_pass_unchanged(url: str) -> None:
    assert check_redis_url(f"  {url} ") == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://x", r"^--redis must be a redis://HOST:PORT/DB URL .*, not 'http://x'\.$"),
        ("cache:6379", r"^--redis must be a redis://HOST:PORT/DB URL .*, not 'cache:6379'\.$"),
        ("", r"^--redis must be .*, not ''\.$"),
        ("redis:///0", r"^--redis 'redis:///0' names no host: use redis://HOST:PORT/DB\.$"),
        ("redis://:6379/0", r"names no host"),
        ("redis://cache:99999/0", r"has a bad port '99999': use a number from 1 to 65535"),
        ("redis://cache:0/0", r"has a bad port '0'"),
        ("redis://cache:abc/0", r"has a bad port 'abc'"),
        ("redis://cache:6379/x", r"has a bad database number 'x': use a number such as 0"),
        ("redis://cache:6379/-1", r"has a bad database number '-1'"),
        ("redis://cache:6379/٣", r"has a bad database number '٣'"),
        ("redis://cache:6379/0/1", r"has a path after the database number"),
        ("redis://cache:6379/0?db=1", r"gives the database number twice"),
        ("unix:///s.sock?db=a", r"has a bad database number 'a'"),
        ("unix://", r"names no socket: use unix:///path/to/redis\.sock"),
        ("redis://ca che:6379/0", r"has a blank or control character"),
        ("redis://cache\n:6379/0", r"has a blank or control character"),
        ("redis://[::1:6379/0", r"is not a URL"),
        ("redis://cache:6379/0#x", r"has a #fragment"),
    ],
)
def test_bad_urls_are_one_line_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        check_redis_url(url)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2


def test_a_password_is_never_shown() -> None:
    for url in (
        "redis://:hunter2@cache:99999/0",
        "redis://u:hunter2@cache/x",
        "http://u:hunter2@x",
    ):
        with pytest.raises(ConfigError) as caught:
            check_redis_url(url)
        assert "hunter2" not in str(caught.value)
        assert "***" in str(caught.value)


def test_address_names_host_and_port() -> None:
    assert address("redis://cache/0") == "cache:6379"
    assert address("redis://:p@[::1]:7000/0") == "[::1]:7000"
    assert address("unix:///run/redis.sock?db=1") == "/run/redis.sock"


def test_connect_answers_ping(redis_url: str) -> None:
    async def run() -> bytes | str | None:
        client = await connect(redis_url)
        try:
            await client.set("newsreader:probe", "1")
            return await client.get("newsreader:probe")
        finally:
            await client.aclose()

    assert asyncio.run(run()) == b"1"


def _unavailable(url: str, timeout: float = 3.0) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(RedisUnavailable) as caught:
        asyncio.run(connect(url, timeout=timeout))
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.exit_code == 2 and caught.value.code == "redis_unavailable"
    return message, time.monotonic() - started


def test_a_stopped_server_is_connection_refused(own_redis_server: RedisServer) -> None:
    url = own_redis_server.url
    own_redis_server.stop()
    message, _ = _unavailable(url)
    assert message == (
        f"cannot use Redis at 127.0.0.1:{own_redis_server.port}: connection refused; start "
        "redis-server there or fix the host and port of --redis."
    )


def test_a_name_that_does_not_resolve_is_dns() -> None:
    message, _ = _unavailable("redis://no-such-host.invalid:6379/0")
    assert message.startswith("cannot use Redis at no-such-host.invalid:6379: ")
    assert "does not resolve (DNS)" in message


class RawServer:
    """Accepts connections on 127.0.0.1; answers each with ``reply`` once, or never (None)."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port: int = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn = self.listener.accept()[0]
            except TimeoutError:
                continue
            self.accepted.append(conn)
            if self.reply is not None:
                conn.sendall(self.reply)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for conn in self.accepted:
            conn.close()
        self.listener.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a half-open server)."""
    server = RawServer(None)
    yield server.port
    server.close()


def test_a_port_that_answers_in_another_protocol_is_named() -> None:
    server = RawServer(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    try:
        message, _ = _unavailable(f"redis://127.0.0.1:{server.port}/0", timeout=1.0)
    finally:
        server.close()
    assert message == (
        f"cannot use Redis at 127.0.0.1:{server.port}: what answers there does not speak Redis; "
        "check the port of --redis."
    )


def test_a_server_that_never_answers_times_out_in_time(silent_port: int) -> None:
    message, took = _unavailable(f"redis://127.0.0.1:{silent_port}/0", timeout=0.5)
    assert f"127.0.0.1:{silent_port}: no answer within 0.5 s (timeout)" in message
    assert took < 3.0


def test_tls_to_a_plain_server_fails_in_time(redis_server: RedisServer) -> None:
    message, took = _unavailable(f"rediss://127.0.0.1:{redis_server.port}/0", timeout=0.5)
    assert message.startswith(f"cannot use Redis at 127.0.0.1:{redis_server.port}: ")
    assert "redis:// for a server without TLS" in message
    assert took < 3.0


def test_a_wrong_or_missing_password_is_auth(own_redis_server: RedisServer) -> None:
    own_redis_server.command("CONFIG", "SET", "requirepass", "sekrit")
    port = own_redis_server.port
    for url in (f"redis://127.0.0.1:{port}/0", f"redis://:wrong@127.0.0.1:{port}/0"):
        message, _ = _unavailable(url)
        assert message.startswith(f"cannot use Redis at 127.0.0.1:{port}: it refused the password")
        assert message.endswith("put the right one in --redis as redis://:PASSWORD@HOST:PORT/DB.")
        assert "wrong" not in message

    async def with_password() -> bool:
        client = await connect(f"redis://:sekrit@127.0.0.1:{port}/0")
        try:
            return bool(await client.ping())
        finally:
            await client.aclose()

    assert asyncio.run(with_password())


def test_a_database_the_server_lacks_is_named(redis_server: RedisServer) -> None:
    message, _ = _unavailable(f"redis://127.0.0.1:{redis_server.port}/99")
    assert "DB index is out of range" in message


def test_something_that_is_not_redis_is_named(web: LocalWeb) -> None:
    message, _ = _unavailable(web.base.replace("http://", "redis://") + "/0")
    assert message == (
        f"cannot use Redis at {address(web.base.replace('http://', 'redis://'))}: it closed the "
        "connection without answering; is that port a Redis server (one with TLS needs "
        "rediss://)?"
    )


def test_a_missing_socket_is_named(tmp_path: Path) -> None:
    message, _ = _unavailable(f"unix://{tmp_path}/nope.sock")
    assert message.startswith(f"cannot use Redis at {tmp_path}/nope.sock: no such socket")


def test_a_free_port_is_refused() -> None:
    message, _ = _unavailable(f"redis://127.0.0.1:{free_port()}/0")
    assert "connection refused" in message


def test_a_client_carries_on_after_redis_restarts(own_redis_server: RedisServer) -> None:
    async def run() -> list[object]:
        client = await connect(own_redis_server.url)
        try:
            await client.set("newsreader:probe", "1")
            own_redis_server.restart()  # every pooled connection is now dead
            answers: list[object] = [await client.ping(), await client.get("newsreader:probe")]
            own_redis_server.stop()
            try:
                await client.ping()
            except Exception as error:  # down for good: it says so, and soon
                answers.append(type(error).__name__)
            return answers
        finally:
            await client.aclose()

    started = time.monotonic()
    assert asyncio.run(run()) == [True, None, "ConnectionError"]
    assert time.monotonic() - started < 5
