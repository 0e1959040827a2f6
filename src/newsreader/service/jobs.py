"""Readings as jobs: a plain description in, a runner that streams while it synthesizes.

A job is a ``JobRequest`` (the source and how to speak it), serializable as JSON: the store keeps
it, and the scale-out queue carries it to a worker on another machine, which needs nothing else
but the deployment's ``ServiceConfig``. Its id is a hash of the description, so the same content
with the same settings is the same reading and is synthesized once.

``ReadingRunner`` makes one reading; the embedded service (``Readings``) and a scale-out worker
(``scale.worker``) both use it, each with its own ports: where live audio and progress go
(``LivePort``: here a ``LiveReading`` and its spill file, there a Redis Stream), where the row
goes (``StatePort``: the SQLite ``JobStore``, or Redis), and where finished files go (a
``Storage``: the data folder by default, or an S3 bucket). The steps:

1. load the article (fetch through the SSRF guard, or extract posted text/HTML), build the Script,
   check its size;
2. pick the engine for the job (``choose_engine``: edge if reachable, else the embedded voice);
3. run the pipeline's streaming render (``RenderStream``, as ``read`` and ``feed`` do) with the
   process's one ``FairLimiter``: each ``RenderedSegment``, as soon as it and all before it are
   ready, goes to the live port (its frames and its pause, with its index), its sentences get
   the times the audio module gave them, and the same value goes to the ``Assembler`` writing
   the finished file beside its place. With ``--fallback espeak``, a reading whose online voice
   failed partway starts again in the embedded voice: the live audio so far is closed and a new
   one begins, with a warning;
4. write the tagged MP3, the captions and the sentence timeline atomically, put them in storage
   (the MP3 last), and only then mark the row ``done`` (``StatePort.finish``: in scale-out mode a
   compare-and-set, so a reading is published once however many runs made it).
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
from typing import Any, Literal, Protocol

from newsreader import pipeline
from newsreader.audio.assemble import Assembler, RenderedSegment
from newsreader.audio.atomic import atomic_write, written_together
from newsreader.audio.intro import Clips, load_clips
from newsreader.audio.subtitles import write_subtitles
from newsreader.audio.writer import Finisher, Mp3Writer
from newsreader.config import DEFAULT_VOICE, Settings, check_percent, check_voice
from newsreader.errors import NewsreaderError, SourceError
from newsreader.models import FRAME_SECONDS, Article, Script, Timeline
from newsreader.service import metrics
from newsreader.service.config import ServiceConfig
from newsreader.service.inputs import check_size
from newsreader.service.payloads import (
    RequestPayload,
    SentencePayload,
    SourceKind,
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
from newsreader.storage import Storage, open_storage
from newsreader.storage.directory import DirectoryStorage
from newsreader.synth.cache import SegmentCache
from newsreader.synth.scheduler import START_CONCURRENCY, Limiter
from newsreader.synth.select import choose_engine
from newsreader.text.extract import extract

log = logging.getLogger("newsreader.service")

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

    def to_dict(self) -> RequestPayload:
        return {
            "kind": self.kind,
            "content": self.content,
            "title": self.title,
            "source_url": self.source_url,
            "voice": self.voice,
            "rate": self.rate,
        }

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


# -- a reading in progress: what it has made so far, and where that goes --------------------------


@dataclass
class Progress:
    """What a running reading has made so far: the fields of its live status."""

    title: str | None = None
    total: int = 0
    done: int = 0
    """Segments delivered in order."""
    sentences: list[SentencePayload] = field(default_factory=list)
    engine: str | None = None
    audio_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    """What the listener should know, e.g. that the embedded voice read it (``--fallback``)."""
    takes: int = 1
    """Live audio streams begun: a second after a ``--fallback`` restart."""


class LivePort(Protocol):
    """Where a running reading's live audio and progress go: in the embedded service a
    ``LiveReading`` and its spill file; in scale-out mode a Redis Stream any node can follow."""

    async def running(self) -> None:
        """The reading has started (its article is not loaded yet)."""

    async def scripted(self, progress: Progress) -> None:
        """The script is made: ``title``, ``total`` and the (untimed) ``sentences`` are known."""

    async def engine(self, progress: Progress) -> None:
        """The voice engine is chosen (``progress.engine``)."""

    async def segment(self, item: RenderedSegment, progress: Progress) -> bool:
        """Segment ``item.index``'s audio (``item.audio()``: its frames and its pause) follows
        the segments before it; ``progress`` has its sentences timed. A job run again after its
        worker was lost calls this again from index 0: a port that has an index keeps it and
        returns False (True: listeners got new audio)."""

    async def restart(self, progress: Progress, warning: str) -> None:
        """The reading starts again in another voice (``--fallback``): the audio so far is void."""

    async def done(self, progress: Progress) -> None:
        """The finished files are stored and the state is ``done``."""

    async def failed(self, code: str, message: str) -> None:
        """The reading failed; ``code`` and ``message`` say why."""


class StatePort(Protocol):
    """Where a reading's row goes: the SQLite ``JobStore`` (embedded) or Redis (scale-out)."""

    async def update(self, **fields: Any) -> None:
        """Set fields of the row: ``status="running"``, then ``title`` and ``total``."""

    async def finish(self, **fields: Any) -> bool:
        """Mark the row ``done`` with ``fields`` (duration, bytes, etag, engine, finished,
        listed, done); False if it is not this run's to finish (another run did it first)."""

    async def fail(self, code: str, message: str) -> bool:
        """Mark the row ``failed``; False if it is not this run's to fail (it ended already, or
        another run has claimed it since)."""


