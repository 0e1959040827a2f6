"""Jobs: a plain serializable description, and the fair process-wide voice-connection cap."""

from __future__ import annotations

import asyncio
import contextvars
import json
import time

import pytest
from click.testing import CliRunner

from newsreader.cli import main
from newsreader.errors import UsageError
from newsreader.service.fairness import CURRENT_JOB, FairLimiter
from newsreader.service.request import JobRequest
from newsreader.synth.scheduler import Limiter

KEY = bytes(range(32))


def test_a_job_is_a_plain_description_with_a_stable_id() -> None:
    request = JobRequest(kind="text", content="标题\n\n正文。", voice="zh-CN-XiaoxiaoNeural")
    carried = json.loads(json.dumps(request.to_dict()))  # what a queue would carry
    assert JobRequest.from_dict(carried) == request
    assert JobRequest.from_dict(carried).reading_id(KEY) == request.reading_id(KEY)
    assert len(request.reading_id(KEY)) == 24
    others = [
        JobRequest(kind="text", content="标题\n\n正文。"),
        JobRequest(kind="html", content="标题\n\n正文。", voice="zh-CN-XiaoxiaoNeural"),
        JobRequest(kind="text", content="标题\n\n正文。", voice="zh-CN-XiaoxiaoNeural", rate="+5%"),
        JobRequest(kind="text", content="标题\n\n正文。", voice="zh-CN-XiaoxiaoNeural", title="T"),
    ]
    assert len({r.reading_id(KEY) for r in [request, *others]}) == 5
    with pytest.raises(UsageError):
        JobRequest(kind="text", content="x", voice="robot")


async def run_requests(
    limiter: Limiter, plan: list[tuple[str, float, int]], hold: float
) -> tuple[list[str], int]:
    """Start ``count`` requests for each ``(job, at, count)``; returns the order they got in."""
    order: list[str] = []
    in_flight = 0
    peak = 0

    async def request(job: str) -> None:
        nonlocal in_flight, peak
        async with limiter:
            order.append(job)
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(hold)
            in_flight -= 1

    async def job_tasks(job: str, at: float, count: int) -> None:
        await asyncio.sleep(at)
        CURRENT_JOB.set(job)
        await asyncio.gather(*(asyncio.create_task(request(job)) for _ in range(count)))

    await asyncio.gather(
        *(asyncio.create_task(job_tasks(*p), context=contextvars.Context()) for p in plan)
    )
    return order, peak


def test_a_new_job_is_served_before_an_older_jobs_backlog() -> None:
    plan = [("long", 0.0, 12), ("short", 0.01, 1)]
    fair, peak = asyncio.run(run_requests(FairLimiter(2, per_job=4, hold=0), plan, hold=0.03))
    assert fair.index("short") == 2  # the very next free connection
    assert peak == 2
    # A plain first-come limiter makes it wait for the whole backlog: what the fair one fixes.
    plain, _ = asyncio.run(run_requests(Limiter(2), plan, hold=0.03))
    assert plain.index("short") == 12


def test_readings_submitted_together_each_get_their_first_segment_first() -> None:
    plan = [(f"job{n}", n * 0.01, 4) for n in range(4)]
    order, _ = asyncio.run(run_requests(FairLimiter(4, per_job=4, hold=0.1), plan, hold=0.05))
    assert sorted(order[:4]) == ["job0", "job1", "job2", "job3"]
    # Without the hold, the first reading takes every connection before the others arrive.
    greedy, _ = asyncio.run(run_requests(FairLimiter(4, per_job=4, hold=0), plan, hold=0.05))
    assert greedy[:4] == ["job0"] * 4


def test_held_requests_go_out_even_when_nothing_else_happens() -> None:
    """Each reading's held requests are admitted when their hold ends, the second one's too."""

    async def scenario() -> list[str]:
        limiter = FairLimiter(4, per_job=4, hold=0.05)
        first, _ = await run_requests(limiter, [("first", 0, 3)], hold=0.01)
        second, _ = await asyncio.wait_for(
            run_requests(limiter, [("second", 0, 3)], hold=0.01), timeout=2
        )
        return first + second

    assert asyncio.run(scenario()) == ["first"] * 3 + ["second"] * 3


def test_no_job_takes_more_than_its_share() -> None:
    async def scenario() -> int:
        limiter = FairLimiter(4, per_job=1)
        CURRENT_JOB.set("only")
        in_flight = peak = 0

        async def request() -> None:
            nonlocal in_flight, peak
            async with limiter:
                in_flight += 1
                peak = max(peak, in_flight)
                await asyncio.sleep(0.01)
                in_flight -= 1

        await asyncio.gather(*(request() for _ in range(5)))
        return peak

    assert asyncio.run(scenario()) == 1


def test_the_job_closest_to_running_dry_goes_first() -> None:
    async def scenario() -> list[str]:
        limiter = FairLimiter(1, per_job=4, hold=0)
        limiter.delivered("ahead", 60.0)  # a minute of audio ready ahead of its listener
        limiter.delivered("behind", 0.5)
        return (await run_requests(limiter, [("ahead", 0, 2), ("behind", 0.005, 2)], 0.02))[0]

    order = asyncio.run(scenario())
    assert order[:3] == ["ahead", "behind", "behind"]


def test_rate_limit_pauses_still_apply_through_the_fair_gate() -> None:
    async def scenario() -> float:
        limiter = FairLimiter(2, per_job=2)
        limiter.rate_limited(0.3)
        started = time.monotonic()
        async with limiter:
            return time.monotonic() - started

    assert asyncio.run(scenario()) >= 0.29


def test_serve_command_is_registered_and_checks_its_options() -> None:
    runner = CliRunner()
    shown = runner.invoke(main, ["serve", "--help"])
    assert shown.exit_code == 0
    for option in ("--host", "--port", "--data", "--token", "--allow-origin", "--allow-address"):
        assert option in shown.output
    bad = runner.invoke(main, ["serve", "--allow-origin", "news.example.cn", "--data", "x"])
    assert bad.exit_code == 2
    assert "is not an origin" in bad.output
    bad = runner.invoke(main, ["serve", "--allow-address", "intranet", "--data", "x"])
    assert bad.exit_code == 2
    assert "not an IP address" in bad.output
