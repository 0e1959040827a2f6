"""One incremental, crash-safe run: source feed in, episodes and feed.xml out.

1. lock the output folder (one run at a time) and open its state;
2. read the source feed (nothing is touched if that fails);
3. reconcile: delete stray temporary files, forget episodes whose files are gone, write
   feed.xml from the state, then delete files the state does not name (leftovers of a crash);
4. read each selected entry's article and hash its text: new or changed entries are the work;
5. per episode: synthesize, write MP3 + VTT + chapters (each atomically), record the episode in
   one transaction, rewrite feed.xml, then delete the files of the revision it replaced;
6. ``--keep N``: drop the older episodes from the state, rewrite feed.xml, delete their files.

At every moment feed.xml names only complete files with their exact sizes: files are finished
before the state names them, feed.xml is written (atomically) only from the state, and a file is
deleted only after feed.xml stopped naming it. A run killed at any point leaves work that the
next run finishes without duplicates: episode guids and slugs are deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

from newsreader import pipeline
from newsreader.audio.atomic import atomic_write
from newsreader.config import Settings
from newsreader.errors import (
    ExtractionError,
    OutputError,
    SegmentsFailed,
    SourceError,
    UsageError,
)
from newsreader.models import Article, Script
from newsreader.podcast.cover import cover_png
from newsreader.podcast.entries import (
    CHINA_TIME,
    SkippedEntry,
    SourceEntry,
    SourceFeed,
    article_date,
    content_hash,
    description_for,
    load_entry_article,
    read_feed,
)
from newsreader.podcast.episodes import (
    EpisodeFiles,
    digest_guid,
    digest_script,
    digest_title,
    episode_guid,
    render_episode,
)
from newsreader.podcast.feedwriter import Channel, Episode, write_feed
from newsreader.podcast.state import FeedState, StoredEpisode
from newsreader.sources.fetch import UrlGuard
from newsreader.synth.select import EngineChoice, choose_engine

FEED_FILE = "feed.xml"
EPISODES_DIR = "episodes"
COVER_FILE = "cover.png"
STATE_FILE = ".newsreader-feed.sqlite3"
LOCK_FILE = ".newsreader-feed.lock"

# atomic_write's temporary names: ".<name>.<8 hex>.tmp"
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")

Notify = Callable[[str], None]


@dataclass(frozen=True)
class FeedRequest:
    """What ``newsreader feed`` was asked to do (validated on construction)."""

    source: str
    out: Path
    base_url: str
    """Where the output folder is published: feed.xml is at ``<base_url>/feed.xml``."""
    title: str | None = None
    author: str | None = None
    image: str | None = None
    limit: int | None = None
    """Consider only the newest N entries of the source in this run."""
    since: datetime | None = None
    """Ignore entries dated before this (entries without a date are kept)."""
    digest: bool = False
    keep: int | None = None
    """Keep the newest N episodes; older ones leave the feed and their files are deleted."""

    def __post_init__(self) -> None:
        _check_http("--base-url", self.base_url)
        if self.image is not None:
            _check_http("--image", self.image)
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit {self.limit} must be 1 or more.")
        if self.keep is not None and self.keep < 1:
            raise UsageError(f"--keep {self.keep} must be 1 or more.")
        if self.since is not None and self.since.tzinfo is None:
            raise ValueError("since must carry a time zone")

    @property
    def base(self) -> str:
        return self.base_url.rstrip("/") + "/"


def _check_http(option: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"{option} {url!r} is not an http(s) address: give one such as https://example.cn/news/."
        )


@dataclass(frozen=True)
class FailedEntry:
    label: str
    reason: str
    exit_code: int


@dataclass
class FeedReport:
    """What a run did, for the summary."""

    feed: Path
    made: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[SkippedEntry] = field(default_factory=list)
    """Entries that cannot be read (no text, …), or outside ``--keep``; with reasons."""
    failed: list[FailedEntry] = field(default_factory=list)
    """Entries that failed this time (page fetch, synthesis): tried again on the next run."""
    removed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    """What reconciling found after an interrupted run."""
    warnings: list[str] = field(default_factory=list)
    episodes: int = 0
    engine: str | None = None
    requests: int = 0
    cache_hits: int = 0


# ── the run ───────────────────────────────────────────────────────────────────────────────────


async def update_feed(
    request: FeedRequest,
    settings: Settings,
    *,
    guard: UrlGuard | None = None,
    notify: Notify | None = None,
) -> FeedReport:
    """Bring ``request.out`` up to date with the source feed; see the module's docstring."""
    out = request.out
    folder = out / EPISODES_DIR
    _make_folders(out, folder)
    with _locked(out / LOCK_FILE), FeedState(out / STATE_FILE) as state:
        _check_mode(state, "digest" if request.digest else "article")
        source = await asyncio.to_thread(
            read_feed,
            request.source,
            timeout=settings.fetch_timeout,
            max_bytes=settings.max_input_bytes,
            guard=guard,
        )
        report = FeedReport(
            feed=out / FEED_FILE, problems=list(source.problems), skipped=list(source.skipped)
        )
        if request.image is None and not (out / COVER_FILE).is_file():
            atomic_write(out / COVER_FILE, cover_png())
        channel = make_channel(request, source, settings)
        run = _Run(request, settings, state, channel, report, guard, notify or (lambda _: None))
        run.reconcile()
        entries = select_entries(source.entries, since=request.since, limit=request.limit)
        if request.digest:
            await run.digest(entries, source)
        else:
            await run.articles(entries)
        if request.keep is not None:
            run.prune(request.keep)
        run.publish()
        report.episodes = len(state.episodes())
    return report


