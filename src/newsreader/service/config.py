"""The service's settings: validated once when the app is made, then passed down unchanged.

These are the deployment's choices (where data lives, who may call, how hard the voice service may
be pushed). What a reading sounds like (voice, rate) comes with each request.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from newsreader.config import (
    DEFAULT_LOUDNESS,
    EngineName,
    FallbackName,
    check_clip,
    check_loudness,
)
from newsreader.errors import UsageError
from newsreader.synth import registry

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: tuple[str, ...] | list[str]) -> tuple[Network, ...]:
    """``127.0.0.1``, ``10.0.0.0/8`` or ``::1`` → networks; ``UsageError`` names a bad one."""
    networks: list[Network] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise UsageError(
                f"--allow-address {value!r} is not an IP address or network "
                "(e.g. 127.0.0.1 or 10.1.0.0/16)."
            ) from None
    return tuple(networks)


def check_origin(origin: str) -> str:
    """An origin is ``scheme://host[:port]`` with nothing after it."""
    cleaned = origin.strip().rstrip("/")
    scheme, sep, rest = cleaned.partition("://")
    if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
        raise UsageError(
            f"--allow-origin {origin!r} is not an origin: use scheme://host[:port], "
            "e.g. https://news.example.cn."
        )
    return cleaned


def check_public_url(url: str) -> str:
    """``scheme://host[:port][/path]``, http(s), without query or fragment; no trailing slash."""
    cleaned = url.strip().rstrip("/")
    try:
        parts = urlsplit(cleaned)
        parts.port  # noqa: B018  # raises ValueError for a bad port
    except ValueError:
        parts = urlsplit("")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
        or any(c.isspace() or not c.isprintable() for c in cleaned)
    ):
        raise UsageError(
            f"--public-url {url!r} is not a public address: use scheme://host[:port][/path], "
            "e.g. https://read.example.cn."
        )
    return cleaned


def check_storage(spec: str) -> str:
    """A folder path (``file://PATH`` too) or ``s3://BUCKET[/PREFIX]``; the form only, no I/O."""
    cleaned = spec.strip()
    scheme, sep, rest = cleaned.partition("://")
    if not cleaned or any(not c.isprintable() for c in cleaned):
        problem = "is empty or has a control character in it"
    elif not sep and cleaned.partition(":")[0].lower() in ("s3", "file", "http", "https"):
        problem = f"looks like a URL missing its // ({cleaned.partition(':')[0][:10]}://…)"
    elif not sep:
        return cleaned  # a folder, e.g. one shared between machines
    elif scheme.lower() == "file":
        problem = "" if rest.startswith("/") else "needs an absolute path (file:///srv/x)"
    elif scheme.lower() == "s3":
        bucket = rest.partition("/")[0]
        valid = (
            3 <= len(bucket) <= 63
            and all(c.islower() or c.isdigit() or c in ".-" for c in bucket)
            and bucket[0].isalnum()
            and bucket[-1].isalnum()
            and not any(c.isspace() for c in rest)
        )
        problem = "" if valid else "names no valid bucket (3-63 lowercase letters, digits, . or -)"
    else:
        problem = f"has a scheme ({scheme[:20]}://) that is not supported"
    if problem:
        raise UsageError(
            f"--storage {spec[:100]!r} {problem}: leave it out for the data folder, or give a "
            "folder path or s3://BUCKET/PREFIX."
        )
    return cleaned.rstrip("/") if cleaned.lower().startswith("s3://") else cleaned


def check_s3_endpoint(url: str) -> str:
    """``http(s)://host[:port][/path]``, without query or fragment; no I/O."""
    cleaned = url.strip().rstrip("/")
    try:
        parts = urlsplit(cleaned)
        parts.port  # noqa: B018  # raises ValueError for a bad port
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise UsageError(
            f"--s3-endpoint {url!r} is not an S3 endpoint: use http(s)://HOST[:PORT], "
            "e.g. http://127.0.0.1:9000 (or leave it out for AWS)."
        )
    return cleaned


