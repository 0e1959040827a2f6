"""The one place newsreader talks HTTP to fetch pages and feeds.

Every fetch is bounded: http(s) only, a size cap, a redirect cap, a timeout on each step (connect,
each read, each write) and an overall deadline for the whole fetch, redirects included. The
deadline is enforced on the socket: every read and write waits at most until the deadline, so a
server that drips one byte a second is cut off when the deadline passes and the blocking call
returns by itself; nothing is left running in the background.

Names are resolved once per connection, by ``resolve`` (a ``ConnectGuard`` may replace it), and
the connection goes to exactly the addresses that resolution returned. TLS still verifies the
certificate for the URL's host name and sends it as SNI, and the Host header is the URL's. The
service's guard checks those addresses before connecting (SSRF), so a name that answers
differently on a second lookup (DNS rebinding) never gets a connection to the second answer.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from newsreader._version import __version__
from newsreader.errors import SourceError

if TYPE_CHECKING:
    import httpcore
    import httpx

USER_AGENT = f"newsreader/{__version__} (+read-aloud for Mandarin news)"
MAX_REDIRECTS = 5
DEADLINE_FACTOR = 3
"""Without an explicit ``total``, a fetch may take this many step timeouts in all."""

UrlGuard = Callable[[str], None]
"""Called with every URL before connecting (the first and each redirect); raises to refuse it."""

Resolve = Callable[[str, int], Sequence[str]]
"""``(host, port) -> addresses`` to connect to, in order; raises ``SourceError`` to refuse."""

_RESOLVERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="newsreader-resolve")
"""Name lookups run here so that a fetch can stop waiting for one at its deadline."""


class ConnectGuard:
    """A ``UrlGuard`` that also chooses the addresses each connection goes to.

    ``fetch`` calls it with every URL (syntax checks) and then, once per new connection,
    ``addresses(host, port)``: the connection goes only to the addresses returned. ``total`` bounds
    the whole fetch when set.
    """

    total: float | None = None

    def __call__(self, url: str) -> None:
        check_url(url)

    def addresses(self, host: str, port: int) -> Sequence[str]:
        return system_addresses(host, port)


@dataclass(frozen=True)
class Fetched:
    url: str
    """The final URL, after redirects."""
    content: bytes
    content_type: str
    charset: str | None


def system_addresses(host: str, port: int) -> list[str]:
    """The system resolver's addresses for ``host`` (a literal address is returned as is)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise SourceError(f"cannot resolve {host}: {exc}; check the address.") from None
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def shown(text: str, limit: int = 200) -> str:
    """``text`` for a one-line message: control characters escaped, long text cut."""
    cleaned = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text[:limit])
    return cleaned + ("…" if len(text) > limit else "")


