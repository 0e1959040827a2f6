"""Synthesize a Script's segments: bounded concurrency, retries, cache; results in order.

Every segment gets its own task, but at most ``concurrency`` engine requests run at once (a
``Limiter`` shared across runs caps connections process-wide). A transient failure is retried with
exponential back-off and full jitter, honouring a server's ``Retry-After``. Results are yielded in
script order as soon as each one and all before it are ready, so a listener can start on the first
paragraph while later ones are still being synthesized. If some segments still fail, the others
finish (and land in the cache) before ``SegmentsFailed`` names the ones that did not.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from newsreader.config import Settings
from newsreader.errors import SegmentsFailed, SynthesisError, TransientError
from newsreader.models import Script, Segment, SegmentAudio, SegmentKind
from newsreader.synth.base import Engine
from newsreader.synth.cache import SegmentCache, cache_key

MAX_BACKOFF = 30.0

ProgressCallback = Callable[[int, bool], None]
"""Called as ``(segment_index, from_cache)`` each time a segment is ready."""


@dataclass
class RunStats:
    requests: int = 0
    """Engine requests made (attempts, retries included)."""
    retries: int = 0
    cache_hits: int = 0
    failures: Counter[str] = field(default_factory=Counter)


class Limiter:
    """A cap on concurrent engine requests, shareable between runs (the service shares one)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._semaphore = asyncio.Semaphore(limit)

    async def __aenter__(self) -> None:
        await self._semaphore.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._semaphore.release()


_KIND_WORDS = {
    "rate_limit": "rate limited by the voice service",
    "network": "network failure",
    "timeout": "timed out",
    "service_changed": "the voice service answered in an unknown way (it may have changed)",
    "truncated": "audio cut off",
    "no_audio": "no audio returned",
}


def describe_failures(script: Script, failed: dict[int, TransientError]) -> str:
    """One line naming the failed paragraphs and why, e.g. for the CLI's error message."""
    places = []
    for index in sorted(failed):
        segment = script.segments[index]
        if segment.kind is SegmentKind.TITLE:
            places.append("the title")
        elif segment.kind is SegmentKind.HEADING:
            places.append(f"heading {segment.block + 1}")
        else:
            places.append(f"paragraph {segment.block + 1}")
    unique = list(dict.fromkeys(places))
    kinds = Counter(err.kind for err in failed.values())
    reasons = ", ".join(_KIND_WORDS.get(kind, kind) for kind, _ in kinds.most_common())
    return (
        f"{len(failed)} of {len(script.segments)} segments failed after retries "
        f"({reasons}): {', '.join(unique)}. Nothing was written; run again to retry only "
        "those (the rest are cached)."
    )


class Scheduler:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        cache: SegmentCache,
        *,
        limiter: Limiter | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.cache = cache
        self.limiter = limiter or Limiter(settings.concurrency)
        self.stats = RunStats()
        self._rng = rng or random.Random()
        self._voice_id = engine.voice_id(settings)

    async def _attempts(self, segment: Segment) -> SegmentAudio:
        settings = self.settings
        for attempt in range(settings.retries + 1):
            try:
                async with self.limiter:
                    self.stats.requests += 1
                    return await self.engine.synthesize(segment, settings)
            except TransientError as exc:
                self.stats.failures[exc.kind] += 1
                if attempt == settings.retries:
                    raise
                self.stats.retries += 1
                delay = self._rng.uniform(0, min(MAX_BACKOFF, settings.backoff * 2**attempt))
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, MAX_BACKOFF))
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _one(self, segment: Segment) -> tuple[SegmentAudio, bool]:
        key = cache_key(self._voice_id, segment)
        cached = self.cache.get(key, segment)
        if cached is not None:
            self.stats.cache_hits += 1
            return cached, True
        audio = await self._attempts(segment)
        if len(audio.sentences) != len(segment.sentences):
            raise SynthesisError(
                f"engine {self.engine.name} returned {len(audio.sentences)} sentence timings "
                f"for {len(segment.sentences)} sentences"
            )
        self.cache.put(key, audio)
        return audio, False

    async def run(
        self, script: Script, on_ready: ProgressCallback | None = None
    ) -> AsyncIterator[SegmentAudio]:
        """Yield each segment's audio in script order."""
        tasks = [asyncio.create_task(self._one(seg)) for seg in script.segments]
        failed: dict[int, TransientError] = {}
        try:
            for index, task in enumerate(tasks):
                try:
                    audio, from_cache = await task
                except TransientError as exc:
                    failed[index] = exc
                    continue
                if on_ready is not None:
                    on_ready(index, from_cache)
                if not failed:
                    yield audio
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if failed:
            raise SegmentsFailed(describe_failures(script, failed), tuple(sorted(failed)))
