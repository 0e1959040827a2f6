"""Pages nested thousands deep are read to the end, by every part that parses untrusted HTML.

libxml2 (lxml) stops at a depth of 256 (2048 with ``huge_tree``) and silently drops the rest of
the page; a page that leaves one ``<div>`` open per paragraph is nested as deep as it is long.
"""

from __future__ import annotations

import re

import lxml.html
from lxml import etree

from newsreader.config import Settings
from newsreader.podcast.entries import load_entry_article, parse_feed
from newsreader.text import layout
from newsreader.text.extract import extract
from newsreader.text.htmltree import parse_document, parse_fragment
from newsreader.text.score import page_text


def paragraph(i: int) -> str:
    return f"这是第{i}段的正文内容，用来测试很深的嵌套结构会不会丢失文字。"


def unclosed_divs(count: int) -> str:
    """One ``<div>`` left open per paragraph: each paragraph one level deeper than the last."""
    return "".join(f"<div><p>{paragraph(i)}</p>" for i in range(1, count + 1))


def deep_page(count: int) -> str:
    return (
        "<html><head><meta charset=utf-8><title>测试</title></head><body><h1>测试</h1>"
        f"{unclosed_divs(count)}</body></html>"
    )


def depth(element: etree._Element) -> int:
    return sum(1 for _ in element.iterancestors()) + 1


def test_every_paragraph_of_a_page_400_deep_is_read() -> None:
    article = extract(deep_page(400))
    assert article.title == "测试"
    assert list(article.paragraphs) == [paragraph(i) for i in range(1, 401)]
    assert article.notes == ()


def test_every_paragraph_of_a_page_6165_deep_is_read() -> None:
    # as deep as the real 2.5 MB page that lost all but its first 250 paragraphs
    article = extract(deep_page(6165))
    assert len(article.paragraphs) == 6165
    assert article.paragraphs[0] == paragraph(1)
    assert article.paragraphs[-1] == paragraph(6165)
    assert list(article.paragraphs) == [paragraph(i) for i in range(1, 6166)]


def test_the_page_tree_holds_every_element_however_deep() -> None:
    tree = layout.parse_page(deep_page(3000))
    assert tree is not None
    paragraphs = tree.findall(".//p")
    assert len(paragraphs) == 3000
    assert depth(paragraphs[-1]) > 3000
    assert paragraphs[-1].text == paragraph(3000)
    assert tree.find("head/title").text == "测试"


def test_a_shallow_page_is_parsed_by_lxml_as_before() -> None:
    html = deep_page(20) + "<!-- note --><script>var a = 1 < 2;</script>"
    ours = parse_document(html)
    assert ours is not None
    theirs = lxml.html.document_fromstring(html.replace("</body></html>", ""))
    assert etree.tostring(ours) == etree.tostring(theirs)


def test_markup_lxml_refuses_is_dropped_not_fatal_on_a_deep_page() -> None:
    odd = (
        '<div x"y="1" class="a\x01b"><x<y>名字\x02不对</x<y><o:p>办公</o:p>'
        "<!-- 注释 --><script>var s = '<p>不读</p>';</script></div>"
    )
    tree = parse_document(deep_page(2100).replace("<h1>测试</h1>", f"<h1>测试</h1>{odd}"))
    assert tree is not None
    text = tree.text_content()
    assert "名字不对" in text and "办公" in text
    assert "注释" not in text
    assert "var s = '<p>不读</p>';" in text  # a script's text stays text, never markup
    assert len(tree.findall(".//p")) == 2100
    assert tree.find(".//div").get("class") == "ab"


def test_the_scorer_reads_a_deep_page_to_the_end() -> None:
    lines = page_text(deep_page(3000)).splitlines()
    assert lines == ["测试", "测试", *(paragraph(i) for i in range(1, 3001))]


def test_a_deep_fragment_is_parsed_whole() -> None:
    element = parse_fragment(unclosed_divs(3000))
    assert element is not None
    assert element.tag == "div"
    assert len(element.findall(".//p")) == 3000


FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>
<title>本地新闻</title><link>http://news.invalid/</link><description>最新报道</description>
<item><title>很深的条目</title><link>http://news.invalid/1.html</link><guid>deep-1</guid>
<description><![CDATA[{summary}]]></description>
<content:encoded><![CDATA[{content}]]></content:encoded></item>
</channel></rss>"""


def test_a_feeds_deep_content_is_read_whole() -> None:
    content = unclosed_divs(3000)
    feed = parse_feed(FEED.format(summary=content, content=content).encode(), source="deep.xml")
    (entry,) = feed.entries
    # the link's host does not exist: the feed's own text is what is read
    article = load_entry_article(entry, Settings(fetch_timeout=1))
    numbers = [int(m.group(1)) for p in article.paragraphs for m in re.finditer(r"第(\d+)段", p)]
    assert numbers == list(range(1, 3001))
