"""Slow pages cannot starve the service: a client's dripping URLs fail at their deadline, their
fetches stop by themselves, the client holds at most its share, and other readings go ahead."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from newsreader.service.app import create_app
from newsreader.service.config import ServiceConfig, parse_networks
from tests.service.conftest import ARTICLE, make_config, wait_for
from tests.slowweb import SlowWeb, slow_web
from tests.standin.server import EdgeStandin


@contextlib.asynccontextmanager
async def two_clients(
    config: ServiceConfig,
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """The app with its lifespan, and two clients that it sees at different addresses."""
    app = create_app(config)
    async with app.router.lifespan_context(app), contextlib.AsyncExitStack() as stack:
        clients = []
        for address in ("203.0.113.7", "198.51.100.9"):
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            clients.append(await stack.enter_async_context(client))
        yield clients[0], clients[1]


def test_six_dripping_pages_do_not_starve_other_readings(
    tmp_path: Path, edge_standin: EdgeStandin
) -> None:
    config = make_config(
        tmp_path,
        allow_addresses=parse_networks(["127.0.0.1"]),
        fetch_timeout=1.0,  # every byte arrives well within this
        fetch_deadline=2.0,
    )

    async def scenario(server: SlowWeb) -> None:
        async with two_clients(config) as (attacker, reader):
            ids = []
            for n in range(6):
                posted = await attacker.post("/api/readings", json={"url": server.url(f"/{n}")})
                assert posted.status_code == 202, posted.text
                ids.append(posted.json()["id"])
            await asyncio.sleep(0.3)  # the slow fetches have started
            start = time.monotonic()
            posted = await reader.post("/api/readings", json={"text": ARTICLE})
            assert posted.status_code == 202
            reading = await wait_for(reader, posted.json()["id"])
            took = time.monotonic() - start
            assert reading["status"] == "done", reading["error"]
            print(f"a reading beside six dripping pages took {took:.2f} s")
            assert took < 4.0
            for reading_id in ids:
                failed = await wait_for(attacker, reading_id)
                assert failed["status"] == "failed"
                assert failed["error"]["code"] == "source_unreadable"
                assert "took longer than 2 s" in failed["error"]["message"]

    with slow_web(interval=0.2, lifetime=20) as server:
        asyncio.run(scenario(server))
        deadline = time.monotonic() + 2
        while server.open_connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.open_connections == 0  # every fetch hung up by itself
        assert len(server.seen) == 6
        # The client's share: two readings at a time, the next two when those end (2 s).
        opened = sorted(s.opened for s in server.seen)
        assert opened[1] - opened[0] < 0.5
        assert opened[2] - opened[0] >= 1.8 and opened[4] - opened[2] >= 1.8
        for seen in server.seen:
            assert seen.closed is not None and seen.closed - seen.opened < 3.0


def test_the_token_is_checked_before_the_rate_limit(tmp_path: Path) -> None:
    config = make_config(tmp_path, token="s3cret", rate_limit=30, rate_burst=3)

    async def scenario() -> None:
        async with two_clients(config) as (client, _):
            for _ in range(10):
                refused = await client.post("/api/readings", json={"text": ARTICLE})
                assert refused.status_code == 401  # never 429: a refusal costs no quota
            headers = {"Authorization": "Bearer s3cret"}
            answers = [
                (await client.post("/api/readings", json={"text": ""}, headers=headers))
                for _ in range(4)
            ]
            assert [a.status_code for a in answers] == [422, 422, 422, 429]

    asyncio.run(scenario())