def make_channel(request: FeedRequest, source: SourceFeed, settings: Settings) -> Channel:
    title = request.title or source.title or "newsreader"
    link = source.link if source.link and source.link.startswith(("http://", "https://")) else None
    return Channel(
        title=title,
        link=link or request.base,
        description=source.description or f"{title}：新闻朗读。",
        feed_url=request.base + FEED_FILE,
        author=request.author or source.author or source.title or title,
        image_url=request.image or request.base + COVER_FILE,
        language=settings.locale.lower(),
    )


def select_entries(
    entries: Sequence[SourceEntry], *, since: datetime | None, limit: int | None
) -> list[SourceEntry]:
    """Entries dated ``since`` or later (undated ones too), the newest ``limit`` of them.

    Newest by date when every entry has one, else the first ones in the feed (feeds list the
    newest first); the result keeps the feed's order.
    """
    chosen = [e for e in entries if since is None or e.published is None or e.published >= since]
    if limit is not None and len(chosen) > limit:
        if all(e.published is not None for e in chosen):
            newest = sorted(chosen, key=lambda e: (e.published, -e.position), reverse=True)
            keep = {e.position for e in newest[:limit]}
            chosen = [e for e in chosen if e.position in keep]
        else:
            chosen = chosen[:limit]
    return chosen


@dataclass
class _Work:
    entry: SourceEntry
    article: Article
    digest: str
    guid: str
    published: datetime
    current: StoredEpisode | None


