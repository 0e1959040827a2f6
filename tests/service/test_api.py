"""The API in-process (httpx ASGITransport): readings, files, the feed, restarts, bad requests."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import pytest
from mutagen.id3 import ID3

from newsreader.models import FRAME_BYTES, FRAME_SECONDS
from newsreader.service.config import ServiceConfig
from tests.audio import decode_samples, ffmpeg_errors
from tests.service.conftest import ARTICLE, in_process, make_config, wait_for
from tests.standin.server import EdgeStandin
from tests.webserver import LocalWeb

VTT_CUE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> ", re.M)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def id3_size(data: bytes) -> int:
    """Bytes of the ID3v2 tag in front of the frames."""
    assert data[:3] == b"ID3"
    size = data[6:10]
    return 10 + (size[0] << 21 | size[1] << 14 | size[2] << 7 | size[3])


def test_a_text_reading_from_submission_to_tagged_mp3(
    tmp_path: Path, edge_standin: EdgeStandin
) -> None:
    async def scenario() -> None:
        async with in_process(make_config(tmp_path)) as (_app, client):
            response = await client.post("/api/readings", json={"text": ARTICLE})
            assert response.status_code == 202
            accepted = response.json()
            reading_id = accepted["id"]
            assert accepted["status"] == "queued"
            assert accepted["links"]["audio"] == f"/api/readings/{reading_id}/audio.mp3"
            assert response.headers["location"] == f"/api/readings/{reading_id}"

            reading = await wait_for(client, reading_id)
            assert reading["status"] == "done", reading["error"]
            assert reading["title"] == "城市书房今天开放"
            assert reading["progress"] == {"done": 4, "total": 4}
            assert reading["engine"] == "edge"
            assert reading["error"] is None

            # every sentence, in order, with times inside the audio, none overlapping
            sentences = reading["sentences"]
            assert [s["text"] for s in sentences[:3]] == [
                "城市书房今天开放",
                "本市第一家二十四小时城市书房今天正式开放。",
                "市民可以免费借阅图书，还能参加读书会！",
            ]
            assert [s["kind"] for s in sentences] == ["title"] + ["body"] * 6
            assert [s["block"] for s in sentences] == [-1, 0, 0, 1, 1, 2, 2]
            for before, after in itertools.pairwise(sentences):
                assert before["start"] < before["end"] <= after["start"]
            assert sentences[-1]["end"] <= reading["duration"]

            # the file: tagged, decodable, as long as the reading says, with Content-Length
            audio = await client.get(reading["links"]["audio"])
            assert audio.status_code == 200
            assert audio.headers["content-type"] == "audio/mpeg"
            assert int(audio.headers["content-length"]) == len(audio.content)
            assert audio.headers["accept-ranges"] == "bytes"
            path = tmp_path / "check.mp3"
            path.write_bytes(audio.content)
            assert ffmpeg_errors(path) == ""
            # every frame after the tag is audio but the one Info frame (metadata)
            frames = (len(audio.content) - id3_size(audio.content)) // FRAME_BYTES - 1
            assert frames * FRAME_SECONDS == pytest.approx(reading["duration"])
            decoded = len(decode_samples(path)) / 24_000
            assert decoded == pytest.approx(reading["duration"], abs=0.1)
            tag = ID3(path)
            assert str(tag["TIT2"]) == "城市书房今天开放"
            assert reading["chapters"] == [
                {"title": "城市书房今天开放", "start": 0.0, "end": reading["duration"]}
            ]

            # the sentences are heard where the timeline says (the stand-in's tone is loud)
            samples = decode_samples(path)
            for sentence in sentences:
                middle = int((sentence["start"] + sentence["end"]) / 2 * 24_000)
                assert max(abs(s) for s in samples[middle - 240 : middle + 240]) > 200

            # captions: one cue per sentence, at the timeline's times
            captions = await client.get(reading["links"]["captions"])
            assert captions.status_code == 200
            assert captions.headers["content-type"].startswith("text/vtt")
            starts = [
                int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000
                for h, m, s, ms in VTT_CUE.findall(captions.text)
            ]
            assert starts == pytest.approx([s["start"] for s in sentences], abs=0.002)

            chapters = await client.get(f"/api/readings/{reading_id}/chapters.json")
            assert chapters.json() == {
                "version": "1.2.0",
                "chapters": [
                    {"startTime": 0.0, "endTime": reading["duration"], "title": "城市书房今天开放"}
                ],
            }

    run(scenario())


def test_same_content_same_settings_is_the_same_reading(
    tmp_path: Path, edge_standin: EdgeStandin
) -> None:
    async def scenario() -> None:
        async with in_process(make_config(tmp_path)) as (_app, client):
            first = await client.post("/api/readings", json={"text": ARTICLE})
            await wait_for(client, first.json()["id"])
            requests = len(edge_standin.requests)
            assert requests == 4

            again = await client.post("/api/readings", json={"text": ARTICLE})
            assert again.status_code == 200
            assert again.json()["id"] == first.json()["id"]
            assert again.json()["status"] == "done"
            assert len(edge_standin.requests) == requests  # no second synthesis

            # other settings, other reading
            faster = await client.post("/api/readings", json={"text": ARTICLE, "rate": "+20%"})
            assert faster.status_code == 202
            assert faster.json()["id"] != first.json()["id"]
            assert (await wait_for(client, faster.json()["id"]))["status"] == "done"
            assert {r.rate for r in edge_standin.requests[requests:]} == {"+20%"}

    run(scenario())


def test_range_etag_and_head_on_the_finished_file(
    tmp_path: Path, edge_standin: EdgeStandin
) -> None:
    async def scenario() -> None:
        async with in_process(make_config(tmp_path)) as (_app, client):
            reading_id = (await client.post("/api/readings", json={"text": ARTICLE})).json()["id"]
            await wait_for(client, reading_id)
            url = f"/api/readings/{reading_id}/audio.mp3"
            whole = await client.get(url)
            size = len(whole.content)
            etag = whole.headers["etag"]
            assert re.fullmatch(r'"[0-9a-f]{32}"', etag)

            part = await client.get(url, headers={"Range": "bytes=100-299"})
            assert part.status_code == 206
            assert part.content == whole.content[100:300]
            assert part.headers["content-range"] == f"bytes 100-299/{size}"
            assert part.headers["content-length"] == "200"

            tail = await client.get(url, headers={"Range": "bytes=-144"})
            assert tail.status_code == 206
            assert tail.content == whole.content[-144:]
            rest = await client.get(url, headers={"Range": f"bytes={size - 10}-"})
            assert rest.content == whole.content[-10:]

            same = await client.get(url, headers={"If-None-Match": etag})
            assert same.status_code == 304
            assert same.content == b""
            stale = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
            assert stale.status_code == 200
            assert stale.content == whole.content

            head = await client.head(url)
            assert head.status_code == 200
            assert head.headers["content-length"] == str(size)
            assert head.content == b""

            for bad in (f"bytes={size}-", "bytes=5-2", "bytes=abc", "items=0-1", "bytes=-0"):
                refused = await client.get(url, headers={"Range": bad})
                assert refused.status_code == 416, bad
                assert refused.json()["error"]["code"] == "range_not_satisfiable"
                assert refused.headers["content-range"] == f"bytes */{size}"

            # once finished, the stream serves the finished file too
            stream = await client.get(f"/api/readings/{reading_id}/stream.mp3")
            assert stream.content == whole.content

    run(scenario())


def test_feed_lists_only_pages_the_service_read_itself(
    tmp_path: Path, edge_standin: EdgeStandin, web: LocalWeb
) -> None:
    from newsreader.service.config import parse_networks

    title, *paragraphs = ARTICLE.split("\n\n")
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    page = f"<html><body><article><h1>{title}</h1>{body}</article></body></html>"
    url = web.page("/2024/0702/1.html", page)
    config = make_config(
        tmp_path,
        allow_addresses=parse_networks(["127.0.0.1"]),
        public_url="https://read.example.cn/listen/",
    )

    async def scenario() -> None:
        async with in_process(config) as (app, client):
            pasted = await client.post("/api/readings", json={"text": ARTICLE})
            posted = await client.post(
                "/api/readings", json={"html": page, "source_url": "https://news.example.cn/1"}
            )
            fetched = await client.post("/api/readings", json={"url": url})
            for response in (pasted, posted, fetched):
                assert (await wait_for(client, response.json()["id"]))["status"] == "done"
            # Posted text and HTML are never listed, whatever source_url they name; a page on an
            # address only --allow-address permits (an intranet) is not public either.
            feed = await client.get("/feed.xml")
            assert feed.status_code == 200
            assert feed.headers["content-type"].startswith("application/rss+xml")
            assert ET.fromstring(feed.content).findall("./channel/item") == []

            # a page read from a public address is listed (here: marked as such in the store)
            reading_id = fetched.json()["id"]
            app.state.service.store.update(reading_id, listed=True)
            reading = (await client.get(f"/api/readings/{reading_id}")).json()
            audio = await client.get(reading["links"]["audio"])
            feed = await client.get("/feed.xml", headers={"Host": "evil.example"})
            items = ET.fromstring(feed.content).findall("./channel/item")
            assert len(items) == 1
            item = items[0]
            assert item.findtext("title") == "城市书房今天开放"
            assert item.findtext("link") == url
            enclosure = item.find("enclosure")
            assert enclosure is not None
            # links come from --public-url, never from the request's Host
            assert enclosure.get("url") == (
                f"https://read.example.cn/listen{reading['links']['audio']}"
            )
            assert b"evil.example" not in feed.content
            assert enclosure.get("length") == str(len(audio.content))
            duration = item.findtext("{http://www.itunes.com/dtds/podcast-1.0.dtd}duration")
            assert duration is not None
            assert float(duration) == pytest.approx(reading["duration"], abs=0.5)  # whole seconds
            transcript = item.find("{https://podcastindex.org/namespace/1.0}transcript")
            assert transcript is not None
            assert transcript.get("url", "").endswith(reading["links"]["captions"])

    run(scenario())


def test_a_restart_resumes_accepted_readings(tmp_path: Path, edge_standin: EdgeStandin) -> None:
    """Readings queued or running when the service stops are finished after it starts again."""
    # Slow enough that the first service stops long before it could finish.
    edge_standin.configure(first_audio_latency=0.6)
    config = make_config(tmp_path, segment_concurrency=1, voice_connections=1, max_running_jobs=1)
    texts = [ARTICLE, ARTICLE.replace("城市书房", "社区书屋")]

    async def first_life() -> list[str]:
        async with in_process(config) as (_app, client):
            ids = [
                (await client.post("/api/readings", json={"text": text})).json()["id"]
                for text in texts
            ]
            await wait_for(client, ids[0], ("running",))
            await asyncio.sleep(0.2)
            states = [(await client.get(f"/api/readings/{i}")).json()["status"] for i in ids]
            assert states == ["running", "queued"]
            return ids

    ids = run(first_life())
    edge_standin.configure(first_audio_latency=0.0)

    async def second_life() -> None:
        async with in_process(config) as (_app, client):
            health = (await client.get("/healthz")).json()
            assert health["status"] == "ok"
            assert health["queued"] + health["running"] == 2
            for reading_id in ids:
                reading = await wait_for(client, reading_id)
                assert reading["status"] == "done", reading["error"]
                audio = await client.get(reading["links"]["audio"])
                assert audio.status_code == 200
                assert ffmpeg_errors(audio.content) == ""

    run(second_life())


def test_a_failed_source_is_reported_and_can_be_retried(
    tmp_path: Path, edge_standin: EdgeStandin, web: LocalWeb
) -> None:
    from newsreader.service.config import parse_networks

    config = make_config(tmp_path, allow_addresses=parse_networks(["127.0.0.1"]))
    url = web.url("/missing.html")

    async def scenario() -> None:
        async with in_process(config) as (_app, client):
            reading_id = (await client.post("/api/readings", json={"url": url})).json()["id"]
            reading = await wait_for(client, reading_id)
            assert reading["status"] == "failed"
            assert reading["error"]["code"] == "source_unreadable"
            assert "HTTP 404" in reading["error"]["message"]
            for link in ("audio", "stream", "captions"):
                response = await client.get(reading["links"][link])
                assert response.status_code == 409
                assert response.json()["error"]["code"] in ("not_ready", "reading_failed")

            web.page("/missing.html", f"<html><body><h1>标题</h1><p>{'正文内容。' * 20}</p>")
            again = await client.post("/api/readings", json={"url": url + "#top"})
            assert again.status_code == 202
            assert again.json()["id"] == reading_id  # the fragment does not make a new reading
            assert (await wait_for(client, reading_id))["status"] == "done"

    run(scenario())


# -- bad requests: always a 4xx JSON error that says what is wrong --------------------------------


async def expect_error(
    response: httpx.Response, status: int, code: str, words: str = ""
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert words.lower() in error["message"].lower()
    assert "Traceback" not in response.text
    return error


def test_bad_requests_get_json_errors(tmp_path: Path) -> None:
    config = make_config(tmp_path, max_text_chars=1000, max_body_bytes=20_000)

    async def scenario() -> None:
        async with in_process(config) as (_app, client):
            post = client.post
            headers = {"Content-Type": "application/json"}
            await expect_error(
                await post("/api/readings", content=b"{not json", headers=headers),
                400,
                "invalid_json",
            )
            await expect_error(await post("/api/readings", json={}), 422, "invalid_request", "one")
            await expect_error(
                await post("/api/readings", json={"text": "甲", "url": "http://a.cn/"}),
                422,
                "invalid_request",
                "got url, text",
            )
            await expect_error(
                await post("/api/readings", json={"text": "甲", "colour": 1}),
                422,
                "invalid_request",
                "colour",
            )
            await expect_error(
                await post("/api/readings", json={"text": 42}), 422, "invalid_request", "text"
            )
            await expect_error(await post("/api/readings", json=["text"]), 422, "invalid_request")
            await expect_error(
                await post("/api/readings", json={"text": "   "}), 422, "invalid_request", "empty"
            )
            await expect_error(
                await post("/api/readings", json={"text": "字" * 1001}), 413, "too_long", "1,000"
            )
            await expect_error(
                await post("/api/readings", content=b"x" * 20_001, headers=headers),
                413,
                "body_too_large",
            )

            async def chunks() -> Any:
                for _ in range(30):
                    yield b"x" * 1000

            await expect_error(
                await post("/api/readings", content=chunks(), headers=headers),
                413,
                "body_too_large",
            )
            await expect_error(
                await post("/api/readings", json={"text": "甲", "voice": "robot"}),
                422,
                "bad_settings",
                "voice",
            )
            await expect_error(
                await post("/api/readings", json={"text": "甲", "rate": "fast"}),
                422,
                "bad_settings",
                "rate",
            )
            await expect_error(
                await post("/api/readings", json={"text": "甲", "rate": "+150%"}),
                422,
                "bad_settings",
                "-50% to +100%",
            )
            for url in ("ftp://example.com/a", "file:///etc/passwd", "javascript:alert(1)"):
                await expect_error(
                    await post("/api/readings", json={"url": url}), 400, "bad_url", "scheme"
                )
            await expect_error(
                await post("/api/readings", json={"url": "http:///nohost"}), 400, "bad_url"
            )
            await expect_error(
                await post("/api/readings", json={"url": "http://a.cn:99999/"}), 400, "bad_url"
            )

            # unknown readings, odd ids, traversal attempts: 404, never a file
            for path in (
                "/api/readings/0123456789abcdef01234567",
                "/api/readings/..%2F..%2Fetc%2Fpasswd/audio.mp3",
                "/api/readings/../../etc/passwd",
                "/api/readings/%2e%2e/newsreader.sqlite3",
                "/api/readings/..%5c..%5cnewsreader.sqlite3/audio.mp3",
                "/static/..%2Fapp.py",
                "/static/../app.py",
                "/static/%2e%2e%2fapp.py",
                "/readings/../newsreader.sqlite3",
                "/nowhere",
            ):
                response = await client.get(path)
                await expect_error(response, 404, "not_found")
            await expect_error(await client.delete("/api/readings"), 405, "method_not_allowed")
            assert (await client.get("/static/app.css")).status_code == 200

    run(scenario())


def test_token_rate_limit_and_origins(tmp_path: Path, edge_standin: EdgeStandin) -> None:
    config = make_config(
        tmp_path,
        token="s3cret",
        rate_limit=60,
        rate_burst=3,
        allow_origins=("https://news.example.cn",),
    )

    async def scenario() -> None:
        async with in_process(config) as (_app, client):
            body = {"text": ARTICLE}
            error = await expect_error(
                await client.post("/api/readings", json=body), 401, "unauthorized", "bearer"
            )
            assert error
            wrong = {"Authorization": "Bearer nope"}
            await expect_error(
                await client.post("/api/readings", json=body, headers=wrong), 401, "unauthorized"
            )
            good = {"Authorization": "Bearer s3cret"}
            accepted = await client.post("/api/readings", json=body, headers=good)
            assert accepted.status_code == 202
            # GETs need no token
            assert (await client.get(accepted.json()["links"]["self"])).status_code == 200

            # refused requests cost no quota: the burst of 3 is spent by three authorized ones
            for _ in range(2):
                await client.post("/api/readings", json=body, headers=good)
            limited = await client.post("/api/readings", json=body, headers=good)
            await expect_error(limited, 429, "rate_limited", "try again")
            assert int(limited.headers["retry-after"]) >= 1

    run(scenario())

    config = make_config(tmp_path / "b", allow_origins=("https://news.example.cn",))

    async def origins() -> None:
        async with in_process(config) as (_app, client):
            allowed = {"Origin": "https://news.example.cn"}
            preflight = await client.options(
                "/api/readings",
                headers={
                    **allowed,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type",
                },
            )
            assert preflight.status_code == 204
            assert preflight.headers["access-control-allow-origin"] == "https://news.example.cn"
            assert "POST" in preflight.headers["access-control-allow-methods"]
            posted = await client.post("/api/readings", json={"text": ARTICLE}, headers=allowed)
            assert posted.status_code == 202
            assert posted.headers["access-control-allow-origin"] == "https://news.example.cn"
            stream = await client.get(posted.json()["links"]["self"], headers=allowed)
            assert stream.headers["access-control-allow-origin"] == "https://news.example.cn"

            other = {"Origin": "https://evil.example"}
            refused = await client.options(
                "/api/readings", headers={**other, "Access-Control-Request-Method": "POST"}
            )
            await expect_error(refused, 403, "origin_not_allowed", "evil.example")
            await expect_error(
                await client.post("/api/readings", json={"text": ARTICLE}, headers=other),
                403,
                "origin_not_allowed",
            )
            # a form post from elsewhere, which needs no preflight, is refused as well
            await expect_error(
                await client.post(
                    "/api/readings",
                    content=b"text=x",
                    headers={**other, "Content-Type": "text/plain"},
                ),
                403,
                "origin_not_allowed",
            )
            read = await client.get("/healthz", headers=other)
            assert read.status_code == 200
            assert "access-control-allow-origin" not in read.headers
            # the page itself may post to its own origin
            own = await client.post(
                "/api/readings",
                json={"text": ARTICLE + "。"},
                headers={"Origin": "http://testserver"},
            )
            assert own.status_code == 202
            # behind a proxy that ends TLS, the page is https and the service sees http
            proxied = await client.post(
                "/api/readings",
                json={"text": ARTICLE + "。。"},
                headers={"Origin": "https://testserver", "Host": "testserver"},
            )
            assert proxied.status_code == 202
            elsewhere = await client.post(
                "/api/readings",
                json={"text": ARTICLE},
                headers={"Origin": "http://testserver:8080"},
            )
            await expect_error(elsewhere, 403, "origin_not_allowed")

    run(origins())


def test_pages_carry_safe_headers(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with in_process(make_config(tmp_path)) as (_app, client):
            page = await client.get("/")
            assert page.status_code == 200
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert '<html lang="zh-CN">' in page.text
            csp = page.headers["content-security-policy"]
            assert "default-src 'none'" in csp
            assert "script-src 'self'" in csp
            assert "unsafe-inline" not in csp
            assert "frame-ancestors 'none'" in csp
            assert page.headers["x-content-type-options"] == "nosniff"
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["referrer-policy"] == "no-referrer"
            assert page.headers["cross-origin-opener-policy"] == "same-origin"

            widget = await client.get("/widget.js")
            assert widget.headers["content-type"].startswith("text/javascript")
            assert widget.headers["cross-origin-resource-policy"] == "cross-origin"
            assert "智能朗读" in widget.text

            api = await client.get("/healthz")
            assert api.json()["status"] == "ok"
            assert "default-src 'none'" in api.headers["content-security-policy"]

            schema = (await client.get("/openapi.json")).json()
            assert {"/api/readings", "/api/readings/{reading_id}/stream.mp3"} <= set(
                schema["paths"]
            )
            docs = await client.get("/docs")
            assert docs.status_code == 200

            # an unknown reading's page is a 404, not the page
            await expect_error(await client.get("/readings/" + "0" * 24), 404, "not_found")

    run(scenario())


def test_config_refuses_bad_values(tmp_path: Path) -> None:
    from newsreader.errors import UsageError
    from newsreader.service.config import parse_networks

    with pytest.raises(UsageError, match="origin"):
        ServiceConfig(data_dir=tmp_path, allow_origins=("news.example.cn",))
    with pytest.raises(UsageError, match="origin"):
        ServiceConfig(data_dir=tmp_path, allow_origins=("https://a.cn/path",))
    with pytest.raises(UsageError, match="not an IP"):
        parse_networks(["localhost"])
    with pytest.raises(UsageError, match="token"):
        ServiceConfig(data_dir=tmp_path, token=" ")
    assert ServiceConfig(data_dir=tmp_path, allow_origins=("https://a.cn/",)).allow_origins == (
        "https://a.cn",
    )
    assert json.dumps(str(parse_networks(["10.1.0.0/16"])[0])) == '"10.1.0.0/16"'


def test_slow_and_oversized_pages_are_refused(
    tmp_path: Path, edge_standin: EdgeStandin, web: LocalWeb
) -> None:
    from newsreader.service.config import parse_networks
    from tests.webserver import Route

    config = make_config(
        tmp_path,
        allow_addresses=parse_networks(["127.0.0.1"]),
        fetch_timeout=0.3,
        max_download_bytes=20_000,
    )
    page = "<html><body><h1>标题</h1>" + "<p>正文内容。</p>" * 2000 + "</body></html>"
    big = web.page("/big.html", page)
    web.routes["/slow.html"] = Route(b"<html></html>", delay=2.0)
    slow = web.url("/slow.html")

    async def scenario() -> None:
        async with in_process(config) as (_app, client):
            for url, words in ((big, "20,000-byte limit"), (slow, "timed out")):
                reading_id = (await client.post("/api/readings", json={"url": url})).json()["id"]
                reading = await wait_for(client, reading_id)
                assert reading["status"] == "failed"
                assert reading["error"]["code"] == "source_unreadable"
                assert words in reading["error"]["message"]

    run(scenario())

    # a page that answers within each step's timeout still meets the overall deadline
    patient = make_config(
        tmp_path / "b",
        allow_addresses=parse_networks(["127.0.0.1"]),
        fetch_timeout=5.0,
        fetch_deadline=0.5,
    )

    async def deadline() -> None:
        async with in_process(patient) as (_app, client):
            reading_id = (await client.post("/api/readings", json={"url": slow})).json()["id"]
            reading = await wait_for(client, reading_id)
            assert reading["error"]["code"] == "source_unreadable"
            assert "took longer than 0.5 s" in reading["error"]["message"]

    run(deadline())
