"""The order a run asks for its segments in.

The first ``WorkOrder.head`` segments (the headline and the first paragraphs) go in script order,
so the listener's audio starts at once. After them the segments go in windows of
``WorkOrder.window``, so no segment waits behind one more than a window and a half further on (a
remainder shorter than half a window joins the window before it: alone, it would end the run on a
few segments asked for after every longer one).

Within a window, the order is a plan for the connections the run will have. Each connection takes
the next segment in the order as soon as it is free, so the order decides which requests share a
connection and when the last answer ends. Longest first is the classic start (a long paragraph
asked for last would end the run alone), but it packs badly in two cases that every run meets:

- an adaptive run does not have its connections from the start: it opens them one handshake
  after another as the service takes them (``Opening``). Longest first gives the longest
  paragraphs to the first connections, which then take a second request and end late, while the
  connections opened last end early with one;
- a window that ends with its connections all free at once leaves the next window's requests
  queued behind the same few.

So each window is planned (``WorkPlan``): every request is expected to take ``RequestModel``'s
time for its length, the connections are followed from the climb on through the windows already
planned, and pairs of the window's segments are swapped while that makes the expected ends of the
window and of the next one (longest first) better: the latest end first, then the next latest,
and so on. The search starts from longest first and stops after ``PLAN_TRIES``, so the same
article gets the same order every time; a window is planned when the run gets to it.

The model only ranks orders; it is never a deadline. With a service faster or slower to start
or to speak than it expects (by half or by double), the plan still ends no later than longest
first: tests/synth/test_order.py checks that on seeded articles of news-like paragraphs.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from newsreader.models import Segment


@dataclass(frozen=True)
class WorkOrder:
    """In which order a run asks for its segments (see the module docstring)."""

    head: int = 4
    """The first segments, asked for in script order: the listener's audio starts at once."""
    window: int = 24
    """After them, each window of this many segments (the last one takes a remainder shorter
    than half a window: up to one and a half windows)."""


@dataclass(frozen=True)
class Opening:
    """How many requests a run can have open over time: ``at_once`` from the start, then one
    more every ``step`` seconds up to ``limit`` (an adaptive run's climb; pinned: all at once)."""

    at_once: int
    limit: int
    step: float = 0.1
    """A handshake: adaptive concurrency opens one more connection when the service has taken
    the last one. 0.1 s is a TLS handshake (three round trips) to a nearby server."""

    def starts(self) -> list[float]:
        """When each connection is free for its first request, seconds from the start."""
        at_once = max(1, min(self.at_once, self.limit))
        return [0.0] * at_once + [k * self.step for k in range(1, self.limit - at_once + 1)]


@dataclass(frozen=True)
class RequestModel:
    """What a request is expected to take, for ranking orders only."""

    latency: float = 0.5
    """Seconds from the request to its first audio, the handshake included."""
    seconds_per_char: float = 0.2 / 15
    """Seconds of the answer per character of text: about five characters of Mandarin speech a
    second, sent at about 15 × real time."""

    def seconds(self, segment: Segment) -> float:
        return self.latency + self.seconds_per_char * len(segment.text)


PLAN_TRIES = 3000
"""Orders tried for one window at most (4 to 12 ms for 24 segments and the next window)."""


class WorkPlan:
    """The work order, planned a window at a time as the run gets to it: a long article's
    windows are planned while it is read, not all before its first request."""

    def __init__(
        self,
        segments: Sequence[Segment],
        order: WorkOrder | None = None,
        *,
        opening: Opening | None = None,
        model: RequestModel | None = None,
    ) -> None:
        order = order or WorkOrder()
        self._segments = segments
        head = min(max(order.head, 0), len(segments))
        window = max(order.window, 1)
        starts = list(range(head, len(segments), window))
        if len(starts) > 1 and len(segments) - starts[-1] < window / 2:
            starts.pop()  # a short remainder goes with the window before it
        self._windows = list(zip(starts, [*starts[1:], len(segments)], strict=False))
        self.order: list[int] = list(range(head))
        """Positions in ``segments`` in the order to ask for them, as far as planned."""
        self._places = {position: position for position in self.order}
        self._times: list[int] = []
        self._free: list[int] = []
        if opening is not None:
            # whole microseconds: integer sums are exact in any order (float sums are not, and
            # their rounding noise would pass for an improvement)
            seconds = (model or RequestModel()).seconds
            self._times = [round(seconds(segment) * 1e6) for segment in segments]
            self._free = [round(start * 1e6) for start in opening.starts()]
            heapq.heapify(self._free)
            self._take(self.order)  # the head goes first

    def place(self, position: int) -> int:
        """Where segment ``position`` is in the order (its window is planned, if not yet)."""
        if position not in self._places:  # asked once per segment: no scan once planned
            windows = self._windows
            end = next((end for start, end in windows if start <= position < end), position + 1)
            self.through(end)
        return self._places[position]

    def through(self, end: int) -> list[int]:
        """The order, planned at least up to ``end``."""
        planned = len(self.order)
        for number, (start, _) in enumerate(self._windows):
            if start < planned:
                continue
            if planned >= end:
                break
            window = self._plan(number)
            self._places.update((position, planned + k) for k, position in enumerate(window))
            self.order += window
            planned = len(self.order)
        return self.order

    def _longest_first(self, number: int) -> list[int]:
        start, end = self._windows[number]
        return sorted(range(start, end), key=lambda i: (-len(self._segments[i].text), i))

    def _plan(self, number: int) -> list[int]:
        """Window ``number`` in the order to ask for it: longest first, improved by pairwise
        swaps while the expected ends of it and the next window (longest first) get better."""
        window = self._longest_first(number)
        if not self._times:
            return window
        times, free = self._times, self._free
        after = self._longest_first(number + 1) if number + 1 < len(self._windows) else []
        best = _ends([*window, *after], times, free)
        tries = 0
        better = True
        while better and tries < PLAN_TRIES:
            better = False
            for a in range(len(window)):
                for b in range(a + 1, len(window)):
                    if times[window[a]] == times[window[b]] or tries >= PLAN_TRIES:
                        continue  # the same expected time: swapping changes nothing
                    tries += 1
                    window[a], window[b] = window[b], window[a]
                    ends = _ends([*window, *after], times, free)
                    if ends < best:
                        best, better = ends, True
                    else:
                        window[a], window[b] = window[b], window[a]
        self._take(window)
        return window

    def _take(self, planned: Sequence[int]) -> None:
        """Move the expected state of the connections on past ``planned``."""
        for position in planned:
            heapq.heapreplace(self._free, self._free[0] + self._times[position])


def work_order(
    segments: Sequence[Segment],
    order: WorkOrder | None = None,
    *,
    opening: Opening | None = None,
    model: RequestModel | None = None,
) -> list[int]:
    """Positions in ``segments`` in the order to ask for them, the whole plan at once."""
    plan = WorkPlan(segments, order, opening=opening, model=model)
    return plan.through(len(segments))


def _ends(plan: Sequence[int], times: Sequence[int], free: list[int]) -> list[int]:
    """When each connection is expected to be done, latest first, if each takes the next
    request of ``plan`` as soon as it is free (``free``: a heap of when each is free)."""
    slots = list(free)
    for k in plan:
        heapq.heapreplace(slots, slots[0] + times[k])
    slots.sort(reverse=True)
    return slots
