"""Where articles come from: a file, standard input or a web page."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from newsreader.sources.document import Document
from newsreader.sources.files import read_file, read_stdin

if TYPE_CHECKING:
    from newsreader.sources.fetch import UrlGuard

__all__ = ["Document", "load"]


def load(
    source: str,
    *,
    timeout: float = 20.0,
    max_bytes: int = 5_000_000,
    stdin: BinaryIO | None = None,
    guard: UrlGuard | None = None,
) -> Document:
    """Read SOURCE: ``-`` for standard input, an ``scheme://`` URL, else a file path."""
    if source == "-":
        return read_stdin(stdin or sys.stdin.buffer, max_bytes=max_bytes)
    if "://" in source:
        # The fetching stack (urllib, http.client, email) is imported for a URL only.
        from newsreader.sources.web import read_url

        return read_url(source, timeout=timeout, max_bytes=max_bytes, guard=guard)
    return read_file(Path(source), max_bytes=max_bytes)