@dataclass
class LiveReading:
    """The embedded service's live status of a reading, and its live audio (a spill file)."""

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

    def show(self, progress: Progress) -> None:
        self.title, self.total, self.done = progress.title, progress.total, progress.done
        self.sentences, self.engine = progress.sentences, progress.engine
        self.audio_seconds, self.warnings = progress.audio_seconds, progress.warnings


class EmbeddedLive:
    """``LivePort`` of the embedded service: a ``LiveReading`` the API reads in-process, its
    audio spilled to ``<live>/<id>.live.mp3`` (``<id>.<take>.live.mp3`` after a restart)."""

    def __init__(self, live: LiveReading, folder: Path, reading_id: str, final: Path | None):
        self.live = live
        self.folder = folder
        self.reading_id = reading_id
        self.final = final
        """The finished file late listeners get (None when it is not a local file)."""

    async def running(self) -> None:
        self.live.status = "running"

    async def scripted(self, progress: Progress) -> None:
        self.live.show(progress)

    async def engine(self, progress: Progress) -> None:
        self.live.show(progress)

    async def segment(self, item: RenderedSegment, progress: Progress) -> bool:
        self.live.show(progress)
        await self.live.audio.append(item.audio())
        return True

    async def restart(self, progress: Progress, warning: str) -> None:
        """Listeners of the first voice's audio hear it end; the status and a new stream follow
        the new voice from its start."""
        await self.live.audio.close(failed=True)
        self.live.takes = progress.takes
        spill = self.folder / f"{self.reading_id}.{progress.takes}{SPILL_SUFFIX}"
        self.live.audio = LiveAudio(spill)
        self.live.show(progress)

    async def done(self, progress: Progress) -> None:
        self.live.show(progress)
        self.live.status = "done"
        await self.live.audio.close(final=self.final)

    async def failed(self, code: str, message: str) -> None:
        self.live.status, self.live.error = "failed", (code, message)
        await self.live.audio.close(failed=True)


