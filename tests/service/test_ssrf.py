"""URL sources can't be aimed at the service's own network: every address of every hop is checked.

Names are resolved by the system resolver (``localhost``, numeric forms) or, for names this test
makes up, by a resolver the app is given (the DNS seam). Refused addresses are never connected to:
the check runs before each connection, and nothing here listens on them anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from newsreader.errors import SourceError
from newsreader.service.config import parse_networks
from newsreader.service.security import AddressPolicy, AddressRefused, system_resolver
from tests.service.conftest import in_process, make_config, wait_for
from tests.standin.server import EdgeStandin
from tests.webserver import LocalWeb

MADE_UP = {
    "metadata.example.test": ["169.254.169.254"],
    "intranet.example.test": ["10.0.0.5"],
    "mixed.example.test": ["93.184.216.34", "10.0.0.5"],
    "rebind6.example.test": ["2606:2800:220:1:248:1893:25c8:1946", "::1"],
    "public.example.test": ["93.184.216.34"],
}


def resolver(host: str, port: int) -> Sequence[str]:
    """Made-up names from the table; every other name through the system's resolver."""
    return MADE_UP[host] if host in MADE_UP else system_resolver(host, port)


REFUSED = [
    "http://127.0.0.1/",
    "http://127.0.0.1:8080/admin",
    "http://localhost/",
    "http://LOCALHOST/",
    "http://user:pw@127.0.0.1/",
    "http://127.1/",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a00:1]/",
    "http://[2002:a00:1::]/",  # 6to4 around 10.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 around 169.254.169.254
    "http://0.0.0.0/",
    "http://[::]/",
    "http://10.0.0.1/",
    "http://10.255.255.255/",
    "http://172.16.0.1/",
    "http://172.31.255.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.2/v2/credentials",
    "http://100.100.100.200/latest/meta-data/",
    "http://100.64.0.1/",
    "http://[fd00:ec2::254]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "https://metadata.example.test/",
    "https://intranet.example.test/",
    "https://mixed.example.test/",
    "https://rebind6.example.test/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_private_and_special_addresses_are_refused(url: str) -> None:
    with pytest.raises(AddressRefused, match="public addresses"):
        AddressPolicy(resolver=resolver).check_url(url)


@pytest.mark.parametrize("url", ["http://93.184.216.34/a", "https://public.example.test/news/1"])
def test_public_addresses_pass(url: str) -> None:
    AddressPolicy(resolver=resolver).check_url(url)  # no exception, and no connection made


def test_the_allowlist_opens_only_what_it_names() -> None:
    policy = AddressPolicy(parse_networks(["127.0.0.1", "10.0.0.0/24"]), resolver)
    policy.check_url("http://127.0.0.1:8000/page")
    policy.check_url("http://intranet.example.test/")
    for url in ("http://127.0.0.2/", "http://10.0.1.1/", "http://[::1]/", "http://192.168.0.1/"):
        with pytest.raises(AddressRefused):
            policy.check_url(url)
    # cloud metadata stays refused even inside an allowed network
    wide = AddressPolicy(parse_networks(["169.254.0.0/16", "100.64.0.0/10"]), resolver)
    wide.check_url("http://169.254.1.1/")
    for url in ("http://169.254.169.254/", "http://100.100.100.200/", "http://[fd00:ec2::254]/"):
        with pytest.raises(AddressRefused, match="metadata"):
            wide.check_url(url)


def test_unresolvable_and_malformed_urls_are_source_errors() -> None:
    policy = AddressPolicy()
    with pytest.raises(SourceError, match="resolve"):
        policy.check_url("http://no-such-host.invalid/")
    with pytest.raises(SourceError, match="scheme"):
        policy.check_url("gopher://127.0.0.1/")


def test_the_api_refuses_them_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with in_process(make_config(tmp_path), resolver) as (_app, client):
            for url in (
                "http://127.0.0.1/",
                "http://10.0.0.1/",
                "http://169.254.169.254/latest/meta-data/",
                "http://localhost:8000/",
                "https://metadata.example.test/",
            ):
                response = await client.post("/api/readings", json={"url": url})
                assert response.status_code == 400, url
                error = response.json()["error"]
                assert error["code"] == "url_not_allowed"
                assert "paste the article's text" in error["message"].lower()
            health = (await client.get("/healthz")).json()
            assert health["queued"] == health["running"] == 0  # nothing was accepted

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/admin",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::1]:{port}/article.html",
        "http://127.0.0.1.nip.io.intranet.example.test/",
        "https://metadata.example.test/",
    ],
)
def test_a_redirect_to_them_is_refused_before_connecting(
    tmp_path: Path, web: LocalWeb, edge_standin: EdgeStandin, target: str
) -> None:
    """The first hop is an allowed local page; the redirect it answers with is refused."""
    MADE_UP["127.0.0.1.nip.io.intranet.example.test"] = ["127.0.0.1", "10.9.8.7"]
    port = web.server.server_address[1]
    web.page("/article.html", "<html><body><h1>标题</h1><p>" + "正文内容。" * 20 + "</p>")
    start = web.redirect("/go", target.format(port=port))
    config = make_config(tmp_path, allow_addresses=parse_networks(["127.0.0.1"]))

    async def scenario() -> None:
        async with in_process(config, resolver) as (_app, client):
            response = await client.post("/api/readings", json={"url": start})
            assert response.status_code == 202
            reading = await wait_for(client, response.json()["id"])
            assert reading["status"] == "failed"
            assert reading["error"]["code"] == "url_not_allowed"
            assert "public addresses" in reading["error"]["message"]

    asyncio.run(scenario())
    assert web.requests == ["/go"]  # the allowed hop only
    assert edge_standin.requests == []  # nothing was synthesized


def test_a_redirect_to_an_allowed_address_is_followed(
    tmp_path: Path, web: LocalWeb, edge_standin: EdgeStandin
) -> None:
    web.page(
        "/article.html",
        "<html><body><h1>城市书房开放</h1><p>" + "市民可以免费借阅图书。" * 8 + "</p>",
    )
    start = web.redirect("/go", web.url("/article.html"))
    config = make_config(tmp_path, allow_addresses=parse_networks(["127.0.0.1"]))

    async def scenario() -> None:
        async with in_process(config, resolver) as (_app, client):
            response = await client.post("/api/readings", json={"url": start})
            reading = await wait_for(client, response.json()["id"])
            assert reading["status"] == "done", reading["error"]
            assert reading["title"] == "城市书房开放"
            assert reading["source"] == start

    asyncio.run(scenario())
    assert web.requests == ["/go", "/article.html"]
