"""URLs a caller or a site gets wrong are 4xx errors or clear job errors, never internal ones."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from newsreader.service.config import parse_networks
from tests.service.conftest import in_process, make_config, wait_for
from tests.webserver import LocalWeb

BAD = ["http://[127.0.0.1]/", "http://[::1/", "http://]/", "http://a\x7fb.example/", "http://xn--/"]


def test_unparseable_urls_are_refused_when_posted(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with in_process(make_config(tmp_path)) as (_app, client):
            for url in BAD:
                response = await client.post("/api/readings", json={"url": url})
                assert response.status_code == 400, (url, response.text)
                error = response.json()["error"]
                assert error["code"] == "bad_url"
                assert "\n" not in error["message"] and "\x7f" not in error["message"]
            health = (await client.get("/healthz")).json()
            assert health["queued"] == health["running"] == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("location", ["http:\\\\127.0.0.1/", "http://[::1/", "http://a\x7fb/"])
def test_a_redirect_to_an_unparseable_address_fails_the_reading_clearly(
    tmp_path: Path, web: LocalWeb, location: str
) -> None:
    start = web.redirect("/go", location)
    config = make_config(tmp_path, allow_addresses=parse_networks(["127.0.0.1"]))

    async def scenario() -> None:
        async with in_process(config) as (_app, client):
            response = await client.post("/api/readings", json={"url": start})
            assert response.status_code == 202
            reading = await wait_for(client, response.json()["id"])
            assert reading["status"] == "failed"
            assert reading["error"]["code"] == "source_unreadable"
            assert "redirected to an invalid address" in reading["error"]["message"]

    asyncio.run(scenario())
