"""The pipeline end to end: source → Article → Script → audio → one MP3 (+ subtitles).

1. load the source (file, stdin, URL) and decode it
2. extract the article: headline and body only, repaired
3. build the Script: speech-normalized, script-converted, sentence-aligned segments
4. synthesize the segments (engine chosen once; cache; bounded concurrency; retries)
5. assemble frames, pauses, chapters, cues
6. write the MP3 (tagged, atomically) and the subtitles
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from newsreader import sources
from newsreader.audio.assemble import assemble
from newsreader.audio.subtitles import write_subtitles
from newsreader.audio.tags import Tags, write_mp3
from newsreader.config import Settings
from newsreader.errors import SegmentsFailed, UsageError
from newsreader.models import Article, Reading, Script
from newsreader.sources.fetch import UrlGuard
from newsreader.synth.cache import SegmentCache
from newsreader.synth.scheduler import (
    Limiter,
    ProgressCallback,
    RunStats,
    Scheduler,
    describe_kinds,
)
from newsreader.synth.select import EngineChoice, choose_engine
from newsreader.text.extract import extract
from newsreader.text.segment import build_script


def load_article(
    source: str,
    settings: Settings,
    *,
    stdin: BinaryIO | None = None,
    guard: UrlGuard | None = None,
) -> Article:
    """Steps 1–2: read SOURCE and extract its article."""
    document = sources.load(
        source,
        timeout=settings.fetch_timeout,
        max_bytes=settings.max_input_bytes,
        stdin=stdin,
        guard=guard,
    )
    return extract(document.text, source=document.url or document.source)


def make_script(article: Article, settings: Settings) -> Script:
    """Step 3."""
    return build_script(article, locale=settings.locale, read_title=settings.read_title)


@dataclass(frozen=True, repr=False)
class Rendered:
    reading: Reading
    stats: RunStats
    engine: str
    warnings: tuple[str, ...] = ()
    """Things the listener should know, e.g. that edge failed and the embedded voice read it all."""

    def __repr__(self) -> str:
        # Short on purpose: asyncio.run's clean-up builds the repr of its main task, result
        # included, and a repr of the whole MP3 costs 0.3 s per 15 minutes of audio.
        return (
            f"Rendered(engine={self.engine!r}, duration={self.reading.duration:.3f}, "
            f"segments={len(self.reading.segment_starts)}, requests={self.stats.requests})"
        )


async def render(
    script: Script,
    settings: Settings,
    *,
    choice: EngineChoice | None = None,
    limiter: Limiter | None = None,
    on_ready: ProgressCallback | None = None,
) -> Rendered:
    """Steps 4–5: synthesize every segment and assemble one reading.

    One reading, one voice: if edge fails for some segments (``SegmentsFailed``), the run fails,
    or, with ``settings.fallback == "espeak"``, the whole script is rendered again with the
    embedded voice. Edge's good segments stay in the cache for the next run either way.
    """
    choice = choice or await choose_engine(settings, script=script)
    cache = SegmentCache(settings.cache_dir if settings.use_cache else None)
    scheduler = Scheduler(choice.engine, settings, cache, limiter=limiter)
    try:
        parts = [audio async for audio in scheduler.run(script, on_ready)]
    except SegmentsFailed as failure:
        if settings.fallback != "espeak" or choice.engine.name == "espeak":
            raise
        fallen = await _render_with_espeak(script, settings, cache, on_ready)
        warning = (
            f"the online voice failed for {len(failure.failed)} of {len(script.segments)} "
            f"segments ({describe_kinds(failure.kinds.values())}); the whole article was read "
            "with the embedded espeak-ng voice instead (--fallback espeak)."
        )
        return replace(fallen, stats=_merged(scheduler.stats, fallen.stats), warnings=(warning,))
    finally:
        await choice.engine.close()
    return Rendered(assemble(script, parts), scheduler.stats, choice.engine.name)


async def _render_with_espeak(
    script: Script, settings: Settings, cache: SegmentCache, on_ready: ProgressCallback | None
) -> Rendered:
    from newsreader.synth.espeak import EspeakEngine

    engine = EspeakEngine()
    scheduler = Scheduler(engine, settings, cache)
    try:
        parts = [audio async for audio in scheduler.run(script, on_ready)]
    finally:
        await engine.close()
    return Rendered(assemble(script, parts), scheduler.stats, engine.name)


def _merged(first: RunStats, second: RunStats) -> RunStats:
    return RunStats(
        requests=first.requests + second.requests,
        retries=first.retries + second.retries,
        cache_hits=first.cache_hits + second.cache_hits,
        failures=first.failures + second.failures,
    )


def tags_for(article: Article, script: Script) -> Tags:
    host = urlsplit(article.source).hostname if "://" in article.source else None
    artist = article.site or host or "newsreader"
    return Tags(
        title=script.title,
        artist=artist,
        album=article.site or host or "newsreader",
        date=article.published,
        url=article.source if "://" in article.source else None,
        comment="Read aloud by newsreader",
    )


_UNSAFE = re.compile(r"[^\w\u3400-\u9fff\uf900-\ufaff-]+")


def slugify(title: str, *, limit: int = 60) -> str:
    """A file-name-safe slug that keeps Chinese characters: ``科技局 构建`` → ``科技局-构建``."""
    text = unicodedata.normalize("NFKC", title).strip().lower()
    slug = _UNSAFE.sub("-", text).strip("-_")
    slug = re.sub(r"-{2,}", "-", slug)[:limit].strip("-_")
    return slug or "article"


def default_output(script: Script, folder: Path = Path("audio")) -> Path:
    return folder / f"{slugify(script.title)}.mp3"


def check_output_paths(output: Path, subtitles: Path | None) -> None:
    """Refuse bad output paths before any synthesis work is spent."""
    if output.suffix.lower() != ".mp3":
        raise UsageError(f"output {output} must end in .mp3.")
    if output.exists() and output.is_dir():
        raise UsageError(f"output {output} is a directory: give a file name ending in .mp3.")
    if subtitles is not None and subtitles.suffix.lower() not in (".vtt", ".srt"):
        raise UsageError(f"subtitles {subtitles} must end in .vtt or .srt.")


def write_outputs(
    rendered: Rendered,
    article: Article,
    script: Script,
    output: Path,
    subtitles: Path | None = None,
) -> None:
    """Step 6: the MP3 (tagged, atomic), then the subtitles (atomic)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    write_mp3(output, rendered.reading, tags_for(article, script))
    if subtitles is not None:
        subtitles.parent.mkdir(parents=True, exist_ok=True)
        write_subtitles(subtitles, rendered.reading.cues)
