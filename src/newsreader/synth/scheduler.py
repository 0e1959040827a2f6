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

A stalled request (the service accepts it, then says nothing) is told from a slow one by silence,
not by the request's deadline (``--timeout``, which stays as the last resort). The engine reports
every message of an answer (``newsreader.synth.base.Progress``), and ``Pace`` learns from this
run's own answers how long the first audio takes and how long an answer goes quiet between two
messages (their 90th percentiles). A request with no first audio within ``StallPolicy.factor``
times the first, or quiet mid-answer for that many times the second (never less than
``StallPolicy.floor``), is hung up and sent again at once, on a fresh connection, with twice the
patience for that segment each time. An answer that keeps arriving is never cut off, however
slowly it comes. And, as in "The Tail at Scale", a request still waiting for its first audio
past the run's usual wait gets a second copy when a connection is free: whichever answers
first is kept, the other is hung up.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from newsreader.config import Settings
from newsreader.errors import SegmentsFailed, SynthesisError, TransientError
from newsreader.models import Script, Segment, SegmentAudio, SegmentKind
from newsreader.synth.base import REQUEST_PROGRESS, Engine, Progress
from newsreader.synth.cache import SegmentCache, cache_key

MAX_BACKOFF = 30.0
"""The longest back-off between two attempts of a segment, seconds."""
MAX_RETRY_AFTER = 60.0
"""The longest ``Retry-After`` waited out; beyond it the segment fails as rate limited."""

CHECK_INTERVAL = 0.25
"""How often a waiting request is looked at again (the learned bounds change as answers come)."""

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
    stalls: int = 0
    """Requests hung up because the service went silent (counted in ``failures["timeout"]``)."""
    hedges: int = 0
    """Second copies sent for a request slow to answer."""


@dataclass(frozen=True)
class StallPolicy:
    """When a silent request counts as stalled, and when a slow one gets a second copy."""

    factor: float = 4.0
    """Stalled after this many times the run's usual silence (90th percentile) with nothing."""
    floor: float = 1.0
    """... and never sooner than this many seconds."""
    hedge_factor: float = 2.0
    """A second copy after this many times the usual wait for first audio (90th percentile)."""
    hedge_floor: float = 0.5
    """... and never sooner than this many seconds."""
    hedge: bool = True
    samples: int = 1
    """First audios to have seen before the bounds are learned (and hedges sent)."""
    initial: float = 10.0
    """Until then, stalled after this many seconds of silence (edge's first audio takes about
    a second; ``--timeout`` still applies if it is shorter)."""
    window: int = 200
    """The latest answers the percentiles are taken over."""


class Pace:
    """What this run's answers say about the service: how long the first audio takes, and the
    longest quiet within an answer."""

    def __init__(self, policy: StallPolicy) -> None:
        self.policy = policy
        self._first: deque[float] = deque(maxlen=policy.window)
        self._gaps: deque[float] = deque(maxlen=policy.window)

    def first_audio(self, seconds: float) -> None:
        self._first.append(seconds)

    def answered(self, longest_gap: float) -> None:
        self._gaps.append(longest_gap)

    def silence_bound(self, *, answering: bool, patience: float = 1.0) -> float:
        """Seconds of silence after which a request is stalled: before its first audio, or
        (``answering``) between two messages."""
        policy = self.policy
        if len(self._first) < max(1, policy.samples):
            return policy.initial * patience
        usual = _p90(self._gaps if answering else self._first)
        return max(policy.floor, policy.factor * usual) * patience

    def hedge_after(self) -> float | None:
        """Seconds without first audio after which a request gets a second copy; None: never."""
        policy = self.policy
        if not policy.hedge or len(self._first) < max(1, policy.samples):
            return None
        return max(policy.hedge_floor, policy.hedge_factor * _p90(self._first))


def _p90(values: Iterable[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)] if ordered else 0.0


class _Stalled(TransientError):
    """A request hung up because the service said nothing for too long."""

    def __init__(self, silence: float) -> None:
        super().__init__(f"edge sent nothing for {silence:.1f} s: it stalled", kind="timeout")