class StoreState:
    """``StatePort`` of the embedded service: the reading's row in the SQLite ``JobStore``.

    Each call is one synchronous update with no await before it, as the embedded service needs:
    a resubmission sees the task still running or the row already final, never between."""

    def __init__(self, store: JobStore, reading_id: str) -> None:
        self.store = store
        self.reading_id = reading_id

    async def update(self, **fields: Any) -> None:
        self.store.update(self.reading_id, **fields)

    async def finish(self, **fields: Any) -> bool:
        self.store.update(self.reading_id, status="done", **fields)
        return True

    async def fail(self, code: str, message: str) -> bool:
        self.store.update(self.reading_id, status="failed", error_code=code, error_message=message)
        return True


def error_code(error: BaseException) -> str:
    """The code a failed reading reports: the error class's own (``NewsreaderError.code``)."""
    return error.code if isinstance(error, NewsreaderError) else NewsreaderError.code


def failure(error: Exception, reading_id: str) -> tuple[str, str]:
    """``(code, message)`` a failed reading reports; an unexpected error is logged in full and
    the listener gets a plain message."""
    if isinstance(error, NewsreaderError):
        message = error.message
    else:
        log.error("reading %s failed unexpectedly", reading_id, exc_info=error)
        message = "the server failed while making this reading; try again later."
    return error_code(error), message


# -- where finished readings are kept -------------------------------------------------------------

FileKind = Literal["mp3", "vtt", "json"]
CONTENT_TYPES: dict[FileKind, str] = {
    "mp3": "audio/mpeg",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json",
}


def reading_key(reading_id: str, kind: FileKind) -> str:
    """The storage key of a finished reading's file: ``readings/<id>.mp3|.vtt|.json``."""
    return f"readings/{reading_id}.{kind}"


def open_reading_storage(config: ServiceConfig) -> Storage:
    """Where finished readings go: the data folder (keys under ``--data``), or ``--storage``."""
    return open_storage(config.storage, config.data_dir, endpoint=config.s3_endpoint)


def is_object_store(spec: str | None) -> bool:
    """Whether ``--storage`` names an object store (``s3://``) rather than a folder."""
    return spec is not None and spec.lower().startswith("s3://")


def staging_folder(config: ServiceConfig) -> Path:
    """Where finished files are made before they are stored. With the data folder as storage,
    its own ``readings/`` folder: the files are made in place, as ``read`` makes its output."""
    return config.readings_dir if config.storage is None else config.data_dir / "outgoing"


# -- making a reading: the steps the embedded service and a scale-out worker share -----------------


