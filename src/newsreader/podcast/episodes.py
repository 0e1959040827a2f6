"""Episodes: the audio, transcript and chapters of one article, or of a digest of several.

Audio goes through the same pipeline as ``newsreader read`` (``make_script`` → ``render_to``,
the streaming render written to the episode's file as it comes); the chapters file comes from
``podcast.chapters``, as the service's. A digest is one Script built from several: a spoken
introduction (the date and the headlines), then each article's segments, one chapter per
article.

Files are named ``<slug>.mp3``, ``<slug>.vtt`` and ``<slug>.chapters.json``; a later revision of
the same episode (its article's text changed) gets ``<slug>.r2.mp3`` and so on, so the files the
current feed.xml points at are never overwritten while it points at them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from newsreader import pipeline
from newsreader.audio.atomic import atomic_write
from newsreader.audio.intro import Clips
from newsreader.audio.subtitles import write_subtitles
from newsreader.audio.tags import Tags
from newsreader.audio.writer import Mp3Writer
from newsreader.config import Settings
from newsreader.models import (
    Article,
    Block,
    BlockKind,
    Pause,
    Script,
    Segment,
)
from newsreader.podcast.chapters import chapters_json
from newsreader.synth.select import EngineChoice
from newsreader.text.segment import build_script

EPISODE_GUID_NAMESPACE = uuid.UUID("6f1c3a52-3d0e-5b8e-9a55-2c1d5b0e7a41")
"""UUIDv5 namespace of newsreader's episode guids (fixed forever: guids derive from it)."""

FRAME_MS = 24
"""One MP3 frame in newsreader's format (MPEG-2 Layer III, 24 kHz): 576 samples = 24 ms."""

DIGEST_INTRO_CHAPTER = "导语"


def episode_guid(entry_key: str) -> str:
    """The guid of an article's episode: from the source entry's id (or link) alone.

    The article's text is not part of it: an edited article keeps its guid and gets new audio.
    """
    return f"urn:uuid:{uuid.uuid5(EPISODE_GUID_NAMESPACE, entry_key)}"


def digest_guid(feed_source: str, entries: Sequence[tuple[str, str]]) -> str:
    """The guid of a digest: from the source feed and the (entry key, text hash) it reads."""
    listing = "\n".join(f"{key}\t{digest}" for key, digest in sorted(entries))
    return f"urn:uuid:{uuid.uuid5(EPISODE_GUID_NAMESPACE, f'digest:{feed_source}:{listing}')}"


@dataclass(frozen=True)
class EpisodeFiles:
    """What was written for one episode, measured."""

    audio: str
    transcript: str
    chapters: str
    """File names in the episodes folder."""
    audio_bytes: int
    """Size of the MP3 as written, tags included."""
    duration_ms: int
    """Frames × 24 ms: exact."""
    engine: str
    requests: int
    cache_hits: int
    warnings: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, str, str]:
        return (self.audio, self.transcript, self.chapters)


def file_names(slug: str, revision: int) -> tuple[str, str, str]:
    stem = slug if revision <= 1 else f"{slug}.r{revision}"
    return (f"{stem}.mp3", f"{stem}.vtt", f"{stem}.chapters.json")


async def render_episode(
    script: Script,
    settings: Settings,
    choice: EngineChoice,
    folder: Path,
    slug: str,
    revision: int,
    tags: Tags,
    *,
    clips: Clips | None = None,
) -> EpisodeFiles:
    """Synthesize ``script`` and write its three files (each atomically) into ``folder``.

    ``tags`` are the podcast's (artist and album the show, the episode's date, the cover), not
    the article's site as for ``newsreader read``. The episode (a digest too: one script, one
    gain) is brought to ``settings.loudness`` as ``read`` does, between the intro and the outro
    (``clips``, else loaded from ``settings``); its chapters and transcript come after the intro.
    """
    if clips is None:
        clips = pipeline.load_clips(settings)
    audio, transcript, chapters = file_names(slug, revision)
    # The frames go to a temporary file beside the episode as they come (memory stays flat
    # however long a digest is); the tag goes in front once the chapters are known.
    with Mp3Writer(folder / audio) as writer:
        sink = pipeline.measured(writer, settings, clips)
        written = await pipeline.render_to(script, settings, sink, choice=choice)
        timeline = await pipeline.close_reading(sink, written.timeline, clips)
        atomic_write(folder / chapters, chapters_json(timeline.chapters))
        writer.finish(timeline.chapters, tags, sink.meter.finisher(settings.loudness))
    write_subtitles(folder / transcript, timeline.cues)
    return EpisodeFiles(
        audio=audio,
        transcript=transcript,
        chapters=chapters,
        audio_bytes=(folder / audio).stat().st_size,
        duration_ms=timeline.frames * FRAME_MS,
        engine=written.engine,
        requests=written.stats.requests,
        cache_hits=written.stats.cache_hits,
        warnings=written.warnings,
    )


# ── digest ────────────────────────────────────────────────────────────────────────────────


def _spoken_date(when: datetime) -> str:
    return f"{when.year}年{when.month}月{when.day}日"


def digest_title(show: str, when: datetime, number: int = 1) -> str:
    """``<show> 2024年7月2日新闻摘要``; a day's second digest is ``…新闻摘要（第2期）``."""
    title = f"{show} {_spoken_date(when)}新闻摘要"
    return title if number <= 1 else f"{title}（第{number}期）"


def update_note(when: datetime) -> str:
    """The first line of a re-made episode's description (``when`` in Beijing time)."""
    return f"（本集音频已于{_spoken_date(when)} {when:%H:%M}更新。）"


def digest_script(
    articles: Sequence[Article],
    settings: Settings,
    *,
    title: str,
    source: str,
    site: str | None,
    published: datetime,
) -> Script:
    """One Script for several articles: an introduction (chapter 0), then one chapter each.

    The introduction gives the count and every headline; each article is read in full, its
    headline first, with a heading-length pause between articles.
    """
    if not articles:
        raise ValueError("a digest needs at least one article")
    headlines = [article.title for article in articles]
    intro = Article(
        title=title,
        blocks=(
            Block(BlockKind.PARAGRAPH, f"本期共{len(articles)}条新闻。"),
            *(
                Block(BlockKind.PARAGRAPH, f"第{number}条：{_sentence(headline)}")
                for number, headline in enumerate(headlines, 1)
            ),
        ),
        source=source,
        site=site,
        published=published,
    )
    parts = [build_script(intro, locale=settings.locale, read_title=True)]
    parts += [build_script(a, locale=settings.locale, read_title=True) for a in articles]

    segments: list[Segment] = []
    for chapter, part in enumerate(parts):
        last = len(part.segments) - 1
        for n, segment in enumerate(part.segments):
            pause = segment.pause if n < last else Pause.HEADING
            segments.append(replace(segment, index=len(segments), chapter=chapter, pause=pause))
    segments[-1] = replace(segments[-1], pause=Pause.END)
    chapters = (DIGEST_INTRO_CHAPTER, *(part.title for part in parts[1:]))
    return Script(title=parts[0].title, segments=tuple(segments), chapters=chapters, article=intro)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith(("。", "！", "？", "…")) else f"{text}。"
