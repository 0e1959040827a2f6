"""Podcast output: a news feed in, a complete podcast feed out (incremental, crash-safe).

``update_feed`` runs the whole thing (``newsreader feed``); ``render_feed`` / ``write_feed`` turn a
``Channel`` and its ``Episode`` values into RSS 2.0 with the itunes and Podcasting 2.0 tags.
"""

from newsreader.podcast.feedwriter import (
    Channel,
    Episode,
    format_duration,
    podcast_guid,
    render_feed,
    write_feed,
)
from newsreader.podcast.updater import FeedReport, FeedRequest, update_feed

__all__ = [
    "Channel",
    "Episode",
    "FeedReport",
    "FeedRequest",
    "format_duration",
    "podcast_guid",
    "render_feed",
    "update_feed",
    "write_feed",
]
