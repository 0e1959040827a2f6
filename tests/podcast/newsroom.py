"""A small newsroom for the podcast tests: short articles, their pages and feeds, built at run time.

The articles are short on purpose (a few sentences each) so that the embedded voice reads a whole
feed in about a second. Pages follow the layout of Chinese portals (header, navigation, headline,
date line, body, footer) so that they go through the same extraction as any news page.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.webserver import LocalWeb, Route

BEIJING = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Story:
    slug: str
    title: str
    published: datetime
    paragraphs: tuple[str, ...]
    summary: str = ""

    @property
    def path(self) -> str:
        return f"/news/{self.slug}.html"

    def edited(self, paragraph: str) -> Story:
        """The same story with one more paragraph (the page changed)."""
        return replace(self, paragraphs=(*self.paragraphs, paragraph))


def _at(day: int, hour: int) -> datetime:
    return datetime(2024, 7, day, hour, 0, tzinfo=BEIJING)


STORIES = (
    Story(
        "library",
        "城市书房正式向市民开放",
        _at(1, 9),
        (
            "本市第一家城市书房今天正式向市民开放。书房藏书三千册，每天开放十二小时。",
            "市民可以凭身份证免费借阅图书，也可以在书房里安静自习。",
        ),
        "第一家城市书房开放。",
    ),
    Story(
        "buses",
        "三条公交线路推迟末班车时间",
        _at(1, 15),
        (
            "从下周一起，三条公交线路的末班车时间推迟一小时。",
            "公交公司表示，调整是为了方便夜间下班的市民回家。",
        ),
        "末班车推迟一小时。",
    ),
    Story(
        "park",
        "滨河公园改造完成",
        _at(2, 10),
        (
            "滨河公园改造工程近日完工，新增步道两公里。",
            "公园还增设了儿童游乐区和一批健身器材，周末将迎来第一批游客。",
        ),
        "滨河公园新增步道。",
    ),
    Story(
        "rain",
        "气象台发布暴雨预警",
        _at(2, 16),
        (
            "市气象台今天下午发布暴雨黄色预警。预计今晚到明天，全市大部分地区有大到暴雨。",
            "请市民减少外出，注意出行安全。",
        ),
        "今晚到明天有暴雨。",
    ),
    Story(
        "school",
        "暑期安全教育周开幕",
        _at(3, 8),
        (
            "全市中小学暑期安全教育周今天开幕。",
            "活动将持续七天，内容包括防溺水和交通安全。",
        ),
        "安全教育周开幕。",
    ),
)


def page(story: Story) -> str:
    """A news page around the story, the way portals lay one out."""
    esc = html.escape
    body = "".join(f"<p>{esc(p)}</p>" for p in story.paragraphs)
    when = story.published.strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{esc(story.title)}_本地新闻网</title></head>
<body>
<div class="header"><div class="logo">本地新闻网</div>
<div class="nav"><a href="/">首页</a><a href="/news/">本地</a><a href="/sport/">体育</a></div>
</div>
<div class="article">
<h1>{esc(story.title)}</h1>
<div class="info">{when} 来源：本地新闻网</div>
<div class="content">{body}</div>
<div class="article-footer"><p>责任编辑：王明</p></div>
</div>
<div class="footer">Copyright © 2024 本地新闻网 版权所有</div>
</body></html>"""


@dataclass
class Newsroom:
    """Serves a feed of stories and their pages on the local web server."""

    web: LocalWeb
    stories: list[Story] = field(default_factory=lambda: list(STORIES[:3]))
    feed_path: str = "/rss.xml"
    full_content: bool = False
    encoding: str = "utf-8"
    content_type: str = "application/rss+xml"

    def publish(self) -> str:
        """Serve the feed and every page as they are now; returns the feed's URL."""
        for story in self.stories:
            self.web.page(story.path, page(story))
        body = rss(self.stories, self.web.base, full=self.full_content, encoding=self.encoding)
        self.web.routes[self.feed_path] = Route(body, headers={"Content-Type": self.content_type})
        return self.web.url(self.feed_path)

    def url(self, story: Story) -> str:
        return self.web.url(story.path)


def rss(stories: list[Story], base: str, *, full: bool = False, encoding: str = "utf-8") -> bytes:
    """An RSS 2.0 feed, newest first; ``full`` adds the whole text as content:encoded."""
    esc = html.escape
    items = []
    for story in sorted(stories, key=lambda s: s.published, reverse=True):
        content = ""
        if full:
            text = "".join(f"<p>{esc(p)}</p>" for p in story.paragraphs)
            content = f"<content:encoded><![CDATA[{text}]]></content:encoded>"
        items.append(
            f"<item><title>{esc(story.title)}</title>"
            f"<link>{base}{story.path}</link>"
            f'<guid isPermaLink="false">local-news-{story.slug}</guid>'
            f"<pubDate>{format_datetime(story.published)}</pubDate>"
            f"<description>{esc(story.summary)}</description>{content}</item>"
        )
    document = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        f"<channel><title>本地新闻</title><link>{base}/</link>"
        "<description>本地新闻网的最新报道</description><language>zh-cn</language>"
        f"{''.join(items)}</channel></rss>"
    )
    return document.encode(encoding)


def local_file(url: str, base_url: str, out: Path) -> Path:
    """The file in the output folder that a URL in our feed names."""
    assert url.startswith(base_url), (url, base_url)
    return out / unquote(urlsplit(url).path[len(urlsplit(base_url).path) :])
