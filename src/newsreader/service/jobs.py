"""Readings as jobs: a plain description in, a worker that streams while it synthesizes.

A job is a ``JobRequest`` (the source and how to speak it), serializable as JSON: the store keeps
it, and a real queue (huey) could carry it to another worker, which needs nothing else but the
deployment's ``ServiceConfig``. Its id is a hash of the description, so the same content with the
same settings is the same reading and is synthesized once.

The worker (``Readings``) runs each job as one task:

1. load the article (fetch through the SSRF guard, or extract posted text/HTML), build the Script;
2. pick the engine for the job (``choose_engine``: edge if reachable, else the embedded voice);
3. run the pipeline's streaming render (``RenderStream``, as ``read`` and ``feed`` do) with the
   one process-wide ``FairLimiter``: each ``RenderedSegment``, as soon as it and all before it are
   ready, is appended to the job's ``LiveAudio`` (its frames and its pause), its sentences get
   the times the audio module gave them, and the same value goes to the ``Assembler``. With
   ``--fallback espeak``, a reading whose online voice failed partway starts again in the
   embedded voice: the live audio so far is closed and a new one begins, with a warning;
4. write the tagged MP3, the captions and the sentence timeline atomically, and only then mark
   the row ``done``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from newsreader import pipeline
from newsreader.audio.assemble import Assembler
from newsreader.audio.atomic import atomic_write, written_together
from newsreader.audio.intro import load_clips
from newsreader.audio.subtitles import write_subtitles
from newsreader.audio.writer import Finisher, Mp3Writer
from newsreader.config import DEFAULT_VOICE, Settings, check_percent, check_voice
from newsreader.errors import NewsreaderError, SourceError
from newsreader.models import FRAME_SECONDS, Article, Script, Timeline
from newsreader.service.config import ServiceConfig
from newsreader.service.inputs import check_size
from newsreader.service.payloads import (
    SentencePayload,
    TimelinePayload,
    chapter_list,
    read_timeline,
    sentence_list,
    time_sentences,
)
from newsreader.service.pools import PerClient, Pools
from newsreader.service.security import AddressPolicy
from newsreader.service.store import JobStore, Row, Status, id_key
from newsreader.service.stream import SPILL_SUFFIX, LiveAudio, clear_spills
from newsreader.synth.scheduler import START_CONCURRENCY, Limiter
from newsreader.synth.select import choose_engine
from newsreader.text.extract import extract

log = logging.getLogger("newsreader.service")

SourceKind = Literal["url", "text", "html"]
ID_VERSION = 1
"""Part of every reading id: bump it when the same request should make a new reading."""


# -- the job description -------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRequest:
    """What to read and how: everything a worker needs besides the deployment's config."""

    kind: SourceKind
    content: str
    """The URL, the pasted text or the page's HTML."""
    title: str | None = None
    source_url: str | None = None
    """For text and HTML: the page it came from (metadata only; never fetched)."""
    voice: str = DEFAULT_VOICE
    rate: str = "+0%"

    def __post_init__(self) -> None:
        check_voice(self.voice)
        check_percent("rate", self.rate)

    def reading_id(self, key: bytes) -> str:
        """A URL's reading: a plain hash (the same page is one reading, shareable). Posted text
        or HTML: keyed with the service's secret ``key``, so nobody can compute its id."""
        fields = (self.kind, self.content, self.title, self.source_url, self.voice, self.rate)
        payload = json.dumps([ID_VERSION, *fields], ensure_ascii=False).encode("utf-8")
        if self.kind == "url":
            return hashlib.sha256(payload).hexdigest()[:24]
        return hmac.new(key, payload, hashlib.sha256).hexdigest()[:24]

    @property
    def source(self) -> str | None:
        return self.content if self.kind == "url" else self.source_url

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobRequest:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def job_settings(request: JobRequest, config: ServiceConfig) -> Settings:
    return Settings(
        voice=request.voice,
        rate=request.rate,
        engine=config.engine,
        fallback=config.fallback,
        concurrency=config.segment_concurrency,
        cache_dir=config.segment_cache,
        fetch_timeout=config.fetch_timeout,
        max_input_bytes=config.max_download_bytes,
        loudness=config.loudness,
        intro=config.intro,
        outro=config.outro,
    )