def default_public_url(host: str, port: int) -> str:
    """The address --host and --port give, for when --public-url is not set."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass(frozen=True)
class ServiceConfig:
    data_dir: Path
    """SQLite job store, finished audio (``readings/``) and by default the segment cache."""
    cache_dir: Path | None = None
    """Segment cache; default ``data_dir/cache``."""
    engine: EngineName = "auto"
    fallback: FallbackName = "none"
    """What reads a reading whose online voice failed partway (``Settings.fallback``)."""
    token: str | None = None
    """When set, POST requests need ``Authorization: Bearer <token>``."""
    allow_origins: tuple[str, ...] = ()
    """Origins whose pages may call the API (the widget on a publisher's site)."""
    allow_addresses: tuple[Network, ...] = ()
    """Addresses URL sources may resolve to even though they are not public (tests, intranets)."""
    voice_connections: int = 8
    """Process-wide cap on concurrent requests to the voice service, shared by all jobs."""
    segment_concurrency: int = 4
    """Per-job cap on concurrent segment requests (within the process-wide cap)."""
    max_running_jobs: int = 32
    """Jobs synthesized at the same time; more wait in the queue (in order)."""
    max_body_bytes: int = 2_000_000
    max_text_chars: int = 100_000
    """Pasted text (``text``) longer than this is refused."""
    max_html_chars: int = 2_000_000
    max_chars: int = 20_000
    """A reading's characters once extracted and normalized (about 80 minutes of speech)."""
    max_segments: int = 1_000
    """A reading's segments (requests to the voice; each paragraph is at least one)."""
    public_url: str = "http://127.0.0.1:8000"
    """Where readers reach the service: links in /feed.xml (never taken from a request)."""
    fetch_timeout: float = 10.0
    """For each step of a page download (connect, each read)."""
    fetch_deadline: float = 30.0
    """For reading a URL source as a whole, redirects included."""
    max_download_bytes: int = 5_000_000
    rate_limit: int = 30
    """POSTs per client per minute (a burst of ``rate_burst`` is allowed); 0 turns it off."""
    rate_burst: int = 10
    resolve_timeout: float = 5.0
    jobs_per_client: int = 2
    """Readings of one client made at the same time; its others wait their turn (in order)."""
    fetch_workers: int = 8
    """Threads that fetch and extract URL sources (their own pool: a slow site holds one)."""
    work_workers: int = 2
    """Threads that build scripts and write finished files (extraction of posted text too)."""
    header_timeout: float = 10.0
    """Seconds a connection may take to send a request's head (line and headers)."""
    body_timeout: float = 30.0
    """Seconds a request may take to send its body, after its head."""
    keep_alive: float = 5.0
    """Seconds an idle connection is kept open between requests."""
    max_connections: int = 512
    """Open client connections at most; past it the longest-waiting idle one is closed."""
    forwarded_allow_ips: tuple[str, ...] = ()
    """Proxies whose X-Forwarded-For/-Proto are believed (none: the peer address is the client)."""
    extra_headers: dict[str, str] = field(default_factory=dict)
    loudness: float | None = DEFAULT_LOUDNESS
    """LUFS every finished reading is brought to (``Settings.loudness``); None: off. The live
    stream, sent as it is made, keeps the voice's own level."""
    intro: Path | None = None
    """Played before each finished reading (not in the live stream)."""
    outro: Path | None = None
    """Played after each finished reading (not in the live stream)."""
    redis_url: str | None = None
    """Scale-out mode: reading state, the job queue, live audio and the rate limit live in this
    Redis; the node is a stateless API (workers synthesize). None: the embedded service."""
    storage: str | None = None
    """Where finished readings and the segment cache live: None, the data folder; a folder
    (shared between machines); or ``s3://BUCKET/PREFIX`` (``storage.open_storage``)."""
    s3_endpoint: str | None = None
    """The S3 service's address (MinIO, a test server); None: AWS's own. Unused without an
    ``s3://`` storage."""

    def __post_init__(self) -> None:
        check_loudness(self.loudness)
        check_clip(self.intro, "intro")
        check_clip(self.outro, "outro")
        registry.check_engine(self.engine)
        registry.check_fallback(self.fallback, self.engine)
        if self.voice_connections < 1 or self.segment_concurrency < 1:
            raise UsageError("voice connections and segment concurrency must be at least 1.")
        if not 1 <= self.segment_concurrency <= 16:
            raise UsageError("segment concurrency must be 1 to 16.")
        if self.max_running_jobs < 1:
            raise UsageError("--max-jobs must be at least 1.")
        if self.rate_limit < 0 or self.rate_burst < 1:
            raise UsageError("--rate-limit must be 0 (off) or more, with a burst of at least 1.")
        if self.jobs_per_client < 1 or self.fetch_workers < 1 or self.work_workers < 1:
            raise UsageError("--jobs-per-client and the worker counts must be at least 1.")
        if min(self.header_timeout, self.body_timeout, self.keep_alive, self.fetch_deadline) <= 0:
            raise UsageError("--header-timeout, --body-timeout and deadlines must be positive.")
        if self.max_connections < 1:
            raise UsageError("--max-connections must be at least 1.")
        for proxy in self.forwarded_allow_ips:
            try:
                if proxy != "*":
                    ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise UsageError(
                    f"--forwarded-allow-ips {proxy!r} is not an IP address or network "
                    "(e.g. 127.0.0.1 or 10.0.0.0/8), or *."
                ) from None
        if self.token is not None and not self.token.strip():
            raise UsageError("--token must not be empty.")
        object.__setattr__(
            self, "allow_origins", tuple(check_origin(o) for o in self.allow_origins)
        )
        if self.max_chars < 1 or self.max_segments < 1:
            raise UsageError("--max-chars and --max-segments must be at least 1.")
        object.__setattr__(self, "public_url", check_public_url(self.public_url))
        if self.redis_url is not None:
            from newsreader.scale.redisurl import check_redis_url

            object.__setattr__(self, "redis_url", check_redis_url(self.redis_url))
        if self.storage is not None:
            object.__setattr__(self, "storage", check_storage(self.storage))
        if self.s3_endpoint is not None:
            object.__setattr__(self, "s3_endpoint", check_s3_endpoint(self.s3_endpoint))

    @property
    def segment_cache(self) -> Path:
        return self.cache_dir or self.data_dir / "cache"

    @property
    def readings_dir(self) -> Path:
        return self.data_dir / "readings"

    @property
    def database(self) -> Path:
        return self.data_dir / "newsreader.sqlite3"
