"""Feed out: a podcast RSS 2.0 document with the itunes and Podcasting 2.0 namespaces.

feedgen builds the RSS core (channel, items, enclosures, guids, dates); one small feedgen
extension adds the ``itunes:`` and ``podcast:`` elements. feedgen's own itunes extension is not
used: it does not allow the current ``true``/``false`` values of ``itunes:explicit``.

``itunes:duration`` is whole seconds (rounded), the form Apple documents; the exact duration, to
the millisecond, is the end of the last chapter in the episode's chapters file.

Public API (the web service reuses it): ``Channel``, ``Episode``, ``render_feed``, ``write_feed``,
``podcast_guid``, ``format_duration``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newsreader._version import __version__
from newsreader.audio.atomic import atomic_write

ITUNES_NS = "http://www.itunes.com/dtds/podcast-1.0.dtd"
PODCAST_NS = "https://podcastindex.org/namespace/1.0"
PODCAST_GUID_NAMESPACE = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")
"""The Podcasting 2.0 namespace for ``podcast:guid`` (UUIDv5 of the feed URL)."""

CHAPTERS_TYPE = "application/json+chapters"
TRANSCRIPT_TYPE = "text/vtt"
AUDIO_TYPE = "audio/mpeg"


@dataclass(frozen=True)
class Channel:
    """The podcast as a whole."""

    title: str
    link: str
    """The website the podcast belongs to (the news site, or where the feed is published)."""
    description: str
    feed_url: str
    """Where feed.xml is published; ``podcast:guid`` and the atom self link derive from it."""
    author: str
    image_url: str | None = None
    """Square artwork, ideally 1400–3000 px (JPEG or PNG)."""
    language: str = "zh-cn"
    category: str = "News"
    subcategory: str | None = "Daily News"
    explicit: bool = False
    owner_email: str | None = None
    """``itunes:owner`` (with ``author`` as the name): where directories write to the owner."""
    locked: bool = False
    """``podcast:locked``: ``yes`` asks other platforms not to import the feed (needs an owner)."""

    def __post_init__(self) -> None:
        if self.locked and not self.owner_email:
            raise ValueError("a locked feed needs an owner e-mail address")

    @property
    def guid(self) -> str:
        return podcast_guid(self.feed_url)


@dataclass(frozen=True)
class Episode:
    """One item of the feed, with every number exact."""

    guid: str
    """Stable forever for the same article (or digest)."""
    title: str
    description: str
    published: datetime
    """The article's date (time-zone aware)."""
    audio_url: str
    audio_bytes: int
    """The MP3's exact size in bytes, as written (tags included)."""
    duration_ms: int
    """Exact: 24 ms per MP3 frame in newsreader's format."""
    transcript_url: str | None = None
    """A WebVTT transcript."""
    chapters_url: str | None = None
    """A Podcasting 2.0 JSON chapters file."""
    link: str | None = None
    """The article's web page."""


def podcast_guid(feed_url: str) -> str:
    """``podcast:guid``: UUIDv5 of the feed URL without its scheme and trailing slashes."""
    bare = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://", "", feed_url.strip()).rstrip("/")
    return str(uuid.uuid5(PODCAST_GUID_NAMESPACE, bare))


