"""What keeps the service safe to expose: SSRF guard, rate limit, origins, body size, headers.

SSRF. A URL source is fetched by the service, so a caller could aim it at the service's own
network (the cloud metadata endpoint, an admin page on loopback, a database on 10.x). Before every
connection (the first URL and each redirect, through ``sources.fetch``'s ``guard`` hook) the host
is resolved with getaddrinfo and refused if ANY of its addresses is not a public unicast address:
loopback, private, link-local (169.254.169.254 among them), shared (100.64/10, where Alibaba's
metadata lives), reserved, multicast, unspecified, and IPv6 forms that embed such an IPv4 address.
``allow_addresses`` lifts the refusal for named networks (tests, an intranet).

DNS rebinding. The worker's guard is a ``ConnectGuard``: ``sources.fetch`` asks it once per new
connection for the addresses to connect to, and connects only to those, after they were checked
(TLS still verifies the certificate for the URL's name). A name that answers with a public
address to the check and a private one to a second lookup never gets a connection to the second
answer: there is no second lookup.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsreader.errors import SourceError
from newsreader.service.config import Network
from newsreader.service.errors import send_json_error
from newsreader.sources.fetch import ConnectGuard, UrlGuard, check_url, system_addresses

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""``(host, port) -> addresses``; the one DNS seam (tests may answer for names they make up)."""

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
"""Cloud metadata endpoints (AWS, ECS, Alibaba, AWS IPv6): refused even when allow-listed."""
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(SourceError):
    """A URL source points at an address the service must not connect to."""

    code = "url_not_allowed"


