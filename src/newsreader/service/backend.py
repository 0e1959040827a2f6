"""What the API needs from whoever keeps the readings: one small protocol, two backends.

The routes in ``service.app`` validate requests and shape responses; where a reading lives is the
backend's business:

- ``service.embedded.EmbeddedBackend`` — one process: the SQLite job store, the in-process
  worker (``service.readings.Readings``), the live spill file, the files under ``--data``;
- ``service.cluster.ClusterBackend`` — a stateless API node: reading rows, the job queue, live
  audio and the rate limit in Redis; the finished files in Storage; workers elsewhere.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from newsreader.models import Article
from newsreader.service.payloads import TimelinePayload
from newsreader.service.pools import Pools
from newsreader.service.request import JobRequest
from newsreader.service.status import LiveStatus
from newsreader.service.store import Row

FileKind = Literal["audio", "captions"]
"""A finished reading's files served as they are: ``<id>.mp3`` and ``<id>.vtt``."""


class HealthOut(BaseModel):
    """The embedded service: the job store answers."""

    status: Literal["ok"]
    version: str
    engine: str
    queued: int
    running: int


class ClusterHealthOut(BaseModel):
    """An API node: whether Redis answers, and what the queue and the workers are doing."""

    status: Literal["ok", "unavailable"]
    version: str
    engine: str
    mode: Literal["cluster"] = "cluster"
    redis: str
    """``ok``, or why Redis cannot be used."""
    queued: int | None = None
    running: int | None = None
    queue_depth: int | None = None
    """Jobs waiting in the queue for a worker."""
    workers: int | None = None
    """Workers that reported to the queue recently."""
    settings: dict[str, str] | None = None
    """The audio settings every worker makes readings with (``scale.settings``); None until
    the first worker started."""


class Health(BaseModel):
    """What ``/healthz`` answers, and with which status code."""

    ok: bool
    body: HealthOut | ClusterHealthOut


class Backend(Protocol):
    """Where readings are kept and made. Every method may be called from any request."""

    pools: Pools
    """Threads for the API's own blocking work (extraction of posted text, URL checks)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(
        self, job: JobRequest, client: str | None, article: Article | None
    ) -> tuple[Row, bool]:
        """The reading for ``job``: ``(row, True)`` if it was newly queued, else the existing
        one. ``article``: posted text or HTML already extracted (a backend may reuse it)."""
        ...

    async def get(self, reading_id: str) -> Row | None:
        """The reading's row (``reading_id`` has the right form already)."""
        ...

    async def live(self, reading_id: str) -> LiveStatus | None:
        """The reading's live status while it is made, else None (in one process its
        ``readings.LiveReading``; in a cluster what its worker keeps in Redis)."""
        ...

    async def timeline(self, reading_id: str) -> TimelinePayload:
        """A finished reading's sentences and chapters (empty if the file is missing)."""
        ...

    async def file(
        self, request: Request, row: Row, kind: FileKind, *, filename: str | None = None
    ) -> Response:
        """A finished reading's MP3 or captions, with Range, ETag, 304 and HEAD."""
        ...

    async def stream(self, request: Request, row: Row) -> Response:
        """Audio from the start while the reading is made; the finished file once done."""
        ...

    async def finished(self, *, listed: bool) -> list[Row]:
        """The latest finished readings (with ``listed``: those for the feed), newest first."""
        ...

    async def take(self, client: str) -> float | None:
        """The per-client rate limit: None to go ahead, else seconds to wait."""
        ...

    async def health(self) -> Health: ...

    async def gauges(self) -> dict[str, Any]:
        """Values for the metrics' gauges, read at each scrape."""
        ...
