"""Data safety of the service: what is listed, who can compute an id, what a request may cost,
and which inputs can never make a 500 (in-process, except the start-up check of ``--data``)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from newsreader.errors import UsageError
from newsreader.models import Article
from newsreader.service.config import ServiceConfig, default_public_url, parse_networks
from newsreader.service.request import JobRequest
from newsreader.service.store import DataDirError, JobStore, id_key
from newsreader.service.stream import LiveAudio
from tests.service.conftest import ARTICLE, in_process, make_config, wait_for
from tests.standin.server import EdgeStandin
from tests.webserver import LocalWeb


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def expect_error(response: httpx.Response, status: int, code: str, words: str = "") -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert words.lower() in error["message"].lower(), error["message"]
    return str(error["message"])


def page_of(paragraphs: Sequence[str], title: str = "城市书房今天开放") -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return f"<html><body><article><h1>{title}</h1>{body}</article></body></html>"


def plain_id(kind: str, content: str, **fields: Any) -> str:
    """The id every reading had before ids of posted text were keyed: anyone could compute it."""
    request = JobRequest(kind=kind, content=content, **fields)  # type: ignore[arg-type]
    values = (kind, content, request.title, request.source_url, request.voice, request.rate)
    payload = json.dumps([1, *values], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


# -- source_url and the feed -----------------------------------------------------------------------


def test_source_url_is_checked_like_any_url(tmp_path: Path) -> None:
    html = page_of(ARTICLE.split("\n\n")[1:])

    async def scenario() -> None:
        async with in_process(make_config(tmp_path)) as (_app, client):
            for bad, words in (
                ("https://news.example.cn/a\x01b.html", "U+0001"),
                ("https://news.example.cn/a\nb.html", "U+000A"),
                ("https://news.example.cn/a b.html", "space"),
                ("ftp://news.example.cn/a.html", "http"),
                ("javascript:alert(1)", "http"),
                ("https:///nohost", "host"),
                ("https://news.example.cn:99999/", "port"),
                ("http://[::1/", "not a url"),
            ):
                for kind, content in (("html", html), ("text", ARTICLE)):
                    response = await client.post(
                        "/api/readings", json={kind: content, "source_url": bad}
                    )
                    await expect_error(response, 422, "bad_source_url", words)
            await expect_error(
                await client.post("/api/readings", json={"text": ARTICLE, "title": "标题\x07"}),
                422,
                "invalid_request",
                "control character",
            )
            good = await client.post(
                "/api/readings",
                json={"html": html, "source_url": " https://news.example.cn/城市/1.html "},
            )
            assert good.status_code == 202, good.text
            reading = (await client.get(good.json()["links"]["self"])).json()
            assert reading["source"] == "https://news.example.cn/城市/1.html"

    run(scenario())


def done_row(store: JobStore, reading_id: str, kind: str, source: str, title: str) -> None:
    store.add(reading_id, {"kind": kind, "content": source}, source)
    store.update(
        reading_id,
        status="done",
        title=title,
        duration=12.5,
        bytes=4321,
        etag="0" * 32,
        finished=time.time(),
        listed=kind == "url",
    )


def test_one_bad_row_never_breaks_the_feed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Rows as a store may hold them from before sources were checked (they survive restarts).
    store = JobStore(tmp_path / "newsreader.sqlite3")
    done_row(store, "a" * 24, "url", "https://news.example.cn/1.html", "城市书房今天开放")
    done_row(store, "b" * 24, "url", "https://news.example.cn/\x01.html", "坏的链接")
    done_row(store, "c" * 24, "url", "https://news.example.cn/3.html", "标题\x0b里有控制字符")
    done_row(store, "d" * 24, "url", "https://news.example.cn/4.html", "社区书屋")
    store.close()

    async def scenario() -> None:
        async with in_process(make_config(tmp_path)) as (_app, client):
            with caplog.at_level(logging.WARNING, logger="newsreader.service"):
                for _ in range(3):
                    feed = await client.get("/feed.xml")
                    assert feed.status_code == 200
                    items = ET.fromstring(feed.content).findall("./channel/item")
                    assert sorted(i.findtext("title") or "" for i in items) == [
                        "城市书房今天开放",
                        "社区书屋",
                    ]
            left_out = [r.getMessage() for r in caplog.records if "leaving out" in r.getMessage()]
            assert len(left_out) == 2  # each bad row logged once, not on every request
            assert any("b" * 24 in line for line in left_out)
            assert any("c" * 24 in line for line in left_out)

    run(scenario())


def test_an_upgraded_store_keeps_its_readings_and_lists_only_fetched_pages(
    tmp_path: Path, edge_standin: EdgeStandin
) -> None:
    """A store written before ids were keyed and before ``listed``: everything still works."""
    old_schema = """
    CREATE TABLE readings (
        id TEXT PRIMARY KEY, request TEXT NOT NULL, status TEXT NOT NULL, title TEXT,
        total INTEGER NOT NULL DEFAULT 0, done INTEGER NOT NULL DEFAULT 0, duration REAL,
        bytes INTEGER, etag TEXT, engine TEXT, source TEXT, error_code TEXT,
        error_message TEXT, created REAL NOT NULL, updated REAL NOT NULL, finished REAL
    );
    """
    now = time.time()
    text_id = plain_id("text", ARTICLE)
    html = page_of(ARTICLE.split("\n\n")[1:])
    html_id = plain_id("html", html, source_url="https://news.example.cn/2.html")
    url_id = plain_id("url", "https://news.example.cn/1.html")
    db = sqlite3.connect(tmp_path / "newsreader.sqlite3")
    db.executescript(old_schema)
    rows = [
        (text_id, {"kind": "text", "content": ARTICLE}, "queued", None, None, None),
        (
            html_id,
            {"kind": "html", "content": html, "source_url": "https://news.example.cn/2.html"},
            "done",
            "https://news.example.cn/2.html",
            12.0,
            1000,
        ),
        (
            url_id,
            {"kind": "url", "content": "https://news.example.cn/1.html"},
            "done",
            "https://news.example.cn/1.html",
            10.0,
            900,
        ),
    ]
    for reading_id, request, status, source, duration, size in rows:
        db.execute(
            "INSERT INTO readings (id, request, status, title, source, duration, bytes, etag, "
            "created, updated, finished) VALUES (?, ?, ?, '标题', ?, ?, ?, ?, ?, ?, ?)",
            (
                reading_id,
                json.dumps(request, ensure_ascii=False),
                status,
                source,
                duration,
                size,
                None if size is None else "1" * 32,
                now,
                now,
                None if size is None else now,
            ),
        )
    db.commit()
    db.close()

    async def scenario() -> None:
        async with in_process(make_config(tmp_path)) as (_app, client):
            # the queued reading resumes under its old id and is served there
            reading = await wait_for(client, text_id)
            assert reading["status"] == "done", reading["error"]
            audio = await client.get(reading["links"]["audio"])
            assert audio.status_code == 200
            assert audio.content[:3] == b"ID3"
            # the page the service fetched stays in the feed; the posted HTML leaves it
            feed = await client.get("/feed.xml")
            items = ET.fromstring(feed.content).findall("./channel/item")
            assert [i.findtext("guid") for i in items] == [f"newsreader-reading-{url_id}"]
            # posting the same text now makes a new, keyed id (the old one keeps working)
            again = await client.post("/api/readings", json={"text": ARTICLE})
            assert again.status_code == 202
            assert again.json()["id"] != text_id
            assert (await client.get(f"/api/readings/{text_id}")).status_code == 200

    run(scenario())


def test_only_pages_on_public_addresses_are_listed(tmp_path: Path) -> None:
    """With --allow-address, a page the service may read can still be private: not listed."""
    addresses = {
        "public.example.test": ["93.184.216.34"],
        "intranet.example.test": ["10.0.0.5"],
        "redirected.example.test": ["93.184.216.35"],
    }

    def resolver(host: str, port: int) -> Sequence[str]:
        return addresses[host]

    config = make_config(tmp_path, allow_addresses=parse_networks(["10.0.0.0/8"]))

    async def scenario() -> None:
        async with in_process(config, resolver=resolver) as (app, _client):
            readings = app.state.service.readings

            def article(source: str) -> Article:
                return Article(title="标题", blocks=(), source=source)

            async def public(url: str, final: str | None = None) -> bool:
                listed: bool = await readings._public(
                    JobRequest(kind="url", content=url), article(final or url)
                )
                return listed

            assert await public("https://public.example.test/a.html")
            assert not await public("https://intranet.example.test/a.html")
            # a public page that redirected into the intranet is judged by where it ended
            assert not await public(
                "https://public.example.test/a", "https://intranet.example.test/b"
            )
            assert await public("https://public.example.test/a", "https://redirected.example.test/")
            # posted text or HTML never is, whatever source_url it names
            posted = JobRequest(
                kind="html", content="<p>x</p>", source_url="https://public.example.test/a"
            )
            assert not await readings._public(posted, article("https://public.example.test/a"))

    run(scenario())


def test_feed_links_come_from_the_public_url(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "newsreader.sqlite3")
    done_row(store, "a" * 24, "url", "https://news.example.cn/1.html", "城市书房今天开放")
    store.close()

    async def scenario(config: ServiceConfig, base: str) -> None:
        async with in_process(config) as (_app, client):
            feed = await client.get(
                "/feed.xml",
                headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
            )
            assert b"evil" not in feed.content
            channel = ET.fromstring(feed.content).find("channel")
            assert channel is not None
            assert channel.findtext("link") == f"{base}/"
            enclosure = channel.find("./item/enclosure")
            assert enclosure is not None
            assert enclosure.get("url") == f"{base}/api/readings/{'a' * 24}/audio.mp3"

    run(scenario(make_config(tmp_path), "http://127.0.0.1:8000"))
    run(
        scenario(
            make_config(tmp_path, public_url="https://read.example.cn/"), "https://read.example.cn"
        )
    )
    assert default_public_url("0.0.0.0", 8080) == "http://0.0.0.0:8080"
    assert default_public_url("::1", 80) == "http://[::1]:80"
    for bad in ("read.example.cn", "ftp://read.example.cn", "https://a.cn/?x=1", "https://a.cn:x/"):
        with pytest.raises(UsageError, match="--public-url"):
            make_config(tmp_path, public_url=bad)


# -- ids ---------------------------------------------------------------------------------------


def test_ids_of_posted_text_cannot_be_computed(tmp_path: Path, edge_standin: EdgeStandin) -> None:
    html = page_of(ARTICLE.split("\n\n")[1:])
    url = "https://news.example.cn/2024/0702/1.html"

    async def ids(data: Path) -> tuple[str, str, str]:
        async with in_process(make_config(data)) as (_app, client):
            text = (await client.post("/api/readings", json={"text": ARTICLE})).json()["id"]
            page = (await client.post("/api/readings", json={"html": html})).json()["id"]
            same = (await client.post("/api/readings", json={"text": ARTICLE})).json()["id"]
            assert same == text  # the same text is still one reading on one service
            for reading_id in (text, page):
                assert (await wait_for(client, reading_id))["status"] == "done"
            return text, page, JobRequest(kind="url", content=url).reading_id(b"")

    first = run(ids(tmp_path / "one"))
    restarted = run(ids(tmp_path / "one"))
    other = run(ids(tmp_path / "two"))
    assert first == restarted  # the key is kept under --data
    assert first[0] != plain_id("text", ARTICLE)
    assert first[1] != plain_id("html", html)
    assert other[0] != first[0] and other[1] != first[1]  # another service, another key
    assert other[2] == first[2] == plain_id("url", url)  # a page's reading stays shareable

    key_file = tmp_path / "one" / "id-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key_file.read_text().strip())) == 32


def test_the_id_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    key = id_key(tmp_path)
    assert id_key(tmp_path) == key
    path = tmp_path / "id-key"
    path.chmod(0o644)
    assert id_key(tmp_path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("not hex\n")
    with pytest.raises(DataDirError, match="damaged"):
        id_key(tmp_path)


# -- size --------------------------------------------------------------------------------------


def test_size_is_limited_after_extraction_for_every_kind(
    tmp_path: Path, edge_standin: EdgeStandin, web: LocalWeb
) -> None:
    paragraphs = ARTICLE.split("\n\n")[1:]
    long_paragraphs = paragraphs * 10  # about 1,100 characters once extracted
    config = make_config(
        tmp_path,
        max_chars=600,
        max_segments=12,
        allow_addresses=parse_networks(["127.0.0.1"]),
    )
    long_page = web.page("/long.html", page_of(long_paragraphs))
    markup = "".join(f'<div class="ad"><span>{i}</span></div>' for i in range(20_000))

    async def scenario() -> None:
        async with in_process(config) as (_app, client):
            post = client.post
            # text: the limit counts what would be spoken
            await expect_error(
                await post(
                    "/api/readings", json={"text": "标题\n\n" + "\n\n".join(long_paragraphs)}
                ),
                413,
                "too_long",
                "600-character limit",
            )
            # HTML: the same limit on its article, however the page is sent
            await expect_error(
                await post("/api/readings", json={"html": page_of(long_paragraphs)}),
                413,
                "too_long",
                "600-character limit",
            )
            # lots of markup around a short article is fine: only the article counts
            small = page_of(paragraphs).replace("</article>", f"</article>{markup}")
            assert len(small) > 400_000
            accepted = await post("/api/readings", json={"html": small})
            assert accepted.status_code == 202, accepted.text
            # many short paragraphs: the segment limit
            many = "标题\n\n" + "\n\n".join(f"第{n}段，读者很多。" for n in range(30))
            await expect_error(
                await post("/api/readings", json={"text": many}), 413, "too_long", "limit of 12"
            )
            assert (await wait_for(client, accepted.json()["id"]))["status"] == "done"
            assert len(edge_standin.requests) == 4  # the short article's; none for the others
            # a fetched page: the job fails with the same clear error, before any synthesis
            reading_id = (await post("/api/readings", json={"url": long_page})).json()["id"]
            reading = await wait_for(client, reading_id)
            assert reading["status"] == "failed"
            assert reading["error"]["code"] == "too_long"
            assert "600-character limit" in reading["error"]["message"]
            assert len(edge_standin.requests) == 4
            # text with no article in it is refused at once too
            await expect_error(
                await post("/api/readings", json={"html": "<html><body></body></html>"}),
                422,
                "no_article",
            )

    run(scenario())


def test_posted_text_of_one_paragraph_is_read(tmp_path: Path, edge_standin: EdgeStandin) -> None:
    # The reader's own words, as with ``newsreader read``: not refused as page furniture, and a
    # paragraph that starts with its date keeps its sentences.
    paragraph = "发布时间：2024-07-02。城市书房今天开放，市民可以免费借阅图书。周末也开放。"

    async def scenario() -> None:
        async with in_process(make_config(tmp_path)) as (_app, client):
            accepted = await client.post("/api/readings", json={"text": paragraph})
            assert accepted.status_code == 202, accepted.text
            reading = await wait_for(client, accepted.json()["id"])
            assert reading["status"] == "done", reading
            spoken = "".join(sentence["text"] for sentence in reading["sentences"])
            assert "城市书房今天开放" in spoken and "周末也开放" in spoken

    run(scenario())


def test_live_audio_spills_to_a_file_and_keeps_memory_flat(tmp_path: Path) -> None:
    spill = tmp_path / "live" / "r.live.mp3"
    final = tmp_path / "r.mp3"
    piece = bytes(range(256)) * 400  # 100 KB
    pieces = 300  # 30 MB: about 80 minutes of speech

    async def listen(live: LiveAudio, received: list[int], delay: float = 0.0) -> bytes:
        await asyncio.sleep(delay)
        digest = hashlib.sha256()
        async for chunk in live.follow():
            digest.update(chunk)
            received[0] += len(chunk)
        return digest.digest()

    async def scenario() -> None:
        live = LiveAudio(spill)
        early, late = [0], [0]
        listeners = [
            asyncio.create_task(listen(live, early)),
            asyncio.create_task(listen(live, late, 0.05)),
        ]
        tracemalloc.start()
        try:
            for n in range(pieces):
                await live.append(piece)
                if n == pieces // 2:
                    assert spill.stat().st_size == len(live) == (n + 1) * len(piece)
                    await asyncio.sleep(0.1)  # the late listener joins halfway through
                await asyncio.sleep(0)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        final.write_bytes(b"ID3" + b"x" * 100)
        await live.close(final=final)
        assert not spill.exists()
        whole = hashlib.sha256(piece * pieces).digest()
        assert await asyncio.gather(*listeners) == [whole, whole]
        assert early == late == [len(piece) * pieces]
        assert peak < 3_000_000, f"{peak:,} bytes held for {len(piece) * pieces:,} of audio"
        # someone who comes after the end hears the finished file
        assert b"".join([c async for c in live.follow()]) == final.read_bytes()

        failed = LiveAudio(tmp_path / "live" / "f.live.mp3")
        await failed.append(piece)
        await failed.close(failed=True)
        assert [c async for c in failed.follow()] == []
        assert not (tmp_path / "live" / "f.live.mp3").exists()

    run(scenario())


def test_the_stream_of_a_reading_is_served_from_its_spill_file(
    tmp_path: Path, edge_standin: EdgeStandin
) -> None:
    edge_standin.configure(first_audio_latency=0.3)
    # Loudness off: the finished file is then the streamed frames behind its tag.
    config = make_config(tmp_path, segment_concurrency=1, voice_connections=1, loudness=None)

    async def scenario() -> None:
        async with in_process(config) as (_app, client):
            links = (await client.post("/api/readings", json={"text": ARTICLE})).json()["links"]
            deadline = time.monotonic() + 10
            while (await client.get(links["self"])).json()["audio_ready"] == 0:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            spills = list((tmp_path / "live").iterdir())
            assert [p.suffix for p in spills] == [".mp3"]
            assert spills[0].stat().st_size > 0
            streamed = (await client.get(links["stream"])).content  # follows to the end
            reading = await wait_for(client, links["self"].rsplit("/", 1)[1])
            assert reading["status"] == "done"
            finished = (await client.get(links["audio"])).content
            assert len(streamed) > 10_000 and finished.endswith(streamed)
            assert list((tmp_path / "live").iterdir()) == []

    run(scenario())


# -- input that once made a 500 ----------------------------------------------------------------


def test_odd_input_gets_a_4xx_never_a_500(tmp_path: Path, edge_standin: EdgeStandin) -> None:
    async def scenario() -> None:
        async with in_process(make_config(tmp_path)) as (_app, client):
            headers = {"Content-Type": "application/json"}
            for field in ("text", "title", "voice", "rate", "source_url"):
                body = {"text": ARTICLE, field: "标题\\ud800尾"}
                raw = json.dumps(body, ensure_ascii=False).replace("\\\\ud800", "\\ud800")
                response = await client.post(
                    "/api/readings", content=raw.encode("utf-8"), headers=headers
                )
                message = await expect_error(response, 422, "invalid_request", field)
                assert "surrogate" in message or "unicode string" in message
            raw = b'{"url": "http://a.cn/\\udfff"}'
            await expect_error(
                await client.post("/api/readings", content=raw, headers=headers),
                422,
                "invalid_request",
                "url",
            )

            reading_id = (await client.post("/api/readings", json={"text": ARTICLE})).json()["id"]
            assert (await wait_for(client, reading_id))["status"] == "done"
            url = f"/api/readings/{reading_id}/audio.mp3"
            whole = (await client.get(url)).content
            huge = "9" * 4301
            tail = await client.get(url, headers={"Range": f"bytes=0-{huge}"})
            assert tail.status_code == 206 and tail.content == whole
            suffix = await client.get(url, headers={"Range": f"bytes=-{huge}"})
            assert suffix.status_code == 206 and suffix.content == whole
            message = await expect_error(
                await client.get(url, headers={"Range": f"bytes={huge}-"}),
                416,
                "range_not_satisfiable",
            )
            assert len(message) < 300

    run(scenario())


def test_head_answers_every_get_route_and_if_none_match_star(
    tmp_path: Path, edge_standin: EdgeStandin
) -> None:
    async def scenario() -> None:
        async with in_process(make_config(tmp_path)) as (_app, client):
            reading_id = (await client.post("/api/readings", json={"text": ARTICLE})).json()["id"]
            assert (await wait_for(client, reading_id))["status"] == "done"
            api = f"/api/readings/{reading_id}"
            for path in (
                "/",
                f"/readings/{reading_id}",
                "/widget.js",
                "/static/app.css",
                "/healthz",
                "/feed.xml",
                "/openapi.json",
                api,
                f"{api}/audio.mp3",
                f"{api}/stream.mp3",
                f"{api}/captions.vtt",
                f"{api}/chapters.json",
                "/api/readings/" + "0" * 24,
            ):
                get, head = await client.get(path), await client.head(path)
                assert head.status_code == get.status_code, path
                assert head.content == b"", path
                assert head.headers.get("content-type") == get.headers.get("content-type"), path
                assert head.headers.get("content-length") == str(len(get.content)), path

            audio = await client.get(f"{api}/audio.mp3")
            etag = audio.headers["etag"]
            for header in ("*", f"W/{etag}", f'"other", {etag}'):
                response = await client.get(f"{api}/audio.mp3", headers={"If-None-Match": header})
                assert response.status_code == 304, header
                assert response.content == b""
            other = await client.get(f"{api}/audio.mp3", headers={"If-None-Match": '"other"'})
            assert other.status_code == 200 and other.content == audio.content

    run(scenario())


def test_head_of_a_live_stream_does_not_wait_for_the_reading(
    tmp_path: Path, edge_standin: EdgeStandin
) -> None:
    edge_standin.configure(first_audio_latency=0.5)
    config = make_config(tmp_path, segment_concurrency=1, voice_connections=1)

    async def scenario() -> None:
        async with in_process(config) as (_app, client):
            links = (await client.post("/api/readings", json={"text": ARTICLE})).json()["links"]
            await wait_for(client, links["self"].rsplit("/", 1)[1], ("running",))
            started = time.monotonic()
            head = await client.head(links["stream"])
            assert time.monotonic() - started < 0.4
            assert head.status_code == 200
            assert head.headers["content-type"] == "audio/mpeg"
            assert "content-length" not in head.headers
            assert (await client.get(links["self"])).json()["status"] == "running"

    run(scenario())


# -- --data that cannot be written --------------------------------------------------------------


def _serve(data: Path, *, as_nobody: bool) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-c",
        "from newsreader.service.command import serve; serve()",
        "--data",
        str(data),
        "--port",
        "0",
    ]
    if as_nobody:  # root writes anywhere: an unprivileged user sees the read-only folder
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, cwd=data.parent, check=False
    )


@pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None, reason="root needs setpriv here"
)
def test_a_read_only_data_folder_is_one_line_at_start() -> None:
    root = Path(tempfile.mkdtemp(prefix="newsreader-ro-"))
    try:
        root.chmod(0o755)
        fresh = root / "fresh"
        fresh.mkdir()
        used = root / "used"
        JobStore(used / "newsreader.sqlite3").close()  # a store made earlier, now read-only
        for folder in (fresh, used):
            for path in (folder, *folder.rglob("*")):
                path.chmod(0o555 if path.is_dir() else 0o444)
        for folder in (fresh, used, fresh / "sub"):
            result = _serve(folder, as_nobody=os.geteuid() == 0)
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert result.returncode != 0, result.stderr
            assert len(lines) == 1, result.stderr
            assert lines[0].startswith(f"Error: cannot use --data {folder}"), lines[0]
            assert "Traceback" not in result.stderr
    finally:
        for path in (root, *root.rglob("*")):
            path.chmod(0o755)
        shutil.rmtree(root)
