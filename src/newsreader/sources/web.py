"""Web pages: fetch, then decode with the charset the server or the page declares."""

from __future__ import annotations

from newsreader.errors import SourceError
from newsreader.sources.document import Document, decode_named
from newsreader.sources.fetch import UrlGuard, fetch

_TEXTUAL = ("text/", "application/xhtml", "application/xml", "application/rss", "application/atom")


def read_url(
    url: str, *, timeout: float, max_bytes: int, guard: UrlGuard | None = None
) -> Document:
    fetched = fetch(url, timeout=timeout, max_bytes=max_bytes, guard=guard)
    if fetched.content_type and not fetched.content_type.startswith(_TEXTUAL):
        raise SourceError(
            f"{fetched.url} is {fetched.content_type}, not a web page: give the article's page URL."
        )
    text = decode_named(fetched.content, name=fetched.url, declared=fetched.charset)
    return Document(text=text, source=url, url=fetched.url)