def format_duration(duration_ms: int) -> str:
    """``itunes:duration``: whole seconds, rounded half up (``83472`` ms → ``83``)."""
    if duration_ms < 0:
        raise ValueError(f"a duration cannot be negative: {duration_ms} ms")
    return str((duration_ms + 500) // 1000)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _sub(parent: Any, namespace: str, name: str, value: str | None = None, **attrs: str) -> Any:
    from lxml import etree

    element = etree.SubElement(parent, f"{{{namespace}}}{name}", attrib=attrs)
    if value is not None:
        element.text = value
    return element


class _ChannelTags:
    """feedgen extension (channel level): the itunes and podcast elements of the channel."""

    def __init__(self) -> None:
        self.channel: Channel | None = None

    def extend_ns(self) -> dict[str, str]:
        return {"itunes": ITUNES_NS, "podcast": PODCAST_NS}

    def extend_rss(self, rss: Any) -> Any:
        channel = self.channel
        if channel is None:  # pragma: no cover - render_feed always sets it
            return rss
        element = rss.find("channel")
        _sub(element, ITUNES_NS, "author", channel.author)
        _sub(element, ITUNES_NS, "summary", channel.description)
        if channel.image_url:
            _sub(element, ITUNES_NS, "image", href=channel.image_url)
        category = _sub(element, ITUNES_NS, "category", text=channel.category)
        if channel.subcategory:
            _sub(category, ITUNES_NS, "category", text=channel.subcategory)
        _sub(element, ITUNES_NS, "explicit", "true" if channel.explicit else "false")
        _sub(element, ITUNES_NS, "type", "episodic")
        if channel.owner_email:
            owner = _sub(element, ITUNES_NS, "owner")
            _sub(owner, ITUNES_NS, "name", channel.author)
            _sub(owner, ITUNES_NS, "email", channel.owner_email)
        _sub(element, PODCAST_NS, "guid", channel.guid)
        locked = "yes" if channel.locked else "no"
        if channel.owner_email:
            _sub(element, PODCAST_NS, "locked", locked, owner=channel.owner_email)
        else:
            _sub(element, PODCAST_NS, "locked", locked)
        return rss

    def extend_atom(self, feed: Any) -> Any:  # pragma: no cover - RSS only
        return feed


class _ItemTags:
    """feedgen extension (item level): duration, explicit, transcript and chapters."""

    def __init__(self) -> None:
        self.episode: Episode | None = None
        self.language = "zh-cn"
        self.explicit = False

    def extend_ns(self) -> dict[str, str]:
        return {"itunes": ITUNES_NS, "podcast": PODCAST_NS}

    def extend_rss(self, item: Any) -> Any:
        episode = self.episode
        if episode is None:  # pragma: no cover - render_feed always sets it
            return item
        _sub(item, ITUNES_NS, "title", episode.title)
        _sub(item, ITUNES_NS, "duration", format_duration(episode.duration_ms))
        _sub(item, ITUNES_NS, "explicit", "true" if self.explicit else "false")
        _sub(item, ITUNES_NS, "episodeType", "full")
        if episode.transcript_url:
            _sub(
                item,
                PODCAST_NS,
                "transcript",
                url=episode.transcript_url,
                type=TRANSCRIPT_TYPE,
                language=self.language,
                rel="captions",
            )
        if episode.chapters_url:
            _sub(item, PODCAST_NS, "chapters", url=episode.chapters_url, type=CHAPTERS_TYPE)
        return item

    def extend_atom(self, entry: Any) -> Any:  # pragma: no cover - RSS only
        return entry


def render_feed(
    channel: Channel, episodes: Sequence[Episode], *, built: datetime | None = None
) -> bytes:
    """The feed document (UTF-8 bytes), episodes in the order given (newest first, by custom).

    ``built`` is ``lastBuildDate``; by default the newest episode's date, so that the same
    episodes always give the same bytes.
    """
    # Imported here, as only ``feed`` and the service's feed need it: not at every start of the CLI.
    from feedgen.feed import FeedGenerator  # type: ignore[import-untyped]

    fg = FeedGenerator()
    fg.register_extension("newsreader_podcast", _ChannelTags, _ItemTags)
    fg.newsreader_podcast.channel = channel
    fg.title(channel.title)
    # feedgen uses the last link given as the RSS <link>: the self link goes first.
    fg.link(href=channel.feed_url, rel="self", type="application/rss+xml")
    fg.link(href=channel.link, rel="alternate")
    fg.description(channel.description)
    fg.language(channel.language)
    fg.author({"name": channel.author})
    fg.generator("newsreader", version=__version__)
    fg.category({"term": channel.category})
    if channel.image_url:
        fg.image(url=channel.image_url, title=channel.title, link=channel.link)
    newest = max((_aware(e.published) for e in episodes), default=None)
    last = built or newest or datetime(1970, 1, 1, tzinfo=UTC)
    fg.lastBuildDate(_aware(last))
    for episode in episodes:
        entry = fg.add_entry(order="append")
        entry.title(episode.title)
        entry.guid(episode.guid, permalink=False)
        entry.pubDate(_aware(episode.published))
        entry.description(episode.description or episode.title)
        if episode.link:
            entry.link(href=episode.link)
        entry.enclosure(episode.audio_url, str(episode.audio_bytes), AUDIO_TYPE)
        tags = entry.newsreader_podcast
        tags.episode = episode
        tags.language = channel.language
        tags.explicit = channel.explicit
    data: bytes = fg.rss_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    return data


def write_feed(
    channel: Channel,
    episodes: Sequence[Episode],
    path: Path,
    *,
    built: datetime | None = None,
) -> bool:
    """Write the feed atomically: ``path`` holds the old feed or the new one, never a part.

    A feed that would come out byte for byte the same is not written at all, so that its
    modification time (``Last-Modified``, and so podcast apps' conditional GETs) only moves
    when the feed changed. Returns whether the file was written.
    """
    data = render_feed(channel, episodes, built=built)
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except OSError:  # missing or unreadable: write it (and report a real failure from there)
        pass
    atomic_write(path, data)
    return True
