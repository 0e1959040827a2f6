"""decode_bytes: BOMs, declared and in-document charsets, detection, and what is not text."""

from __future__ import annotations

import pytest

from newsreader.errors import SourceError
from newsreader.sources.decode import decode_bytes, looks_like_html


def test_seed_as_gb18030_decodes_without_a_declaration(seed_text: str) -> None:
    assert decode_bytes(seed_text.encode("gb18030")) == seed_text


@pytest.mark.parametrize("declared", ["gb2312", "GBK", "gb18030", "utf-8"])
def test_seed_as_gb18030_decodes_whatever_the_header_claims(seed_text: str, declared: str) -> None:
    # GB2312/GBK labels are widened to GB18030; a lying UTF-8 header is not trusted
    assert decode_bytes(seed_text.encode("gb18030"), declared=declared) == seed_text


@pytest.mark.parametrize("declared", [None, "big5"])
def test_seed_as_big5_decodes(seed_text: str, declared: str | None) -> None:
    # Big5 cannot hold the seed's Simplified and private-use characters: those become "?"
    data = seed_text.encode("big5", errors="replace")
    assert decode_bytes(data, declared=declared) == data.decode("big5")


def test_meta_charset_names_the_encoding() -> None:
    html = '<html><head><meta charset="gbk"><title>新聞</title></head><body><p>兩岸</p></body>'
    assert decode_bytes(html.encode("gbk")) == html


def test_http_equiv_content_type_names_the_encoding() -> None:
    html = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=big5">'
        "</head><body><p>臺灣新聞報導</p></body></html>"
    )
    assert decode_bytes(html.encode("big5")) == html


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xef\xbb\xbf" + "新闻".encode(), "新闻"),
        ("\ufeff新闻".encode("utf-16-le"), "新闻"),
        ("\ufeff新闻".encode("utf-16-be"), "新闻"),
        ("新闻 news".encode(), "新闻 news"),
        (b"plain ascii", "plain ascii"),
    ],
)
def test_byte_order_marks_and_utf8(data: bytes, expected: str) -> None:
    assert decode_bytes(data) == expected


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "empty"),
        (b"  \n\t\r\n ", "empty"),
        (b"\xef\xbb\xbf  \n", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00", "binary"),
        (bytes(range(0, 32)) * 20, "binary"),
    ],
)
def test_empty_and_binary_input_are_source_errors(data: bytes, says: str) -> None:
    with pytest.raises(SourceError) as caught:
        decode_bytes(data)
    message = str(caught.value)
    assert says in message
    assert "\n" not in message
    assert "give" in message  # says what to do


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<!DOCTYPE html><html><body><p>新闻</p></body></html>", True),
        ("  <html lang='zh'><head></head></html>", True),
        ("<!-- saved --><html><body></body></html>", True),
        ("<div class='a'><p>第一段</p><p>第二段</p></div>", True),
        ("\ufeff<meta charset='utf-8'><title>标题</title>", True),
        ("标题\n\n第一段。\n\n第二段。", False),
        ("公式 a<b 且 c>d，不是网页。", False),
        ("", False),
    ],
)
def test_looks_like_html(text: str, expected: bool) -> None:
    assert looks_like_html(text) is expected