@dataclass
class _Copy:
    """One request for a segment (the first, or a hedge), and how it is going."""

    task: asyncio.Task[SegmentAudio]
    progress: Progress
    stalled: float | None = None
    """The silence it was hung up after, if it was."""


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

    def has_room(self) -> bool:
        """Whether a request could start now without waiting for anyone (hedges go only then)."""
        loop = asyncio.get_running_loop()
        return self._resume_at <= loop.time() and self.active < self.allowed and not self._waiters

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
        stalls: StallPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.cache = cache
        self.limiter = limiter or Limiter(settings.concurrency)
        self.stats = RunStats()
        self.pace = Pace(stalls or StallPolicy())
        self._rng = rng or random.Random()
        self._voice_id = engine.voice_id(settings)
        self._hung_up: set[asyncio.Task[SegmentAudio]] = set()
        """Requests cancelled and still closing their connection (awaited at the end of run)."""

    async def _attempts(self, segment: Segment) -> SegmentAudio:
        settings = self.settings
        limiter = self.limiter
        patience = 1.0
        for attempt in range(settings.retries + 1):
            try:
                audio = await self._request(segment, patience)
            except TransientError as exc:
                self.stats.failures[exc.kind] += 1
                if isinstance(exc, _Stalled):
                    # silence, not an error: send it again at once, a little more patiently
                    if attempt == settings.retries:
                        raise
                    self.stats.retries += 1
                    patience *= 2
                    continue
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
                return audio
        raise AssertionError("unreachable")  # pragma: no cover

    async def _request(self, segment: Segment, patience: float) -> SegmentAudio:
        """One attempt at a segment: a request watched for silence, and perhaps a hedge.

        Returns the first answer that completes; raises the last failure when every copy failed
        or was hung up on. A copy hung up on closes its connection in the background (holding
        its place under the connection cap until it has), so the retry is not kept waiting.
        """
        copies = [self._send(segment)]
        failure: TransientError | None = None
        try:
            while True:
                wake, stalled = self._watch(segment, copies, patience)
                failure = stalled or failure
                if not copies:
                    break
                timeout = max(0.0, wake - time.monotonic())
                await asyncio.wait(
                    [c.task for c in copies], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                for copy in [c for c in copies if c.task.done()]:
                    copies.remove(copy)
                    error = copy.task.exception()
                    if error is None:
                        return copy.task.result()
                    if not isinstance(error, TransientError):
                        raise error
                    failure = error
                if not copies:
                    break
            assert failure is not None
            raise failure
        finally:
            for copy in copies:
                self._hang_up(copy.task)

    def _watch(
        self, segment: Segment, copies: list[_Copy], patience: float
    ) -> tuple[float, _Stalled | None]:
        """Hang up on silent copies (taking them out of ``copies``) and send a hedge when one is
        due. Returns when to look again, and the stall if a copy was hung up as stalled."""
        now = time.monotonic()
        wake = now + CHECK_INTERVAL
        stalled: _Stalled | None = None
        answering = any(c.progress.first is not None for c in copies)
        for copy in list(copies):
            progress = copy.progress
            if progress.last is None:
                continue  # waiting for a connection, or an engine that reports nothing
            if answering and progress.first is None:
                copies.remove(copy)  # another copy is answering: this silent one is not needed
                self._hang_up(copy.task)
                continue
            bound = self.pace.silence_bound(answering=progress.first is not None, patience=patience)
            if now - progress.last >= bound:
                stalled = _Stalled(now - progress.last)
                self.stats.stalls += 1
                copies.remove(copy)
                self._hang_up(copy.task)
            else:
                wake = min(wake, progress.last + bound)
        hedge_after = self.pace.hedge_after()
        if len(copies) == 1 and not stalled and hedge_after is not None:
            started, first = copies[0].progress.started, copies[0].progress.first
            if started is not None and first is None:
                due = started + hedge_after
                if now >= due and self.limiter.has_room():
                    self.stats.hedges += 1
                    copies.append(self._send(segment))
                elif now < due:
                    wake = min(wake, due)
        return wake, stalled

    def _hang_up(self, task: asyncio.Task[SegmentAudio]) -> None:
        """Cancel a request; it closes its connection in the background (awaited by ``run``)."""
        task.cancel()
        self._hung_up.add(task)
        task.add_done_callback(self._closed)

    def _closed(self, task: asyncio.Task[SegmentAudio]) -> None:
        self._hung_up.discard(task)
        if not task.cancelled():
            task.exception()  # it finished before the cancel reached it: nothing to report

    def _send(self, segment: Segment) -> _Copy:
        progress = Progress(on_first=self.pace.first_audio)
        return _Copy(asyncio.create_task(self._one_request(segment, progress)), progress)

    async def _one_request(self, segment: Segment, progress: Progress) -> SegmentAudio:
        limiter = self.limiter
        async with limiter:
            epoch = limiter.epoch
            self.stats.requests += 1
            REQUEST_PROGRESS.set(progress)  # this task's own context: seen by this request only
            audio = await self.engine.synthesize(segment, self.settings)
        limiter.succeeded(epoch)
        if progress.first is not None:
            self.pace.answered(progress.longest_gap)
        return audio

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
            # requests hung up on: their connections close before the run ends
            await asyncio.gather(*self._hung_up, return_exceptions=True)
        if failed:
            raise SegmentsFailed(
                describe_failures(script, failed, cached=self.cache.root is not None),
                tuple(sorted(failed)),
                {index: error.kind for index, error in failed.items()},
            )
