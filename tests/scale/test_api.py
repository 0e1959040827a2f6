"""The API node of scale-out mode: ``create_app`` with a Redis URL, on a real Redis, with a real
``newsreader worker`` process (edge pointed at the stand-in) and both storage backends.

The API apps run in this process (httpx's ASGI transport); the worker is its own process, as in
production, sharing the data folder (the directory storage) or an S3 bucket (moto's server).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from newsreader.cli import main
from newsreader.service.app import create_app
from newsreader.service.config import ServiceConfig
from newsreader.text.extract import extract
from newsreader.text.segment import build_script
from tests.audio import decode_samples, ffmpeg_errors
from tests.cluster import Cluster
from tests.redisserver import RedisServer, free_port
from tests.s3server import S3Bucket
from tests.service.conftest import ARTICLE, in_process, make_config, wait_for
from tests.standin.server import EdgeStandin


def cluster_config(data: Path, redis_url: str, **changes: Any) -> ServiceConfig:
    return make_config(data, redis_url=redis_url, **changes)


@contextlib.asynccontextmanager
async def api_node(
    config: ServiceConfig, address: str = "203.0.113.7"
) -> AsyncIterator[httpx.AsyncClient]:
    """One API node (its lifespan running) and a client it sees at ``address``."""
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def until_workers(client: httpx.AsyncClient, count: int = 1, timeout: float = 30) -> None:
    """Wait until the node's /healthz counts ``count`` live workers (a worker process starts)."""
    deadline = time.monotonic() + timeout
    while True:
        health = (await client.get("/healthz")).json()
        if (health.get("workers") or 0) >= count:
            return
        assert time.monotonic() < deadline, f"no live worker in /healthz: {health}"
        await asyncio.sleep(0.1)