class _Run:
    def __init__(
        self,
        request: FeedRequest,
        settings: Settings,
        state: FeedState,
        channel: Channel,
        report: FeedReport,
        guard: UrlGuard | None,
        notify: Notify,
    ) -> None:
        self.request = request
        self.settings = settings
        self.state = state
        self.channel = channel
        self.report = report
        self.guard = guard
        self.notify = notify
        self.out = request.out
        self.folder = request.out / EPISODES_DIR
        self.now = datetime.now(UTC)
        self._choice: EngineChoice | None = None

    # ── feed.xml from the state ───────────────────────────────────────────────────────────────

    def episode_items(self) -> list[Episode]:
        base = self.request.base + EPISODES_DIR + "/"
        return [
            Episode(
                guid=stored.guid,
                title=stored.title,
                description=stored.description,
                published=stored.published,
                audio_url=base + quote(stored.audio),
                audio_bytes=stored.audio_bytes,
                duration_ms=stored.duration_ms,
                transcript_url=base + quote(stored.transcript),
                chapters_url=base + quote(stored.chapters),
                link=stored.link,
            )
            for stored in self.state.episodes()
        ]

    def publish(self) -> None:
        stored = self.state.episodes()
        built = max((s.updated for s in stored), default=None)
        write_feed(self.channel, self.episode_items(), self.out / FEED_FILE, built=built)

    def _delete(self, names: Sequence[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / name).unlink()

    # ── 3. reconcile ──────────────────────────────────────────────────────────────────────────

    def reconcile(self) -> None:
        for folder in (self.out, self.folder):
            for path in folder.iterdir():
                if _TEMPORARY.match(path.name) and path.is_file():
                    path.unlink(missing_ok=True)
        broken = [stored for stored in self.state.episodes() if not self._complete(stored)]
        if broken:
            self.state.forget([stored.guid for stored in broken])
            for stored in broken:
                self.report.repaired.append(
                    f"the files of {stored.title!r} were missing or changed: it will be made again"
                )
        self.publish()
        named = {name for stored in self.state.episodes() for name in stored.files}
        leftovers = [p for p in self.folder.iterdir() if p.is_file() and p.name not in named]
        for path in leftovers:
            path.unlink(missing_ok=True)
        if leftovers:
            self.report.repaired.append(
                f"deleted {len(leftovers)} file(s) an interrupted run left in {self.folder}"
            )

    def _complete(self, stored: StoredEpisode) -> bool:
        try:
            sizes = [(self.folder / name).stat().st_size for name in stored.files]
        except OSError:
            return False
        return sizes[0] == stored.audio_bytes and all(sizes)

    # ── 4–5. articles ─────────────────────────────────────────────────────────────────────────

    async def _engine(self) -> EngineChoice:
        """One engine for the whole run, chosen when the first episode needs audio."""
        if self._choice is None:
            self._choice = await choose_engine(self.settings)
            self.report.engine = self._choice.engine.name
            if self._choice.warning:
                self.report.warnings.append(self._choice.warning)
        return self._choice

    async def _load(self, entry: SourceEntry) -> Article | None:
        try:
            return await asyncio.to_thread(
                load_entry_article, entry, self.settings, guard=self.guard
            )
        except SourceError as error:
            self.report.failed.append(FailedEntry(entry.label, error.message, error.exit_code))
        except ExtractionError as error:
            self.report.skipped.append(SkippedEntry(entry.label, error.message))
        return None

    async def _pending(self, entries: Sequence[SourceEntry]) -> list[_Work]:
        """Entries whose article is new or changed, with their text read and hashed."""
        live = {stored.guid for stored in self.state.episodes()}
        work: list[_Work] = []
        since = self.request.since
        for entry in entries:
            stored = self.state.entry(entry.key)
            if stored is not None and stored.retired:
                continue
            article = await self._load(entry)
            if article is None:
                continue
            published = article_date(entry, article)
            if since is not None and published is not None and published < since:
                continue
            digest = content_hash(article)
            if stored is not None and stored.content_hash == digest and stored.episode in live:
                self.report.unchanged += 1
                continue
            guid = episode_guid(entry.key)
            current = self.state.episode(guid)
            if published is None:  # the date it was first seen stands for it
                published = current.published if current is not None else self.now
            work.append(_Work(entry, article, digest, guid, published, current))
        return work

    def _outside_keep(self, work: list[_Work]) -> list[_Work]:
        """Work that ``--keep`` would delete right away: better not made at all."""
        keep = self.request.keep
        if keep is None:
            return []
        redone = {w.guid for w in work}
        dated = [(s.published, s.guid) for s in self.state.episodes() if s.guid not in redone]
        dated += [(w.published, w.guid) for w in work]
        kept = {guid for _, guid in sorted(dated, reverse=True)[:keep]}
        return [w for w in work if w.guid not in kept]

    async def articles(self, entries: Sequence[SourceEntry]) -> None:
        work = await self._pending(entries)
        outside = self._outside_keep(work)
        left_out = {w.guid for w in outside}
        for w in outside:
            self.report.skipped.append(
                SkippedEntry(
                    w.entry.label,
                    f"older than the newest {self.request.keep} episodes (--keep)",
                )
            )
        for w in work:
            if w.guid in left_out:
                continue
            try:
                script = pipeline.make_script(w.article, self.settings)
            except ExtractionError as error:
                self.report.skipped.append(SkippedEntry(w.entry.label, error.message))
                continue
            title = w.entry.title or script.title
            current = w.current
            slug = current.slug if current else self._new_slug(title, w.published, w.guid)
            revision = current.revision + 1 if current else 1
            files = await self._render(script, slug, revision, w.entry.label)
            if files is None:
                continue
            stored = StoredEpisode(
                guid=w.guid,
                slug=slug,
                kind="article",
                revision=revision,
                title=title,
                description=description_for(w.entry, w.article),
                link=w.entry.link or (w.article.source or None),
                published=w.published,
                audio=files.audio,
                audio_bytes=files.audio_bytes,
                duration_ms=files.duration_ms,
                transcript=files.transcript,
                chapters=files.chapters,
                engine=files.engine,
                created=current.created if current else self.now,
                updated=datetime.now(UTC),
            )
            self._record(stored, [(w.entry.key, w.digest)], current, files)

    async def _render(
        self, script: Script, slug: str, revision: int, label: str
    ) -> EpisodeFiles | None:
        choice = await self._engine()
        try:
            files = await render_episode(script, self.settings, choice, self.folder, slug, revision)
        except SegmentsFailed as error:
            self.report.failed.append(FailedEntry(label, error.message, error.exit_code))
            return None
        self.report.requests += files.requests
        self.report.cache_hits += files.cache_hits
        self.report.warnings.extend(f"{label}: {note}" for note in files.warnings)
        return files

    def _record(
        self,
        stored: StoredEpisode,
        entries: Sequence[tuple[str, str]],
        current: StoredEpisode | None,
        files: EpisodeFiles,
    ) -> None:
        """Commit the episode, publish it, then delete what it replaced (in that order)."""
        self.state.save_episode(stored, entries, now=stored.updated)
        self.publish()
        if current is not None:
            self._delete([name for name in current.files if name not in files.names])
            self.report.updated.append(stored.title)
        else:
            self.report.made.append(stored.title)
        seconds = stored.duration_ms // 1000
        verb = "updated" if current is not None else "made"
        self.notify(f"{verb} {files.audio} ({seconds // 60}:{seconds % 60:02d})")

    def _new_slug(self, title: str, published: datetime, guid: str) -> str:
        day = published.astimezone(CHINA_TIME).strftime("%Y-%m-%d")
        slug = f"{day}-{pipeline.slugify(title, limit=48)}"
        owner = self.state.slug_owner(slug)
        if owner is not None and owner != guid:
            slug = f"{slug}-{guid.rsplit(':', 1)[-1][:8]}"
        return slug

    # ── 4–5. digest ───────────────────────────────────────────────────────────────────────────

    async def digest(self, entries: Sequence[SourceEntry], source: SourceFeed) -> None:
        work = await self._pending(entries)
        if not work:
            return
        now = self.now
        local = now.astimezone(CHINA_TIME)
        title = digest_title(self.channel.title, local)
        try:
            script = digest_script(
                [w.article for w in work],
                self.settings,
                title=title,
                source=source.url or source.source,
                site=self.channel.author,
                published=local.replace(tzinfo=None),
            )
        except ExtractionError as error:  # pragma: no cover - each article was readable
            self.report.skipped.append(SkippedEntry(title, error.message))
            return
        pairs = [(w.entry.key, w.digest) for w in work]
        guid = digest_guid(source.source, pairs)
        current = self.state.episode(guid)
        slug = current.slug if current else self._new_slug("digest", now, guid)
        revision = current.revision + 1 if current else 1
        files = await self._render(script, slug, revision, title)
        if files is None:
            return
        headlines = "\n".join(
            f"{n}. {w.entry.title or w.article.title}" for n, w in enumerate(work, 1)
        )
        stored = StoredEpisode(
            guid=guid,
            slug=slug,
            kind="digest",
            revision=revision,
            title=title,
            description=f"本期共{len(work)}条新闻：\n{headlines}",
            link=self.channel.link,
            published=now,
            audio=files.audio,
            audio_bytes=files.audio_bytes,
            duration_ms=files.duration_ms,
            transcript=files.transcript,
            chapters=files.chapters,
            engine=files.engine,
            created=current.created if current else now,
            updated=datetime.now(UTC),
        )
        self._record(stored, pairs, current, files)

    # ── 6. --keep ────────────────────────────────────────────────────────────────────────────

    def prune(self, keep: int) -> None:
        old = self.state.episodes()[keep:]
        if not old:
            return
        self.state.retire([stored.guid for stored in old], now=datetime.now(UTC))
        self.publish()
        for stored in old:
            self._delete(stored.files)
            self.report.removed.append(stored.title)


# ── the output folder ─────────────────────────────────────────────────────────────────────────


def _make_folders(out: Path, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot use {out} as the output folder: a file is in the way.") from None
    except OSError as error:
        raise OutputError(f"cannot create {folder}: {error.strerror or error}.") from None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One run per output folder: a second one stops at once instead of racing the first."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(
                f"another `newsreader feed` run is updating {path.parent}: wait for it to finish."
            ) from None
        yield
    finally:
        os.close(fd)  # closing releases the lock (so does the process dying)


def _check_mode(state: FeedState, mode: str) -> None:
    stored = state.meta("mode")
    if stored is not None and stored != mode and state.episodes():
        other = "--digest" if stored == "digest" else "one episode per article"
        raise UsageError(
            f"{state.path.parent} holds a feed made with {other}: use another --out folder."
        )
    if stored != mode:
        state.set_meta("mode", mode)


__all__ = [
    "FailedEntry",
    "FeedReport",
    "FeedRequest",
    "make_channel",
    "select_entries",
    "update_feed",
]
