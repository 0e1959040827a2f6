"""Making one reading, from its ``JobRequest`` to its stored files, while it streams.

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
import hashlib
import json
import logging
import time
from pathlib import Path

from newsreader import pipeline
from newsreader.audio.assemble import Assembler
from newsreader.audio.atomic import atomic_write, written_together
from newsreader.audio.intro import Clips
from newsreader.audio.subtitles import write_subtitles
from newsreader.audio.writer import Finisher, Mp3Writer
from newsreader.config import Settings
from newsreader.errors import NewsreaderError, SourceError
from newsreader.models import FRAME_SECONDS, Article, Script, Timeline
from newsreader.service import metrics
from newsreader.service.config import ServiceConfig
from newsreader.service.fairness import CURRENT_JOB, FairLimiter
from newsreader.service.files import CONTENT_TYPES, FileKind, reading_key
from newsreader.service.inputs import check_size
from newsreader.service.payloads import (
    SentencePayload,
    TimelinePayload,
    chapter_list,
    sentence_list,
    time_sentences,
)
from newsreader.service.pools import Pools
from newsreader.service.ports import LivePort, StatePort
from newsreader.service.request import JobRequest, job_settings, load_article
from newsreader.service.security import AddressPolicy
from newsreader.service.status import Progress
from newsreader.storage import Storage
from newsreader.storage.directory import DirectoryStorage
from newsreader.synth.cache import SegmentCache
from newsreader.synth.select import choose_engine

log = logging.getLogger("newsreader.service")


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


def _count_segment(index: int, from_cache: bool) -> None:
    metrics.segment_ready(from_cache)


def _digest(path: Path) -> tuple[int, str]:
    """The file's size and ETag, read in chunks (a long reading is not held in memory)."""
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256")
    return path.stat().st_size, digest.hexdigest()[:32]


__all__ = [
    "ReadingRunner",
    "error_code",
    "failure",
]
