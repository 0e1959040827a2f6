"""Feed in: every feed format and encoding, and every kind of bad input, read or refused."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsreader.config import Settings
from newsreader.errors import ExtractionError, SourceError
from newsreader.podcast.entries import (
    content_hash,
    load_entry_article,
    parse_feed,
    read_feed,
)
from newsreader.podcast.updater import select_entries
from tests.podcast.newsroom import STORIES, Newsroom, rss
from tests.webserver import LocalWeb, Route

RSS_091 = b"""<?xml version="1.0"?>
<rss version="0.91"><channel><title>Old</title><link>http://news.example.cn/</link>
<description>d</description><language>zh-cn</language>
<item><title>\xe6\x97\xa7\xe9\x97\xbb</title><link>http://news.example.cn/a.html</link>
<description>s</description></item>
</channel></rss>"""

RSS_10 = """<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="http://news.example.cn/"><title>RDF</title><link>http://news.example.cn/</link>
<description>d</description></channel>
<item rdf:about="http://news.example.cn/b.html"><title>城市新闻</title>
<link>http://news.example.cn/b.html</link><dc:date>2024-07-02T10:00:00+08:00</dc:date></item>
</rdf:RDF>""".encode()

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom 新闻</title>
<link href="http://news.example.cn/"/><id>urn:x:feed</id><updated>2024-07-02T10:00:00Z</updated>
<entry><title>全文条目</title><id>urn:x:1</id><link href="http://news.example.cn/1.html"/>
<updated>2024-07-02T09:00:00+08:00</updated><summary>摘要</summary>
<content type="html">&lt;p&gt;本市第一家城市书房今天正式开放。书房藏书三千册。&lt;/p&gt;
</content></entry>
<entry><title>只有摘要</title><id>urn:x:2</id><link href="http://news.example.cn/2.html"/>
<updated>2024-07-01T09:00:00Z</updated><summary>只有一句摘要。</summary></entry>
</feed>""".encode()


def test_rss_091_rss_10_and_atom_are_read() -> None:
    old = parse_feed(RSS_091, source="old.xml")
    assert [e.title for e in old.entries] == ["旧闻"]
    assert old.entries[0].key == "http://news.example.cn/a.html"  # no guid: the link
    assert old.problems == ()

    rdf = parse_feed(RSS_10, source="rdf.xml")
    (entry,) = rdf.entries
    assert entry.title == "城市新闻"
    assert entry.link == "http://news.example.cn/b.html"
    assert entry.published == datetime(2024, 7, 2, 2, 0, tzinfo=UTC)

    atom = parse_feed(ATOM, source="atom.xml")
    full, summary_only = atom.entries
    assert full.key == "urn:x:1"
    assert full.content is not None and "城市书房" in full.content and full.content_is_html
    assert full.published == datetime(2024, 7, 2, 1, 0, tzinfo=UTC)
    assert summary_only.content is None
    assert summary_only.summary == "只有一句摘要。"


def test_the_full_text_in_the_feed_is_read_without_fetching_the_page() -> None:
    atom = parse_feed(ATOM, source="atom.xml")
    # the link points at a host that does not exist: reading it would fail
    article = load_entry_article(atom.entries[0], Settings(fetch_timeout=1))
    assert article.title == "全文条目"
    assert article.paragraphs == ("本市第一家城市书房今天正式开放。书房藏书三千册。",)


@pytest.mark.parametrize("encoding", ["GB2312", "GBK", "Big5"])
def test_feeds_in_chinese_legacy_encodings(encoding: str) -> None:
    big5 = encoding == "Big5"
    title = "濱河公園改造完成" if big5 else "滨河公园改造完成"
    channel = "本地新聞" if big5 else "本地新闻"
    document = (
        f'<?xml version="1.0" encoding="{encoding}"?>'
        f'<rss version="2.0"><channel><title>{channel}</title><link>http://x.cn/</link>'
        f"<description>d</description><item><title>{title}</title>"
        f"<link>http://x.cn/1.html</link><guid>g1</guid></item></channel></rss>"
    ).encode(encoding)
    feed = parse_feed(document, source="f.xml")
    assert feed.problems == ()
    assert [e.title for e in feed.entries] == [title]
    assert feed.title == channel


