"""The one place newsreader talks HTTP to fetch pages and feeds.

Every fetch is bounded: http(s) only, a deadline, a size cap, a redirect cap. Tests point it at a
local HTTP server; the service passes ``guard`` to refuse private addresses (SSRF).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from newsreader import __version__
from newsreader.errors import SourceError

if TYPE_CHECKING:
    import httpx

USER_AGENT = f"newsreader/{__version__} (+read-aloud for Mandarin news)"
MAX_REDIRECTS = 5

UrlGuard = Callable[[str], None]
"""Called with every URL before connecting (the first and each redirect); raises to refuse it."""


@dataclass(frozen=True)
class Fetched:
    url: str
    """The final URL, after redirects."""
    content: bytes
    content_type: str
    charset: str | None


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise SourceError(
            f"unsupported URL scheme {parts.scheme!r} in {url}: use an http:// or https:// address."
        )
    if not parts.hostname:
        raise SourceError(
            f"{url} has no host name: give a full address such as https://example.com/a."
        )
    return url


def fetch(
    url: str,
    *,
    timeout: float = 20.0,
    max_bytes: int = 5_000_000,
    guard: UrlGuard | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Fetched:
    """GET ``url`` following up to five redirects; raise ``SourceError`` with a one-line reason."""
    # Imported here: httpx costs 0.15 s at start-up, and only a URL source needs it.
    import httpx

    check_url(url)
    current = url
    try:
        with httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept-Language": "zh-CN,zh;q=0.9"},
            transport=transport,
            trust_env=True,
        ) as client:
            for _ in range(MAX_REDIRECTS + 1):
                if guard is not None:
                    guard(current)
                with client.stream("GET", current) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise SourceError(f"{current} redirected without a Location header.")
                        current = check_url(str(response.url.join(location)))
                        continue
                    if response.status_code >= 400:
                        raise SourceError(
                            f"HTTP {response.status_code} {response.reason_phrase} fetching "
                            f"{current}: check the address or try again later."
                        )
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise SourceError(
                            f"{current} is {int(declared):,} bytes, over the "
                            f"{max_bytes:,}-byte limit for one article."
                        )
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body.extend(chunk)
                        if len(body) > max_bytes:
                            raise SourceError(
                                f"{current} is over the {max_bytes:,}-byte limit for one article."
                            )
                    content_type = response.headers.get("content-type", "")
                    return Fetched(
                        url=current,
                        content=bytes(body),
                        content_type=content_type.split(";")[0].strip().lower(),
                        charset=response.charset_encoding,
                    )
            raise SourceError(f"{url} redirected more than {MAX_REDIRECTS} times.")
    except httpx.TimeoutException:
        raise SourceError(
            f"timed out after {timeout:g} s fetching {current}: the site is slow or unreachable."
        ) from None
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        raise SourceError(f"could not fetch {current}: {reason}.") from None
