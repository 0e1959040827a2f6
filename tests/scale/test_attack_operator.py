"""A careless operator: nonsense options are one line and a non-zero exit with nothing started
(no data folder, no key in Redis); a Redis shared with another application keeps that
application's keys untouched; a worker started before any API node works."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as sync_redis

from newsreader.scale.settings import SETTINGS_KEY
from tests.cluster import Cluster
from tests.redisserver import free_port
from tests.scale.test_api import api_node, cluster_config, until_workers
from tests.scale.test_worker import WORKER
from tests.service.conftest import ARTICLE, wait_for
from tests.standin.server import EdgeStandin

ROOT = Path(__file__).resolve().parents[2]
OURS = ("newsreader:", "saq:newsreader:", "saq:job:newsreader:")
"""Key prefixes of the cluster: its own, and saq's for the queue named newsreader."""


def run(*args: str) -> tuple[int, str]:
    """``newsreader ARGS`` as a process (one that wrongly starts is a timeout, not a hang)."""
    result = subprocess.run(
        [sys.executable, "-m", "newsreader", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "NEWSREADER_REDIS_URL": ""},
    )
    return result.returncode, result.stderr + result.stdout


def one_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key


def keys(url: str) -> list[str]:
    client = sync_redis.Redis.from_url(url)
    try:
        return sorted(text(key) for key in client.keys("*"))
    finally:
        client.close()


@pytest.mark.parametrize(
    ("options", "expected", "code"),
    [
        (["--concurrency", "0"], "--concurrency: 0 is not in the range", 2),
        (["--shutdown-grace", "-1"], "--shutdown-grace: -1.0 is not in the range", 2),
        (["--metrics-port", "70000"], "--metrics-port: 70000 is not in the range", 2),
        (["--storage", "s3:/news"], "--storage 's3:/news' looks like a URL missing its //", 2),
        (["--storage", "s3:news"], "--storage 's3:news' looks like a URL missing its //", 2),
        (["--storage", "S3://News_Room"], "names no valid bucket", 2),
        (["--storage", "gs://news"], "has a scheme (gs://) that is not supported", 2),
        (["--loudness", "-99"], "--loudness -99 is out of range", 2),
        (["--engine", "nonsense"], "--engine", 2),
    ],
)
def test_worker_nonsense_options_are_one_line(
    tmp_path: Path, redis_url: str, options: list[str], expected: str, code: int
) -> None:
    data = tmp_path / "data"
    returned, output = run("worker", "--redis", redis_url, "--data", str(data), *options)
    assert returned == code, output
    assert expected in one_line(output)
    assert not data.exists()
    assert keys(redis_url) == []
    assert not list(ROOT.glob("s3:*")), "a storage typo made a folder in the working directory"


def test_a_worker_whose_data_cannot_be_made_starts_nothing(tmp_path: Path, redis_url: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    returned, output = run("worker", "--redis", redis_url, "--data", str(blocker / "data"))
    assert returned == 7, output
    assert "not writable" in one_line(output)
    assert keys(redis_url) == []  # not even the cluster's settings: it did not start


def test_a_worker_whose_metrics_port_is_taken_records_nothing(
    tmp_path: Path, redis_url: str
) -> None:
    import socket

    with socket.create_server(("0.0.0.0", free_port())) as taken:
        port = taken.getsockname()[1]
        returned, output = run(
            "worker", "--redis", redis_url, "--data", str(tmp_path), "--metrics-port", str(port)
        )
    assert returned != 0, output
    assert str(port) in one_line(output)
    assert SETTINGS_KEY not in keys(redis_url)


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_a_database_number_out_of_range_is_one_line(
    tmp_path: Path, redis_url: str, command: str
) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/99"
    extra = ["--port", "0"] if command == "serve" else []
    returned, output = run(command, "--redis", url, "--data", str(tmp_path / "d"), *extra)
    assert returned == 2, output
    assert "DB index is out of range" in one_line(output)
    assert "check the database number" in output
    assert not (tmp_path / "d").exists()


def test_another_apps_keys_are_left_alone_and_a_worker_may_start_first(
    tmp_path: Path, redis_url: str, edge_standin: EdgeStandin
) -> None:
    edge_standin.configure(first_audio_latency=0.05)
    theirs = sync_redis.Redis.from_url(redis_url)
    theirs.set("session:1", "alice", ex=3600)
    theirs.set("newsreader", "a key named like us, without the colon")
    theirs.set("newsreaderx:1", "another prefix")
    theirs.hset("saq:otherapp:stats", mapping={"done": 3})
    theirs.set("saq:job:otherapp:9", "a job of their queue")
    theirs.rpush("saq:otherapp:queued", "saq:job:otherapp:9")
    theirs.zadd("leaderboard", {"bob": 3})
    theirs.xadd("events", {"kind": "click"})
    before = {key: theirs.dump(key) for key in theirs.keys("*")}
    data = tmp_path / "data"
    config = cluster_config(data, redis_url)
    with Cluster(tmp_path, redis_url, edge_standin, data=data, worker_options=WORKER) as cluster:
        cluster.worker(ready=False)  # before any API node
        deadline = time.monotonic() + 20
        while not theirs.exists(SETTINGS_KEY):
            assert time.monotonic() < deadline, cluster.logs()
            time.sleep(0.05)

        async def scenario() -> None:
            async with api_node(config) as client:
                await until_workers(client)
                posted = await client.post("/api/readings", json={"text": ARTICLE})
                assert posted.status_code == 202, posted.text
                reading = await wait_for(client, posted.json()["id"])
                assert reading["status"] == "done", reading["error"]
                stream = await client.get(f"/api/readings/{posted.json()['id']}/stream.mp3")
                assert stream.status_code == 200 and stream.content

        asyncio.run(scenario())
    try:
        after = {key: theirs.dump(key) for key in before}
        assert after == before  # every key of theirs, byte for byte
        assert 3500 < theirs.ttl("session:1") <= 3600
        new = [text(key) for key in theirs.keys("*") if key not in before]
        assert new, "the cluster wrote nothing?"
        assert all(key.startswith(OURS) for key in new), sorted(new)
    finally:
        theirs.close()


def test_a_worker_with_many_slots_keeps_its_upkeep_within_its_redis_connections(
    tmp_path: Path, redis_url: str
) -> None:
    """``--concurrency 150`` (the option allows up to 256): saq takes jobs with one blocking
    read per slot, which took all of redis-py's default 100 connections and made the worker's
    sweep, reports and heartbeats fail with "Too many connections"."""
    import signal

    from newsreader.scale.worker import redis_connections

    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "newsreader", "worker", "--redis", redis_url,
             "--data", str(tmp_path / "data"), "--concurrency", "150"],
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NEWSREADER_REDIS_URL": ""},
        )  # fmt: skip
        try:
            client = sync_redis.Redis.from_url(redis_url)
            try:
                deadline = time.monotonic() + 20
                while not client.exists(SETTINGS_KEY):  # it has started
                    assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                    time.sleep(0.05)
                time.sleep(4)  # its upkeep runs every 1 to 3 s
                clients = len(client.client_list()) - 1  # less this one
            finally:
                client.close()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)
    text = log.read_text()
    assert "Too many connections" not in text, text[-2000:]
    assert "Upkeep task failed" not in text, text[-2000:]
    assert 150 <= clients <= redis_connections(150)
