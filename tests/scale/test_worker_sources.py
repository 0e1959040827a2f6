"""A worker reads every kind of source as the service does, and stores readings in S3.

- a URL: fetched by the worker through the same address policy (``--allow-address``), its
  failure recorded as the service records it;
- posted HTML: carried in the request and extracted by the worker;
- ``--storage s3://…``: the finished files and the segment cache land in the bucket, and a
  reading longer than the queue's heartbeat limit is made once, not handed to a second worker.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from newsreader import pipeline
from newsreader.audio.mp3 import bare_frames
from newsreader.scale.live import LiveFailed
from newsreader.scale.queue import HEARTBEAT
from newsreader.service.request import JobRequest, job_settings, load_article
from newsreader.service.security import AddressPolicy
from newsreader.storage import open_storage
from tests.audio import ffmpeg_errors
from tests.cluster import Cluster
from tests.s3server import S3Bucket
from tests.scale.test_worker import WORKER, expected_frames, listen, submit, wait_row
from tests.service.conftest import make_config
from tests.standin.server import EdgeStandin
from tests.webserver import LocalWeb

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title} - 本地新闻网</title>
</head><body><nav><a href="/">首页</a> <a href="/news">新闻</a></nav>
<article><h1>{title}</h1>{paragraphs}</article>
<footer>版权所有 本地新闻网 联系我们</footer></body></html>"""


def page(paragraphs: int) -> str:
    body = "书房位于市中心广场东侧，面积约三百平方米，馆内藏书一万余册，设有阅读区和儿童区。"
    items = "".join(f"<p>第{n}段。{body}</p>" for n in range(1, paragraphs + 1))
    return PAGE.format(title="城市书房今天开放", paragraphs=items)


ENDED = ("done", "failed")


def test_a_url_is_fetched_through_the_workers_address_policy(
    tmp_path: Path, redis_url: str, edge_standin: EdgeStandin, web: LocalWeb
) -> None:
    url = web.page("/news/1.html", page(2))
    request = JobRequest(kind="url", content=url)
    with Cluster(tmp_path, redis_url, edge_standin, worker_options=WORKER) as cluster:
        strict = cluster.worker(ready=False)  # loopback is not a public address

        async def refused() -> str:
            reading_id = await submit(redis_url, request)
            heard = asyncio.create_task(listen(redis_url, reading_id))
            row = await wait_row(redis_url, reading_id, lambda r: r.status in ENDED)
            assert row.status == "failed" and row.error_code == "url_not_allowed", row
            assert row.error_message is not None and "127.0.0.1" in row.error_message
            try:
                await heard
            except LiveFailed as failure:  # listeners hear why
                assert failure.error_code == "url_not_allowed"
            else:
                raise AssertionError("the live stream did not end failed")
            return reading_id

        reading_id = asyncio.run(refused())
        assert web.requests == []  # refused before any connection
        strict.kill()
        cluster.worker("--allow-address", "127.0.0.1", ready=False)

        async def allowed() -> None:
            assert await submit(redis_url, request) == reading_id  # a failed one, again
            row = await wait_row(redis_url, reading_id, lambda r: r.status in ENDED)
            assert row.status == "done", (row.error_code, row.error_message, cluster.logs())
            assert not row.listed  # an intranet page stays off the feed
            assert row.title == "城市书房今天开放" and row.total == row.done > 0

        asyncio.run(allowed())
        assert web.requests == ["/news/1.html"]


def test_posted_html_read_into_s3_is_made_once_however_long(
    tmp_path: Path, redis_url: str, edge_standin: EdgeStandin, s3_bucket: S3Bucket
) -> None:
    latency = 0.45
    edge_standin.configure(first_audio_latency=latency)
    request = JobRequest(kind="html", content=page(13), source_url="https://news.example.cn/1")
    settings = job_settings(request, make_config(tmp_path / "expected"))
    article = load_article(request, settings, AddressPolicy())
    script_length = len(pipeline.make_script(article, settings).segments)
    assert script_length * latency > HEARTBEAT + 1  # longer than a job may go without a beat
    storage_spec = f"{s3_bucket.spec}/cluster"
    options = (*WORKER, "--storage", storage_spec, "--s3-endpoint", s3_bucket.endpoint)
    with Cluster(tmp_path, redis_url, edge_standin, worker_options=options) as cluster:
        workers = [cluster.worker(ready=False), cluster.worker(ready=False)]

        async def scenario() -> None:
            reading_id = await submit(redis_url, request)
            heard = asyncio.create_task(listen(redis_url, reading_id))
            row = await wait_row(redis_url, reading_id, lambda r: r.status in ENDED, 28)
            assert row.status == "done", (row.error_code, row.error_message, cluster.logs())
            # each segment synthesized once: the job was never handed to the other worker
            assert len(edge_standin.requests) == script_length
            started = [
                line
                for worker in workers
                for line in worker.output().splitlines()
                if re.search(rf"reading {reading_id}: started", line)
            ]
            assert len(started) == 1, started

            storage = open_storage(storage_spec, tmp_path, endpoint=s3_bucket.endpoint)
            audio = storage.get_bytes(f"readings/{reading_id}.mp3")
            assert audio is not None and ffmpeg_errors(audio) == ""
            assert row.bytes == len(audio)
            captions = storage.get_bytes(f"readings/{reading_id}.vtt")
            assert captions is not None and captions.startswith(b"WEBVTT")
            assert storage.stat(f"readings/{reading_id}.json") is not None
            frames = bare_frames(audio)
            assert await heard == frames
            assert frames == await expected_frames(request, tmp_path)
            # the segment cache is in the bucket too (audio and timings of each segment)
            listed = s3_bucket.client().list_objects_v2(
                Bucket=s3_bucket.name, Prefix="cluster/segments/"
            )
            assert listed.get("KeyCount") == 2 * script_length
            # nothing is left behind in the worker's working folder
            outgoing = tmp_path / "data" / "outgoing"
            assert list(outgoing.iterdir()) == []
            assert not (tmp_path / "data" / "readings").exists()

        asyncio.run(scenario())