class ReadingRunner:
    """Makes one reading from its request to its stored files, telling ``LivePort`` and
    ``StatePort`` as it goes (see the module's docstring for the steps).

    One per process: ``limiter`` is the process's cap on voice connections (``FairLimiter``),
    ``pools`` its thread pools, ``clips`` the intro and outro made at start-up. Finished files
    are made under ``staging`` with the atomic writer, then put in ``storage`` (the MP3 last:
    its presence means the reading is complete); a file already at its storage place (the
    directory backend over ``staging``) stays where it is.
    """

    def __init__(
        self,
        config: ServiceConfig,
        policy: AddressPolicy,
        storage: Storage,
        *,
        limiter: FairLimiter,
        pools: Pools,
        clips: Clips,
        staging: Path,
    ) -> None:
        self.config = config
        self.policy = policy
        self.storage = storage
        self.limiter = limiter
        self.pools = pools
        self.clips = clips
        self.staging = staging
        staging.mkdir(parents=True, exist_ok=True)
        self.in_place = (
            isinstance(storage, DirectoryStorage)
            and storage.path(reading_key("x", "mp3")).parent.resolve() == staging.resolve()
        )
        """Whether finished files are made at their storage place (no copy to make)."""
        self.cache = SegmentCache(None, storage=storage) if config.storage is not None else None
        """With ``--storage``, segments are cached there (``segments/``), shared by every worker;
        else in the segment cache folder (``--cache-dir``, default ``--data/cache``)."""

    def staged(self, reading_id: str, kind: FileKind) -> Path:
        return self.staging / f"{reading_id}.{kind}"

    async def run(
        self,
        reading_id: str,
        request: JobRequest,
        live: LivePort,
        state: StatePort,
        *,
        article: Article | None = None,
        accepted: float | None = None,
    ) -> bool:
        """Make the reading; True if this run moved its state to ``done`` (``state.finish``).

        ``article``: the posted text or HTML already extracted (else loaded here); ``accepted``:
        when the reading was accepted (``time.time()``), for the time-to-first-audio metric.
        Errors are raised: the caller reports them with ``fail``. Runs with ``CURRENT_JOB`` set
        to ``reading_id`` (the limiter's fairness is per job). Counts the metrics: each segment
        ready, the first audio, the reading done (only when this run published it)."""
        CURRENT_JOB.set(reading_id)
        try:
            return await self._run(reading_id, request, live, state, article, accepted)
        finally:
            self.limiter.forget(reading_id)

    @staticmethod
    async def fail(
        reading_id: str, error: Exception, live: LivePort, state: StatePort
    ) -> tuple[str, str]:
        """Report ``error``: live listeners hear the end, then the state says failed (counted
        in the metrics if this run failed it)."""
        code, message = failure(error, reading_id)
        await live.failed(code, message)
        if await state.fail(code, message):
            metrics.reading_finished("failed")
        return code, message

    async def _run(
        self,
        reading_id: str,
        request: JobRequest,
        live: LivePort,
        state: StatePort,
        prepared: Article | None,
        accepted: float | None,
    ) -> bool:
        settings = job_settings(request, self.config)
        progress = Progress()
        await live.running()
        await state.update(status="running")

        # 1. the article and its script
        article = prepared or await self._load(request, settings)
        script = await self.pools.run(self.pools.work, pipeline.make_script, article, settings)
        check_size(script, self.config.max_chars, self.config.max_segments)
        progress.title, progress.total = script.title, len(script.segments)
        progress.sentences = sentence_list(script)
        await live.scripted(progress)
        await state.update(title=script.title, total=progress.total)

        # 2. the engine, 3. the streaming render, relayed as it goes
        choice = await choose_engine(settings)
        progress.engine = choice.engine.name
        if choice.warning:
            log.warning("reading %s: %s", reading_id, choice.warning)
        await live.engine(progress)
        stream = pipeline.RenderStream(
            script,
            settings,
            choice=choice,
            limiter=self.limiter,
            on_ready=_count_segment,
            cache=self.cache,
        )
        audio = self.staged(reading_id, "mp3")
        # The finished file's frames go to a body file beside it as they come, as for `read`:
        # memory stays flat however long the reading (the live audio is the listeners').
        # A level meter notes each piece on the way: one gain brings the file to the target at
        # the end; the intro and outro frame the file (the live stream is the reading alone).
        with Mp3Writer(audio) as writer:
            sink = pipeline.measured(writer, settings, self.clips)
            assembler = Assembler(script, sink=sink.write)
            try:
                async with contextlib.aclosing(stream.items()) as items:
                    async for item in items:
                        if isinstance(item, pipeline.Restarted):
                            log.warning("reading %s: %s", reading_id, item.warning)
                            progress.takes += 1
                            progress.sentences = sentence_list(script)
                            progress.audio_seconds, progress.done = 0.0, 0
                            progress.engine = item.engine
                            progress.warnings.append(item.warning)
                            await live.restart(progress, item.warning)
                            sink.restart()
                            assembler = Assembler(script, sink=sink.write)
                            continue
                        assembler.add(item)
                        await sink.drain()
                        time_sentences(progress.sentences, item)
                        progress.audio_seconds += item.seconds
                        progress.done = item.index + 1
                        self.limiter.delivered(reading_id, item.seconds)
                        heard = await live.segment(item, progress)
                        first = item.index == 0 and progress.takes == 1
                        if heard and first and accepted is not None:
                            metrics.first_audio(time.time() - accepted)
            finally:
                await choice.engine.close()

            # 4. the finished files, stored, then the state
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
                progress,
                finisher,
            )
        try:
            size, etag = await self.pools.run(self.pools.work, _digest, audio)
        except BaseException:
            self._discard(reading_id)
            raise
        await self.pools.run(self.pools.work, self._store, reading_id)
        listed = await self._public(request, article)
        won = await state.finish(
            done=progress.done,
            duration=reading.duration,
            bytes=size,
            etag=etag,
            engine=progress.engine,
            finished=time.time(),
            listed=listed,
        )
        if won:
            metrics.reading_finished("done")
        await live.done(progress)
        return won

    async def _load(self, request: JobRequest, settings: Settings) -> Article:
        """Step 1: fetch (through the address policy) or extract the article, within the
        deadline for reading a source."""
        pool = self.pools.fetch if request.kind == "url" else self.pools.work
        try:
            return await asyncio.wait_for(
                self.pools.run(pool, load_article, request, settings, self.policy),
                self.config.fetch_deadline,
            )
        except TimeoutError:
            raise SourceError(
                f"reading {request.source or 'the article'} took longer than "
                f"{self.config.fetch_deadline:g} s: the site is too slow."
            ) from None

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
        progress: Progress,
        finisher: Finisher,
    ) -> None:
        with written_together():  # the audio, captions and timeline land together or not at all
            writer.finish(reading.chapters, pipeline.tags_for(article, script), finisher)
            write_subtitles(self.staged(reading_id, "vtt"), reading.cues)
            self._write_timeline(reading_id, script, reading, progress)

    def _write_timeline(
        self, reading_id: str, script: Script, reading: Timeline, progress: Progress
    ) -> None:
        # The live sentences' times are the live stream's; the file's start behind the intro.
        shift = self.clips.intro_frames * FRAME_SECONDS
        sentences: list[SentencePayload] = [
            {**s, "start": round(s["start"] + shift, 3), "end": round(s["end"] + shift, 3)}
            if shift and s["start"] is not None and s["end"] is not None
            else s
            for s in progress.sentences
        ]
        timeline: TimelinePayload = {
            "title": script.title,
            "sentences": sentences,
            "chapters": chapter_list(reading),
            "warnings": progress.warnings,
        }
        atomic_write(
            self.staged(reading_id, "json"),
            json.dumps(timeline, ensure_ascii=False).encode("utf-8"),
        )

    def _store(self, reading_id: str) -> None:
        """Put the made files in storage (blocking), the MP3 last; each object lands whole.
        Made in their place already (the data folder is the storage): nothing to do."""
        if self.in_place:
            return
        try:
            for kind in ("vtt", "json", "mp3"):
                key, path = reading_key(reading_id, kind), self.staged(reading_id, kind)
                self.storage.put_file(key, path, CONTENT_TYPES[kind])  # consumes the file
        finally:
            self._discard(reading_id)

    def _discard(self, reading_id: str) -> None:
        """Remove made files that did not reach the storage (none when made in place)."""
        if not self.in_place:
            for kind in CONTENT_TYPES:
                self.staged(reading_id, kind).unlink(missing_ok=True)