def load_article(request: JobRequest, settings: Settings, policy: AddressPolicy) -> Article:
    """Step 1 (blocking: run it in a thread)."""
    if request.kind == "url":
        article = pipeline.load_article(request.content, settings, guard=policy.guard())
    else:
        content = request.content
        if request.kind == "text" and request.title:
            content = f"{request.title}\n\n{content}"  # the first line is taken as the headline
        # Posted text is the reader's own words: a single paragraph is read, as with ``read``.
        article = extract(content, source=request.source_url or "", read_whole=True)
    if request.title and article.title != request.title:
        article = dataclasses.replace(article, title=request.title)
    return article


# -- one process-wide cap on voice connections, shared fairly --------------------------------------

CURRENT_JOB: contextvars.ContextVar[str] = contextvars.ContextVar("newsreader_job", default="")
"""The job a segment request belongs to; the Scheduler's segment tasks inherit it."""


@dataclass
class _JobShare:
    arrived: int
    """Order of arrival, for ties."""
    arrived_at: float
    waiters: deque[tuple[float, asyncio.Future[None]]] = field(default_factory=deque)
    """(when it may be admitted, on the event loop's clock; its future), in asking order."""
    asked: int = 0
    held_until: float = 0.0
    in_flight: int = 0
    completed: int = 0
    audio_ready: float = 0.0
    """Seconds of this job's audio delivered in order so far."""
    segments: int = 0
    first_audio: float | None = None
    """When its first audio went out (monotonic): playback is assumed to start then."""


