"""The embedded backend: one process, no other server (``newsreader serve`` without ``--redis``).

The SQLite job store, the in-process worker (``readings.Readings``) with its live spill files, the
finished files under ``--data/readings`` and an in-memory rate limit per client.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from newsreader._version import __version__
from newsreader.models import Article
from newsreader.service.backend import FileKind, Health, HealthOut
from newsreader.service.config import ServiceConfig
from newsreader.service.errors import ApiError
from newsreader.service.payloads import TimelinePayload
from newsreader.service.readings import Readings
from newsreader.service.request import JobRequest
from newsreader.service.security import AddressPolicy, RateLimiter
from newsreader.service.status import LiveStatus
from newsreader.service.store import JobStore, Row, prepare_data
from newsreader.service.stream import file_response, live_response


class EmbeddedBackend:
    def __init__(self, config: ServiceConfig, policy: AddressPolicy) -> None:
        self.config = config
        prepare_data(config.data_dir, config.readings_dir, config.segment_cache)
        self.store = JobStore(config.database)
        self.readings = Readings(config, self.store, policy)
        self.pools = self.readings.pools
        self.rate = RateLimiter(config.rate_limit, config.rate_burst)

    async def start(self) -> None:
        await self.readings.start()

    async def stop(self) -> None:
        await self.readings.stop()

    async def submit(
        self, job: JobRequest, client: str | None, article: Article | None
    ) -> tuple[Row, bool]:
        # No await: a resubmission cannot slip between the store's answer and the launch.
        return self.readings.submit(job, client, article=article)

    async def get(self, reading_id: str) -> Row | None:
        return self.store.get(reading_id)

    async def live(self, reading_id: str) -> LiveStatus | None:
        return self.readings.live(reading_id)

    async def timeline(self, reading_id: str) -> TimelinePayload:
        return self.readings.timeline(reading_id)

    async def file(
        self, request: Request, row: Row, kind: FileKind, *, filename: str | None = None
    ) -> Response:
        assert row.etag is not None  # the route serves only finished readings
        if kind == "audio":
            return file_response(
                request,
                self.readings.audio_path(row.id),
                etag=row.etag,
                media_type="audio/mpeg",
                filename=filename,
            )
        return file_response(
            request,
            self.readings.captions_path(row.id),
            etag=f"{row.etag}-vtt",
            media_type="text/vtt; charset=utf-8",
        )

    async def stream(self, request: Request, row: Row) -> Response:
        live = self.readings.live(row.id)
        if live is not None and live.status != "failed":
            return live_response(request, live.audio)
        if row.status == "done" and row.etag is not None:
            return await self.file(request, row, "audio")
        if row.status == "failed":
            raise ApiError(
                409, "reading_failed", f"the reading failed: {row.error_message or 'unknown'}"
            )
        raise ApiError(409, "not_ready", "the reading is not running yet; try again shortly.")

    async def finished(self, *, listed: bool) -> list[Row]:
        return self.store.finished(listed=listed)

    async def take(self, client: str) -> float | None:
        return self.rate.take(client)

    async def health(self) -> Health:
        unfinished = self.store.unfinished()
        return Health(
            ok=True,
            body=HealthOut(
                status="ok",
                version=__version__,
                engine=self.config.engine,
                queued=sum(1 for r in unfinished if r.status == "queued"),
                running=sum(1 for r in unfinished if r.status == "running"),
            ),
        )

    async def gauges(self) -> dict[str, Any]:
        unfinished = self.store.unfinished()
        return {
            "queue_depth": sum(1 for r in unfinished if r.status == "queued"),
            "readings_running": sum(1 for r in unfinished if r.status == "running"),
        }
