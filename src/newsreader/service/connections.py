"""Connections to the service: deadlines for slow clients, a cap on open connections, quiet logs.

uvicorn (h11) closes idle keep-alive connections, but a connection that sends half a request head,
or a body a byte a minute, is kept forever; a few hundred of them use up the process's file
descriptors, and then every accept fails and is logged. ``GuardedH11Protocol`` adds:

- a deadline for the request head (``header_timeout``), from the connection's start or the first
  byte of a following request; a trickle of bytes does not extend it;
- a deadline for the request body (``body_timeout``), from the end of the head;
- a cap on open connections (``max_connections``, kept below the file-descriptor limit): past it,
  the connection that has waited longest without a request in progress is closed for the new one,
  and if every connection is busy the new one gets a 503;
- one log line per kind of event per ``LOG_EVERY`` seconds, with a count, instead of one a
  connection.

``server_config`` builds the uvicorn configuration ``newsreader serve`` runs (and tests start).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from newsreader.errors import UsageError
from newsreader.service.config import ServiceConfig

log = logging.getLogger("newsreader.service.connections")

LOG_EVERY = 10.0
"""Seconds between two log lines about the same kind of event."""
FD_RESERVE = 128
"""File descriptors kept for everything but client connections (fetches, voice, SQLite, files)."""


def _response(status: str, code: str, message: str, *extra: str) -> bytes:
    body = f'{{"error":{{"code":"{code}","message":"{message}"}}}}'.encode()
    head = [
        f"HTTP/1.1 {status}",
        "content-type: application/json",
        "connection: close",
        *extra,
        f"content-length: {len(body)}",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


_TIMEOUT_408 = _response(
    "408 Request Timeout", "request_timeout", "the request was not sent in time; send it again."
)
_BUSY_503 = _response(
    "503 Service Unavailable",
    "too_many_connections",
    "the server has too many connections open; try again shortly.",
    "retry-after: 5",
)


class _Throttle(logging.Filter):
    """Lets each warning of ``uvicorn.error`` through at most once per ``LOG_EVERY`` seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[object, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.levelno >= logging.ERROR:
            return True
        now = time.monotonic()
        if now - self.last.get(record.msg, -LOG_EVERY) < LOG_EVERY:
            return False
        self.last[record.msg] = now
        return True


def throttle_server_warnings() -> None:
    """One "Invalid HTTP request received." (and the like) per ``LOG_EVERY``, not one a request."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _Throttle) for f in logger.filters):
        logger.addFilter(_Throttle())


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 512


class ThrottledLog:
    """Counts events of one kind and logs them at most once per ``LOG_EVERY`` seconds."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.count = 0
        self.logged_at = -LOG_EVERY

    def event(self) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.logged_at >= LOG_EVERY:
            log.warning("%s (%d since the last report)", self.message, self.count)
            self.count, self.logged_at = 0, now


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with head and body deadlines and a connection cap."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()
    slow_head: ClassVar[ThrottledLog]
    slow_body: ClassVar[ThrottledLog]
    evicted: ClassVar[ThrottledLog]
    refused: ClassVar[ThrottledLog]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = "head"  # head: waiting for a request head; body; busy: app at work
        self._waiting_since = time.monotonic()
        self._bytes_in_head = 0

    # -- connection life --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self._make_room():
            self.refused.event()
            self.connections.discard(self)
            transport.write(_BUSY_503)
            transport.close()
            return
        self._arm(self.limits.header_timeout, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == "head":
            if self._deadline is None:  # the first byte of a following request
                self._waiting_since = time.monotonic()
                self._arm(self.limits.header_timeout, self._head_late)
            self._bytes_in_head += len(data)
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    # -- deadlines ---------------------------------------------------------------------------

    def _follow(self) -> None:
        """Move the deadline to the request's current phase."""
        if self.transport is None or self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE and (self.cycle is None or self.cycle.response_complete):
            if self._phase != "head":  # the response is done: keep-alive (uvicorn's timer)
                self._phase = "head"
                self._disarm()
                self._waiting_since = time.monotonic()
                self._bytes_in_head = 0
        elif state is h11.SEND_BODY:
            if self._phase != "body":
                self._phase = "body"
                self._arm(self.limits.body_timeout, self._body_late)
        elif self._phase != "busy":
            self._phase = "busy"
            self._disarm()

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_late(self) -> None:
        self._deadline = None
        if self._phase != "head" or self.transport.is_closing():
            return
        self.slow_head.event()
        if self._bytes_in_head:
            self.transport.write(_TIMEOUT_408)
        self.transport.close()

    def _body_late(self) -> None:
        self._deadline = None
        if self._phase != "body" or self.transport.is_closing():
            return
        self.slow_body.event()
        if self.cycle is not None and not self.cycle.response_started:
            self.transport.write(_TIMEOUT_408)
        self.transport.close()  # the app's receive() gets http.disconnect

    # -- the cap -----------------------------------------------------------------------------

    def _make_room(self) -> bool:
        """Close the connection that has waited longest for a request head; False if none."""
        waiting = [
            c
            for c in self.connections
            if isinstance(c, GuardedH11Protocol)
            and c is not self
            and c._phase == "head"
            and not c.transport.is_closing()
        ]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c._waiting_since)
        self.evicted.event()
        oldest._disarm()
        oldest.connections.discard(oldest)
        oldest.transport.close()
        return True


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """A protocol class with these limits and its own log counters (one per server)."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {
            "limits": limits,
            "slow_head": ThrottledLog(
                f"closed connections that sent no complete request head in "
                f"{limits.header_timeout:g} s"
            ),
            "slow_body": ThrottledLog(
                f"closed connections that sent no complete body in {limits.body_timeout:g} s"
            ),
            "evicted": ThrottledLog(
                f"{limits.max_connections} connections open: closed the longest-idle ones"
            ),
            "refused": ThrottledLog(
                f"{limits.max_connections} connections open, all busy: refused new ones (503)"
            ),
        },
    )


def ensure_descriptors(max_connections: int, other: int = 0) -> int:
    """Raise the soft open-files limit if ``max_connections`` needs it; the limit in force.

    ``other``: descriptors the process holds beside client connections and ``FD_RESERVE``
    (an API node's Redis connections). ``UsageError`` if even the hard limit is too low: the
    cap must stay below it, or accepting fails with "Too many open files" before the cap is
    reached.
    """
    needed = max_connections + other + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard == resource.RLIM_INFINITY or hard >= needed:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
            soft = needed
        else:
            room = max(1, hard - other - FD_RESERVE)
            raise UsageError(
                f"--max-connections {max_connections} needs {needed} open files, but the limit "
                f"is {hard} (ulimit -n): lower --max-connections to {room} "
                "or less, or raise the limit."
            )
    return soft


def server_config(app: Any, config: ServiceConfig, host: str, port: int) -> uvicorn.Config:
    """The uvicorn configuration of ``newsreader serve``."""
    limits = ConnectionLimits(config.header_timeout, config.body_timeout, config.max_connections)
    throttle_server_warnings()
    trusted = list(config.forwarded_allow_ips)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(limits),
        ws="none",
        lifespan="on",
        log_level="info",
        timeout_keep_alive=max(1, round(config.keep_alive)),
        # X-Forwarded-For/-Proto are believed only from the proxies named; by default from none,
        # so a client cannot pick the address the rate limit and the per-client share see.
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or [],
        server_header=False,
    )
