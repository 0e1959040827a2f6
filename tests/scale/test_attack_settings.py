"""One cluster, one sound: a worker or an API node whose audio settings differ from those the
first worker recorded refuses to start in one line; /healthz shows the cluster's settings."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis as sync_redis

from newsreader.scale.settings import SETTINGS_KEY
from newsreader.service.app import create_app
from tests.service.conftest import make_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_redis_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSREADER_REDIS_URL", raising=False)


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
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def first_worker(redis_url: str, data: Path, *options: str) -> None:
    """A real worker process starts (and records the cluster's settings), then stops."""
    process = subprocess.Popen(
        [sys.executable, "-m", "newsreader", "worker", "--redis", redis_url,
         "--data", str(data), *options],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "NEWSREADER_REDIS_URL": ""},
    )  # fmt: skip
    client = sync_redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 15
        while client.get(SETTINGS_KEY) is None:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the worker recorded no settings"
            time.sleep(0.05)
    finally:
        client.close()
        process.terminate()
        process.communicate(timeout=15)


def recorded(redis_url: str) -> dict[str, str]:
    client = sync_redis.Redis.from_url(redis_url)
    try:
        raw = client.get(SETTINGS_KEY)
    finally:
        client.close()
    assert raw is not None
    value: dict[str, str] = json.loads(raw)
    return value


def test_a_worker_with_other_audio_settings_refuses_to_start(
    tmp_path: Path, redis_url: str
) -> None:
    intro = tmp_path / "intro.mp3"
    intro.write_bytes(b"\xff\xfb" + bytes(400))
    other_intro = tmp_path / "other.mp3"
    other_intro.write_bytes(b"\xff\xfb" + bytes(401))
    first_worker(redis_url, tmp_path / "one", "--engine", "edge", "--loudness", "off")
    assert recorded(redis_url) == {
        "engine": "edge",
        "fallback": "none",
        "loudness": "off",
        "intro": "none",
        "outro": "none",
    }

    code, output = run(
        "worker", "--redis", redis_url, "--data", str(tmp_path / "two"),
        "--engine", "espeak", "--loudness", "-14",
    )  # fmt: skip
    assert code == 2
    line = one_line(output)
    assert "--engine espeak (the cluster's: edge)" in line
    assert "--loudness -14 (the cluster's: off)" in line
    assert f"delete {SETTINGS_KEY}" in line
    assert not (tmp_path / "two").exists()  # refused before its data folder was made

    # the same settings start (and stop at once on SIGTERM: tested elsewhere); a clip is
    # compared by its contents
    code, output = run(
        "worker", "--redis", redis_url, "--data", str(tmp_path / "three"),
        "--engine", "edge", "--loudness", "off", "--intro", str(other_intro),
    )  # fmt: skip
    assert code == 2
    assert f"--intro {other_intro} (sha256:" in one_line(output)
    assert "(the cluster's: none)" in output


def test_an_api_node_shows_the_settings_and_refuses_other_ones_given_to_it(
    tmp_path: Path, redis_url: str
) -> None:
    first_worker(redis_url, tmp_path / "w", "--engine", "edge", "--loudness", "off")

    code, output = run(
        "serve", "--redis", redis_url, "--data", str(tmp_path / "api"), "--port", "0",
        "--engine", "espeak",
    )  # fmt: skip
    assert code == 2
    assert "API node's audio settings differ" in output
    assert "--engine espeak (the cluster's: edge)" in output
    assert "Traceback" not in output

    async def health() -> dict[str, object]:
        app = create_app(make_config(tmp_path / "api", redis_url=redis_url))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                body: dict[str, object] = (await client.get("/healthz")).json()
                return body

    assert asyncio.run(health())["settings"] == recorded(redis_url)
