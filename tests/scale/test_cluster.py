"""A cluster of real processes: 2 API nodes, 3 workers, Redis and the edge stand-in on loopback.

Sixty readings are spread over both API nodes (four of them pages whose URL is posted to both
nodes at once) while one worker is killed (SIGKILL) in the middle of a job and one API node is
stopped (SIGTERM) partway. Then every reading must have finished exactly once, every MP3 must be
the stand-in's answers frame for frame with cues at its boundaries, and every listener on the
surviving node must have heard an unbroken stream. The pages are on loopback, which is not a
public address, so the feed lists none of them: the feed is not checked here.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from newsreader.audio.mp3 import bare_frames
from newsreader.config import Settings
from newsreader.models import Script
from newsreader.pipeline import load_article, make_script
from newsreader.text.extract import extract
from tests.audio import ffmpeg_errors
from tests.cluster import Cluster, Node
from tests.standin.server import EdgeStandin
from tests.standin.verify import episode_problems
from tests.webserver import LocalWeb

READINGS = 60
LISTENED = 12
"""Readings followed from the other API node than the one that took them."""
PAGES = (10, 20, 25, 28)
"""After these readings, a page's URL is posted to both API nodes at once."""
LOOPBACK_PAGES = ("--allow-address", "127.0.0.1")
"""The pages are served on loopback (``tests/webserver.py``), not a public address."""
SETTLE = 15.0
"""Seconds the queue's records get to show every job complete once every reading is done."""
DEADLINE = 90.0
"""Seconds for the whole scenario: far more than it needs, so a hang fails instead of waiting."""
_WORDS = [
    "城市",
    "社区",
    "居民",
    "书房",
    "图书馆",
    "阅读",
    "服务",
    "志愿者",
    "活动",
    "孩子",
    "老人",
    "周末",
    "文化",
    "公园",
    "街道",
    "讲座",
    "展览",
    "部门",
    "工作",
    "发展",
    "建设",
    "项目",
    "企业",
    "生活",
    "环境",
    "交通",
    "教育",
    "医疗",
    "科技",
    "合作",
    "交流",
    "经验",
]


def article(number: int, paragraphs: int = 1, clauses: int = 2) -> str:
    """A headline and ``paragraphs`` short paragraphs, different for every ``number``."""
    rng = random.Random(number)
    lines = [f"第{number}号快讯 " + "".join(rng.choice(_WORDS) for _ in range(2))]
    for _ in range(paragraphs):
        sentences = [
            "".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 5))) + "。"
            for _ in range(clauses)
        ]
        lines.append("".join(sentences))
    return "\n\n".join(lines)


def page(number: int) -> str:
    """A news page around ``article(1000 + number)`` (no posted text shares its headline): the
    headline in ``<h1>``, two paragraphs."""
    title, *paragraphs = article(1000 + number, paragraphs=2, clauses=3).split("\n\n")
    body = "".join(f"<p>{paragraph}</p>" for paragraph in paragraphs)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title} - 本地新闻网</title>'
        f'</head><body><nav><a href="/">首页</a></nav><article><h1>{title}</h1>{body}</article>'
        "<footer>版权所有 本地新闻网</footer></body></html>"
    )


def script_of(item: Submitted) -> Script:
    """The segments a worker makes of a reading (the default voice: a zh-CN one)."""
    if item.url is not None:
        return make_script(load_article(item.url, Settings()), Settings())
    return make_script(extract(item.text, source="", read_whole=True), Settings())


@dataclass
class Listener:
    node: Node
    reading: str
    data: bytearray = field(default_factory=bytearray)
    error: str | None = None
    """Why the stream ended early (a connection cut, a refusal), None if it ended cleanly."""


@dataclass
class Submitted:
    text: str
    node: Node
    reading: str
    url: str | None = None
    """For a page's reading: its address (``text`` is then empty)."""