def _valid_host(host: str) -> bool:
    if ":" in host:  # an IPv6 literal, already checked by httpx
        return True
    return all(c.isalnum() or c in ".-_" for c in host) and not host.startswith(".")


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL that can be fetched, else ``SourceError`` saying why.

    The URL is parsed the way the fetch will parse it (httpx), so anything it would choke on
    (a bad IPv6 literal, a bad port, control characters, an invalid international name) is
    refused here with one line instead of failing later.
    """
    import httpx

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a bad port
        parsed = httpx.URL(url)
        host, raw_host = parsed.host, parsed.raw_host.decode("ascii")
    except (ValueError, UnicodeError, httpx.InvalidURL) as exc:
        raise SourceError(f"{shown(url)} is not a valid address ({shown(str(exc))}).") from None
    if parts.scheme not in ("http", "https"):
        raise SourceError(
            f"unsupported URL scheme {parts.scheme!r} in {shown(url)}: "
            "use an http:// or https:// address."
        )
    if not parts.hostname or not host:
        raise SourceError(
            f"{shown(url)} has no host name: give a full address such as https://example.com/a."
        )
    if not _valid_host(raw_host):
        raise SourceError(f"{shown(url)} has an invalid host name: check the address.")
    return url


def _redirect_target(response: httpx.Response, current: str) -> str:
    import httpx

    location = response.headers.get("location")
    if not location:
        raise SourceError(f"{shown(current)} redirected without a Location header.")
    try:
        given = httpx.URL(location)
        if given.scheme and not given.host:  # "http:\\host/": browsers guess, httpx refuses
            raise ValueError("a scheme without a host")
        return check_url(str(response.url.join(given)))
    except (ValueError, UnicodeError, httpx.InvalidURL, SourceError):
        raise SourceError(
            f"the page {shown(current)} redirected to an invalid address "
            f"({shown(location)}): ask its site to fix the link, or paste the article's text."
        ) from None


def _check_redirect(response: httpx.Response) -> None:
    if response.is_redirect:
        _redirect_target(response, str(response.url))


def fetch(
    url: str,
    *,
    timeout: float = 20.0,
    max_bytes: int = 5_000_000,
    guard: UrlGuard | None = None,
    total: float | None = None,
    resolve: Resolve | None = None,
    cap: str = "limit for one article.",
) -> Fetched:
    """GET ``url`` following up to five redirects; raise ``SourceError`` with a one-line reason.

    ``timeout`` bounds each step; ``total`` (default ``DEADLINE_FACTOR`` × ``timeout``, or the
    guard's) bounds the whole fetch. ``resolve`` replaces DNS (a ``ConnectGuard`` brings its own).
    ``cap`` ends the message when the body is over ``max_bytes`` (what the limit is for).
    """
    # Imported here: httpx costs 0.15 s at start-up, and only a URL source needs it.
    import httpx

    pinned = isinstance(guard, ConnectGuard)
    if isinstance(guard, ConnectGuard):
        resolve = guard.addresses
        total = guard.total if guard.total is not None else total
    seconds = total if total is not None else DEADLINE_FACTOR * timeout
    deadline = time.monotonic() + seconds
    check_url(url)
    current = url
    try:
        with httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept-Language": "zh-CN,zh;q=0.9"},
            transport=_transport(resolve or system_addresses, deadline, proxies=not pinned),
            # Runs before httpx parses the Location itself, to say in one line what is wrong.
            event_hooks={"response": [_check_redirect]},
        ) as client:
            for _ in range(MAX_REDIRECTS + 1):
                if guard is not None:
                    guard(current)
                with client.stream("GET", current) as response:
                    if response.is_redirect:
                        current = _redirect_target(response, current)
                        continue
                    if response.status_code >= 400:
                        raise SourceError(
                            f"HTTP {response.status_code} {shown(response.reason_phrase, 60)} "
                            f"fetching {shown(current)}: check the address or try again later."
                        )
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise SourceError(
                            f"{shown(current)} is {int(declared):,} bytes, over the "
                            f"{max_bytes:,}-byte {cap}"
                        )
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body.extend(chunk)
                        if len(body) > max_bytes:
                            raise SourceError(
                                f"{shown(current)} is over the {max_bytes:,}-byte {cap}"
                            )
                        if time.monotonic() > deadline:
                            raise httpx.ReadTimeout("deadline")
                    content_type = response.headers.get("content-type", "")
                    return Fetched(
                        url=current,
                        content=bytes(body),
                        content_type=content_type.split(";")[0].strip().lower(),
                        charset=response.charset_encoding,
                    )
            raise SourceError(f"{shown(url)} redirected more than {MAX_REDIRECTS} times.")
    except httpx.TimeoutException:
        if time.monotonic() >= deadline - 0.05:
            raise SourceError(
                f"fetching {shown(current)} took longer than {seconds:g} s in all: "
                "the site is too slow."
            ) from None
        raise SourceError(
            f"timed out after {timeout:g} s fetching {shown(current)}: "
            "the site is slow or unreachable."
        ) from None
    except httpx.TransportError as exc:
        reason = shown(str(exc)) or type(exc).__name__
        raise SourceError(f"could not fetch {shown(current)}: {reason}.") from None
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, UnicodeError) as exc:
        reason = shown(str(exc)) or type(exc).__name__
        raise SourceError(f"could not fetch {shown(current)}: {reason}.") from None


# -- the connections: one resolution, checked addresses, a deadline on every socket call ----------


def _remaining(deadline: float, timeout: float | None) -> float:
    left = deadline - time.monotonic()
    return max(0.0, left if timeout is None else min(timeout, left))


def _lookup(resolve: Resolve, host: str, port: int, deadline: float) -> Sequence[str]:
    """``resolve(host, port)``, waited for at most until the deadline."""
    import httpcore

    future = _RESOLVERS.submit(resolve, host, port)
    try:
        return future.result(timeout=_remaining(deadline, None))
    except FutureTimeout:
        future.cancel()  # a lookup already running ends by itself (the resolver's own timeout)
        raise httpcore.ConnectTimeout(f"resolving {host} took too long") from None


def _network_backend(resolve: Resolve, deadline: float) -> httpcore.NetworkBackend:
    import httpcore

    class Stream(httpcore.NetworkStream):
        def __init__(self, inner: httpcore.NetworkStream) -> None:
            self.inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            left = _remaining(deadline, timeout)
            if left <= 0:
                raise httpcore.ReadTimeout("deadline")
            return self.inner.read(max_bytes, left)

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            left = _remaining(deadline, timeout)
            if left <= 0:
                raise httpcore.WriteTimeout("deadline")
            self.inner.write(buffer, left)

        def close(self) -> None:
            self.inner.close()

        def start_tls(
            self,
            ssl_context: Any,
            server_hostname: str | None = None,
            timeout: float | None = None,
        ) -> httpcore.NetworkStream:
            left = _remaining(deadline, timeout)
            if left <= 0:
                raise httpcore.ConnectTimeout("deadline")
            return Stream(self.inner.start_tls(ssl_context, server_hostname, left))

        def get_extra_info(self, info: str) -> Any:
            return self.inner.get_extra_info(info)

    class Backend(httpcore.SyncBackend):
        def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore.NetworkStream:
            # One lookup per connection; the connection goes to what it returned, never to a
            # second answer for the same name.
            addresses = _lookup(resolve, host, port, deadline)
            if not addresses:
                raise httpcore.ConnectError(f"{host} has no addresses")
            error: Exception | None = None
            for address in addresses:
                left = _remaining(deadline, timeout)
                if left <= 0:
                    raise httpcore.ConnectTimeout("deadline")
                try:
                    stream = super().connect_tcp(address, port, left, local_address, socket_options)
                except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                    error = exc
                    continue
                return Stream(stream)
            assert error is not None
            raise error

    return Backend()


def _transport(resolve: Resolve, deadline: float, *, proxies: bool) -> httpx.BaseTransport:
    """An httpx transport whose connections use ``_network_backend``. Proxies from the
    environment are used only when ``proxies``: through a proxy, the proxy resolves the name, and
    a guard's address check would be moot, so guarded fetches connect directly."""
    import httpx

    backend = _network_backend(resolve, deadline)
    environment = urllib.request.getproxies() if proxies else {}

    def made(proxy: str | None = None) -> httpx.HTTPTransport:
        transport = httpx.HTTPTransport(proxy=proxy, trust_env=True)
        # httpx has no public setting for httpcore's network backend; its pool (a
        # ConnectionPool or a proxy pool) takes one and uses it for every new connection.
        transport._pool._network_backend = backend
        return transport

    class Router(httpx.BaseTransport):
        def __init__(self) -> None:
            self.direct = made()
            self.proxied: dict[str, httpx.HTTPTransport] = {}

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            proxy = environment.get(request.url.scheme) or environment.get("all")
            if not proxy or urllib.request.proxy_bypass(request.url.host):
                return self.direct.handle_request(request)
            if proxy not in self.proxied:
                self.proxied[proxy] = made(proxy)
            return self.proxied[proxy].handle_request(request)

        def close(self) -> None:
            self.direct.close()
            for transport in self.proxied.values():
                transport.close()

    return Router()
