"""Synthesize a Script's segments: adaptive concurrency, retries, cache; results in order.

Every distinct segment gets its own task, but a ``Limiter`` (shareable between runs, as the
service shares one) caps the engine requests open at once, retries and hedges included, and
nothing holds a slot while it backs off. A transient failure is retried with exponential back-off
and full jitter. Results are yielded in script order as soon as each one and all before it are
ready, so a listener can start on the first paragraph while later ones are still being
synthesized. If some segments still fail, the others finish (and land in the cache) before
``SegmentsFailed`` names the ones that did not, so a re-run synthesizes only those.

Work order (``newsreader.synth.order``): segments whose text is the same are synthesized once.
The headline and the first paragraphs are asked for in script order, so the listener's audio
starts at once; after them, the segments go in windows, each planned for the connections the
run will have (as adaptive concurrency opens them, then as they free up).

How many requests at once (the ``Limiter``'s *level*, ``allowed``) is found the way TCP finds its
window, additive increase and multiplicative decrease, and never goes above ``limit``:

- *Adaptive* (``Limiter(limit, start=4)``, the default): the run trusts 4, a level the service
  has always taken, and goes up one at a time from there, the first step at once. A request
  opened above the level the service has been seen to take is a *probe*, and there is never
  more than one request above that level: the next step up waits until the service has taken
  the probe. It has when it accepts the probe's connection: the service refuses one it will not
  take at the handshake (HTTP 429 on the websocket upgrade), so an engine that reports the
  accepted handshake (``Progress.accept()``) proves a probe a round trip after it set off, well
  before its first audio; for an engine that does not, the answer's start proves it. Until the
  first sign of trouble, every probe taken allows the next one at once; after it, one more is
  tried only after ``2 × level`` answers in a row (``AdaptPolicy.probe_rounds``), twice as many
  after each refused probe.
- *Pinned* (``Limiter(limit)``, ``--concurrency N``): the level starts at ``limit``; after a
  decrease it grows back the same careful way, never above ``limit``.
- *Decrease*, in both: the signal is acted on at once, within the round trip that brought it,
  and once per round (signals from requests begun before the last change are already answered):

  - HTTP 429 while a probe is out: the probe found the service's limit; the level steps back to
    what the service took;
  - HTTP 429 otherwise (the service is throttling what it took before): the level halves
    (``AdaptPolicy.decrease``), and is never above the requests still open when it came;
  - ``AdaptPolicy.failure_run`` connection failures in a row (refused, reset, 5xx): halves;
  - an answer slow to start, ``AdaptPolicy.slow_factor`` × this run's usual wait and at least
    ``AdaptPolicy.slow_margin`` s more (an overloaded service queues): halves. Never below 1.

Besides lowering the level, a 429 stops *every* new request until its ``Retry-After`` has passed
(or, with no ``Retry-After``, the back-off delay): the others do not pile on while the service
says wait. A ``Retry-After`` longer than ``MAX_RETRY_AFTER`` is not waited out: that segment
fails at once as rate limited, rather than holding the run for minutes or retrying against the
server's word.

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
import functools
import math
import random
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from newsreader.config import Settings
from newsreader.errors import SegmentsFailed, SynthesisError, TransientError, UsageError
from newsreader.models import Script, Segment, SegmentAudio, SegmentKind
from newsreader.synth.base import (
    REQUEST_PROGRESS,
    AudioListener,
    AudioStream,
    Engine,
    Progress,
)
from newsreader.synth.cache import SegmentCache, cache_key
from newsreader.synth.order import Opening, WorkOrder, WorkPlan

MAX_BACKOFF = 30.0
"""The longest back-off between two attempts of a segment, seconds."""
MAX_RETRY_AFTER = 60.0
"""The longest ``Retry-After`` waited out; beyond it the segment fails as rate limited."""

CHECK_INTERVAL = 0.25
"""How often a waiting request is looked at again (the learned bounds change as answers come)."""

AHEAD = 64
"""Segments asked for ahead of the one the listener waits for, at least (8 × the limiter's
limit if that is more): enough to keep every request slot busy past a slow one, while a long
article's tasks, and results not yet yielded, do not all sit in memory at once."""

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
    duplicates: int = 0
    """Segments whose text an earlier segment already had: synthesized once, used again."""
    level: int = 0
    """The level of concurrency the run settled at: requests allowed at once when it ended."""
    peak: int = 0
    """The most requests that were open at once."""
    adaptive_limit: int = 0
    """The ceiling of adaptive concurrency (``--max-concurrency``); 0 when it was pinned."""

    def concurrency_note(self) -> str:
        """``concurrency settled at 12 (at most 16)`` for an adaptive run; '' for a pinned one."""
        if not self.adaptive_limit:
            return ""
        return f"concurrency settled at {self.level} (at most {self.adaptive_limit})"


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