def system_resolver(host: str, port: int) -> list[str]:
    return system_addresses(host, port)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def why_refused(address: Address, allowed: Sequence[Network] = ()) -> str | None:
    """None if the service may connect to ``address``, else what kind of address it is."""
    if isinstance(address, ipaddress.IPv6Address):
        address = address.ipv4_mapped or address
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if any(address in network for network in allowed):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None and (reason := why_refused(inner, allowed)) is not None:
            return reason
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for refused, reason in checks if refused), None)


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses URL sources may resolve to."""

    allowed: tuple[Network, ...] = ()
    resolver: Resolver = system_resolver
    fetch_deadline: float | None = None
    """The overall deadline of each fetch made through ``guard()`` (None: fetch's default)."""

    def check_url(self, url: str) -> None:
        """Raise ``SourceError`` (``AddressRefused`` for a refused address) unless url is safe."""
        check_url(url)
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self.addresses(parts.hostname or "", port)

    def addresses(self, host: str, port: int) -> list[str]:
        """``host``'s addresses, resolved once, if every one of them may be connected to."""
        try:
            literal: Address | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        addresses = [str(literal)] if literal is not None else list(self.resolver(host, port))
        if not addresses:
            raise SourceError(f"cannot resolve {host}: no addresses; check the address.")
        for text in addresses:
            try:
                address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
            except ValueError:
                raise SourceError(f"cannot resolve {host}: bad address {text!r}.") from None
            reason = why_refused(address, self.allowed)
            if reason is not None:
                raise AddressRefused(
                    f"{host} resolves to {address}, {reason}: the service only reads pages on "
                    "public addresses. Paste the article's text instead."
                )
        return addresses

    def guard(self) -> UrlGuard:
        """The hook ``sources.fetch`` calls with every URL, redirects included; it also picks
        the (checked) addresses of every connection the fetch makes."""
        return _PinnedGuard(self)


class _PinnedGuard(ConnectGuard):
    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self.total = policy.fetch_deadline

    def addresses(self, host: str, port: int) -> list[str]:
        return self.policy.addresses(host, port)


# -- rate limit -------------------------------------------------------------------------------


class RateLimiter:
    """A token bucket per client: ``per_minute`` requests a minute, bursts of ``burst``."""

    def __init__(
        self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def take(self, client: str) -> float | None:
        """None if ``client`` may go ahead (one token taken), else seconds until it may."""
        if self.rate <= 0:
            return None
        now = self.clock()
        tokens, at = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens - 1.0, now)
        if len(self._buckets) > 10_000:
            self._forget(now)
        return None

    def _forget(self, now: float) -> None:
        """Drop the buckets that have refilled: those clients are back to a full burst anyway."""
        full = self.burst / self.rate
        for client, (_, at) in list(self._buckets.items()):
            if now - at > full:
                del self._buckets[client]


# -- ASGI middleware --------------------------------------------------------------------------

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
DATA_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"

_CROSS_ORIGIN_PREFIXES = ("/api/", "/widget.js", "/static/widget", "/feed.xml")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class SecurityHeaders:
    """Safe headers on every response; a strict CSP on pages, a relaxed one for /docs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(("/docs", "/redoc")):
            csp = DOCS_CSP
        elif path == "/" or path.startswith(("/static/", "/readings/")):
            csp = PAGE_CSP
        else:
            csp = DATA_CSP
        corp = "cross-origin" if path.startswith(_CROSS_ORIGIN_PREFIXES) else "same-origin"
        extra = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
            (b"cross-origin-resource-policy", corp.encode()),
        ]
        if corp == "same-origin":
            extra.append((b"cross-origin-opener-policy", b"same-origin"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {key.lower() for key, _ in message.get("headers", [])}
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in extra if k not in names
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Origins:
    """CORS for the allowed origins, and no state-changing request from any other origin.

    A preflight from an allowed origin gets its answer; from another origin a 403 JSON error.
    A POST whose ``Origin`` is neither allowed nor the service's own is refused (403), so a page
    elsewhere cannot make visitors' browsers submit work with a "simple" form post.
    """

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = frozenset(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is None or (origin == "null" and scope["method"] in ("GET", "HEAD")):
            await self.app(scope, receive, send)
            return
        allowed = origin in self.allowed
        same = self._same_site(origin, scope)
        method = scope["method"]
        if method == "OPTIONS" and _header(scope, b"access-control-request-method"):
            if not allowed:
                await send_json_error(
                    send,
                    403,
                    "origin_not_allowed",
                    f"pages on {origin} may not use this service: ask its operator to add the "
                    "origin with --allow-origin.",
                    {"Vary": "Origin"},
                )
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        (b"access-control-allow-origin", origin.encode("latin-1")),
                        (b"access-control-allow-methods", b"GET, HEAD, POST, OPTIONS"),
                        (b"access-control-allow-headers", b"Authorization, Content-Type, Range"),
                        (b"access-control-max-age", b"600"),
                        (b"vary", b"Origin"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if method not in ("GET", "HEAD", "OPTIONS") and not (allowed or same):
            await send_json_error(
                send,
                403,
                "origin_not_allowed",
                f"requests from pages on {origin} are not accepted: ask the service's operator "
                "to add the origin with --allow-origin.",
                {"Vary": "Origin"},
            )
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (
                        b"access-control-expose-headers",
                        b"Content-Length, Content-Range, ETag, Retry-After, Location",
                    ),
                    (b"vary", b"Origin"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    def _same_site(origin: str, scope: Scope) -> bool:
        """The page's origin names this service's host (the scheme may differ behind a proxy)."""
        host = _header(scope, b"host")
        if not host:
            return False
        page, service = urlsplit(origin), urlsplit(f"//{host}")
        default = 443 if page.scheme == "https" else 80
        try:
            return bool(page.hostname) and (page.hostname, page.port or default) == (
                service.hostname,
                service.port or default,
            )
        except ValueError:  # a port that is not a number
            return False


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413 before the app sees them.

    The body is read here (at most ``limit`` bytes are ever held) and replayed to the app, so the
    check holds for chunked uploads without a Content-Length too.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._too_large(send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await self._too_large(send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await send_json_error(
            send,
            413,
            "body_too_large",
            f"the request body is over {self.limit:,} bytes: send the article's URL, or less text.",
        )