class Readings:
    """The embedded service's worker: runs accepted readings in-process, feeds their live audio,
    records their results in the ``JobStore`` and puts their files in storage."""

    def __init__(
        self,
        config: ServiceConfig,
        store: JobStore,
        policy: AddressPolicy,
        storage: Storage | None = None,
    ) -> None:
        """``storage``: where finished files go; by default the one ``config`` names (the data
        folder, or ``--storage s3://…``, checked here)."""
        self.config = config
        self.store = store
        self.policy = policy
        if storage is None:
            storage = open_reading_storage(config)
            if config.storage is not None:
                storage.check()
        self.storage = storage
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
        staging = staging_folder(config)
        staging.mkdir(parents=True, exist_ok=True)
        clear_temporary_files(config.readings_dir)
        if staging != config.readings_dir:
            clear_staged_files(staging)
        self.key = id_key(config.data_dir)
        self._prepared: dict[str, Article] = {}
        """Articles extracted when their text or HTML was posted, for their job to use."""
        self.clips = load_clips(config.intro, config.outro, config.loudness, config.segment_cache)
        """The intro and outro, made once at start-up (a file that cannot be used stops it)."""
        self.runner = ReadingRunner(
            config,
            policy,
            self.storage,
            limiter=self.limiter,
            pools=self.pools,
            clips=self.clips,
            staging=staging,
        )

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
            row.status in ("queued", "running") or (row.status == "done" and self.stored(row.id))
        ):
            return row, False
        row = self.store.add(reading_id, request.to_dict(), request.source)
        if article is not None:
            self._prepared[reading_id] = article
        if client is not None:
            self._clients[reading_id] = client
        self._launch(reading_id)
        return row, True

    def stored(self, reading_id: str) -> bool:
        """Whether a done reading's audio is still there (in an object store: trusted, not
        asked on every submission)."""
        if is_object_store(self.config.storage):
            return True
        return self.storage.local_path(reading_key(reading_id, "mp3")) is not None

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

    async def _public(self, request: JobRequest, article: Article) -> bool:
        """Whether the feed may list the reading (``ReadingRunner._public``)."""
        return await self.runner._public(request, article)

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
        final = (  # what late listeners get once the spill file is gone: a local file only
            self.storage.path(reading_key(reading_id, "mp3"))
            if isinstance(self.storage, DirectoryStorage)
            else None
        )
        port = EmbeddedLive(live, self.live_dir, reading_id, final)
        state = StoreState(self.store, reading_id)
        try:
            async with self._client_slot(reading_id), self._slots:
                row = self.store.get(reading_id)
                if row is None:
                    return
                request = JobRequest.from_dict(row.request)
                article = self._prepared.pop(reading_id, None)
                await self.runner.run(
                    reading_id, request, port, state, article=article, accepted=row.created
                )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # No await that suspends from the live end to the row: a resubmission sees either
            # this task still running (and the row not yet failed) or the row failed and this
            # task gone.
            await self.runner.fail(reading_id, error, port, state)
        finally:
            self._prepared.pop(reading_id, None)
            if self._live.get(reading_id) is live and live.status in ("done", "failed"):
                del self._live[reading_id]  # listeners keep their own reference to the audio
            if self._tasks.get(reading_id) is asyncio.current_task():
                del self._tasks[reading_id]


