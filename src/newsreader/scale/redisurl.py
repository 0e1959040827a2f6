"""The ``--redis`` URL: its form checked without I/O, and a connection that answers PING.

    check_redis_url("redis://cache:6379/0")      # the URL, stripped; ConfigError if malformed
    redis = await connect(url, timeout=3.0)       # RedisUnavailable (one line) if not reachable

Accepted forms are redis-py's: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…``
(TLS) and ``unix://[[user]:password@]/path/to/socket[?db=N]``. Messages never repeat a password.
redis-py is imported only when a connection is made: ``newsreader --help`` stays light.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, parse_qs, urlsplit

from newsreader.errors import ConfigError, RedisUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis

SCHEMES = ("redis", "rediss", "unix")
DEFAULT_PORT = 6379
RETRIES = 3
"""A command that meets a closed connection (Redis restarted, a proxy timed it out) is sent
again on a new one this many times, with a jittered back-off from 50 ms up to 1 s."""
FORM = "a redis://HOST:PORT/DB URL (rediss:// for TLS, unix:///path/to/socket for a socket)"


def shown(url: str) -> str:
    """``url`` as a message may show it: a password in it becomes ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return repr(url) if "@" not in url else repr("…@" + url.rpartition("@")[2])
    if parts.password is None:
        return repr(url)
    user = parts.username or ""
    return repr(parts._replace(netloc=f"{user}:***@{parts.netloc.rpartition('@')[2]}").geturl())


def check_redis_url(url: str) -> str:
    """``url`` without surrounding blanks if it is a Redis URL redis-py can use; no I/O.

    Raises ``ConfigError`` (one line) for another scheme, a missing host or socket path, a bad
    port, a bad database number, or blanks and control characters inside.
    """
    cleaned = url.strip()
    scheme = cleaned.partition("://")[0].lower() if "://" in cleaned else ""
    if scheme not in SCHEMES:
        raise ConfigError(f"--redis must be {FORM}, not {shown(url)}.")
    if any(c.isspace() or not c.isprintable() for c in cleaned):
        raise ConfigError(f"--redis {shown(url)} has a blank or control character in it.")
    try:
        parts = urlsplit(cleaned)
    except ValueError as error:  # an unclosed [ of an IPv6 address
        raise ConfigError(f"--redis {shown(url)} is not a URL ({error}): use {FORM}.") from None
    if parts.fragment:
        raise ConfigError(f"--redis {shown(url)} has a #fragment: use {FORM}.")
    if scheme == "unix":
        if not parts.path or parts.path == "/":
            raise ConfigError(
                f"--redis {shown(url)} names no socket: use unix:///path/to/redis.sock."
            )
        db = None
    else:
        _check_host_and_port(url, parts)
        db = parts.path.strip("/") or None
        if db is not None and "/" in db:
            raise ConfigError(f"--redis {shown(url)} has a path after the database number.")
    query = parse_qs(parts.query, keep_blank_values=True)
    if "db" in query:
        if db is not None or len(query["db"]) > 1:
            raise ConfigError(f"--redis {shown(url)} gives the database number twice.")
        db = query["db"][0]
    if db is not None and not (db.isascii() and db.isdigit() and int(db) < 2**31):
        raise ConfigError(
            f"--redis {shown(url)} has a bad database number {db!r}: use a number such as 0 "
            "(redis://HOST:PORT/0)."
        )
    return cleaned


def _check_host_and_port(url: str, parts: SplitResult) -> None:
    if not parts.hostname:
        raise ConfigError(f"--redis {shown(url)} names no host: use redis://HOST:PORT/DB.")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        text = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        raise ConfigError(
            f"--redis {shown(url)} has a bad port {text!r}: use a number from 1 to 65535 "
            f"(Redis listens on {DEFAULT_PORT} unless told otherwise)."
        )


def address(url: str) -> str:
    """Where ``url`` points, for messages: ``host:port`` or the socket's path."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port or DEFAULT_PORT}"


async def connect(
    url: str,
    *,
    timeout: float = 3.0,
    decode_responses: bool = False,
    max_connections: int | None = None,
    pool_timeout: float = 5.0,
) -> Redis:
    """A client for ``url`` that has answered PING within ``timeout`` seconds.

    The client reconnects by itself: a command that meets a dead connection is sent again on a
    new one (``RETRIES`` times), so a Redis restart costs callers nothing but the wait.
    ``max_connections``: the pool's size, never more connections; a command that finds them
    all busy waits for one up to ``pool_timeout`` seconds, then fails with a
    ``ConnectionError``. None: redis-py's own pool (100, and past it commands fail at once).

    Raises ``ConfigError`` for a malformed URL and ``RedisUnavailable`` (one line naming
    host:port, why, and what to do) when the server refuses, cannot be resolved, does not answer
    in time, wants a (different) password or does not speak Redis.
    """
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialWithJitterBackoff

    cleaned = check_redis_url(url)
    options = {
        "socket_connect_timeout": timeout,
        "decode_responses": decode_responses,
        # a URL's client has no retry of its own: after Redis restarts, every pooled
        # connection would fail its next command once
        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), RETRIES),
    }
    client: Redis
    if max_connections is None:
        client = Redis.from_url(cleaned, **options)  # type: ignore[arg-type]
    else:
        pool = BlockingConnectionPool.from_url(
            cleaned, max_connections=max_connections, timeout=pool_timeout, **options
        )
        client = Redis.from_pool(pool)
    try:
        async with asyncio.timeout(timeout):
            await client.ping()
    except Exception as error:
        await client.aclose()
        raise RedisUnavailable(_unreachable(cleaned, error, timeout)) from None
    except BaseException:  # cancelled from outside: close, and let the cancellation through
        await client.aclose()
        raise
    return client


def _unreachable(url: str, error: BaseException, timeout: float) -> str:
    from redis import exceptions

    where = f"cannot use Redis at {address(url)}"
    causes = [error, error.__cause__, error.__context__]
    if isinstance(error, exceptions.AuthenticationError) or "NOAUTH" in str(error):
        return (
            f"{where}: it refused the password ({_first_line(error)}); put the right one in "
            "--redis as redis://:PASSWORD@HOST:PORT/DB."
        )
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return (
            f"{where}: connection refused; start redis-server there or fix the host and port "
            "of --redis."
        )
    if any(isinstance(c, socket.gaierror) for c in causes):
        return f"{where}: the host name does not resolve (DNS); check the host of --redis."
    if any(isinstance(c, FileNotFoundError) for c in causes):
        return f"{where}: no such socket; start redis-server with that unixsocket or fix --redis."
    if any(isinstance(c, ssl.SSLError) for c in causes):
        return (
            f"{where}: the TLS handshake failed ({_first_line(error)}); use redis:// for a "
            "server without TLS or check its certificate."
        )
    if any(isinstance(c, TimeoutError | exceptions.TimeoutError) for c in causes):
        return (
            f"{where}: no answer within {timeout:g} s (timeout); check the host, the port and "
            "any firewall between, or use redis:// for a server without TLS."
        )
    if "closed by server" in str(error):
        return (
            f"{where}: it closed the connection without answering; is that port a Redis server "
            "(one with TLS needs rediss://)?"
        )
    if isinstance(error, exceptions.InvalidResponse):
        return f"{where}: what answers there does not speak Redis; check the port of --redis."
    if isinstance(error, exceptions.ResponseError):
        return f"{where}: the server said {_first_line(error)!r}; check the database number."
    return f"{where}: {_first_line(error) or type(error).__name__}; check --redis."


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""
