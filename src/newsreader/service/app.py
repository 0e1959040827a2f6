"""The read-aloud service as an ASGI app: ``create_app(config)``.

    POST /api/readings                    {url | text | html, title?, voice?, rate?} → 202 / 200
    GET  /api/readings/{id}               status, progress, title, duration, chapters, sentences
    GET  /api/readings/{id}/audio.mp3     the finished file (Range, ETag, Content-Length)
    GET  /api/readings/{id}/stream.mp3    progressive audio while it is synthesized
    GET  /api/readings/{id}/captions.vtt  WebVTT captions
    GET  /api/readings/{id}/chapters.json Podcasting 2.0 chapters
    GET  /feed.xml                        finished readings as a podcast
    GET  /healthz                         the service (and in a cluster Redis, queue, workers)
    GET  /metrics                         Prometheus text
    GET  /  and /readings/{id}            the read-aloud page;  GET /widget.js  the widget

Every refusal is a 4xx JSON error (``service.errors``); OpenAPI at /docs. Where readings are
kept and made is a ``service.backend.Backend``: embedded (one process, SQLite) or, with
``ServiceConfig.redis_url``, a cluster (Redis, Storage, workers elsewhere).
"""

from __future__ import annotations

import asyncio
import hmac
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from newsreader._version import __version__
from newsreader.config import DEFAULT_VOICE
from newsreader.errors import ExtractionError, SourceError, UsageError
from newsreader.models import Article
from newsreader.pipeline import make_script, slugify
from newsreader.podcast.chapters import MEDIA_TYPE as CHAPTERS_MEDIA_TYPE
from newsreader.podcast.chapters import chapters_json
from newsreader.service.backend import Backend, ClusterHealthOut, HealthOut
from newsreader.service.config import ServiceConfig
from newsreader.service.errors import ApiError, error_body, error_response
from newsreader.service.feed import Feed
from newsreader.service.head import HeadAsGet
from newsreader.service.inputs import (
    TooLong,
    check_characters,
    check_line,
    check_size,
    check_source_url,
)
from newsreader.service.payloads import (
    ChapterPayload,
    SentencePayload,
    TimelinePayload,
    chapters_of,
    empty_timeline,
)
from newsreader.service.readings import Readings
from newsreader.service.request import JobRequest, job_settings, load_article
from newsreader.service.security import (
    AddressPolicy,
    AddressRefused,
    BodyLimit,
    Origins,
    Resolver,
    SecurityHeaders,
    system_resolver,
)
from newsreader.service.status import LiveStatus
from newsreader.service.store import JobStore, Row
from newsreader.sources.fetch import check_url

if TYPE_CHECKING:
    from newsreader.service.embedded import EmbeddedBackend

_ID = re.compile(r"^[0-9a-f]{24}$")
_STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "widget.js": "text/javascript; charset=utf-8",
}
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
}


