"""Checks shared by the podcast tests: our feed read back, every number checked on the files."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import feedparser
from click.testing import CliRunner, Result
from lxml import etree

from newsreader.audio.mp3 import read_info_frame
from newsreader.cli import main
from tests.audio import decode_samples, ffmpeg_errors
from tests.podcast.newsroom import local_file
from tests.standin.verify import strip_id3v2

BASE_URL = "https://pod.example.cn/news/"
SAMPLE_RATE = 24_000
PODCAST = "{https://podcastindex.org/namespace/1.0}"
ITUNES = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"


def run_feed(source: str, out: Path, *extra: str, cache: Path, engine: str = "espeak") -> Result:
    args = ["feed", source, "--out", str(out), "--base-url", BASE_URL, "--engine", engine]
    args += ["--cache-dir", str(cache), *extra]
    return CliRunner().invoke(main, args)


@dataclass(frozen=True)
class Item:
    guid: str
    title: str
    audio: Path
    transcript: Path
    chapters: Path
    length: int
    duration: str
    entry: Any


def read_our_feed(out: Path) -> tuple[Any, list[Item]]:
    """feedparser's reading of out/feed.xml (which must be clean), with each item's files."""
    parsed = feedparser.parse(io.BytesIO((out / "feed.xml").read_bytes()))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    items = []
    for entry in parsed.entries:
        (enclosure,) = entry.enclosures
        items.append(
            Item(
                guid=entry.id,
                title=entry.title,
                audio=local_file(enclosure.href, BASE_URL, out),
                transcript=local_file(entry.podcast_transcript["url"], BASE_URL, out),
                chapters=local_file(entry.podcast_chapters["url"], BASE_URL, out),
                length=int(enclosure.length),
                duration=entry.itunes_duration,
                entry=entry,
            )
        )
    return parsed, items


def check_required_tags(out: Path) -> None:
    """Every tag the directories require or expect, on the channel and on each item."""
    root = etree.fromstring((out / "feed.xml").read_bytes())
    channel = root.find("channel")
    for tag in ("title", "link", "description", "language", f"{ITUNES}author"):
        assert (channel.findtext(tag) or "").strip(), tag
    assert channel.findtext("language") == "zh-cn"
    assert channel.find(f"{ITUNES}image").get("href", "").startswith(BASE_URL)
    assert channel.find(f"{ITUNES}category").get("text") == "News"
    assert channel.findtext(f"{ITUNES}explicit") == "false"
    assert re.fullmatch(r"[0-9a-f-]{36}", channel.findtext(f"{PODCAST}guid") or "")
    for item in channel.iter("item"):
        for tag in ("title", "guid", "pubDate", "description", f"{ITUNES}duration"):
            assert (item.findtext(tag) or "").strip(), tag
        assert item.find("guid").get("isPermaLink") == "false"
        enclosure = item.find("enclosure")
        assert enclosure.get("type") == "audio/mpeg" and int(enclosure.get("length")) > 0
        assert item.find(f"{PODCAST}transcript").get("type") == "text/vtt"
        assert item.find(f"{PODCAST}chapters").get("type") == "application/json+chapters"


def decoded_ms(path: Path) -> int:
    """The duration ffmpeg decodes, in milliseconds (exact: 24,000 samples a second)."""
    samples = len(decode_samples(path))
    assert samples * 1000 % SAMPLE_RATE == 0
    return samples * 1000 // SAMPLE_RATE


def exact_ms(item: Item) -> int:
    """The episode's exact duration: where its last chapter ends (24 ms a frame)."""
    chapters = json.loads(item.chapters.read_text(encoding="utf-8"))["chapters"]
    return round(chapters[-1]["endTime"] * 1000)


def check_files(items: list[Item], *, decode: bool = True) -> None:
    """Each enclosure exists with exactly its stated length; each duration is what ffmpeg hears.

    ``itunes:duration`` is whole seconds (rounded); the exact duration is in the chapters file
    and in the MP3's Info frame, and ffmpeg must decode exactly that much audio.
    """
    for item in items:
        assert item.audio.stat().st_size == item.length, item.title
        assert item.transcript.read_text(encoding="utf-8").startswith("WEBVTT")
        chapters = json.loads(item.chapters.read_text(encoding="utf-8"))
        assert chapters["version"] == "1.2.0" and chapters["chapters"][0]["startTime"] == 0
        exact = exact_ms(item)
        assert item.duration == str((exact + 500) // 1000), item.title
        info = read_info_frame(strip_id3v2(item.audio.read_bytes()))
        assert info is not None and info[0] * 24 == exact, item.title
        if decode:
            assert ffmpeg_errors(item.audio) == ""
            assert decoded_ms(item.audio) == exact, item.title


def episode_files(out: Path) -> set[str]:
    return {path.name for path in (out / "episodes").iterdir()}


def named_files(items: list[Item]) -> set[str]:
    return {path.name for item in items for path in (item.audio, item.transcript, item.chapters)}