@dataclass(frozen=True)
class AdaptPolicy:
    """How the level of concurrency follows the service (see the module docstring)."""

    start: int = 4
    """Where adaptive concurrency starts: a level the service has always taken."""
    decrease: float = 0.5
    """The level is multiplied by this on a sign of overload."""
    probe_rounds: int = 2
    """After the first sign of trouble, one more request at once is tried after this many times
    the level's worth of answers in a row (twice as many after each refused try)."""
    failure_run: int = 2
    """This many connection failures in a row are a sign of overload."""
    slow_factor: float = 3.0
    """An answer is slow to start after this many times the run's usual wait (its lower
    quartile) ..."""
    slow_margin: float = 1.0
    """... and at least this many seconds more than it."""
    slow_samples: int = 8
    """Answers to have seen before any is judged slow."""


START_CONCURRENCY = AdaptPolicy.start


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

    def slow(self, seconds: float, policy: AdaptPolicy) -> bool:
        """Whether a first audio after ``seconds`` is far slower than this run's usual one (a
        sign the service is queueing), judged before it joins the samples."""
        if len(self._first) < max(1, policy.slow_samples):
            return False
        usual = _quantile(self._first, 0.25)
        return seconds > max(policy.slow_factor * usual, usual + policy.slow_margin)

    def hedge_after(self) -> float | None:
        """Seconds without first audio after which a request gets a second copy; None: never."""
        policy = self.policy
        if not policy.hedge or len(self._first) < max(1, policy.samples):
            return None
        return max(policy.hedge_floor, policy.hedge_factor * _p90(self._first))


def _p90(values: Iterable[float]) -> float:
    return _quantile(values, 0.9)