@pytest.fixture(params=["directory", "s3"])
def storage(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """The storage both the API node and the worker use: the shared data folder, or a bucket."""
    if request.param == "directory":
        yield {}
    else:
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        yield {"storage": bucket.spec, "s3_endpoint": bucket.endpoint, "bucket": bucket}


def worker_options(storage: dict[str, Any]) -> list[str]:
    options = ["--concurrency", "2"]
    if "storage" in storage:
        options += ["--storage", storage["storage"], "--s3-endpoint", storage["s3_endpoint"]]
    return options


def test_a_reading_through_the_cluster_api(
    tmp_path: Path, redis_url: str, edge_standin: EdgeStandin, storage: dict[str, Any]
) -> None:
    data = tmp_path / "data"
    bucket: S3Bucket | None = storage.pop("bucket", None)
    config = cluster_config(data, redis_url, **storage)

    async def scenario(cluster: Cluster) -> None:
        async with api_node(config) as client:
            cluster.worker(*worker_options(storage), ready=False)
            await until_workers(client)

            posted = await client.post("/api/readings", json={"text": ARTICLE})
            assert posted.status_code == 202, posted.text
            reading_id = posted.json()["id"]
            assert posted.json()["status"] == "queued"
            assert posted.headers["location"] == f"/api/readings/{reading_id}"

            head = await client.head(f"/api/readings/{reading_id}/stream.mp3")
            assert head.status_code == 200
            assert head.headers["cache-control"] == "no-store"
            assert "content-length" not in head.headers

            # the live stream from the start, while the worker makes it (the ASGI transport
            # hands over the body when the reading ends)
            live = await client.get(f"/api/readings/{reading_id}/stream.mp3")
            assert live.status_code == 200
            assert live.headers["content-type"] == "audio/mpeg"
            assert live.headers["cache-control"] == "no-store"
            assert live.headers["x-accel-buffering"] == "no"
            assert live.content, "the live stream was empty"
            assert ffmpeg_errors(live.content) == ""

            reading = await wait_for(client, reading_id)
            assert reading["status"] == "done", reading["error"]
            assert reading["title"] == "城市书房今天开放"
            assert reading["progress"] == {"done": 4, "total": 4}
            assert reading["engine"] == "edge"
            assert [s["kind"] for s in reading["sentences"]] == ["title"] + ["body"] * 6
            assert all(s["start"] is not None for s in reading["sentences"])
            assert reading["chapters"][0]["title"] == "城市书房今天开放"
            heard = len(decode_samples(live.content)) / 24_000
            assert heard == pytest.approx(reading["audio_ready"], abs=0.15)

            # the finished file from storage: whole, ranged, validated
            audio = await client.get(reading["links"]["audio"])
            assert audio.status_code == 200
            assert audio.headers["content-type"] == "audio/mpeg"
            assert int(audio.headers["content-length"]) == len(audio.content)
            assert ffmpeg_errors(audio.content) == ""
            decoded = len(decode_samples(audio.content)) / 24_000
            assert decoded == pytest.approx(reading["duration"], abs=0.1)
            etag = audio.headers["etag"]
            part = await client.get(reading["links"]["audio"], headers={"Range": "bytes=100-199"})
            assert part.status_code == 206
            assert part.content == audio.content[100:200]
            assert part.headers["content-range"] == f"bytes 100-199/{len(audio.content)}"
            again = await client.get(reading["links"]["audio"], headers={"If-None-Match": etag})
            assert again.status_code == 304
            head = await client.head(reading["links"]["audio"])
            assert head.headers["content-length"] == str(len(audio.content))

            # where the worker put it: the shared folder, or the bucket (and not the folder)
            stored = data / "readings" / f"{reading_id}.mp3"
            if bucket is None:
                assert stored.read_bytes() == audio.content
            else:
                assert not stored.exists()
                body = bucket.client().get_object(
                    Bucket=bucket.name, Key=f"readings/{reading_id}.mp3"
                )["Body"]
                assert body.read() == audio.content

            # once done, the stream is the stored file
            late = await client.get(f"/api/readings/{reading_id}/stream.mp3")
            assert late.status_code == 200
            assert late.content == audio.content
            assert late.headers["etag"] == etag

            captions = await client.get(reading["links"]["captions"])
            assert captions.status_code == 200
            assert captions.text.startswith("WEBVTT")
            assert "城市书房今天开放" in captions.text
            chapters = await client.get(f"/api/readings/{reading_id}/chapters.json")
            assert chapters.json()["chapters"][0]["title"] == "城市书房今天开放"

            # posted text is never in the feed; the feed is served from the cluster's state
            feed = await client.get("/feed.xml")
            assert feed.status_code == 200
            assert b"<item>" not in feed.content

            # the same text again is the same reading, done: no second job
            posted = await client.post("/api/readings", json={"text": ARTICLE})
            assert posted.status_code == 200
            assert posted.json() == {**posted.json(), "id": reading_id, "status": "done"}

    with Cluster(tmp_path / "cluster", redis_url, edge_standin, data=data) as cluster:
        asyncio.run(scenario(cluster))


def test_two_api_nodes_make_one_reading_of_the_same_content(tmp_path: Path, redis_url: str) -> None:
    """Two nodes with data folders of their own (no shared id key on disk) give posted text one
    id, and of simultaneous submissions one creates the reading and its one job."""
    first = cluster_config(tmp_path / "a", redis_url)
    second = cluster_config(tmp_path / "b", redis_url)

    async def scenario() -> None:
        async with api_node(first) as one, api_node(second) as two:
            answers = await asyncio.gather(
                *(
                    node.post("/api/readings", json={"text": ARTICLE})
                    for node in (one, two, one, two)
                )
            )
            assert sorted(a.status_code for a in answers) == [200, 200, 200, 202]
            assert len({a.json()["id"] for a in answers}) == 1
            reading_id = answers[0].json()["id"]
            for node in (one, two):
                reading = (await node.get(f"/api/readings/{reading_id}")).json()
                assert reading["status"] == "queued"
                health = (await node.get("/healthz")).json()
                assert health["queue_depth"] == 1  # one job on the queue, no worker to take it
                assert health["queued"] == 1
                assert health["workers"] == 0

            # a different voice is another reading
            other = await two.post(
                "/api/readings", json={"text": ARTICLE, "voice": "zh-CN-YunxiNeural"}
            )
            assert other.status_code == 202
            assert other.json()["id"] != reading_id
            assert (await one.get("/healthz")).json()["queue_depth"] == 2

    asyncio.run(scenario())


def test_the_rate_limit_is_shared_by_every_api_node(tmp_path: Path, redis_url: str) -> None:
    config = cluster_config(tmp_path / "data", redis_url, rate_limit=1, rate_burst=2)

    async def scenario() -> None:
        async with (
            api_node(config) as one,
            api_node(config) as two,
            api_node(config, address="198.51.100.9") as elsewhere,
        ):
            # each request takes a token before it is validated (an empty body is refused after)
            assert (await one.post("/api/readings", json={})).status_code == 422
            assert (await two.post("/api/readings", json={})).status_code == 422
            refused = await one.post("/api/readings", json={"text": ARTICLE})
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "rate_limited"
            assert 1 <= int(refused.headers["retry-after"]) <= 61
            assert (await two.post("/api/readings", json={"text": ARTICLE})).status_code == 429
            # another client has its own bucket
            assert (await elsewhere.post("/api/readings", json={})).status_code == 422

    asyncio.run(scenario())


def test_healthz_says_whether_redis_answers(tmp_path: Path) -> None:
    with RedisServer() as redis:
        config = cluster_config(tmp_path / "data", redis.url)

        async def scenario() -> None:
            async with api_node(config) as client:
                up = await client.get("/healthz")
                assert up.status_code == 200
                assert up.json()["status"] == "ok"
                assert up.json()["redis"] == "ok"
                assert up.json() == {
                    **up.json(),
                    "mode": "cluster",
                    "queued": 0,
                    "running": 0,
                    "queue_depth": 0,
                    "workers": 0,
                }
                posted = await client.post("/api/readings", json={"text": ARTICLE})
                reading_id = posted.json()["id"]

                redis.stop()
                down = await client.get("/healthz")
                assert down.status_code == 503
                body = down.json()
                assert body["status"] == "unavailable"
                assert "refused" in body["redis"].lower() or "connect" in body["redis"].lower()
                assert "\n" not in body["redis"]
                assert body["queue_depth"] is None

                # a request that needs Redis: 503 in one line, not a crash
                status = await client.get(f"/api/readings/{reading_id}")
                assert status.status_code == 503
                assert status.json()["error"]["code"] == "unavailable"
                assert status.headers["retry-after"] == "5"
                submit = await client.post("/api/readings", json={"text": "另一篇\n\n文章。"})
                assert submit.status_code == 503

                redis.start()  # back (empty): the node answers again without a restart
                again = await client.get("/healthz")
                assert again.status_code == 200
                assert again.json()["redis"] == "ok"

        asyncio.run(scenario())


def metric_values(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def test_metrics_parse_on_an_api_node_and_on_the_embedded_service(
    tmp_path: Path, redis_url: str
) -> None:
    async def scenario() -> None:
        async with api_node(cluster_config(tmp_path / "a", redis_url)) as client:
            await client.post("/api/readings", json={"text": ARTICLE})
            scraped = await client.get("/metrics")
            assert scraped.status_code == 200
            assert scraped.headers["content-type"].startswith("text/plain")
            values = metric_values(scraped.text)
            assert values["newsreader_queue_depth"] == 1
            assert values["newsreader_workers"] == 0
            assert values["newsreader_readings_running"] == 0
            assert "newsreader_readings_total" in scraped.text

        async with api_node(make_config(tmp_path / "b")) as client:
            scraped = await client.get("/metrics")
            assert scraped.status_code == 200
            values = metric_values(scraped.text)
            assert values["newsreader_queue_depth"] == 0
            assert values["newsreader_readings_running"] == 0
            # the embedded service keeps its health fields as they were
            health = (await client.get("/healthz")).json()
            assert set(health) == {"status", "version", "engine", "queued", "running"}

    asyncio.run(scenario())


def test_a_failed_reading_cuts_the_stream_as_the_embedded_service_does(
    tmp_path: Path, redis_url: str, edge_standin: EdgeStandin
) -> None:
    """The voice fails for the second paragraph (every retry): listeners of either service get
    the same first two segments, then the end of the body; afterwards the stream is a 409."""
    script = build_script(extract(ARTICLE, read_whole=True), locale="zh-CN", read_title=True)
    failing = {segment.text for segment in script.segments if segment.block == 1}
    assert failing
    edge_standin.set_faults(chooser=lambda _n, text: "close_mid_audio" if text in failing else None)

    async def listen(client: httpx.AsyncClient) -> tuple[bytes, dict[str, Any]]:
        posted = await client.post("/api/readings", json={"text": ARTICLE})
        assert posted.status_code == 202, posted.text
        reading_id = posted.json()["id"]
        stream = await client.get(f"/api/readings/{reading_id}/stream.mp3")
        assert stream.status_code == 200
        reading = await wait_for(client, reading_id)
        after = await client.get(f"/api/readings/{reading_id}/stream.mp3")
        assert after.status_code == 409
        assert after.json()["error"]["code"] == "reading_failed"
        return stream.content, reading

    async def embedded() -> tuple[bytes, dict[str, Any]]:
        async with in_process(make_config(tmp_path / "embedded")) as (_app, client):
            return await listen(client)

    async def cluster(nodes: Cluster) -> tuple[bytes, dict[str, Any]]:
        async with api_node(cluster_config(tmp_path / "data", redis_url)) as client:
            nodes.worker(ready=False)
            await until_workers(client)
            return await listen(client)

    alone, alone_reading = asyncio.run(embedded())
    with Cluster(tmp_path / "cluster", redis_url, edge_standin, data=tmp_path / "data") as nodes:
        scaled, scaled_reading = asyncio.run(cluster(nodes))
    for reading in (alone_reading, scaled_reading):
        assert reading["status"] == "failed"
        assert reading["error"]["code"] == "synthesis_failed"
        assert "paragraph 2" in reading["error"]["message"]
    assert alone, "the embedded stream had no audio before the failure"
    assert scaled == alone  # the title and the first paragraph, then the body ends
    assert ffmpeg_errors(scaled) == ""


def test_a_hung_redis_gets_503_not_a_hung_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsreader.service import cluster

    monkeypatch.setattr(cluster, "REQUEST_TIMEOUT", 0.5)
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 0.5)
    with RedisServer() as redis:
        config = cluster_config(tmp_path / "data", redis.url)

        async def scenario() -> None:
            async with api_node(config) as client:
                posted = await client.post("/api/readings", json={"text": ARTICLE})
                reading_id = posted.json()["id"]
                assert redis.process is not None
                redis.process.send_signal(signal.SIGSTOP)  # alive, connected, silent
                try:
                    start = time.monotonic()
                    health = await client.get("/healthz")
                    assert health.status_code == 503
                    assert "no answer within 0.5 s" in health.json()["redis"]
                    status = await client.get(f"/api/readings/{reading_id}")
                    assert status.status_code == 503
                    assert "no answer within 0.5 s" in status.json()["error"]["message"]
                    assert time.monotonic() - start < 5
                finally:
                    redis.process.send_signal(signal.SIGCONT)
                assert (await client.get(f"/api/readings/{reading_id}")).status_code == 200

        asyncio.run(scenario())


def serve(*arguments: str) -> Any:
    return CliRunner().invoke(main, ["serve", "--port", "1", *arguments])


def one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_serve_refuses_bad_cluster_settings_in_one_line(
    tmp_path: Path, redis_url: str, s3_bucket: S3Bucket
) -> None:
    data = str(tmp_path / "data")
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    result = serve("--data", data, "--redis", nobody)
    assert result.exit_code == 2
    assert "connection refused" in one_line(result.output)

    result = serve("--data", data, "--redis", "http://127.0.0.1:6379/0")
    assert result.exit_code == 2
    assert "--redis must be a redis://HOST:PORT/DB URL" in one_line(result.output)

    result = serve("--data", data, "--redis", redis_url, "--storage", "gs://bucket/x")
    assert result.exit_code == 2
    assert "--storage 'gs://bucket/x'" in one_line(result.output)

    result = serve("--data", data, "--redis", redis_url, "--s3-endpoint", "ftp://x")
    assert result.exit_code == 2
    assert "--s3-endpoint 'ftp://x' is not an S3 endpoint" in one_line(result.output)

    missing = "s3://no-such-bucket-here/readings"
    result = serve("--data", data, "--redis", redis_url, "--storage", missing)
    assert result.exit_code == 7
    assert "no-such-bucket-here" in one_line(result.output)


def test_the_feed_lists_the_clusters_listed_readings(tmp_path: Path, redis_url: str) -> None:
    """A reading a worker finished as listed (a public page) is in every node's feed; one it
    finished unlisted is not."""
    from newsreader.scale.redisurl import connect
    from newsreader.scale.state import RedisState

    async def finish(state: RedisState, reading_id: str, url: str, listed: bool) -> None:
        await state.submit(reading_id, {"kind": "url", "content": url}, url, audio_exists=False)
        assert await state.claim(reading_id, "worker-1")
        assert await state.finish(
            reading_id,
            title=f"新闻 {reading_id[:4]}",
            duration=12.5,
            bytes=75_000,
            etag="0" * 32,
            engine="edge",
            listed=listed,
            done=3,
            total=3,
        )

    async def scenario() -> None:
        redis = await connect(redis_url)
        try:
            state = RedisState(redis)
            await finish(state, "a" * 24, "https://news.example.cn/a.html", True)
            await finish(state, "b" * 24, "https://intranet.example.cn/b.html", False)
        finally:
            await redis.aclose()
        config = cluster_config(tmp_path / "data", redis_url, public_url="https://read.example.cn")
        async with api_node(config) as client:
            feed = await client.get("/feed.xml")
        assert feed.status_code == 200
        parsed = feedparser.parse(feed.content)
        assert [e.link for e in parsed.entries] == ["https://news.example.cn/a.html"]
        [enclosure] = parsed.entries[0].enclosures
        assert enclosure.href == f"https://read.example.cn/api/readings/{'a' * 24}/audio.mp3"
        assert enclosure.length == "75000"

    asyncio.run(scenario())


def test_serve_with_redis_runs_an_api_node_process(tmp_path: Path, redis_url: str) -> None:
    with Cluster(tmp_path / "cluster", redis_url, "127.0.0.1:9") as cluster:
        node = cluster.api("--voice-connections", "4")
        health = cluster.health(node)
        assert health["mode"] == "cluster"
        assert health["redis"] == "ok"
        output = node.output()
        assert "(an API node on Redis)" in output
        assert "--voice-connections: the workers' settings in scale-out mode" in output
        assert node.terminate() in (0, -signal.SIGTERM)  # uvicorn ends by the signal it got
        assert "Traceback" not in node.output()  # an orderly stop: the Redis client closed


# saq's own finish() calls redis-py's setex, which redis-py marks deprecated.
@pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")
def test_a_reading_submitted_again_while_its_failed_job_winds_up_is_queued(
    tmp_path: Path, redis_url: str
) -> None:
    """A worker failed the reading and is still finishing its job (the queue refuses the key
    meanwhile): the node asks again until the old job is gone, so the new attempt has a job."""
    from saq.job import Status

    from newsreader.scale.queue import make_queue, queue_depth
    from newsreader.scale.redisurl import connect
    from newsreader.scale.state import RedisState

    async def scenario() -> None:
        async with api_node(cluster_config(tmp_path / "data", redis_url)) as client:
            posted = await client.post("/api/readings", json={"text": ARTICLE})
            reading_id = posted.json()["id"]
            queue = make_queue(await connect(redis_url))
            try:
                job = await queue.dequeue(timeout=2)  # as a worker takes it
                assert job is not None and job.key == reading_id
                assert await RedisState(queue.redis).fail(reading_id, "synthesis_failed", "x")

                again = asyncio.create_task(client.post("/api/readings", json={"text": ARTICLE}))
                await asyncio.sleep(0.3)
                assert not again.done()  # the queue still has the old job: asked again
                await queue.finish(job, Status.FAILED, error="x")  # the worker winds up
                answer = await again
                assert answer.status_code == 202
                assert answer.json()["id"] == reading_id
                assert await queue_depth(queue) == 1  # the new attempt's job
                status = (await client.get(f"/api/readings/{reading_id}")).json()
                assert status["status"] == "queued"
            finally:
                await queue.disconnect()

    asyncio.run(scenario())
