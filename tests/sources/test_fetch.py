"""Fetching pages from a local HTTP server: limits, redirects, errors, charsets."""

from __future__ import annotations

import pytest

from newsreader import sources
from newsreader.errors import SourceError
from newsreader.sources.fetch import fetch
from tests.webserver import LocalWeb, Route

PAGE = "<html><head><title>标题</title></head><body><p>正文内容。</p></body></html>"


def test_fetch_follows_redirects_to_the_final_url(web: LocalWeb) -> None:
    final = web.page("/article", PAGE)
    start = web.redirect("/a", "/b")
    web.redirect("/b", final, status=301)
    fetched = fetch(start)
    assert fetched.url == final
    assert fetched.content.decode("utf-8") == PAGE
    assert web.requests == ["/a", "/b", "/article"]


def test_redirect_loop_is_an_error(web: LocalWeb) -> None:
    web.redirect("/loop", "/loop")
    with pytest.raises(SourceError, match="redirected more than 5 times"):
        fetch(web.url("/loop"))


@pytest.mark.parametrize("status", [404, 500, 403])
def test_http_errors_are_one_line(web: LocalWeb, status: int) -> None:
    web.routes["/x"] = Route(b"no", status)
    with pytest.raises(SourceError, match=rf"^HTTP {status} .* fetching .*/x: check") as info:
        fetch(web.url("/x"))
    assert "\n" not in str(info.value)


def test_oversize_page_is_refused(web: LocalWeb) -> None:
    web.page("/big", "<p>" + "字" * 4000 + "</p>")
    with pytest.raises(SourceError, match=r"over the 1,000-byte limit"):
        fetch(web.url("/big"), max_bytes=1000)


def test_slow_server_times_out(web: LocalWeb) -> None:
    web.page("/slow", PAGE, delay=2.0)
    with pytest.raises(SourceError, match=r"timed out after 0\.3 s"):
        fetch(web.url("/slow"), timeout=0.3)


@pytest.mark.parametrize("url", ["ftp://example.com/a", "file:///etc/passwd", "javascript:x"])
def test_unsupported_schemes(url: str) -> None:
    with pytest.raises(SourceError, match="unsupported URL scheme"):
        sources.load(url) if "://" in url else fetch(url)


def test_unreachable_host_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="could not fetch"):
        fetch("http://127.0.0.1:9/nothing-listens-here", timeout=2)


def test_guard_sees_every_hop(web: LocalWeb) -> None:
    final = web.page("/end", PAGE)
    start = web.redirect("/start", final)
    seen: list[str] = []

    def guard(url: str) -> None:
        seen.append(url)
        if url.endswith("/end"):
            raise SourceError("refused")

    with pytest.raises(SourceError, match="refused"):
        fetch(start, guard=guard)
    assert seen == [start, final]


def test_gbk_page_decodes_by_declared_charset(web: LocalWeb) -> None:
    url = web.page("/gbk", "<html><body><p>兰州日报记者报道。</p></body></html>", charset="gbk")
    document = sources.load(url)
    assert "兰州日报记者报道" in document.text
    assert document.url == url


def test_non_text_content_is_refused(web: LocalWeb) -> None:
    web.routes["/img"] = Route(b"\x89PNG\r\n", 200, {"Content-Type": "image/png"})
    with pytest.raises(SourceError, match="image/png, not a web page"):
        sources.load(web.url("/img"))
