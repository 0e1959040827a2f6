"""The service under test: in-process (httpx ASGITransport) or on a real uvicorn on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from newsreader.service.app import create_app
from newsreader.service.config import ServiceConfig
from newsreader.service.security import Resolver

ARTICLE = (
    "城市书房今天开放\n\n"
    "本市第一家二十四小时城市书房今天正式开放。市民可以免费借阅图书，还能参加读书会！\n\n"
    "书房位于市中心广场东侧，面积约三百平方米。馆内藏书一万余册，设有阅读区和儿童区。\n\n"
    "工作人员介绍，书房将定期举办讲座和展览。欢迎市民前来阅读。"
)
"""A short article: title, three paragraphs, six body sentences."""

SCREENSHOTS = Path(__file__).parent / "screenshots"


def make_config(data: Path, **changes: Any) -> ServiceConfig:
    defaults: dict[str, Any] = {"data_dir": data, "engine": "edge", "rate_limit": 0}
    return ServiceConfig(**{**defaults, **changes})


@contextlib.asynccontextmanager
async def in_process(
    config: ServiceConfig, resolver: Resolver | None = None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan running, and a client that calls it without a socket."""
    app = create_app(config, resolver=resolver)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield app, client


async def wait_for(
    client: httpx.AsyncClient, reading_id: str, statuses: tuple[str, ...] = ("done", "failed")
) -> dict[str, Any]:
    """Poll the reading until its status is one of ``statuses`` (60 s at most: a first
    reading in the embedded voice finds its level first, and the machine may be busy)."""
    deadline = time.monotonic() + 60
    while True:
        response = await client.get(f"/api/readings/{reading_id}")
        assert response.status_code == 200, response.text
        reading: dict[str, Any] = response.json()
        if reading["status"] in statuses:
            return reading
        assert time.monotonic() < deadline, f"reading stuck at {reading['status']}"
        await asyncio.sleep(0.02)


class LiveServer:
    """The app on a real uvicorn, in a thread, on an ephemeral loopback port."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def base(self) -> str:
        socket = self.server.servers[0].sockets[0]
        host, port = socket.getsockname()[:2]
        return f"http://{host}:{port}"


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """``serve(**config_changes)`` starts the service on uvicorn; stopped after the test."""
    started: list[LiveServer] = []

    def start(**changes: Any) -> LiveServer:
        config = make_config(tmp_path / f"data{len(started)}", **changes)
        server = LiveServer(create_app(config)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


__all__ = ["ARTICLE", "SCREENSHOTS", "LiveServer", "in_process", "make_config", "wait_for"]
