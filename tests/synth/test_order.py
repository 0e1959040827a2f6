"""The work order: the head in script order, then windows planned for the connections."""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence

import pytest

from newsreader.config import Settings
from newsreader.models import Segment
from newsreader.synth.cache import SegmentCache
from newsreader.synth.edge import EdgeEngine
from newsreader.synth.espeak import EspeakEngine
from newsreader.synth.order import Opening, RequestModel, WorkOrder, WorkPlan, work_order
from newsreader.synth.scheduler import Limiter, Scheduler
from tests.audio import make_segment


def article(count: int, seed: int = 7) -> list[Segment]:
    """A headline and paragraphs of news-like lengths (60 to 260 characters)."""
    rng = random.Random(seed)
    lengths = [20, *(rng.randint(60, 260) for _ in range(count - 1))]
    return [make_segment(i, ("字" * n + "。",)) for i, n in enumerate(lengths)]


def longest_first(segments: Sequence[Segment], order: WorkOrder) -> list[int]:
    return work_order(segments, order)


def ends_at(
    order: Sequence[int], segments: Sequence[Segment], opening: Opening, model: RequestModel
) -> float:
    """When the last request would end if each took ``model``'s time, on connections that
    open as ``opening`` says, each taking the next segment of ``order`` when it is free."""
    free = opening.starts()
    heapq.heapify(free)
    for position in order:
        heapq.heapreplace(free, free[0] + model.seconds(segments[position]))
    return max(free)


CLIMB = Opening(at_once=5, limit=16)
"""An adaptive run's: 4 and the first probe at once, then one more per 0.1 s, up to 16."""


def test_the_head_goes_first_and_every_window_keeps_its_own_segments() -> None:
    segments = article(110)
    order = work_order(segments, WorkOrder(head=4, window=24), opening=CLIMB)
    assert order[:4] == [0, 1, 2, 3]
    assert sorted(order) == list(range(110))
    # 4 + 24 + 24 + 24 + 34 (a remainder of 10 joins the last window)
    for start, end in [(4, 28), (28, 52), (52, 76), (76, 110)]:
        assert sorted(order[start:end]) == list(range(start, end))


@pytest.mark.parametrize("count", [29, 58, 110])
def test_planned_for_the_climb_the_run_ends_sooner_than_longest_first(count: int) -> None:
    # Longest first gives the longest paragraphs to the connections opened first, which then
    # take a second request and end late; the plan pairs them so that the ends meet.
    segments = article(count)
    shape = WorkOrder()
    model = RequestModel()
    planned = ends_at(work_order(segments, shape, opening=CLIMB), segments, CLIMB, model)
    plain = ends_at(longest_first(segments, shape), segments, CLIMB, model)
    assert planned < plain * 0.97, f"planned {planned:.2f} s, longest first {plain:.2f} s"


@pytest.mark.parametrize(
    "truth",
    [
        RequestModel(latency=0.25),
        RequestModel(latency=1.0),
        RequestModel(seconds_per_char=0.1 / 15),
        RequestModel(seconds_per_char=0.4 / 15),
    ],
)
def test_a_plan_made_with_the_wrong_model_is_still_no_worse(truth: RequestModel) -> None:
    # The plan expects RequestModel()'s times; a service twice as fast or as slow to start or
    # to speak still sees the run end no later than with longest first.
    for count in (29, 58):
        segments = article(count)
        shape = WorkOrder()
        planned = ends_at(work_order(segments, shape, opening=CLIMB), segments, CLIMB, truth)
        plain = ends_at(longest_first(segments, shape), segments, CLIMB, truth)
        assert planned <= plain + 1e-9, f"{count}: planned {planned:.2f} s, plain {plain:.2f} s"


def test_the_plan_is_the_same_every_time() -> None:
    segments = article(110)
    first = work_order(segments, opening=CLIMB)
    assert all(work_order(segments, opening=CLIMB) == first for _ in range(3))


def test_one_connection_keeps_longest_first() -> None:
    # One connection: every order ends at the same time, so nothing is swapped (and the
    # rounding of a sum in another order is no improvement).
    segments = article(29)
    pinned = Opening(at_once=1, limit=1)
    assert work_order(segments, opening=pinned) == longest_first(segments, WorkOrder())


def test_without_an_opening_each_window_goes_longest_first() -> None:
    segments = article(60)
    order = work_order(segments)
    for start, end in [(4, 28), (28, 60)]:
        lengths = [len(segments[i].text) for i in order[start:end]]
        assert lengths == sorted(lengths, reverse=True)


def test_windows_are_planned_as_the_run_gets_to_them() -> None:
    segments = article(2000)
    plan = WorkPlan(segments, WorkOrder(head=4, window=24), opening=CLIMB)
    assert plan.through(10)[:4] == [0, 1, 2, 3]
    assert len(plan.order) == 28  # the head and the first window, not the whole article
    assert plan.order[plan.place(100)] == 100
    assert len(plan.order) == 124  # planned up to the window of segment 100 (100 to 123)
    assert plan.through(2000) == work_order(segments, WorkOrder(head=4, window=24), opening=CLIMB)
    assert all(plan.order[plan.place(p)] == p for p in range(2000))


def test_the_opening_a_run_plans_for() -> None:
    cache = SegmentCache(None)
    adaptive = Scheduler(EdgeEngine(), Settings(engine="edge"), cache)
    assert adaptive._opening() == Opening(at_once=5, limit=16)  # 4 and the first probe
    pinned = Scheduler(EdgeEngine(), Settings(engine="edge", concurrency=8), cache)
    assert pinned._opening() == Opening(at_once=8, limit=8)
    troubled = Scheduler(EdgeEngine(), Settings(engine="edge"), cache)
    troubled.limiter.growing = False  # after trouble it grows only slowly: plan for the level
    assert troubled._opening() == Opening(at_once=5, limit=5)
    assert Scheduler(EspeakEngine(), Settings(engine="espeak"), cache)._opening() is None
    # shared with other runs (the service's limiter): this run's share is not known, so the
    # windows go longest first, and the shared event loop does no planning
    shared = Scheduler(EdgeEngine(), Settings(engine="edge"), cache, limiter=Limiter(16, start=4))
    assert shared._opening() is None


def test_opening_starts() -> None:
    assert CLIMB.starts() == pytest.approx([0.0] * 5 + [k / 10 for k in range(1, 12)])
    assert Opening(at_once=8, limit=8).starts() == [0.0] * 8
    assert Opening(at_once=20, limit=16).starts() == [0.0] * 16