def _quantile(values: Iterable[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else 0.0


class _Stalled(TransientError):
    """A request hung up because the service said nothing for too long."""

    def __init__(self, silence: float) -> None:
        super().__init__(f"edge sent nothing for {silence:.1f} s: it stalled", kind="timeout")


@dataclass
class _Copy:
    """One request for a segment (the first, or a hedge), and how it is going."""

    progress: Progress
    task: asyncio.Task[SegmentAudio] = field(init=False)
    ticket: Ticket | None = None
    """Set once the limiter let it go."""
    stream: AudioStream | None = None
    """Where its audio goes as it arrives (kept if its answer is the one used, else dropped)."""


@dataclass(frozen=True)
class Ticket:
    """One request the limiter let go: in which round (``epoch``), and as which of the requests
    open at once (``level``: 5 is the fifth)."""

    epoch: int
    level: int


class Limiter:
    """How many engine requests may be open at once, found by AIMD (see the module docstring).

    ``async with limiter:`` around one request, then ``ticket()`` first thing inside it;
    ``accepted``, ``answered`` and ``failed`` with that ticket report how it went. Waiters are
    served first come, first served. ``Limiter(limit)`` is pinned at ``limit``;
    ``Limiter(limit, start=4)`` is adaptive, from 4 (and a probe at once) up to ``limit``.
    """

    def __init__(
        self, limit: int, *, start: int | None = None, policy: AdaptPolicy | None = None
    ) -> None:
        if limit < 1:
            raise ValueError("a limiter needs a limit of at least 1")
        self.limit = limit
        self.policy = policy or AdaptPolicy()
        self.adaptive = start is not None
        self.allowed = limit if start is None else max(1, min(start, limit))
        """Requests allowed at once now (the level)."""
        self.proven = self.allowed
        """The most requests at once the service has been seen to take since the last decrease
        (the start is taken on trust). ``allowed`` is never more than one above it."""
        self.growing = self.adaptive
        """Before the first sign of trouble: every probe taken allows the next one at once."""
        self.active = 0
        self.peak = 0
        """The most requests ever in flight at once."""
        self.epoch = 0
        """Counts changes of the level downwards: a signal counts only if its request began
        after the last one."""
        self.decreases = 0
        self._resume_at = 0.0  # event-loop time before which no request starts
        self._answers = 0  # answers in a row, begun in this epoch, since the last step up
        self._refused_probes = 0  # probes refused in a row at this level
        self._failures = 0  # connection failures in a row
        self._waiters: list[asyncio.Future[None]] = []
        if self.adaptive:
            self._step_up()  # the first probe goes with the first requests

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

    def ticket(self) -> Ticket:
        """The request just let in (call it first thing inside ``async with``)."""
        return Ticket(self.epoch, self.active)

    def has_room(self) -> bool:
        """Whether a request could start now without waiting for anyone (hedges go only then)."""
        loop = asyncio.get_running_loop()
        return self._resume_at <= loop.time() and self.active < self.allowed and not self._waiters

    # -- what the requests report --------------------------------------------------------------

    def accepted(self, ticket: Ticket) -> None:
        """The service took the request's connection (its handshake was accepted): a probe has
        gone through, a round trip after it set off."""
        self._failures = 0
        if ticket.epoch == self.epoch and ticket.level > self.proven:
            self._proved(ticket.level)
            self._step_up()

    def answered(self, ticket: Ticket, *, slow: bool = False) -> None:
        """The service began to answer the request (``slow``: far later than usual)."""
        self._failures = 0
        if ticket.epoch != self.epoch:
            return  # begun before the last decrease: it proves nothing either way
        if slow:
            self._decrease(self.allowed)
            return
        if ticket.level > self.proven:  # a probe whose acceptance was not reported
            self._proved(ticket.level)
        else:
            self._answers += 1
        self._step_up()

    def failed(self, ticket: Ticket | None, kind: str) -> None:
        """The request failed: a 429 (``rate_limit``) or a connection failure (``network``) is
        a sign of overload; other failures say nothing about load."""
        if kind == "rate_limit":
            self._failures = 0
            self._refused(ticket)
        elif kind == "network":
            self._failures += 1
            fresh = ticket is None or ticket.epoch == self.epoch
            if fresh and self._failures >= self.policy.failure_run:
                self._failures = 0
                self._decrease(self.allowed)

    def pause(self, wait: float) -> None:
        """No request starts for ``wait`` seconds (a 429's ``Retry-After``)."""
        now = asyncio.get_running_loop().time()
        self._resume_at = max(self._resume_at, now + wait)

    def rate_limited(self, wait: float, ticket: Ticket | None = None) -> None:
        """A request (already out of the limiter) got a 429: pause everyone, allow fewer."""
        self.failed(ticket, "rate_limit")
        self.pause(wait)

    # -- the level -----------------------------------------------------------------------------

    def _proved(self, level: int) -> None:
        """The probe went through: the service takes ``level`` requests at once."""
        self.proven = level
        self._refused_probes = 0
        self._answers = 0

    def _refused(self, ticket: Ticket | None) -> None:
        if ticket is not None and ticket.epoch != self.epoch:
            return  # a request of the round already answered for
        if self.allowed > self.proven:
            # A probe was out: the service's limit is what it took before the probe.
            self.allowed = max(1, min(self.proven, self.active))
            self._refused_probes += 1
            self._lowered()
        else:
            self._decrease(self.active)

    def _decrease(self, open_now: int) -> None:
        """Multiplicative decrease: never above ``open_now``, never below 1."""
        self.allowed = max(1, min(open_now, math.floor(self.allowed * self.policy.decrease)))
        self._refused_probes = 0
        self._lowered()

    def _lowered(self) -> None:
        self.proven = self.allowed
        self.growing = False
        self.epoch += 1
        self.decreases += 1
        self._answers = 0

    def _step_up(self) -> None:
        """One more request at once, if no probe is out and it is time for one."""
        if self.allowed > self.proven or self.allowed >= self.limit:
            return
        if not self.growing:
            rounds = self.policy.probe_rounds * 2 ** min(self._refused_probes, 6)
            if self._answers < rounds * self.allowed:
                return
        self.allowed = self.proven + 1
        self._answers = 0
        self._wake()

    def _wake(self) -> None:
        # Everyone re-checks, in arrival order; those that find no slot queue up again.
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


EMBEDDED_IN_FLIGHT = 2
"""Segments an embedded engine is given at once. It renders on one worker thread, so one more
than it is working on keeps it busy; more would only hold finished audio while they wait (peak
memory then grows with the level an adaptive run reaches, i.e. with the article's length)."""


def limiter_for(
    settings: Settings, policy: AdaptPolicy | None = None, *, engine: Engine | None = None
) -> Limiter:
    """The run's own limiter: pinned at ``--concurrency``, else adaptive up to
    ``--max-concurrency``; an embedded engine (no service to share) is pinned low."""
    if engine is not None and _is_embedded(engine):
        return Limiter(min(settings.concurrency or EMBEDDED_IN_FLIGHT, EMBEDDED_IN_FLIGHT))
    if settings.concurrency is not None:
        return Limiter(settings.concurrency, policy=policy)
    policy = policy or AdaptPolicy()
    return Limiter(settings.max_concurrency, start=policy.start, policy=policy)


def _is_embedded(engine: Engine) -> bool:
    from newsreader.synth import registry

    try:
        return registry.entry(engine.name).kind == "embedded"
    except UsageError:  # an engine made outside the registry (a test's, a library user's)
        return False


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
        order: WorkOrder | None = None,
        on_audio: Callable[[bytes], None] | AudioListener | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.cache = cache
        self.limiter = limiter or limiter_for(settings, engine=engine)
        self._own_limiter = limiter is None
        self.stats = RunStats()
        self.pace = Pace(stalls or StallPolicy())
        self.order = order or WorkOrder()
        self.on_audio = on_audio
        """Told each segment's audio as soon as it is here, in whatever order that is (a level
        meter measures it then, while other requests are still out), once for each time the
        script has it (a text synthesized once for two segments: twice). An ``AudioListener`` is
        also told each request's audio as it streams in (``_send``): the stream of the request
        whose answer is used is completed with the segment, every other one dropped."""
        self._streams = on_audio.stream if isinstance(on_audio, AudioListener) else None
        self._rng = rng or random.Random()
        self._voice_id = engine.voice_id(settings)
        self._hung_up: set[asyncio.Task[SegmentAudio]] = set()
        """Requests cancelled and still closing their connection (awaited at the end of run)."""

    def _opening(self) -> Opening | None:
        """How this run's connections are expected to open, for the work order. None (longest
        first) for an embedded engine (no connections), and for a limiter shared with other
        runs (the service's, a worker's): this run's share of its connections is not known
        ahead, and planning would take the shared event loop 4 to 12 ms a window for every
        job."""
        if not self._own_limiter or _is_embedded(self.engine):
            return None
        limiter = self.limiter
        if limiter.adaptive and limiter.growing:
            return Opening(at_once=limiter.allowed, limit=limiter.limit)
        return Opening(at_once=limiter.allowed, limit=limiter.allowed)

    async def _attempts(self, segment: Segment) -> tuple[SegmentAudio, AudioStream | None]:
        settings = self.settings
        limiter = self.limiter
        patience = 1.0
        for attempt in range(settings.retries + 1):
            try:
                answer = await self._request(segment, patience)
            except TransientError as exc:
                self.stats.failures[exc.kind] += 1
                from newsreader.service import metrics  # here: prometheus_client is not light

                metrics.synthesis_failed("stall" if isinstance(exc, _Stalled) else exc.kind)
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
                    limiter.pause(wait)
                    delay = max(delay, wait)
                elif exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, MAX_BACKOFF))
                if attempt == settings.retries:
                    raise
                self.stats.retries += 1
                await asyncio.sleep(delay)
            else:
                return answer
        raise AssertionError("unreachable")  # pragma: no cover

    async def _request(
        self, segment: Segment, patience: float
    ) -> tuple[SegmentAudio, AudioStream | None]:
        """One attempt at a segment: a request watched for silence, and perhaps a hedge.

        Returns the first answer that completes (and its audio's stream); raises the last
        failure when every copy failed or was hung up on. A copy hung up on closes its connection
        in the background (holding its place under the connection cap until it has), so the
        retry is not kept waiting.
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
                        return copy.task.result(), copy.stream
                    if not isinstance(error, TransientError):
                        raise error
                    failure = error
                if not copies:
                    break
            assert failure is not None
            raise failure
        finally:
            for copy in copies:
                self._hang_up(copy)

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
                self._hang_up(copy)
                continue
            bound = self.pace.silence_bound(answering=progress.first is not None, patience=patience)
            if now - progress.last >= bound:
                stalled = _Stalled(now - progress.last)
                self.stats.stalls += 1
                copies.remove(copy)
                self._hang_up(copy)
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

    def _hang_up(self, copy: _Copy) -> None:
        """Cancel a request; it closes its connection in the background (awaited by ``run``).
        Its audio, if any came, is not used."""
        if copy.stream is not None:
            copy.stream.drop()
        task = copy.task
        task.cancel()
        self._hung_up.add(task)
        task.add_done_callback(self._closed)

    def _closed(self, task: asyncio.Task[SegmentAudio]) -> None:
        self._hung_up.discard(task)
        if not task.cancelled():
            task.exception()  # it finished before the cancel reached it: nothing to report

    def _send(self, segment: Segment) -> _Copy:
        copy = _Copy(Progress())
        if self._streams is not None:
            copy.stream = self._streams()
            copy.progress.on_audio = copy.stream.feed
        copy.task = asyncio.create_task(self._one_request(segment, copy))
        return copy

    def _first_audio(self, ticket: Ticket, seconds: float) -> None:
        """A request's answer began, ``seconds`` after it set off."""
        slow = self.pace.slow(seconds, self.limiter.policy)
        self.pace.first_audio(seconds)
        self.limiter.answered(ticket, slow=slow)

    async def _one_request(self, segment: Segment, copy: _Copy) -> SegmentAudio:
        limiter = self.limiter
        progress = copy.progress
        try:
            async with limiter:
                ticket = copy.ticket = limiter.ticket()
                progress.on_first = functools.partial(self._first_audio, ticket)
                progress.on_accepted = functools.partial(limiter.accepted, ticket)
                self.stats.requests += 1
                REQUEST_PROGRESS.set(progress)  # this task's own context: this request only
                audio = await self.engine.synthesize(segment, self.settings)
        except BaseException as exc:
            if copy.stream is not None:
                copy.stream.drop()  # failed or hung up: what came of its audio is not used
            if isinstance(exc, TransientError):
                # At once, within the round trip that brought the news: a 429 or a run of
                # connection failures lowers the level before any other request sets off.
                limiter.failed(copy.ticket, exc.kind)
            raise
        if progress.first is None:
            limiter.answered(ticket)  # an engine that reports no progress: this is its answer
        else:
            self.pace.answered(progress.longest_gap)
        return audio

    async def _one(self, segment: Segment, key: str, uses: int = 1) -> tuple[SegmentAudio, bool]:
        """One distinct segment, which the script has ``uses`` times: ``on_audio`` is told its
        audio that many times (the meter measures each use)."""
        cached = await self.cache.aget(key, segment)
        if cached is not None:
            self.stats.cache_hits += 1
            if self.on_audio is not None:
                for _ in range(uses):
                    self.on_audio(cached.mp3)
            return cached, True
        audio, stream = await self._attempts(segment)
        try:
            if len(audio.sentences) != len(segment.sentences):
                raise SynthesisError(
                    f"engine {self.engine.name} returned {len(audio.sentences)} sentence timings "
                    f"for {len(segment.sentences)} sentences"
                )
            await self.cache.aput(key, audio)
        except BaseException:
            if stream is not None:
                stream.drop()
            raise
        if stream is not None:
            stream.complete(audio.mp3)
            uses -= 1  # its stream told the first use
        if self.on_audio is not None:
            for _ in range(uses):
                self.on_audio(audio.mp3)
        return audio, False

    async def run(
        self, script: Script, on_ready: ProgressCallback | None = None
    ) -> AsyncIterator[SegmentAudio]:
        """Yield each segment's audio in script order."""
        segments = script.segments
        keys = [cache_key(self._voice_id, segment) for segment in segments]
        first_with: dict[str, int] = {}
        for index, key in enumerate(keys):
            first_with.setdefault(key, index)
        distinct = [i for i, key in enumerate(keys) if first_with[key] == i]
        uses = Counter(keys)
        self.stats.duplicates += len(segments) - len(distinct)
        tasks: dict[str, asyncio.Task[tuple[SegmentAudio, bool]]] = {}
        unique = [segments[i] for i in distinct]
        plan = WorkPlan(unique, self.order, opening=self._opening())
        rank = {index: p for p, index in enumerate(distinct)}
        ahead = max(AHEAD, 8 * self.limiter.limit)
        made = 0

        def make_through(end: int) -> None:
            """Tasks for the work order up to ``end`` (tasks ask the limiter in the order they
            are made), only so far ahead of the listener: a task waiting for its turn, and a
            result waiting to be yielded, cost memory in a long article."""
            nonlocal made
            order = plan.through(end)
            for p in order[made:end]:
                index = distinct[p]
                key = keys[index]
                tasks[key] = asyncio.create_task(self._one(segments[index], key, uses[key]))
            made = max(made, min(end, len(order)))

        failed: dict[int, TransientError] = {}
        last_use = {key: index for index, key in enumerate(keys)}
        try:
            for index, key in enumerate(keys):
                make_through(plan.place(rank[first_with[key]]) + 1 + ahead)
                try:
                    audio, from_cache = await tasks[key]
                except TransientError as exc:
                    failed[index] = exc
                    continue
                finally:
                    # Its audio is not needed again: let it go (memory flat in the article).
                    if last_use[key] == index and tasks[key].done():
                        del tasks[key]
                if on_ready is not None:
                    on_ready(index, from_cache)
                if not failed:
                    yield audio
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            # requests hung up on: their connections close before the run ends
            await asyncio.gather(*self._hung_up, return_exceptions=True)
            limiter = self.limiter
            self.stats.level, self.stats.peak = limiter.allowed, limiter.peak
            self.stats.adaptive_limit = limiter.limit if limiter.adaptive else 0
        if failed:
            raise SegmentsFailed(
                describe_failures(script, failed, cached=self.cache.enabled),
                tuple(sorted(failed)),
                {index: error.kind for index, error in failed.items()},
            )