class ReadingIn(BaseModel):
    """A reading request: exactly one of ``url``, ``text`` or ``html``."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description="An http(s) page to read.", max_length=4000)
    text: str | None = Field(None, description="Article text (the first line is the headline).")
    html: str | None = Field(None, description="An article page's HTML.")
    title: str | None = Field(None, description="Headline to use.", max_length=300)
    source_url: str | None = Field(
        None, description="With text/html: the page it came from (never fetched).", max_length=4000
    )
    voice: str = Field(DEFAULT_VOICE, description="Voice ShortName, e.g. zh-CN-XiaoxiaoNeural.")
    rate: str = Field("+0%", description="Speaking rate, -50% to +100%.")


class Links(BaseModel):
    self: str
    page: str
    audio: str
    stream: str
    captions: str


class ReadingAccepted(BaseModel):
    id: str
    status: str
    links: Links


class Progress(BaseModel):
    done: int
    total: int


class ChapterOut(BaseModel):
    title: str
    start: float
    end: float


class SentenceOut(BaseModel):
    index: int
    text: str
    kind: Literal["title", "heading", "body"]
    block: int
    segment: int
    start: float | None
    end: float | None


class ErrorOut(BaseModel):
    code: str
    message: str


class ReadingOut(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    title: str | None
    progress: Progress
    duration: float | None = Field(description="Seconds; when done.")
    audio_ready: float = Field(description="Seconds of audio available to the stream so far.")
    chapters: list[ChapterOut]
    sentences: list[SentenceOut]
    error: ErrorOut | None
    engine: str | None
    warnings: list[str] = Field(
        description="What the listener should know, e.g. that the embedded voice read it."
    )
    source: str | None
    created: str
    finished: str | None
    links: Links


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def _links(reading_id: str) -> Links:
    base = f"/api/readings/{reading_id}"
    return Links(
        self=base,
        page=f"/readings/{reading_id}",
        audio=f"{base}/audio.mp3",
        stream=f"{base}/stream.mp3",
        captions=f"{base}/captions.vtt",
    )


def _clean_url(url: str) -> str:
    """Strip spaces and the fragment (the same page read twice is one reading)."""
    try:
        check_url(url.strip())  # what the fetch could not parse is refused here, as a 400
    except SourceError as error:
        raise ApiError(400, "bad_url", error.message) from None
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc, parts.path or "/", parts.query, ""))


class Service:
    """Everything the routes share."""

    def __init__(self, config: ServiceConfig, resolver: Resolver) -> None:
        self.config = config
        self.feed = Feed(config.public_url)
        self.policy = AddressPolicy(config.allow_addresses, resolver, config.fetch_deadline)
        self.backend = _backend(config, self.policy)

    @property
    def store(self) -> JobStore:
        """The embedded job store (for tests and tools; there is none on an API node)."""
        return self._embedded().store

    @property
    def readings(self) -> Readings:
        """The embedded worker (for tests and tools; there is none on an API node)."""
        return self._embedded().readings

    def _embedded(self) -> EmbeddedBackend:
        from newsreader.service.embedded import EmbeddedBackend

        if not isinstance(self.backend, EmbeddedBackend):
            raise AttributeError("an API node keeps no readings in the process")
        return self.backend

    async def row(self, reading_id: str) -> Row:
        row = await self.backend.get(reading_id) if _ID.match(reading_id) else None
        if row is None:
            raise ApiError(
                404, "not_found", f"no reading {reading_id[:40]!r}: check the id or submit again."
            )
        return row

    def authorize(self, request: Request) -> None:
        token = self.config.token
        if token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), token.encode()
        ):
            raise ApiError(
                401,
                "unauthorized",
                "this service needs a token: send Authorization: Bearer <token>.",
                headers={"WWW-Authenticate": "Bearer"},
            )

    async def limit(self, request: Request) -> None:
        client = request.client.host if request.client else "unknown"
        wait = await self.backend.take(client)
        if wait is not None:
            seconds = max(1, round(wait + 0.5))
            raise ApiError(
                429,
                "rate_limited",
                f"too many readings requested from {client}: try again in {seconds} s.",
                headers={"Retry-After": str(seconds)},
            )

    async def job_request(self, body: ReadingIn) -> JobRequest:
        for name, value in body.model_dump().items():
            if isinstance(value, str):
                check_characters(name, value)
        given = [name for name in ("url", "text", "html") if getattr(body, name) is not None]
        if len(given) != 1:
            raise ApiError(
                422,
                "invalid_request",
                "give exactly one of url, text or html"
                + (f" (got {', '.join(given)})." if given else "."),
            )
        kind = given[0]
        content: str = getattr(body, kind)
        if not content.strip():
            raise ApiError(422, "invalid_request", f"{kind} is empty: give an article to read.")
        limit = {
            "url": 4000,
            "text": self.config.max_text_chars,
            "html": self.config.max_html_chars,
        }[kind]
        if len(content) > limit:
            raise ApiError(
                413,
                "too_long",
                f"{kind} is {len(content):,} characters, over the {limit:,}-character limit.",
            )
        if kind == "url":
            content = _clean_url(content)
            await self.check_url(content)
        if body.source_url is not None and kind == "url":
            raise ApiError(422, "invalid_request", "source_url goes with text or html, not url.")
        source_url = None if body.source_url is None else check_source_url(body.source_url)
        if body.title is not None:
            check_line("title", body.title)
        try:
            return JobRequest(
                kind=kind,  # type: ignore[arg-type]  # one of the three names above
                content=content,
                title=body.title.strip() if body.title and body.title.strip() else None,
                source_url=source_url,
                voice=body.voice,
                rate=self._rate(body.rate),
            )
        except UsageError as error:
            raise ApiError(422, error.code, error.message.replace("--", "")) from None

    async def prepare(self, job: JobRequest) -> Article | None:
        """Posted text or HTML, extracted now: refused at once if it is too long to read."""
        if job.kind == "url":
            return None  # fetched by the job, which checks the size then
        settings = job_settings(job, self.config)

        def extract() -> Article:
            article = load_article(job, settings, self.policy)
            script = make_script(article, settings)
            check_size(script, self.config.max_chars, self.config.max_segments)
            return article

        try:
            return await self.backend.pools.run(self.backend.pools.work, extract)
        except TooLong as error:
            raise ApiError(413, error.code, error.message) from None
        except ExtractionError as error:
            raise ApiError(422, error.code, error.message) from None

    @staticmethod
    def _rate(rate: str) -> str:
        value = rate.strip()
        if re.fullmatch(r"[+-]\d{1,3}%", value) and not -50 <= int(value[:-1]) <= 100:
            raise ApiError(
                422, "bad_settings", f"rate {rate!r} is out of range: use -50% to +100%."
            )
        return value

    async def check_url(self, url: str) -> None:
        """Refuse at once what the worker's guard would refuse (the worker checks again)."""
        try:
            await asyncio.wait_for(
                self.backend.pools.run(self.backend.pools.resolve, self.policy.check_url, url),
                self.config.resolve_timeout,
            )
        except TimeoutError:
            raise ApiError(
                400, "bad_url", f"resolving {urlsplit(url).hostname} took too long."
            ) from None
        except AddressRefused as error:
            raise ApiError(400, error.code, error.message) from None
        except SourceError as error:
            raise ApiError(400, "bad_url", error.message) from None

    async def describe(self, row: Row) -> ReadingOut:
        # Progress only while it is made (in one process it is gone once the reading ended).
        unfinished = row.status in ("queued", "running")
        live = await self.backend.live(row.id) if unfinished else None
        timeline = await self.backend.timeline(row.id) if row.status == "done" else None
        return describe(row, live, timeline)