class FairLimiter(Limiter):
    """The voice-connection cap, handed out earliest deadline first, not first come first served.

    With a plain first-come queue, a job submitted behind a long article waits for all of that
    article's segments: its listener hears nothing for many seconds. Here a fair gate in front of
    the ``Limiter`` (which still does the rate-limit pauses, and finds the level of concurrency the
    voice service takes, adaptive from 4 up to ``limit``) admits as many requests as that level
    allows, and a free place goes to the job whose listener will need audio first. A job's
    deadline is when its listener runs out of audio: for a new job,
    ``first_audio_target`` after it asked; for a playing one, when the audio delivered so far
    ends. Each request already in flight pushes the deadline back by one segment's worth of
    audio (its average so far, else ``segment_estimate``), so a job with its next segment on
    the way does not take a place from one that has nothing coming. No job holds more than
    ``per_job`` places; within a job, requests go in the order they ask (script order).

    A job's first request may go at once; its others wait ``hold`` seconds first, so that readings
    submitted together (a page of widgets, a burst of clients) all get their first segment into
    the first round of connections instead of the first arrival taking ``per_job`` of them.
    """

    def __init__(
        self,
        limit: int,
        per_job: int,
        *,
        hold: float = 0.1,
        first_audio_target: float = 1.0,
        segment_estimate: float = 5.0,
    ) -> None:
        self._jobs: dict[str, _JobShare] = {}  # before the Limiter's first step up (``_wake``)
        super().__init__(limit, start=min(START_CONCURRENCY, limit))
        self.per_job = per_job
        self.hold = hold
        self.first_audio_target = first_audio_target
        self.segment_estimate = segment_estimate
        self._places = limit
        self._arrivals = 0
        self._wakeup: asyncio.TimerHandle | None = None

    def _share(self, job: str) -> _JobShare:
        share = self._jobs.get(job)
        if share is None:
            self._arrivals += 1
            share = self._jobs[job] = _JobShare(self._arrivals, time.monotonic())
        return share

    def delivered(self, job: str, seconds: float) -> None:
        """The worker reports a segment's audio delivered in order (this sets the deadline)."""
        share = self._share(job)
        if share.first_audio is None:
            share.first_audio = time.monotonic()
        share.audio_ready += seconds
        share.segments += 1

    def forget(self, job: str) -> None:
        share = self._jobs.get(job)
        if share is not None and not share.waiters and not share.in_flight:
            del self._jobs[job]

    def _deadline(self, share: _JobShare, now: float) -> float:
        """When the job's listener will be out of audio if it gets nothing more."""
        if share.first_audio is not None:
            base = share.first_audio + share.audio_ready
            per_segment = share.audio_ready / max(share.segments, 1)
        else:
            # A finished request whose audio is not reported yet is about to be heard.
            base = now if share.completed else share.arrived_at + self.first_audio_target
            per_segment = self.segment_estimate
        return base + share.in_flight * per_segment

    def _urgency(self, share: _JobShare, now: float) -> tuple[float, int]:
        return (self._deadline(share, now), share.arrived)

    def _wake(self) -> None:
        super()._wake()
        if self._jobs:  # the level went up, or a request left: the gate may admit more
            self._dispatch()

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        now, clock = time.monotonic(), loop.time()
        while self.limit - self._places < self.allowed:  # admitted < the level
            waiting = [s for s in self._jobs.values() if s.waiters and s.in_flight < self.per_job]
            ready = [s for s in waiting if s.waiters[0][0] <= clock]
            if not ready:
                held = [s.waiters[0][0] for s in waiting]
                if held:
                    self._wake_at(loop, min(held))
                return
            share = min(ready, key=lambda s: self._urgency(s, now))
            _, waiter = share.waiters.popleft()
            if waiter.cancelled():
                continue
            self._places -= 1
            share.in_flight += 1
            waiter.set_result(None)

    def _wake_at(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        """Dispatch again when the first held request becomes eligible."""
        if self._wakeup is not None:
            if self._wakeup.when() <= when:
                return
            self._wakeup.cancel()
        self._wakeup = loop.call_at(when, self._woken)

    def _woken(self) -> None:
        self._wakeup = None
        self._dispatch()

    def _leave(self, share: _JobShare, *, completed: bool = True) -> None:
        share.in_flight -= 1
        share.completed += completed
        self._places += 1
        self._dispatch()

    async def __aenter__(self) -> None:
        share = self._share(CURRENT_JOB.get())
        loop = asyncio.get_running_loop()
        if share.asked == 0:
            share.held_until = loop.time() + self.hold
            eligible = loop.time()
        else:
            eligible = share.held_until
        share.asked += 1
        waiter: asyncio.Future[None] = loop.create_future()
        entry = (eligible, waiter)
        share.waiters.append(entry)
        self._dispatch()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # admitted, then cancelled
                self._leave(share, completed=False)
            else:
                with contextlib.suppress(ValueError):
                    share.waiters.remove(entry)
            raise
        try:
            await super().__aenter__()
        except BaseException:
            self._leave(share, completed=False)
            raise

    async def __aexit__(self, *exc: object) -> None:
        try:
            await super().__aexit__(*exc)
        finally:
            self._leave(self._share(CURRENT_JOB.get()))


# -- live state of a reading in progress -----------------------------------------------------------


@dataclass
class LiveReading:
    audio: LiveAudio
    status: Status = "queued"
    title: str | None = None
    total: int = 0
    done: int = 0
    sentences: list[SentencePayload] = field(default_factory=list)
    engine: str | None = None
    audio_seconds: float = 0.0
    error: tuple[str, str] | None = None
    warnings: list[str] = field(default_factory=list)
    """What the listener should know, e.g. that the embedded voice read it (``--fallback``)."""
    takes: int = 1
    """Live audio streams begun: a second after a ``--fallback`` restart."""


def error_code(error: BaseException) -> str:
    """The code a failed reading reports: the error class's own (``NewsreaderError.code``)."""
    return error.code if isinstance(error, NewsreaderError) else NewsreaderError.code


class Readings:
    """The worker: runs accepted readings, feeds their live audio, records their results."""

    def __init__(self, config: ServiceConfig, store: JobStore, policy: AddressPolicy) -> None:
        self.config = config
        self.store = store
        self.policy = policy
        self.limiter = FairLimiter(config.voice_connections, config.segment_concurrency)
        self._live: dict[str, LiveReading] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(config.max_running_jobs)
        self.pools = Pools(config)
        self._per_client = PerClient(config.jobs_per_client)
        self._clients: dict[str, str] = {}
        """Who submitted each job still to run (unknown for jobs resumed after a restart)."""
        config.readings_dir.mkdir(parents=True, exist_ok=True)
        self.live_dir = config.data_dir / "live"
        """Spill files of the readings being made (see ``LiveAudio``)."""
        self.live_dir.mkdir(exist_ok=True)
        clear_spills(self.live_dir)
        clear_temporary_files(config.readings_dir)
        self.key = id_key(config.data_dir)
        self._prepared: dict[str, Article] = {}
        """Articles extracted when their text or HTML was posted, for their job to use."""
        self.clips = load_clips(config.intro, config.outro, config.loudness, config.segment_cache)
        """The intro and outro, made once at start-up (a file that cannot be used stops it)."""

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> int:
        """Queue again every reading a previous run accepted but did not finish."""
        rows = self.store.unfinished()
        for row in rows:
            if row.status == "running":
                self.store.update(row.id, status="queued")
            self._launch(row.id)
        if rows:
            log.info("resuming %d unfinished readings", len(rows))
        return len(rows)

    async def stop(self) -> None:
        """Cancel running jobs; their rows stay queued/running and resume on the next start."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for live in self._live.values():
            await live.audio.close(failed=True)
        self._live.clear()
        self.pools.close()

    # -- submitting and reading state -----------------------------------------------------------

    def submit(
        self, request: JobRequest, client: str | None = None, article: Article | None = None
    ) -> tuple[Row, bool]:
        """The reading for ``request``: ``(row, True)`` if newly queued, else ``(row, False)``.

        ``article``: the posted text or HTML already extracted (the job does not do it again)."""
        reading_id = request.reading_id(self.key)
        row = self.store.get(reading_id)
        if row is not None and (
            row.status in ("queued", "running")
            or (row.status == "done" and self.audio_path(reading_id).exists())
        ):
            return row, False
        row = self.store.add(reading_id, request.to_dict(), request.source)
        if article is not None:
            self._prepared[reading_id] = article
        if client is not None:
            self._clients[reading_id] = client
        self._launch(reading_id)
        return row, True

    def live(self, reading_id: str) -> LiveReading | None:
        return self._live.get(reading_id)

    def audio_path(self, reading_id: str) -> Path:
        return self.config.readings_dir / f"{reading_id}.mp3"

    def captions_path(self, reading_id: str) -> Path:
        return self.config.readings_dir / f"{reading_id}.vtt"

    def timeline_path(self, reading_id: str) -> Path:
        return self.config.readings_dir / f"{reading_id}.json"

    def timeline(self, reading_id: str) -> TimelinePayload:
        """The finished reading's sentences and chapters (empty if the file is missing)."""
        return read_timeline(self.timeline_path(reading_id))

    # -- running --------------------------------------------------------------------------------

    def _launch(self, reading_id: str) -> None:
        if reading_id in self._tasks:
            return
        spill = self.live_dir / f"{reading_id}{SPILL_SUFFIX}"
        self._live[reading_id] = LiveReading(LiveAudio(spill))
        task = asyncio.create_task(self._job(reading_id), name=f"reading-{reading_id}")
        self._tasks[reading_id] = task

    @contextlib.asynccontextmanager
    async def _client_slot(self, reading_id: str) -> AsyncIterator[None]:
        """One of the submitting client's ``jobs_per_client`` places (its other jobs wait)."""
        client = self._clients.get(reading_id)
        await self._per_client.acquire(client)
        try:
            yield
        finally:
            self._per_client.release(client)
            self._clients.pop(reading_id, None)

    async def _job(self, reading_id: str) -> None:
        live = self._live[reading_id]
        CURRENT_JOB.set(reading_id)
        try:
            async with self._client_slot(reading_id), self._slots:
                row = self.store.get(reading_id)
                if row is None:
                    return
                await self._run(reading_id, JobRequest.from_dict(row.request), live)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if isinstance(error, NewsreaderError):
                message = error.message
            else:
                log.exception("reading %s failed unexpectedly", reading_id)
                message = "the server failed while making this reading; try again later."
            code = error_code(error)
            live.status, live.error = "failed", (code, message)
            await live.audio.close(failed=True)
            # No await from here to the end: a resubmission sees either this task still
            # running (and the row not yet failed) or the row failed and this task gone.
            self.store.update(reading_id, status="failed", error_code=code, error_message=message)
        finally:
            self.limiter.forget(reading_id)
            if self._live.get(reading_id) is live and live.status in ("done", "failed"):
                del self._live[reading_id]  # listeners keep their own reference to the audio
            if self._tasks.get(reading_id) is asyncio.current_task():
                del self._tasks[reading_id]

    async def _run(self, reading_id: str, request: JobRequest, live: LiveReading) -> None:
        settings = job_settings(request, self.config)
        live.status = "running"
        self.store.update(reading_id, status="running")

        # 1. the article and its script
        try:
            article = await asyncio.wait_for(
                self.pools.run(
                    self.pools.fetch if request.kind == "url" else self.pools.work,
                    self._load,
                    reading_id,
                    request,
                    settings,
                ),
                self.config.fetch_deadline,
            )
        except TimeoutError:
            raise SourceError(
                f"reading {request.source or 'the article'} took longer than "
                f"{self.config.fetch_deadline:g} s: the site is too slow."
            ) from None
        script = await self.pools.run(self.pools.work, pipeline.make_script, article, settings)
        check_size(script, self.config.max_chars, self.config.max_segments)
        live.title, live.total = script.title, len(script.segments)
        live.sentences = sentence_list(script)
        self.store.update(reading_id, title=script.title, total=live.total)

        # 2. the engine, 3. the streaming render, relayed as it goes
        choice = await choose_engine(settings)
        live.engine = choice.engine.name
        if choice.warning:
            log.warning("reading %s: %s", reading_id, choice.warning)
        stream = pipeline.RenderStream(script, settings, choice=choice, limiter=self.limiter)
        # The finished file's frames go to a body file beside it as they come, as for `read`:
        # memory stays flat however long the reading (the live spill file is the listeners').
        # A level meter notes each piece on the way: one gain brings the file to the target at
        # the end; the intro and outro frame the file (the live stream is the reading alone).
        with Mp3Writer(self.audio_path(reading_id)) as writer:
            sink = pipeline.measured(writer, settings, self.clips)
            assembler = Assembler(script, sink=sink.write)
            try:
                async with contextlib.aclosing(stream.items()) as items:
                    async for item in items:
                        if isinstance(item, pipeline.Restarted):
                            log.warning("reading %s: %s", reading_id, item.warning)
                            await self._restart(reading_id, live, script, item)
                            sink.restart()
                            assembler = Assembler(script, sink=sink.write)
                            continue
                        assembler.add(item)
                        await sink.drain()
                        time_sentences(live.sentences, item)
                        live.audio_seconds += item.seconds
                        live.done = item.index + 1
                        self.limiter.delivered(reading_id, item.seconds)
                        await live.audio.append(item.audio())
            finally:
                await choice.engine.close()

            # 4. the finished files, then the row
            reading = await pipeline.close_reading(sink, assembler.timeline(), self.clips)
            finisher = sink.meter.finisher(settings.loudness)
            await self.pools.run(
                self.pools.work,
                self._write,
                reading_id,
                article,
                script,
                reading,
                writer,
                live,
                finisher,
            )
        size, etag = await self.pools.run(self.pools.work, _digest, self.audio_path(reading_id))
        listed = await self._public(request, article)
        self.store.update(
            reading_id,
            status="done",
            done=live.done,
            duration=reading.duration,
            bytes=size,
            etag=etag,
            engine=live.engine,
            finished=time.time(),
            listed=listed,
        )
        live.status = "done"
        await live.audio.close(final=self.audio_path(reading_id))

    async def _restart(
        self, reading_id: str, live: LiveReading, script: Script, restart: pipeline.Restarted
    ) -> None:
        """The reading starts again in another voice: listeners of the first voice's audio hear
        it end; the status and a new stream follow the new voice from its start."""
        await live.audio.close(failed=True)
        live.takes += 1
        spill = self.live_dir / f"{reading_id}.{live.takes}{SPILL_SUFFIX}"
        live.audio = LiveAudio(spill)
        live.sentences = sentence_list(script)
        live.audio_seconds = 0.0
        live.done = 0
        live.engine = restart.engine
        live.warnings.append(restart.warning)

    def _load(self, reading_id: str, request: JobRequest, settings: Settings) -> Article:
        """Step 1: the article extracted when it was posted, else loaded now (blocking)."""
        prepared = self._prepared.pop(reading_id, None)
        return prepared or load_article(request, settings, self.policy)

    async def _public(self, request: JobRequest, article: Article) -> bool:
        """Whether the feed may list the reading: the service read it from a public web page."""
        if request.kind != "url":
            return False  # posted text or HTML, whatever source_url it names
        if not self.policy.allowed:
            return True  # the fetch's guard let only public addresses through
        public = AddressPolicy(allowed=(), resolver=self.policy.resolver)
        try:
            for url in {request.content, article.source or request.content}:
                await asyncio.wait_for(
                    self.pools.run(self.pools.resolve, public.check_url, url),
                    self.config.resolve_timeout,
                )
        except (TimeoutError, SourceError):
            return False  # an intranet page (allowed by --allow-address) stays off the feed
        return True

    def _write(
        self,
        reading_id: str,
        article: Article,
        script: Script,
        reading: Timeline,
        writer: Mp3Writer,
        live: LiveReading,
        finisher: Finisher,
    ) -> None:
        with written_together():  # the audio, captions and timeline land together or not at all
            writer.finish(reading.chapters, pipeline.tags_for(article, script), finisher)
            write_subtitles(self.captions_path(reading_id), reading.cues)
            self._write_timeline(reading_id, script, reading, live)

    def _write_timeline(
        self, reading_id: str, script: Script, reading: Timeline, live: LiveReading
    ) -> None:
        # The live sentences' times are the live stream's; the file's start behind the intro.
        shift = self.clips.intro_frames * FRAME_SECONDS
        sentences: list[SentencePayload] = [
            {**s, "start": round(s["start"] + shift, 3), "end": round(s["end"] + shift, 3)}
            if shift and s["start"] is not None and s["end"] is not None
            else s
            for s in live.sentences
        ]
        timeline: TimelinePayload = {
            "title": script.title,
            "sentences": sentences,
            "chapters": chapter_list(reading),
            "warnings": live.warnings,
        }
        atomic_write(
            self.timeline_path(reading_id),
            json.dumps(timeline, ensure_ascii=False).encode("utf-8"),
        )


def clear_temporary_files(folder: Path) -> int:
    """Remove what a run stopped midway left in ``folder``: the temporary names ``atomic_write``
    and ``Mp3Writer`` use (``.<name>.<8 hex>.tmp``), never a finished file."""
    removed = 0
    for path in folder.glob(".*.tmp"):
        if _TEMPORARY.match(path.name):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


def _digest(path: Path) -> tuple[int, str]:
    """The file's size and ETag, read in chunks (a long reading is not held in memory)."""
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256")
    return path.stat().st_size, digest.hexdigest()[:32]


__all__ = [
    "CURRENT_JOB",
    "FairLimiter",
    "JobRequest",
    "LiveReading",
    "Readings",
    "error_code",
    "job_settings",
    "load_article",
    "sentence_list",
]
