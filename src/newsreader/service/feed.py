"""GET /feed.xml: the service's finished readings as a podcast, through the podcast feed writer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from newsreader.podcast.feedwriter import Channel, Episode, render_feed
from newsreader.service.store import Row


def feed_xml(rows: Sequence[Row], base: str) -> bytes:
    """RSS 2.0 with exact enclosure lengths and durations, captions and chapters per reading.

    Only readings of web pages are listed (a URL, or a widget's page): text someone pasted to
    listen to is theirs, not the public's.
    """
    channel = Channel(
        title="智能朗读",
        link=f"{base}/",
        description="由 newsreader 朗读的新闻文章。News articles read aloud by newsreader.",
        feed_url=f"{base}/feed.xml",
        author="newsreader",
    )
    episodes = []
    for row in rows:
        source = row.source if (row.source or "").startswith(("http://", "https://")) else None
        if row.bytes is None or row.duration is None or source is None:
            continue
        api = f"{base}/api/readings/{row.id}"
        episodes.append(
            Episode(
                guid=f"newsreader-reading-{row.id}",
                title=row.title or "无标题",
                description=row.title or "",
                published=datetime.fromtimestamp(row.finished or row.created, UTC),
                audio_url=f"{api}/audio.mp3",
                audio_bytes=row.bytes,
                duration_ms=round(row.duration * 1000),
                transcript_url=f"{api}/captions.vtt",
                chapters_url=f"{api}/chapters.json",
                link=source,
            )
        )
    return render_feed(channel, episodes)
