"""Feed in: an RSS 0.9x/1.0/2.0 or Atom feed, read into entries, and each entry into an Article.

1. read the bytes: ``fetch`` for a URL (deadline, size cap, redirect cap), the file otherwise;
2. parse with feedparser, which honours the declared encoding (GB2312 and GBK are read as GB18030,
   Big5 too) and never expands entity declarations, so a billion-laughs feed stays small;
3. keep what is usable: a feed that is not well-formed XML gives the entries that could be
   recovered, with the problem reported; a duplicate id keeps its first entry;
4. per entry, the article: the full text the feed carries (``content:encoded``, Atom
   ``content``), else the linked page, fetched and extracted exactly as ``newsreader read`` does.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import io
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from newsreader import pipeline
from newsreader.config import Settings
from newsreader.errors import ExtractionError, SourceError
from newsreader.models import Article
from newsreader.sources.fetch import UrlGuard, fetch
from newsreader.text.extract import extract

CHINA_TIME = timezone(timedelta(hours=8), "CST")
"""Chinese news sites give wall-clock times without a zone: they mean Beijing time."""


@dataclass(frozen=True)
class SourceEntry:
    """One entry of the source feed, as far as the feed itself tells."""

    key: str
    """The entry's identity in the source: its id (RSS guid, Atom id), else its link."""
    title: str
    link: str | None
    published: datetime | None
    """The entry's date (UTC), when the feed gives one."""
    content: str | None
    """The full article, when the feed carries it (HTML, or plain text)."""
    content_is_html: bool
    summary: str | None
    position: int
    """Place in the source feed (0 = first)."""

    @property
    def label(self) -> str:
        """How reports name the entry."""
        return self.title or self.link or self.key


@dataclass(frozen=True)
class SkippedEntry:
    label: str
    reason: str


@dataclass(frozen=True)
class SourceFeed:
    source: str
    """As the user named it: a URL or a file path."""
    url: str | None
    """The final URL after redirects, when fetched."""
    title: str | None
    link: str | None
    description: str | None
    author: str | None
    entries: tuple[SourceEntry, ...]
    skipped: tuple[SkippedEntry, ...]
    """Entries that cannot become an episode at all (no id, no link, no text), with why."""
    problems: tuple[str, ...]
    """What was wrong with the feed as a whole (malformed XML, duplicate ids), for the summary."""


_FEED_CAP = " limit for a feed (raise it with --max-feed-bytes)."


# ── reading the feed ──────────────────────────────────────────────────────────────────────────


