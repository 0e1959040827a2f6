"""What a reading asks for: a ``JobRequest``, a plain description, serializable as JSON.

The store keeps it, and the scale-out queue carries it to a worker on another machine, which
needs nothing else but the deployment's ``ServiceConfig``. Its id is a hash of the description,
so the same content with the same settings is the same reading and is synthesized once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from newsreader import pipeline
from newsreader.config import DEFAULT_VOICE, Settings, check_percent, check_voice
from newsreader.models import Article
from newsreader.service.config import ServiceConfig
from newsreader.service.payloads import RequestPayload, SourceKind
from newsreader.service.security import AddressPolicy
from newsreader.text.extract import extract

ID_VERSION = 1
"""Part of every reading id: bump it when the same request should make a new reading."""


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


__all__ = [
    "ID_VERSION",
    "JobRequest",
    "job_settings",
    "load_article",
]