def describe(row: Row, live: LiveStatus | None, timeline: TimelinePayload | None) -> ReadingOut:
    """A reading as the API shows it: the row, its progress while it is made, its timeline once
    done."""
    sentences: list[SentencePayload] = []
    chapters: list[ChapterPayload] = []
    warnings: list[str] = []
    audio_ready = 0.0
    if row.status == "done":
        timeline = timeline or empty_timeline()
        sentences, chapters = timeline["sentences"], timeline["chapters"]
        warnings = timeline["warnings"]
        audio_ready = row.duration or 0.0
    elif live is not None:
        sentences, warnings, audio_ready = live.sentences, live.warnings, live.audio_seconds
    status = row.status
    title, done, total = row.title, row.done, row.total
    if live is not None and status in ("queued", "running"):
        title, done, total = live.title or title, live.done, live.total or total
    error = None
    if status == "failed":
        error = ErrorOut(code=row.error_code or "failed", message=row.error_message or "")
    return ReadingOut(
        id=row.id,
        status=status,
        title=title,
        progress=Progress(done=done, total=total),
        duration=row.duration if status == "done" else None,
        audio_ready=round(audio_ready, 3),
        chapters=[ChapterOut(**c) for c in chapters],
        sentences=[SentenceOut(**s) for s in sentences],
        error=error,
        engine=row.engine or (live.engine if live else None),
        warnings=list(warnings),
        source=row.source,
        created=_iso(row.created) or "",
        finished=_iso(row.finished),
        links=_links(row.id),
    )


def _asset(folder: str, name: str) -> bytes:
    return resources.files("newsreader.service").joinpath(folder, name).read_bytes()


