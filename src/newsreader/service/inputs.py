"""What a reading request brings, checked before any work: characters, URLs, size.

The size of a reading is counted on its script, after extraction and normalization, so every
kind of source (a URL, pasted text, a page's HTML) meets the same limit: what would be spoken.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from newsreader.errors import NewsreaderError
from newsreader.models import Script
from newsreader.service.errors import ApiError


class TooLong(NewsreaderError):
    """The article would make a reading longer than the service's limits."""

    code = "too_long"


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s")


def check_characters(name: str, value: str) -> None:
    """Refuse a string UTF-8 cannot carry: a lone surrogate such as JSON ``"\\ud800"``."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ApiError(
            422,
            "invalid_request",
            f"{name} holds an invalid character (a lone surrogate, "
            f"U+{ord(value[error.start]):04X}, at position {error.start}): send valid Unicode.",
        ) from None


def check_line(name: str, value: str) -> None:
    """One line of text, such as a title: no control characters."""
    found = _CONTROL.search(value)
    if found is not None:
        raise ApiError(
            422,
            "invalid_request",
            f"{name} holds a control character (U+{ord(found.group()):04X}) at position "
            f"{found.start()}: send plain text on one line.",
        )


def check_source_url(value: str) -> str:
    """``source_url`` as any URL is checked: http(s), a host, no spaces or control characters."""
    url = value.strip()
    bad = _CONTROL.search(url) or _SPACE.search(url)
    if bad is not None:
        raise ApiError(
            422,
            "bad_source_url",
            f"source_url holds a space or control character (U+{ord(bad.group()):04X}) at "
            f"position {bad.start()}: send the page's address as the browser shows it.",
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number in range
    except ValueError as error:
        raise ApiError(
            422, "bad_source_url", f"source_url is not a URL ({error}): send the page's address."
        ) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ApiError(
            422,
            "bad_source_url",
            "source_url must be an http:// or https:// address with a host, "
            "e.g. https://news.example.cn/a.html.",
        )
    return url


def script_size(script: Script) -> tuple[int, int]:
    """``(characters, segments)`` that would be spoken."""
    return sum(len(segment.text) for segment in script.segments), len(script.segments)


def check_size(script: Script, max_chars: int, max_segments: int) -> None:
    """Raise ``TooLong`` when the script is over either limit (what to do is in the message)."""
    chars, segments = script_size(script)
    if chars > max_chars:
        raise TooLong(
            f"the article is {chars:,} characters once extracted, over this service's "
            f"{max_chars:,}-character limit: submit a shorter article or a part of it."
        )
    if segments > max_segments:
        raise TooLong(
            f"the article has {segments:,} paragraphs and sentences to read, over this "
            f"service's limit of {max_segments:,}: submit a shorter article or a part of it."
        )
