"""Feed out: the document render_feed writes, read back by feedparser and by an XML parser."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from newsreader.podcast import (
    Channel,
    Episode,
    format_duration,
    podcast_guid,
    render_feed,
    write_feed,
)

ITUNES = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"
PODCAST = "{https://podcastindex.org/namespace/1.0}"

CHANNEL = Channel(
    title="本地新闻朗读",
    link="https://news.example.cn/",
    description="本地新闻网的报道，由 newsreader 朗读。",
    feed_url="https://pod.example.cn/news/feed.xml",
    author="本地新闻网",
    image_url="https://pod.example.cn/news/cover.png",
)


def _episode(n: int, when: datetime) -> Episode:
    base = "https://pod.example.cn/news/episodes/"
    return Episode(
        guid=f"urn:uuid:00000000-0000-5000-8000-00000000000{n}",
        title=f"第{n}条新闻 <重要> & 更多",
        description=f"摘要{n}",
        published=when,
        audio_url=f"{base}{n}.mp3",
        audio_bytes=100_000 + n,
        duration_ms=83_472 + n * 24,
        transcript_url=f"{base}{n}.vtt",
        chapters_url=f"{base}{n}.chapters.json",
        link=f"https://news.example.cn/{n}.html",
    )


def test_podcast_guid_matches_the_namespace_specification() -> None:
    # The example in the Podcasting 2.0 specification of <podcast:guid>.
    assert podcast_guid("https://mp3s.nashownotes.com/pc20rss.xml") == (
        "917393e3-1b1e-5cef-ace4-edaa54e1f810"
    )
    assert podcast_guid("http://mp3s.nashownotes.com/pc20rss.xml/") == podcast_guid(
        "mp3s.nashownotes.com/pc20rss.xml"
    )


def test_durations_are_whole_seconds_rounded() -> None:
    # Apple documents whole seconds (or HH:MM:SS); "750.816" is neither
    assert format_duration(750_816) == "751"
    assert format_duration(83_472) == "83"
    assert format_duration(3_600_024) == "3600"
    assert format_duration(48_000) == "48"
    assert format_duration(1_500) == "2"  # half up, not to even
    assert format_duration(2_500) == "3"
    assert format_duration(24) == "0"
    with pytest.raises(ValueError):
        format_duration(-24)


def test_the_feed_has_every_tag_and_feedparser_reads_it_cleanly() -> None:
    beijing = timezone(timedelta(hours=8))
    episodes = [
        _episode(2, datetime(2024, 7, 2, 10, 30, tzinfo=beijing)),
        _episode(1, datetime(2024, 7, 1, 9, 0, tzinfo=UTC)),
    ]
    document = render_feed(CHANNEL, episodes)

    parsed = feedparser.parse(io.BytesIO(document))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    feed = parsed.feed
    assert feed.title == CHANNEL.title
    assert feed.link == CHANNEL.link
    assert feed.language == "zh-cn"
    assert feed.author == CHANNEL.author
    assert feed.itunes_explicit is None  # feedparser maps only yes/clean; Apple's value is false
    assert feed.podcast_guid == podcast_guid(CHANNEL.feed_url)
    assert [entry.id for entry in parsed.entries] == [e.guid for e in episodes]
    for entry, episode in zip(parsed.entries, episodes, strict=True):
        assert entry.title == episode.title
        assert entry.guidislink is False
        assert parsedate_to_datetime(entry.published) == episode.published
        (enclosure,) = entry.enclosures
        assert enclosure.href == episode.audio_url
        assert enclosure.length == str(episode.audio_bytes)
        assert enclosure.type == "audio/mpeg"
        assert entry.itunes_duration == format_duration(episode.duration_ms)
        assert entry.podcast_transcript["url"] == episode.transcript_url
        assert entry.podcast_chapters["url"] == episode.chapters_url

    root = etree.fromstring(document)
    channel = root.find("channel")
    assert channel is not None
    assert channel.find(f"{ITUNES}image").get("href") == CHANNEL.image_url
    category = channel.find(f"{ITUNES}category")
    assert category.get("text") == "News"
    assert category.find(f"{ITUNES}category").get("text") == "Daily News"
    assert channel.findtext(f"{ITUNES}explicit") == "false"
    assert channel.findtext(f"{ITUNES}author") == CHANNEL.author
    assert channel.findtext(f"{PODCAST}guid") == podcast_guid(CHANNEL.feed_url)
    self_link = channel.find("{http://www.w3.org/2005/Atom}link")
    assert self_link.get("href") == CHANNEL.feed_url and self_link.get("rel") == "self"
    item = channel.find("item")
    assert item.find("guid").get("isPermaLink") == "false"
    transcript = item.find(f"{PODCAST}transcript")
    assert transcript.attrib == {
        "url": episodes[0].transcript_url,
        "type": "text/vtt",
        "language": "zh-cn",
        "rel": "captions",
    }
    chapters = item.find(f"{PODCAST}chapters")
    assert chapters.get("type") == "application/json+chapters"
    assert item.findtext(f"{ITUNES}explicit") == "false"
    # lastBuildDate is the newest episode's date: the same episodes give the same bytes
    assert parsedate_to_datetime(channel.findtext("lastBuildDate")) == episodes[0].published
    assert render_feed(CHANNEL, episodes) == document


def test_write_feed_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    write_feed(CHANNEL, [], path)
    empty = feedparser.parse(io.BytesIO(path.read_bytes()))
    assert not empty.bozo and empty.entries == []
    write_feed(CHANNEL, [_episode(1, datetime(2024, 7, 1, tzinfo=UTC))], path)
    assert len(feedparser.parse(io.BytesIO(path.read_bytes())).entries) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feed.xml"]  # no temporary left
