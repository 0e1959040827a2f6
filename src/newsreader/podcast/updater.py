"""One incremental, crash-safe run: source feed in, episodes and feed.xml out.

1. lock the feed's state folder (one run at a time; ``location.py``), move a state left in the
   output folder by an older version out of it, and open the state;
2. read the source feed (nothing is touched if that fails);
3. reconcile: delete stray temporary files, forget episodes whose files are gone, write
   feed.xml from the state, then delete files the state does not name (leftovers of a crash)
   and expired files (below);
4. read each selected entry's article and hash its text: new or changed entries are the work;
5. per episode: synthesize, write MP3 + VTT + chapters (each atomically), record the episode in
   one transaction (the files of the revision it replaces now expiring), rewrite feed.xml;
6. ``--keep N``: drop the older episodes from the state (their files expiring), rewrite feed.xml.

Files feed.xml stopped naming stay published for ``--grace`` (a day by default): podcast apps
holding the previous feed.xml still point at them. The state records when each left the feed,
and the first run after the grace period deletes them.

At every moment feed.xml names only complete files with their exact sizes: files are finished
before the state names them, feed.xml is written (atomically) only from the state, and a file is
deleted only after feed.xml stopped naming it. A run killed at any point leaves work that the
next run finishes without duplicates: episode guids and slugs are deterministic. feed.xml is
rewritten only when its bytes change, so an unchanged feed keeps its modification time.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

from newsreader import pipeline
from newsreader.audio.atomic import atomic_write
from newsreader.audio.intro import Clips
from newsreader.audio.tags import Tags
from newsreader.config import Settings
from newsreader.errors import (
    ExtractionError,
    OutputError,
    SegmentsFailed,
    SourceError,
    UsageError,
)
from newsreader.models import Article, Script
from newsreader.podcast.cover import cover_png, local_image
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
    update_note,
)
from newsreader.podcast.feedwriter import Channel, Episode, write_feed
from newsreader.podcast.location import (
    StateLocation,
    locked,
    make_state_folder,
    migrate_legacy_state,
    state_location,
)
from newsreader.podcast.state import FeedState, StoredEpisode
from newsreader.sources.fetch import UrlGuard
from newsreader.synth.select import EngineChoice, choose_engine

FEED_FILE = "feed.xml"
EPISODES_DIR = "episodes"
COVER_FILE = "cover.png"
DEFAULT_GRACE = timedelta(days=1)
DEFAULT_MAX_FEED_BYTES = 10_000_000
"""Source feeds carry whole articles (``content:encoded``): 10 MB is a few hundred of them."""
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")

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
    state: Path | None = None
    """The state folder; by default ``<out>.newsreader-state`` beside the output folder."""
    grace: timedelta = DEFAULT_GRACE
    """How long files feed.xml stopped naming stay published before a run deletes them."""
    owner_email: str | None = None
    locked: bool = False
    max_feed_bytes: int = DEFAULT_MAX_FEED_BYTES

    def __post_init__(self) -> None:
        _check_http("--base-url", self.base_url)
        if self.image is not None and "://" in self.image:
            _check_http("--image", self.image)
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit {self.limit} must be 1 or more.")
        if self.keep is not None and self.keep < 1:
            raise UsageError(f"--keep {self.keep} must be 1 or more.")
        if self.since is not None and self.since.tzinfo is None:
            raise ValueError("since must carry a time zone")
        if self.grace < timedelta(0):
            raise UsageError("--grace cannot be negative.")
        if self.owner_email is not None and not _EMAIL.fullmatch(self.owner_email):
            raise UsageError(
                f"--owner-email {self.owner_email!r} is not an e-mail address (name@example.cn)."
            )
        if self.locked and self.owner_email is None:
            raise UsageError("--locked needs --owner-email: the owner who may move the feed.")
        if self.max_feed_bytes < 1:
            raise UsageError(f"--max-feed-bytes {self.max_feed_bytes} must be 1 or more.")
        state_location(self.out, self.state)  # refuses a state folder inside --out

    @property
    def location(self) -> StateLocation:
        return state_location(self.out, self.state)

    @property
    def local_image(self) -> Path | None:
        """``--image`` when it names a file rather than a URL."""
        return None if self.image is None or "://" in self.image else Path(self.image)

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
    written: bool = False
    """Whether feed.xml changed (it is left untouched when its bytes would be the same)."""
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
    announce: Notify | None = None,
) -> FeedReport:
    """Bring ``request.out`` up to date with the source feed; see the module's docstring.

    ``notify`` hears progress; ``announce`` hears what the user must know even when quiet (the
    state was moved out of the output folder).
    """
    out = request.out
    location = request.location
    cover, cover_name = _cover(request)  # a bad --image file is refused before anything else
    clips = await asyncio.to_thread(pipeline.load_clips, settings)  # so is a bad --intro/--outro
    folder = out / EPISODES_DIR
    _make_folders(out, folder)
    make_state_folder(location)
    with locked(location.lock, out):
        note = migrate_legacy_state(location)
        if note is not None:
            (announce or notify or (lambda _: None))(note)
        if not location.database.exists() and (out / FEED_FILE).exists():
            raise UsageError(
                f"{out} already holds a feed.xml, but its state is not in {location.folder}: "
                "give the --state folder that belongs to it (or delete feed.xml and episodes/ "
                "to start the feed anew)."
            )
        with FeedState(location.database) as state:
            _check_mode(state, "digest" if request.digest else "article", out)
            source = await asyncio.to_thread(
                read_feed,
                request.source,
                timeout=settings.fetch_timeout,
                max_bytes=request.max_feed_bytes,
                guard=guard,
            )
            report = FeedReport(
                feed=out / FEED_FILE, problems=list(source.problems), skipped=list(source.skipped)
            )
            if request.image is None and not (out / COVER_FILE).is_file():
                atomic_write(out / COVER_FILE, cover_png())
            if cover_name is not None and cover is not None:
                _write_if_changed(out / cover_name, cover)
            if request.image is None:
                cover = (out / COVER_FILE).read_bytes()
            channel = make_channel(request, source, settings, cover_name=cover_name)
            run = _Run(request, settings, state, channel, report, guard, notify, cover, clips)
            run.reconcile()
            entries = select_entries(source.entries, since=request.since, limit=request.limit)
            try:
                if request.digest:
                    await run.digest(entries, source)
                else:
                    await run.articles(entries)
            finally:
                await run.close()
            if request.keep is not None:
                run.prune(request.keep)
            run.publish()
            run.sweep()
            report.episodes = len(state.episodes())
    return report


def _cover(request: FeedRequest) -> tuple[bytes | None, str | None]:
    """A local ``--image``: its bytes and the name it is published under in the output folder."""
    path = request.local_image
    if path is None:
        return None, None
    data, extension = local_image(path)
    return data, f"cover.{extension}"


def _write_if_changed(path: Path, data: bytes) -> None:
    with contextlib.suppress(OSError):
        if path.read_bytes() == data:
            return
    atomic_write(path, data)


def make_channel(
    request: FeedRequest,
    source: SourceFeed,
    settings: Settings,
    *,
    cover_name: str | None = None,
) -> Channel:
    title = request.title or source.title or "newsreader"
    link = source.link if source.link and source.link.startswith(("http://", "https://")) else None
    if request.image is None:
        image = request.base + COVER_FILE
    elif cover_name is not None:
        image = request.base + cover_name
    else:
        image = request.image
    return Channel(
        title=title,
        link=link or request.base,
        description=source.description or f"{title}：新闻朗读。",
        feed_url=request.base + FEED_FILE,
        author=request.author or source.author or source.title or title,
        image_url=image,
        language=settings.locale.lower(),
        owner_email=request.owner_email,
        locked=request.locked,
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
        notify: Notify | None,
        cover: bytes | None,
        clips: Clips | None = None,
    ) -> None:
        self.request = request
        self.clips = clips
        self.settings = settings
        self.state = state
        self.channel = channel
        self.report = report
        self.guard = guard
        self.notify: Notify = notify or (lambda _: None)
        self.cover = cover
        """Embedded in every episode's MP3 (none for a remote --image: it is not fetched)."""
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
        path = self.out / FEED_FILE
        if write_feed(self.channel, self.episode_items(), path, built=built):
            self.report.written = True

    def sweep(self) -> None:
        """Delete the files that left feed.xml more than ``--grace`` ago (then forget them)."""
        now = datetime.now(UTC)
        named = {name for stored in self.state.episodes() for name in stored.files}
        done: list[str] = []
        for name, since in self.state.expiring().items():
            if name in named:  # named by an episode again: not expiring any more
                done.append(name)
            elif since + self.request.grace <= now:
                (self.folder / name).unlink(missing_ok=True)
                done.append(name)
        if done:  # deleted first, forgotten after: a crash in between deletes nothing twice
            self.state.forget_expiring(done)

    def tags(self, title: str, published: datetime, link: str | None) -> Tags:
        """An episode's ID3 tags: the podcast as artist and album, the episode's own date."""
        return Tags(
            title=title,
            artist=self.channel.author,
            album=self.channel.title,
            date=published.astimezone(CHINA_TIME).replace(tzinfo=None),
            url=link,
            comment="Read aloud by newsreader",
            genre="Podcast",
            cover=self.cover,
        )

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
        named |= set(self.state.expiring())
        leftovers = [p for p in self.folder.iterdir() if p.is_file() and p.name not in named]
        for path in leftovers:
            path.unlink(missing_ok=True)
        if leftovers:
            self.report.repaired.append(
                f"deleted {len(leftovers)} file(s) an interrupted run left in {self.folder}"
            )
        self.sweep()

    def _complete(self, stored: StoredEpisode) -> bool:
        try:
            sizes = [(self.folder / name).stat().st_size for name in stored.files]
        except OSError:
            return False
        return sizes[0] == stored.audio_bytes and all(sizes)

    # ── 4–5. articles ─────────────────────────────────────────────────────────────────────────

    async def close(self) -> None:
        """Close the run's engine (each episode's render leaves it open for the next)."""
        if self._choice is not None:
            await self._choice.engine.close()

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
            link = w.entry.link or (w.article.source or None)
            tags = self.tags(title, w.published, link)
            files = await self._render(script, slug, revision, w.entry.label, tags)
            if files is None:
                continue
            description = description_for(w.entry, w.article)
            if current is not None:  # same guid, new audio: say so where listeners look
                description = f"{update_note(self.now.astimezone(CHINA_TIME))}\n{description}"
            stored = StoredEpisode(
                guid=w.guid,
                slug=slug,
                kind="article",
                revision=revision,
                title=title,
                description=description,
                link=link,
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
        self, script: Script, slug: str, revision: int, label: str, tags: Tags
    ) -> EpisodeFiles | None:
        choice = await self._engine()
        try:
            files = await render_episode(
                script, self.settings, choice, self.folder, slug, revision, tags, clips=self.clips
            )
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
        """Commit the episode (what it replaced now expiring), publish it, sweep (in that order)."""
        replaced = [n for n in current.files if n not in files.names] if current else []
        self.state.save_episode(stored, entries, now=stored.updated, replaced=replaced)
        self.publish()
        self.sweep()
        if current is not None:
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
        pairs = [(w.entry.key, w.digest) for w in work]
        guid = digest_guid(source.source, pairs)
        current = self.state.episode(guid)
        title = current.title if current else self._digest_title(local)
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
        slug = current.slug if current else self._new_slug("digest", now, guid)
        revision = current.revision + 1 if current else 1
        tags = self.tags(title, now, self.channel.link)
        files = await self._render(script, slug, revision, title, tags)
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

    def _digest_title(self, local: datetime) -> str:
        """The day's digest title; a second digest that day is numbered (第2期, …)."""
        taken = {stored.title for stored in self.state.episodes()}
        number = 1
        while (title := digest_title(self.channel.title, local, number)) in taken:
            number += 1
        return title

    # ── 6. --keep ────────────────────────────────────────────────────────────────────────────

    def prune(self, keep: int) -> None:
        old = self.state.episodes()[keep:]
        if not old:
            return
        self.state.retire([stored.guid for stored in old], now=datetime.now(UTC))
        self.publish()
        self.sweep()
        self.report.removed.extend(stored.title for stored in old)


# ── the output folder ─────────────────────────────────────────────────────────────────────────


def _make_folders(out: Path, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot use {out} as the output folder: a file is in the way.") from None
    except OSError as error:
        raise OutputError(f"cannot create {folder}: {error.strerror or error}.") from None


def _check_mode(state: FeedState, mode: str, out: Path) -> None:
    stored = state.meta("mode")
    if stored is not None and stored != mode and state.episodes():
        other = "--digest" if stored == "digest" else "one episode per article"
        raise UsageError(f"{out} holds a feed made with {other}: use another --out folder.")
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