def clear_temporary_files(folder: Path, *, older_than: float = 0.0) -> int:
    """Remove what a run stopped midway left in ``folder``: the temporary names ``atomic_write``
    and ``Mp3Writer`` use (``.<name>.<8 hex>.tmp``), never a finished file. ``older_than``:
    only files not written to for that many seconds (a folder other processes write in too)."""
    removed = 0
    cutoff = time.time() - older_than
    for path in folder.glob(".*.tmp"):
        if _TEMPORARY.match(path.name):
            with contextlib.suppress(FileNotFoundError):
                if older_than and path.stat().st_mtime > cutoff:
                    continue
                path.unlink()
                removed += 1
    return removed


def _count_segment(index: int, from_cache: bool) -> None:
    metrics.segment_ready(from_cache)


def clear_staged_files(folder: Path) -> int:
    """Remove files a stopped run made but did not store (the staging folder of one process)."""
    removed = 0
    for path in folder.iterdir():
        if path.is_file():
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
    "CONTENT_TYPES",
    "CURRENT_JOB",
    "EmbeddedLive",
    "FairLimiter",
    "JobRequest",
    "LivePort",
    "LiveReading",
    "Progress",
    "ReadingRunner",
    "Readings",
    "StatePort",
    "StoreState",
    "clear_temporary_files",
    "error_code",
    "failure",
    "job_settings",
    "load_article",
    "open_reading_storage",
    "reading_key",
    "sentence_list",
    "staging_folder",
]
