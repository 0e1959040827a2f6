"""Synthesize a Script's segments: bounded concurrency, retries, cache; results in order.

Every segment gets its own task, but at most ``concurrency`` engine requests run at once: a
``Limiter`` (shareable between runs, as the service shares one) caps the connections a run opens,
retries included, and nothing holds a slot while it backs off. A transient failure is retried with
exponential back-off and full jitter. Results are yielded in script order as soon as each one and
all before it are ready, so a listener can start on the first paragraph while later ones are still
being synthesized. If some segments still fail, the others finish (and land in the cache) before
``SegmentsFailed`` names the ones that did not, so a re-run synthesizes only those.

Rate limits (HTTP 429) are the service's to set, so the ``Limiter`` adapts to them:

- after a 429, *no* request of any segment starts until its ``Retry-After`` has passed (or, with
  no ``Retry-After``, the back-off delay); the others do not pile on while the service says wait;
- a 429 also lowers the requests allowed at once to those still open when it came (the refused
  one was one too many; never below 1), so a service that caps connections below our
  ``concurrency`` is met at its cap instead of refused over and over. ``2 × concurrency``
  successes in a row, all started after the last 429, let one more back, up to ``concurrency``;
- a ``Retry-After`` longer than ``MAX_RETRY_AFTER`` is not waited out: that segment fails at once
  as rate limited, rather than holding the run for minutes or retrying against the server's word.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from newsreader.config import Settings
from newsreader.errors import SegmentsFailed, SynthesisError, TransientError
from newsreader.models import Script, Segment, SegmentAudio, SegmentKind
from newsreader.synth.base import Engine
from newsreader.synth.cache import SegmentCache, cache_key

MAX_BACKOFF = 30.0
"""The longest back-off between two attempts of a segment, seconds."""
MAX_RETRY_AFTER = 60.0
"""The longest ``Retry-After`` waited out; beyond it the segment fails as rate limited."""

ProgressCallback = Callable[[int, bool], None]
"""Called as ``(segment_index, from_cache)`` each time a segment is ready, in script order."""


@dataclass
class RunStats:
    requests: int = 0
    """Engine requests made (attempts, retries included)."""
    retries: int = 0
    cache_hits: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    """Failed attempts by kind (``TransientError.kind``), retried or not."""


class Limiter:
    """A cap on concurrent engine requests that backs off when the service rate-limits.

    ``async with limiter:`` around one request; ``rate_limited`` and ``succeeded`` report how it
    went (see the module docstring). Waiters are served first come, first served.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a limiter needs a limit of at least 1")
        self.limit = limit
        self.allowed = limit
        """Requests allowed at once now: ``limit``, or fewer after rate limits."""
        self.active = 0
        self.peak = 0
        """The most requests ever in flight at once."""
        self.epoch = 0
        """Counts 429s: a success counts towards more only if its request began after the last."""
        self._resume_at = 0.0  # event-loop time before which no request starts
        self._streak = 0
        self._waiters: list[asyncio.Future[None]] = []

    async def __aenter__(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            pause = self._resume_at - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            if self.active < self.allowed:
                break
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.active += 1
        self.peak = max(self.peak, self.active)

    async def __aexit__(self, *exc: object) -> None:
        self.active -= 1
        self._wake()

    def rate_limited(self, wait: float) -> None:
        """A request (already out of the limiter) got a 429: pause everyone, allow fewer."""
        now = asyncio.get_running_loop().time()
        self.allowed = max(1, min(self.allowed, self.active))
        self._resume_at = max(self._resume_at, now + wait)
        self.epoch += 1
        self._streak = 0

    def succeeded(self, epoch: int) -> None:
        """A request that began in ``epoch`` went through; enough of them allow one more."""
        if epoch != self.epoch or self.allowed >= self.limit:
            return
        self._streak += 1
        if self._streak >= 2 * self.limit:
            self.allowed += 1
            self._streak = 0
            self._wake()

    def _wake(self) -> None:
        # Everyone re-checks, in arrival order; those that find no slot queue up again.
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


_KIND_WORDS = {
    "rate_limit": "rate limited by the voice service",
    "network": "network failure",
    "timeout": "the voice service stalled past the deadline",
    "service_changed": "the voice service answered in an unknown way (it may have changed)",
    "truncated": "audio cut off",
    "no_audio": "no audio returned",
}

_ADVICE = {
    "rate_limit": "Wait a few minutes or use a lower --concurrency, then run again",
    "network": "Check the network connection, then run again",
    "timeout": "Check the network connection or use a longer --timeout, then run again",
    "service_changed": (
        "A newer edge-tts may be needed (pip install -U edge-tts), or use --engine espeak; "
        "to retry, run again"
    ),
    "truncated": "Run again",
    "no_audio": "Check --voice (see `newsreader voices`), then run again",
}


def describe_kinds(kinds: Iterable[str]) -> str:
    """Why segments failed, most frequent reason first: ``rate limited by …, network failure``."""
    counted = Counter(kinds)
    return ", ".join(_KIND_WORDS.get(kind, kind) for kind, _ in counted.most_common())


def describe_failures(
    script: Script, failed: dict[int, TransientError], *, cached: bool = True
) -> str:
    """One line naming the failed paragraphs, why, and what to do (for the CLI's message)."""
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
    reasons = describe_kinds(err.kind for err in failed.values())
    main_kind = kinds.most_common(1)[0][0]
    rerun = (
        "only those are synthesized again (the rest are cached)."
        if cached
        else "everything is synthesized again (--no-cache)."
    )
    return (
        f"{len(failed)} of {len(script.segments)} segments failed after retries "
        f"({reasons}): {', '.join(unique)}. Nothing was written. "
        f"{_ADVICE.get(main_kind, 'Run again')}: {rerun}"
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
        limiter = self.limiter
        for attempt in range(settings.retries + 1):
            try:
                async with limiter:
                    epoch = limiter.epoch
                    self.stats.requests += 1
                    audio = await self.engine.synthesize(segment, settings)
            except TransientError as exc:
                self.stats.failures[exc.kind] += 1
                delay = self._rng.uniform(0, min(MAX_BACKOFF, settings.backoff * 2**attempt))
                if exc.kind == "rate_limit":
                    wait = exc.retry_after if exc.retry_after is not None else delay
                    if wait > MAX_RETRY_AFTER:
                        raise TransientError(
                            f"{exc.message}; it asks to wait {wait:.0f} s",
                            kind="rate_limit",
                            retry_after=wait,
                        ) from None
                    limiter.rate_limited(wait)
                    delay = max(delay, wait)
                elif exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, MAX_BACKOFF))
                if attempt == settings.retries:
                    raise
                self.stats.retries += 1
                await asyncio.sleep(delay)
            else:
                limiter.succeeded(epoch)
                return audio
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
            raise SegmentsFailed(
                describe_failures(script, failed, cached=self.cache.root is not None),
                tuple(sorted(failed)),
                {index: error.kind for index, error in failed.items()},
            )
