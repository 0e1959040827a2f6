"""A source read into text: the input of extraction."""

from __future__ import annotations

from dataclasses import dataclass

from newsreader.errors import SourceError
from newsreader.sources.decode import decode_bytes


@dataclass(frozen=True)
class Document:
    text: str
    source: str
    """As the user named it: a path, a URL or ``-``."""
    url: str | None = None
    """The final URL when fetched from the web (after redirects)."""


def decode_named(data: bytes, *, name: str, declared: str | None = None) -> str:
    """Decode bytes from the source called ``name``; errors say which source was unreadable."""
    try:
        return decode_bytes(data, declared=declared)
    except SourceError as exc:
        raise SourceError(f"{name}: {exc.message}") from None