def test_a_gbk_character_in_a_feed_declared_gb2312_is_read() -> None:
    # 镕 and 喆 are GBK, not GB2312: Chinese feeds declared GB2312 hold them all the time.
    document = (
        '<?xml version="1.0" encoding="gb2312"?><rss version="2.0"><channel><title>t</title>'
        "<item><title>朱镕基与张喆</title><link>http://x.cn/1.html</link></item></channel></rss>"
    ).encode("gbk")
    feed = parse_feed(document, source="f.xml")
    assert [e.title for e in feed.entries] == ["朱镕基与张喆"]


def test_malformed_xml_gives_the_usable_entries_and_reports_the_rest() -> None:
    document = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        "<item><title>第一条</title><link>http://x.cn/1.html</link></item>"
        "<item><title>R&D 与 <b>未闭合</title><link>http://x.cn/2.html</link></item>"
        "<item><title>第三条</title><link>http://x.cn/3.html</link></item>"
    ).encode()  # a bare "&", a tag left open, and the document stops short
    feed = parse_feed(document, source="f.xml")
    assert [e.link for e in feed.entries] == [
        "http://x.cn/1.html",
        "http://x.cn/2.html",
        "http://x.cn/3.html",
    ]
    (problem,) = feed.problems
    assert "not well-formed XML" in problem and "3 entries" in problem


def test_duplicate_ids_keep_the_first_and_are_reported() -> None:
    document = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        "<item><title>一</title><guid>same</guid><link>http://x.cn/1.html</link></item>"
        "<item><title>二</title><guid>same</guid><link>http://x.cn/2.html</link></item>"
        "<item><title>三</title><guid>other</guid><link>http://x.cn/3.html</link></item>"
        "<item><title>四</title><guid>same</guid><link>http://x.cn/4.html</link></item>"
        "</channel></rss>"
    ).encode()
    feed = parse_feed(document, source="f.xml")
    assert [e.title for e in feed.entries] == ["一", "三"]
    assert feed.problems == (
        "entry id same appears 3 times in the feed: kept the first, skipped 2.",
    )


def test_entries_without_a_link_or_text_are_skipped_with_a_reason() -> None:
    document = (
        '<?xml version="1.0"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>t</title>'
        "<item><title>只有摘要</title><guid isPermaLink='false'>g1</guid>"
        "<description>一句话</description></item>"
        "<item><title>链接不是网页</title><link>mailto:news@x.cn</link></item>"
        "<item><description>什么都没有</description></item>"
        "<item><title>全文无链接</title><content:encoded><![CDATA[<p>正文一句。</p>]]>"
        "</content:encoded></item>"
        "</channel></rss>"
    ).encode()
    feed = parse_feed(document, source="f.xml")
    assert [(s.label, s.reason) for s in feed.skipped] == [
        ("只有摘要", "only a summary and no link to the full article"),
        ("链接不是网页", "no id, no link and no text of its own: nothing to read"),
        ("entry 3", "no id, no link and no text of its own: nothing to read"),
    ]
    (kept,) = feed.entries
    assert kept.key == "title:全文无链接"


def test_an_entry_with_no_readable_text_raises_extraction_error() -> None:
    document = (
        '<?xml version="1.0"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>t</title>'
        "<item><title>空</title><guid>g</guid><content:encoded><![CDATA[<p>   </p><img src=x>]]>"
        "</content:encoded></item></channel></rss>"
    ).encode()
    (entry,) = parse_feed(document, source="f.xml").entries
    with pytest.raises(ExtractionError):
        load_entry_article(entry, Settings())


def test_a_web_page_or_junk_is_not_a_feed() -> None:
    with pytest.raises(SourceError, match=r"not an RSS or Atom feed \(it looks like a web page\)"):
        parse_feed(b"<!DOCTYPE html><html><body><p>hi</p></body></html>", source="p.html")
    with pytest.raises(SourceError, match="not an RSS or Atom feed"):
        parse_feed(bytes(range(256)) * 4, source="junk.bin")
    with pytest.raises(SourceError, match="not an RSS or Atom feed"):
        parse_feed(b"", source="empty.xml")


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY lol "lol">\n'
    + "".join(
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">\n'
        for n in range(1, 10)
    )
    + ']>\n<rss version="2.0"><channel><title>t &lol9;</title>'
    "<item><title>a &lol9;</title><link>http://x.cn/1.html</link>"
    "<description>&lol9;&lol9;&lol9;</description></item></channel></rss>"
)