def read_feed(
    source: str,
    *,
    timeout: float = 20.0,
    max_bytes: int = 5_000_000,
    guard: UrlGuard | None = None,
) -> SourceFeed:
    """Read and parse the feed at ``source`` (an http(s) URL or a file path).

    Raises ``SourceError`` when it cannot be read or holds no RSS or Atom feed at all.
    """
    if "://" in source:
        fetched = fetch(
            source, timeout=timeout, max_bytes=max_bytes, guard=guard, cap=_FEED_CAP.lstrip()
        )
        return parse_feed(fetched.content, source=source, url=fetched.url, charset=fetched.charset)
    path = Path(source)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise SourceError(f"{source} is not a file: give a feed's URL or file.")
        if size > max_bytes:
            raise SourceError(
                f"{source} is {size:,} bytes, over the {max_bytes:,}-byte" + _FEED_CAP
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{source}: no such file (give a feed's URL or file).") from None
    except OSError as error:
        raise SourceError(f"cannot read {source}: {error.strerror or error}.") from None
    return parse_feed(data, source=source)


def parse_feed(
    data: bytes, *, source: str, url: str | None = None, charset: str | None = None
) -> SourceFeed:
    """Parse feed bytes; ``url`` resolves relative links, ``charset`` is the HTTP one if any."""
    # application/xml whatever the server said: feedparser reads a bare text/xml as US-ASCII
    # (RFC 3023), which would override the document's own GB2312 or Big5 declaration, and it
    # flags text/html as not XML. A charset the server declared is passed on.
    headers = {"content-type": "application/xml" + (f"; charset={charset}" if charset else "")}
    if url:
        headers["content-location"] = url
    import feedparser  # imported here, as only ``feed`` needs it: not at every start of the CLI

    # A stream, never bytes or str: feedparser opens a string that names a file or URL.
    parsed = feedparser.parse(io.BytesIO(data), response_headers=headers)
    name = url or source
    if not parsed.get("version") and not parsed.entries:
        raise SourceError(
            f"{name} is not an RSS or Atom feed"
            + (" (it looks like a web page)" if b"<html" in data[:4096].lower() else "")
            + ": give the address of the site's feed."
        )
    problems: list[str] = []
    if parsed.get("bozo"):
        problems.append(_bozo_problem(name, parsed.get("bozo_exception"), len(parsed.entries)))
        if not parsed.entries:
            raise SourceError(problems[-1])
    feed = parsed.feed
    entries: list[SourceEntry] = []
    skipped: list[SkippedEntry] = []
    seen: dict[str, int] = {}
    for position, raw in enumerate(parsed.entries):
        entry = _entry(raw, position)
        if isinstance(entry, SkippedEntry):
            skipped.append(entry)
            continue
        if entry.key in seen:
            seen[entry.key] += 1
            continue
        seen[entry.key] = 1
        entries.append(entry)
    for key, count in seen.items():
        if count > 1:
            problems.append(
                f"entry id {key} appears {count} times in the feed: kept the first, "
                f"skipped {count - 1}."
            )
    return SourceFeed(
        source=source,
        url=url,
        title=_text(feed.get("title")),
        link=_text(feed.get("link")),
        description=_text(_plain(feed.get("subtitle") or feed.get("description") or "")),
        author=_text(feed.get("author") or feed.get("publisher")),
        entries=tuple(entries),
        skipped=tuple(skipped),
        problems=tuple(problems),
    )


def _bozo_problem(name: str, error: object, entries: int) -> str:
    import feedparser

    if isinstance(error, feedparser.CharacterEncodingOverride):
        return f"{name}: {error}"
    where = ""
    line = getattr(error, "getLineNumber", None)
    if callable(line):
        where = f" at line {line()}"
    message = getattr(error, "getMessage", None)
    reason = message() if callable(message) else str(error)
    return (
        f"{name} is not well-formed XML{where} ({reason}): "
        f"read the {entries} entries that could be recovered."
    )


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text or None


def _plain(fragment: str) -> str:
    """Text of an HTML fragment (feed summaries are often HTML)."""
    if "<" not in fragment and "&" not in fragment:
        return fragment
    from newsreader.text.htmltree import parse_fragment

    element = parse_fragment(fragment)  # every element, however deep
    if element is None:
        return html.unescape(fragment)
    return str(element.text_content())


def _date(raw: Mapping[str, Any]) -> datetime | None:
    # published first: feedparser warns when asked for "updated_parsed" while only
    # "published_parsed" exists, and then it is never asked.
    for key in ("published_parsed", "updated_parsed"):
        value = raw.get(key)
        if isinstance(value, time.struct_time):
            return datetime.fromtimestamp(calendar.timegm(value), UTC)
    return None


def _content(raw: Mapping[str, Any]) -> tuple[str | None, bool]:
    """The longest full-text content the entry carries, and whether it is HTML."""
    best: tuple[str | None, bool] = (None, False)
    for item in raw.get("content") or []:
        value = item.get("value") if isinstance(item, Mapping) else None
        if isinstance(value, str) and value.strip() and len(value) > len(best[0] or ""):
            kind = str(item.get("type") or "text/html")
            best = (value, "html" in kind)
    return best


def _entry(raw: Mapping[str, Any], position: int) -> SourceEntry | SkippedEntry:
    title = _text(_plain(str(raw.get("title") or ""))) or ""
    link = _text(raw.get("link"))
    if link is not None and not link.startswith(("http://", "https://")):
        link = None  # relative with nothing to resolve it against, or not a web page at all
    content, is_html = _content(raw)
    summary = _text(raw.get("summary"))
    key = _text(raw.get("id")) or link
    label = title or link or f"entry {position + 1}"
    if key is None:
        if not title or not content:
            return SkippedEntry(label, "no id, no link and no text of its own: nothing to read")
        key = "title:" + title
    if content is None and link is None:
        return SkippedEntry(label, "only a summary and no link to the full article")
    return SourceEntry(
        key=key,
        title=title,
        link=link,
        published=_date(raw),
        content=content,
        content_is_html=is_html,
        summary=summary,
        position=position,
    )


# ── entry → Article ─────────────────────────────────────────────────────────────────────────


def load_entry_article(
    entry: SourceEntry, settings: Settings, *, guard: UrlGuard | None = None
) -> Article:
    """The entry's article: its own full text, else its linked page, extracted like ``read``.

    Raises ``SourceError`` when the page cannot be fetched (worth retrying later) and
    ``ExtractionError`` when there is no readable text.
    """
    if entry.content is not None:
        return _article_from_content(entry)
    if entry.link is None:  # pragma: no cover - such entries are skipped when the feed is read
        raise ExtractionError("no link to the article")
    return pipeline.load_article(entry.link, settings, guard=guard)


def _article_from_content(entry: SourceEntry) -> Article:
    source = entry.link or ""
    content = entry.content or ""
    if entry.content_is_html:
        # The feed's HTML is a body without a page around it: give it one with the headline.
        title = html.escape(entry.title)
        page = (
            f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body><article><h1>{title}</h1>{content}</article></body></html>"
        )
        try:
            return extract(page, source=source)
        except ExtractionError:
            # Main-text detection wants a page's worth of text; a short article is all body
            # anyway: read it as lines, through the same cleanup.
            content = _lines(content)
    return extract(f"{entry.title}\n\n{content}", source=source)


_BLOCKS = {"p", "div", "br", "li", "section", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6"}


def _lines(fragment: str) -> str:
    """An HTML fragment as text, one line per block element."""
    from newsreader.text.htmltree import parse_fragment

    root = parse_fragment(fragment)  # every element, however deep
    if root is None:
        return html.unescape(fragment)
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.lower() in _BLOCKS:
            element.tail = "\n\n" + (element.tail or "")
    return str(root.text_content())


def content_hash(article: Article) -> str:
    """What decides re-synthesis: the headline and every block's kind and text."""
    payload = [article.title, [[block.kind.value, block.text] for block in article.blocks]]
    encoded = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()


def article_date(entry: SourceEntry, article: Article) -> datetime | None:
    """The article's date: the feed's, else the page's (Beijing time when it names no zone)."""
    if entry.published is not None:
        return entry.published
    published = article.published
    if published is None:
        return None
    if published.tzinfo is None:
        published = published.replace(tzinfo=CHINA_TIME)
    return published.astimezone(UTC)


def description_for(entry: SourceEntry, article: Article, *, limit: int = 500) -> str:
    """A short plain-text description: the feed's summary, else the article's opening."""
    summary = _text(_plain(entry.summary or "")) if entry.summary else None
    if summary and summary != _text(_plain(entry.content or "")):
        text = summary
    else:
        text = ""
        for paragraph in article.paragraphs:
            text = f"{text}{paragraph}" if text else paragraph
            if len(text) >= limit // 2:
                break
        text = text or article.title
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