def create_app(config: ServiceConfig, *, resolver: Resolver | None = None) -> FastAPI:
    """The app; ``resolver`` replaces DNS for URL sources (tests answer for made-up names)."""
    service = Service(config, resolver or system_resolver)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await service.backend.start()
        try:
            yield
        finally:
            await service.backend.stop()

    app = FastAPI(
        title="newsreader",
        version=__version__,
        summary="智能朗读: Mandarin news read aloud, streamed with the sentence highlighted.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.add_middleware(Origins, allowed=config.allow_origins)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(HeadAsGet)  # outermost: every GET route answers HEAD
    _errors(app)
    _api(app, service)
    _pages(app, service)
    return app


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, error: ApiError) -> Response:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> Response:
        problems = []
        for item in error.errors():
            if item.get("type") == "json_invalid":
                return JSONResponse(
                    error_body("invalid_json", "the body is not valid JSON: send a JSON object."),
                    status_code=400,
                )
            where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
            problems.append(f"{where or 'body'}: {item.get('msg', 'invalid')}")
        return JSONResponse(
            error_body("invalid_request", "; ".join(problems) or "invalid request"),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(error.status_code, "http_error")
        message = str(error.detail)
        if error.status_code == 404:
            message = "no such page or API route: see /docs for the API."
        elif error.status_code == 405:
            message = "this route does not accept that method: see /docs."
        return JSONResponse(
            error_body(code, message),
            status_code=error.status_code,
            headers=dict(error.headers or {}),
        )

    @app.exception_handler(Exception)
    async def crashed(_request: Request, _error: Exception) -> Response:
        return JSONResponse(
            error_body("internal_error", "the server failed on this request; try again later."),
            status_code=500,
        )


def _backend(config: ServiceConfig, policy: AddressPolicy) -> Backend:
    """The cluster backend with a Redis URL, else the embedded one (Redis is not even loaded)."""
    if config.redis_url is not None:
        from newsreader.service.cluster import ClusterBackend

        return ClusterBackend(config, policy)
    from newsreader.service.embedded import EmbeddedBackend

    return EmbeddedBackend(config, policy)


def _api(app: FastAPI, service: Service) -> None:
    backend = service.backend

    @app.post(
        "/api/readings",
        status_code=202,
        response_model=ReadingAccepted,
        responses={200: {"model": ReadingAccepted, "description": "Already known"}},
    )
    async def create_reading(body: ReadingIn, request: Request) -> Response:
        """Submit an article; the same content with the same settings is the same reading."""
        service.authorize(request)  # before the limit: a refused request costs no quota
        await service.limit(request)
        job = await service.job_request(body)
        article = await service.prepare(job)
        row, created = await backend.submit(
            job, request.client.host if request.client else None, article
        )
        accepted = ReadingAccepted(id=row.id, status=row.status, links=_links(row.id))
        return JSONResponse(
            accepted.model_dump(),
            status_code=202 if created else 200,
            headers={"Location": accepted.links.self},
        )

    @app.get("/api/readings/{reading_id}", response_model=ReadingOut)
    async def get_reading(reading_id: str) -> ReadingOut:
        """Status, progress, and once known the sentences with their times."""
        return await service.describe(await service.row(reading_id))

    @app.get("/api/readings/{reading_id}/audio.mp3")
    async def audio(reading_id: str, request: Request) -> Response:
        """The finished MP3 (tags and chapters), with Range and ETag."""
        row = await service.row(reading_id)
        if row.status != "done" or row.etag is None:
            raise ApiError(
                409,
                "not_ready",
                f"the reading is {row.status}: use stream.mp3 to listen while it is made.",
            )
        name = quote(f"{slugify(row.title or 'reading')}.mp3")
        return await backend.file(request, row, "audio", filename=name)

    @app.get("/api/readings/{reading_id}/stream.mp3")
    async def stream(reading_id: str, request: Request) -> Response:
        """Audio from the first ready segment on, growing while synthesis goes on."""
        return await backend.stream(request, await service.row(reading_id))

    @app.get("/api/readings/{reading_id}/captions.vtt")
    async def captions(reading_id: str, request: Request) -> Response:
        """WebVTT: one cue per sentence, long ones split at commas."""
        row = await service.row(reading_id)
        if row.status != "done" or row.etag is None:
            raise ApiError(409, "not_ready", f"the reading is {row.status}: captions come last.")
        return await backend.file(request, row, "captions")

    @app.get("/api/readings/{reading_id}/chapters.json")
    async def chapters(reading_id: str) -> Response:
        """Podcasting 2.0 JSON chapters (seconds)."""
        row = await service.row(reading_id)
        if row.status != "done":
            raise ApiError(409, "not_ready", f"the reading is {row.status}: chapters come last.")
        marks = chapters_of(await backend.timeline(row.id))
        return Response(chapters_json(marks), media_type=CHAPTERS_MEDIA_TYPE)

    @app.get("/feed.xml")
    async def feed() -> Response:
        """Readings of public web pages as a podcast (RSS 2.0); posted text is never listed."""
        return Response(
            service.feed.xml(await backend.finished(listed=True)),
            media_type="application/rss+xml; charset=utf-8",
        )

    @app.get(
        "/healthz",
        response_model=HealthOut | ClusterHealthOut,
        responses={503: {"model": ClusterHealthOut, "description": "Redis cannot be used"}},
    )
    async def healthz() -> Response:
        """Liveness: the job store answers; on an API node, Redis, with the queue and workers."""
        health = await backend.health()
        return JSONResponse(health.body.model_dump(), status_code=200 if health.ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus text: counters of this process, gauges read from the backend now."""
        from newsreader.service import metrics

        metrics.set_gauges(**await backend.gauges())
        body, content_type = metrics.render()
        return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


def _pages(app: FastAPI, service: Service) -> None:
    def page() -> Response:
        return Response(
            _asset("templates", "index.html"),
            media_type="text/html; charset=utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return page()

    @app.get("/readings/{reading_id}", include_in_schema=False)
    async def reading_page(reading_id: str) -> Response:
        await service.row(reading_id)
        return page()

    @app.get("/widget.js", include_in_schema=False)
    async def widget() -> Response:
        return Response(
            _asset("static", "widget.js"),
            media_type=_STATIC["widget.js"],
            headers={"Cache-Control": "public, max-age=300"},
        )

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in _STATIC:  # a fixed set of names: nothing else on disk is reachable
            raise ApiError(404, "not_found", f"no static file {name[:60]!r}.")
        return Response(
            _asset("static", name),
            media_type=_STATIC[name],
            headers={"Cache-Control": "no-cache"},
        )