def test_entity_expansion_does_not_blow_up_memory(tmp_path: Path) -> None:
    # Expanded, each &lol9; is 3 GB of text: with the address space capped at 1 GB, parsing would
    # die. It must finish fast, with the entities left unexpanded.
    feed_file = tmp_path / "laughs.xml"
    feed_file.write_text(BILLION_LAUGHS, encoding="utf-8")
    script = textwrap.dedent(
        f"""
        import resource, time
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from newsreader.podcast.entries import read_feed
        start = time.monotonic()
        feed = read_feed({str(feed_file)!r})
        print(round(time.monotonic() - start, 3))
        print(max(len(e.title) for e in feed.entries))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr
    seconds, longest_title = run.stdout.split()
    assert float(seconds) < 2.0
    assert int(longest_title) < 100


def test_http_errors_redirects_and_unreachable_feeds(web: LocalWeb) -> None:
    room = Newsroom(web)
    url = room.publish()
    web.routes["/gone.xml"] = Route(b"gone", 404, {"Content-Type": "text/plain"})
    web.routes["/broken.xml"] = Route(b"oops", 500, {"Content-Type": "text/plain"})
    with pytest.raises(SourceError, match="HTTP 404"):
        read_feed(web.url("/gone.xml"))
    with pytest.raises(SourceError, match="HTTP 500"):
        read_feed(web.url("/broken.xml"))

    # a redirect is followed; relative links resolve against where the feed really is
    web.routes["/feeds/relative.xml"] = Route(
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
        b"<title>x</title><link>../news/park.html</link></item></channel></rss>",
        headers={"Content-Type": "text/xml"},
    )
    web.redirect("/old-feed", "/feeds/relative.xml", 301)
    web.redirect("/rss", "/rss.xml")
    feed = read_feed(web.url("/old-feed"))
    assert feed.url == web.url("/feeds/relative.xml")
    assert [e.link for e in feed.entries] == [web.url("/news/park.html")]
    assert len(read_feed(web.url("/rss")).entries) == 3

    # over the size cap: refused, not truncated
    with pytest.raises(SourceError, match="limit"):
        read_feed(url, max_bytes=200)

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SourceError, match="could not fetch"):
        read_feed(f"http://127.0.0.1:{port}/rss.xml", timeout=2)
    with pytest.raises(SourceError, match="no such file"):
        read_feed("no/such/feed.xml")


def test_content_hash_follows_the_text() -> None:
    room_feed = parse_feed(rss(list(STORIES[:1]), "http://x.cn", full=True), source="f.xml")
    (entry,) = room_feed.entries
    first = content_hash(load_entry_article(entry, Settings()))
    again = content_hash(load_entry_article(entry, Settings()))
    edited_feed = rss([STORIES[0].edited("又一段新的文字。")], "http://x.cn", full=True)
    (edited,) = parse_feed(edited_feed, source="f.xml").entries
    assert first == again
    assert content_hash(load_entry_article(edited, Settings())) != first


def test_since_and_limit_select_entries() -> None:
    feed = parse_feed(rss(list(STORIES), "http://x.cn"), source="f.xml")
    all_entries = feed.entries
    assert all_entries[0].title == STORIES[-1].title  # newest first
    since = datetime(2024, 7, 2, 0, 0, tzinfo=UTC)
    chosen = select_entries(all_entries, since=since, limit=None)
    assert {e.title for e in chosen} == {s.title for s in STORIES if s.published >= since}
    newest_two = select_entries(all_entries, since=None, limit=2)
    assert [e.title for e in newest_two] == [STORIES[4].title, STORIES[3].title]
    assert select_entries(all_entries, since=since, limit=1)[0].title == STORIES[4].title
    assert select_entries((), since=since, limit=3) == []
