"""One process-wide cap on voice connections, shared fairly between the readings being made.

``FairLimiter`` is the ``Limiter`` of every reading a process makes (the embedded service's
``Readings`` and a scale-out worker each hold one); ``CURRENT_JOB`` tells it which reading a
segment request belongs to.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections import deque
from dataclasses import dataclass, field

from newsreader.synth.scheduler import START_CONCURRENCY, Limiter

CURRENT_JOB: contextvars.ContextVar[str] = contextvars.ContextVar("newsreader_job", default="")
"""The job a segment request belongs to; the Scheduler's segment tasks inherit it."""


@dataclass
class _JobShare:
    arrived: int
    """Order of arrival, for ties."""
    arrived_at: float
    waiters: deque[tuple[float, asyncio.Future[None]]] = field(default_factory=deque)
    """(when it may be admitted, on the event loop's clock; its future), in asking order."""
    asked: int = 0
    held_until: float = 0.0
    in_flight: int = 0
    completed: int = 0
    audio_ready: float = 0.0
    """Seconds of this job's audio delivered in order so far."""
    segments: int = 0
    first_audio: float | None = None
    """When its first audio went out (monotonic): playback is assumed to start then."""


class FairLimiter(Limiter):
    """The voice-connection cap, handed out earliest deadline first, not first come first served.

    With a plain first-come queue, a job submitted behind a long article waits for all of that
    article's segments: its listener hears nothing for many seconds. Here a fair gate in front of
    the ``Limiter`` (which still does the rate-limit pauses, and finds the level of concurrency the
    voice service takes, adaptive from 4 up to ``limit``) admits as many requests as that level
    allows, and a free place goes to the job whose listener will need audio first. A job's
    deadline is when its listener runs out of audio: for a new job,
    ``first_audio_target`` after it asked; for a playing one, when the audio delivered so far
    ends. Each request already in flight pushes the deadline back by one segment's worth of
    audio (its average so far, else ``segment_estimate``), so a job with its next segment on
    the way does not take a place from one that has nothing coming. No job holds more than
    ``per_job`` places; within a job, requests go in the order they ask (script order).

    A job's first request may go at once; its others wait ``hold`` seconds first, so that readings
    submitted together (a page of widgets, a burst of clients) all get their first segment into
    the first round of connections instead of the first arrival taking ``per_job`` of them.
    """

    def __init__(
        self,
        limit: int,
        per_job: int,
        *,
        hold: float = 0.1,
        first_audio_target: float = 1.0,
        segment_estimate: float = 5.0,
    ) -> None:
        self._jobs: dict[str, _JobShare] = {}  # before the Limiter's first step up (``_wake``)
        super().__init__(limit, start=min(START_CONCURRENCY, limit))
        self.per_job = per_job
        self.hold = hold
        self.first_audio_target = first_audio_target
        self.segment_estimate = segment_estimate
        self._places = limit
        self._arrivals = 0
        self._wakeup: asyncio.TimerHandle | None = None

    def _share(self, job: str) -> _JobShare:
        share = self._jobs.get(job)
        if share is None:
            self._arrivals += 1
            share = self._jobs[job] = _JobShare(self._arrivals, time.monotonic())
        return share

    def delivered(self, job: str, seconds: float) -> None:
        """The worker reports a segment's audio delivered in order (this sets the deadline)."""
        share = self._share(job)
        if share.first_audio is None:
            share.first_audio = time.monotonic()
        share.audio_ready += seconds
        share.segments += 1

    def forget(self, job: str) -> None:
        share = self._jobs.get(job)
        if share is not None and not share.waiters and not share.in_flight:
            del self._jobs[job]

    def _deadline(self, share: _JobShare, now: float) -> float:
        """When the job's listener will be out of audio if it gets nothing more."""
        if share.first_audio is not None:
            base = share.first_audio + share.audio_ready
            per_segment = share.audio_ready / max(share.segments, 1)
        else:
            # A finished request whose audio is not reported yet is about to be heard.
            base = now if share.completed else share.arrived_at + self.first_audio_target
            per_segment = self.segment_estimate
        return base + share.in_flight * per_segment

    def _urgency(self, share: _JobShare, now: float) -> tuple[float, int]:
        return (self._deadline(share, now), share.arrived)

    def _wake(self) -> None:
        super()._wake()
        if self._jobs:  # the level went up, or a request left: the gate may admit more
            self._dispatch()

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        now, clock = time.monotonic(), loop.time()
        while self.limit - self._places < self.allowed:  # admitted < the level
            waiting = [s for s in self._jobs.values() if s.waiters and s.in_flight < self.per_job]
            ready = [s for s in waiting if s.waiters[0][0] <= clock]
            if not ready:
                held = [s.waiters[0][0] for s in waiting]
                if held:
                    self._wake_at(loop, min(held))
                return
            share = min(ready, key=lambda s: self._urgency(s, now))
            _, waiter = share.waiters.popleft()
            if waiter.cancelled():
                continue
            self._places -= 1
            share.in_flight += 1
            waiter.set_result(None)

    def _wake_at(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        """Dispatch again when the first held request becomes eligible."""
        if self._wakeup is not None:
            if self._wakeup.when() <= when:
                return
            self._wakeup.cancel()
        self._wakeup = loop.call_at(when, self._woken)

    def _woken(self) -> None:
        self._wakeup = None
        self._dispatch()

    def _leave(self, share: _JobShare, *, completed: bool = True) -> None:
        share.in_flight -= 1
        share.completed += completed
        self._places += 1
        self._dispatch()

    async def __aenter__(self) -> None:
        share = self._share(CURRENT_JOB.get())
        loop = asyncio.get_running_loop()
        if share.asked == 0:
            share.held_until = loop.time() + self.hold
            eligible = loop.time()
        else:
            eligible = share.held_until
        share.asked += 1
        waiter: asyncio.Future[None] = loop.create_future()
        entry = (eligible, waiter)
        share.waiters.append(entry)
        self._dispatch()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # admitted, then cancelled
                self._leave(share, completed=False)
            else:
                with contextlib.suppress(ValueError):
                    share.waiters.remove(entry)
            raise
        try:
            await super().__aenter__()
        except BaseException:
            self._leave(share, completed=False)
            raise

    async def __aexit__(self, *exc: object) -> None:
        try:
            await super().__aexit__(*exc)
        finally:
            self._leave(self._share(CURRENT_JOB.get()))


__all__ = [
    "CURRENT_JOB",
    "FairLimiter",
]