async def listen(client: httpx.AsyncClient, listener: Listener, deadline: float) -> None:
    """Follow ``stream.mp3`` from the start to its end, as a player would; a 409 (not running
    yet) is asked again shortly."""
    url = f"{listener.node.base}/api/readings/{listener.reading}/stream.mp3"
    try:
        while time.monotonic() < deadline:
            async with client.stream("GET", url) as response:
                if response.status_code == 409:
                    await asyncio.sleep(0.05)
                    continue
                if response.status_code != 200:
                    listener.error = f"HTTP {response.status_code}"
                    return
                async for chunk in response.aiter_raw():
                    listener.data.extend(chunk)
                return
        listener.error = "the stream never started"
    except httpx.HTTPError as error:
        listener.error = f"{type(error).__name__}: {error}"


async def status(client: httpx.AsyncClient, node: Node, reading: str) -> dict[str, Any]:
    response = await client.get(f"{node.base}/api/readings/{reading}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def saq_jobs(redis_url: str, readings: list[str]) -> dict[str, Any]:
    """The queue's record of each reading's job (``None`` where there is none)."""
    from saq import Queue

    queue = Queue.from_url(redis_url, name="newsreader")
    try:
        return {reading: await queue.job(reading) for reading in readings}
    finally:
        await queue.disconnect()


async def scenario(cluster: Cluster, edge: EdgeStandin, web: LocalWeb) -> None:
    api1, api2 = cluster.api_nodes()
    nodes = (api1, api2)
    deadline = time.monotonic() + DEADLINE
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def submit(number: int, node: Node, text: str) -> Submitted:
            response = await client.post(f"{node.base}/api/readings", json={"text": text})
            assert response.status_code == 202, response.text
            return Submitted(text, node, response.json()["id"])

        async def submit_page(number: int) -> Submitted:
            """The same URL to both nodes at once: one reading, one job."""
            url = web.page(f"/news/{number}.html", page(number))
            answers = await asyncio.gather(
                *(client.post(f"{node.base}/api/readings", json={"url": url}) for node in nodes)
            )
            assert sorted(a.status_code for a in answers) == [200, 202], [a.text for a in answers]
            ids = {a.json()["id"] for a in answers}
            assert len(ids) == 1, ids
            return Submitted("", api1, ids.pop(), url)

        # The reading whose worker dies: long enough to be caught in the middle. Taken by the
        # node that will stop, listened to on the one that stays.
        victim = await submit(0, api2, article(0, paragraphs=6, clauses=4))
        listeners = [Listener(api1, victim.reading)]
        tasks = [asyncio.create_task(listen(client, listeners[0], deadline))]

        submitted = [victim]
        killed: Node | None = None
        stopping: asyncio.Task[int] | None = None
        for number in range(1, READINGS - len(PAGES)):
            node = nodes[number % 2] if stopping is None else api1
            item = await submit(number, node, article(number))
            submitted.append(item)
            if number in PAGES:
                submitted.append(await submit_page(number))
            if number % (READINGS // LISTENED) == 0:
                other = api1 if node is api2 or stopping is not None else api2
                listeners.append(Listener(other, item.reading))
                tasks.append(asyncio.create_task(listen(client, listeners[-1], deadline)))
            if killed is None:
                killed = await kill_the_victims_worker(client, cluster, api1, victim.reading)
            if number == READINGS // 2:
                assert killed is not None, "the long reading finished before its worker was found"
                stopping = asyncio.create_task(asyncio.to_thread(api2.terminate))  # SIGTERM
            await asyncio.sleep(0.02)
        assert killed is not None and stopping is not None

        # Every reading finishes, asked of the surviving node.
        rows: dict[str, dict[str, Any]] = {}
        for item in submitted:
            while True:
                row = await status(client, api1, item.reading)
                if row["status"] in ("done", "failed"):
                    rows[item.reading] = row
                    break
                assert time.monotonic() < deadline, f"{item.reading} stuck at {row['status']}"
                await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(*tasks), max(1.0, deadline - time.monotonic()))
        await stopping

        problems = [
            f"{reading} {row['status']}: {row['error']}"
            for reading, row in rows.items()
            if row["status"] != "done"
        ]
        problems += await once_each(cluster, edge, web, submitted, victim.reading)
        finished: dict[str, bytes] = {}
        for item in submitted:
            finished[item.reading], found = await checked_files(client, api1, item, edge)
            problems += found
        problems += heard_problems(listeners, finished, api1)
        assert problems == [], "\n".join(problems)


async def once_each(
    cluster: Cluster, edge: EdgeStandin, web: LocalWeb, submitted: list[Submitted], victim: str
) -> list[str]:
    """Exactly once: one job per reading, complete (the victim's on a later attempt); one
    ``done`` (the publishing run's log line) per reading in all the workers' logs; a job that
    ran once fetched its page once and asked the stand-in for each of its segments once."""
    from saq.utils import now

    problems: list[str] = []
    fetched = Counter(web.requests)  # before script_of fetches the pages again
    settled = time.monotonic() + SETTLE
    while True:  # a worker records its job complete just after it published the reading
        jobs = await saq_jobs(cluster.redis_url, [item.reading for item in submitted])
        if time.monotonic() > settled or all(
            job is not None and job.status == "complete" for job in jobs.values()
        ):
            break
        await asyncio.sleep(0.1)
    for reading, job in jobs.items():
        if job is None:
            problems.append(f"{reading}: no job")
        elif job.status != "complete":
            problems.append(
                f"{reading}: its job is {job.status.value} (run {job.attempts} on "
                f"{job.worker_id}, started {job.started}, touched {job.touched}, now {now()})"
            )
    victim_job = jobs[victim]
    if victim_job is None or victim_job.attempts < 2:
        problems.append(f"{victim}: its worker was killed, yet its job ran once")
    logs = "".join(node.output() for node in cluster.nodes if node.role == "worker")
    for item in submitted:
        published = logs.count(f"reading {item.reading}: done\n")
        if published > 1:
            problems.append(f"{item.reading}: published {published} times")
    repeated = {r for r, job in jobs.items() if job is None or job.attempts > 1}
    asked = Counter(request.text for request in edge.requests)
    for item in submitted:
        if item.reading in repeated:
            continue
        path = urlsplit(item.url).path if item.url else None
        if path is not None and fetched[path] != 1:
            problems.append(f"{item.reading}: {path} fetched {fetched[path]}x")
        for segment in script_of(item).segments:
            if asked[segment.text] != 1:
                problems.append(f"{item.reading}: {segment.text!r} asked {asked[segment.text]}x")
    return problems


async def checked_files(
    client: httpx.AsyncClient, api: Node, item: Submitted, edge: EdgeStandin
) -> tuple[bytes, list[str]]:
    """The finished MP3, and what is wrong with it and its captions: it must be the stand-in's
    answers frame for frame with cues at its boundaries, and decode cleanly."""
    audio = await client.get(f"{api.base}/api/readings/{item.reading}/audio.mp3")
    captions = await client.get(f"{api.base}/api/readings/{item.reading}/captions.vtt")
    if audio.status_code != 200 or captions.status_code != 200:
        return b"", [f"{item.reading}: audio {audio.status_code}, captions {captions.status_code}"]
    segments = script_of(item).segments
    found = episode_problems(audio.content, segments, edge.plan, captions.text)
    decoding = await asyncio.to_thread(ffmpeg_errors, audio.content)
    if decoding:
        found.append(f"ffmpeg: {decoding}")
    return audio.content, [f"{item.reading}: {problem}" for problem in found]


def heard_problems(
    listeners: list[Listener], finished: dict[str, bytes], surviving: Node
) -> list[str]:
    """On the surviving node, every stream is the finished reading's frames from the first (a
    live stream) or the finished file itself (asked once it was done); on the stopped node a
    stream may have been cut, but only at the end of a clean prefix."""
    problems = []
    for listener in listeners:
        whole = finished[listener.reading]
        frames = bare_frames(whole) if whole else b""
        heard = bytes(listener.data)
        where = f"{listener.reading} heard on {listener.node.name}"
        if listener.node is surviving and listener.error is not None:
            problems.append(f"{where}: {listener.error}")
        elif heard not in (frames, whole) and (
            listener.node is surviving or not frames.startswith(heard)
        ):
            problems.append(f"{where}: {len(heard)} bytes, not the {len(frames)} of its frames")
    return problems


async def kill_the_victims_worker(
    client: httpx.AsyncClient, cluster: Cluster, api: Node, reading: str
) -> Node | None:
    """Once the reading is in the middle (some segments done, not all), SIGKILL the worker whose
    job it is; None while it is not there yet."""
    row = await status(client, api, reading)
    progress = row["progress"]
    if row["status"] != "running" or not 0 < progress["done"] < progress["total"] - 2:
        return None
    worker = await holder(cluster, reading)
    if worker is None:
        return None
    worker.kill()
    return worker


async def holder(cluster: Cluster, reading: str) -> Node | None:
    """The worker process whose job the reading is, from the queue's record of the job."""
    jobs = await saq_jobs(cluster.redis_url, [reading])
    job = jobs[reading]
    if job is None or job.status != "active" or job.worker_id is None:
        return None
    for node in cluster.workers():
        if str(job.worker_id).endswith(f"-{node.pid}"):  # the worker's id: HOSTNAME-PID
            return node
    return None


@pytest.fixture
def cluster(tmp_path: Path, redis_url: str) -> Any:
    edge = EdgeStandin(realtime_multiple=10.0, first_audio_latency=0.05).start()
    try:
        with Cluster(
            tmp_path,
            redis_url,
            edge,
            api_options=["--rate-limit", "0", *LOOPBACK_PAGES],
            worker_options=["--engine", "edge", "--loudness", "off", *LOOPBACK_PAGES],
        ) as started:
            yield started, edge
    finally:
        edge.stop()


def test_sixty_readings_finish_once_through_a_dead_worker_and_a_stopped_node(
    cluster: tuple[Cluster, EdgeStandin], web: LocalWeb
) -> None:
    nodes, edge = cluster
    nodes.api()
    nodes.api()
    for _ in range(3):
        nodes.worker(ready=False)
    nodes.wait(lambda: nodes.live_workers() >= 3, "3 live workers in /healthz")
    try:
        asyncio.run(scenario(nodes, edge, web))
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{nodes.logs()}") from failure


# saq's sweep takes its lock with redis-py's setex, which redis-py marks deprecated.
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_a_sweep_hands_back_a_dead_workers_jobs_but_never_one_that_beats(redis_url: str) -> None:
    """A worker died holding four jobs (``--concurrency``'s default) while another worker's job
    beats every second: the sweep must hand back the four and leave the beating one running.
    (Judged on what it read before the four waits for an abort, the beating job's last beat
    looks older than the heartbeat limit.)"""
    from saq.job import Status
    from saq.utils import now

    from newsreader.scale.queue import HEARTBEAT, enqueue, make_queue

    async def scenario() -> tuple[list[str], Any]:
        queue = make_queue(redis_url)
        try:
            keys = ["dead1", "dead2", "dead3", "dead4", "beating"]
            for key in keys:
                assert await enqueue(queue, key)
            jobs = {}
            for _ in keys:  # taken in this order: saq's sweep looks at the beating one last
                job = await queue.dequeue(timeout=1)
                assert job is not None
                jobs[job.key] = job
            stale = now() - (HEARTBEAT + 5) * 1000
            for key, job in jobs.items():
                touched = {} if key == "beating" else {"touched": stale}
                await queue.update(job, status=Status.ACTIVE, started=now(), **touched)

            async def beat() -> None:
                while True:
                    await asyncio.sleep(1.0)
                    await queue.update(jobs["beating"])  # what the job's heartbeat does

            beating = asyncio.create_task(beat())
            try:
                # four waits for an abort (SWEEP_ABORT_WAIT, 1.5 s each), no more
                async with asyncio.timeout(15):
                    swept = await queue.sweep()
            except TimeoutError:
                pytest.fail(
                    "the sweep took the beating job for a dead one and waits while it beats"
                )
            finally:
                beating.cancel()
            return sorted(queue.job_key_from_id(job_id) for job_id in swept), await queue.job(
                "beating"
            )
        finally:
            await queue.disconnect()

    swept, beating = asyncio.run(scenario())
    assert swept == ["dead1", "dead2", "dead3", "dead4"]
    assert beating is not None and beating.status == Status.ACTIVE
