"""GET /feed.xml: the service's listed readings as a podcast, through the podcast feed writer.

Only readings the service fetched itself from a public web page are listed (the store's
``listed`` flag): text or HTML someone posted is theirs, not the public's, even with a
``source_url``, and anyone could post any text under any URL. Links are built from the
configured public URL, never from the request's ``Host``. A row the feed writer refuses (a
character XML cannot carry, say) is left out and logged once; the rest is served.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from newsreader.podcast.feedwriter import Channel, Episode, render_feed
from newsreader.service.store import Row

log = logging.getLogger("newsreader.service")


class Feed:
    """The podcast of listed readings, with links under ``base`` (the service's public URL)."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.channel = Channel(
            title="智能朗读",
            link=f"{self.base}/",
            description="由 newsreader 朗读的新闻文章。News articles read aloud by newsreader.",
            feed_url=f"{self.base}/feed.xml",
            author="newsreader",
        )
        self._refused: set[str] = set()
        """Rows the feed writer refused (a finished row does not change): skipped from now on."""

    def episode(self, row: Row) -> Episode | None:
        source = row.source or ""
        if (
            not row.listed
            or row.bytes is None
            or row.duration is None
            or not source.startswith(("http://", "https://"))
        ):
            return None
        api = f"{self.base}/api/readings/{row.id}"
        return Episode(
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

    def xml(self, rows: Sequence[Row]) -> bytes:
        """RSS 2.0 with exact enclosure lengths and durations, captions and chapters per reading."""
        episodes: dict[str, Episode] = {}
        for row in rows:
            episode = self.episode(row) if row.id not in self._refused else None
            if episode is not None:
                episodes[row.id] = episode
        try:
            return render_feed(self.channel, list(episodes.values()))
        except ValueError:
            pass  # one or more rows the writer cannot carry: find them, then leave them out
        for reading_id, episode in list(episodes.items()):
            try:
                render_feed(self.channel, [episode])
            except ValueError as error:
                self._refused.add(reading_id)
                del episodes[reading_id]
                log.warning("feed: leaving out reading %s: %s", reading_id, error)
        return render_feed(self.channel, list(episodes.values()))
