"""The embedded service's readings: made in this process, their live status and audio kept in
memory and in spill files, their rows in the SQLite ``JobStore``, their files in storage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsreader.audio.assemble import RenderedSegment
from newsreader.audio.intro import load_clips
from newsreader.models import Article
from newsreader.service.config import ServiceConfig
from newsreader.service.fairness import FairLimiter
from newsreader.service.files import (
    clear_staged_files,
    clear_temporary_files,
    is_object_store,
    open_reading_storage,
    reading_key,
    staging_folder,
)
from newsreader.service.payloads import TimelinePayload, read_timeline
from newsreader.service.pools import PerClient, Pools
from newsreader.service.request import JobRequest
from newsreader.service.runner import ReadingRunner
from newsreader.service.security import AddressPolicy
from newsreader.service.status import LiveStatus, Progress
from newsreader.service.store import JobStore, Row, id_key
from newsreader.service.stream import SPILL_SUFFIX, LiveAudio, clear_spills
from newsreader.storage import Storage
from newsreader.storage.directory import DirectoryStorage

log = logging.getLogger("newsreader.service")


@dataclass
class LiveReading(LiveStatus):
    """The embedded service's live status of a reading, and its live audio (a spill file)."""

    audio: LiveAudio = field(kw_only=True)


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
        self._live[reading_id] = LiveReading(audio=LiveAudio(spill))
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


__all__ = [
    "EmbeddedLive",
    "LiveReading",
    "Readings",
    "StoreState",
]
