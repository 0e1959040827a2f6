"""extract: the seed page (as copied text and as HTML built around it), clean text, real pages."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from newsreader.errors import ExtractionError
from newsreader.models import Article, BlockKind
from newsreader.text import clean
from newsreader.text.extract import extract, extract_html, extract_text
from tests.pages import seed_page

SEED_TITLE = "市科技局落實院地合作聯席會議制度 構建產學研合作新模式"
SEED_PUBLISHED = datetime(2024, 7, 2, 7, 42, 11, tzinfo=clean.CHINA_TZ)
# the first line of each two-line subheading in the seed
SEED_SUBHEADINGS = ("共治共享", "同心協力", "和衷共濟")
# what must never be read: spam title, site line, navigation, breadcrumb, date line, footer
SEED_JUNK = (
    "无码", "三级", "手機", "首頁", "您的位置", "正文", "智能朗讀", "07:42",
    "責任編輯", "王旭偉", "來源", "關閉", "通訊員", "全媒體記者",
)  # fmt: skip
PINYIN = re.compile("[(（]?[a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]+[)）]")
PRIVATE_USE = re.compile("[\ue000-\uf8ff]")


def _everything(article: Article) -> str:
    return "\n".join([article.title, *(b.text for b in article.blocks)])


def _check_seed(article: Article) -> None:
    assert article.title == SEED_TITLE
    assert len(article.paragraphs) == 9
    assert len(article.headings) == 3
    for heading, first_line in zip(article.headings, SEED_SUBHEADINGS, strict=True):
        assert heading.startswith(first_line + "，")
        assert len(heading) > len(first_line) + 6
    kinds = [b.kind for b in article.blocks]
    assert kinds[0] is BlockKind.PARAGRAPH and kinds[-1] is BlockKind.PARAGRAPH
    text = _everything(article)
    for junk in SEED_JUNK:
        assert junk not in text
    assert article.published == SEED_PUBLISHED
    assert not PINYIN.search(text)
    assert "?" not in text and "？" not in text
    assert not PRIVATE_USE.search(text)
    assert "技成果能夠順利轉化" in text
    assert "工作機制" in text and "機(" not in text
    # the characters whose bytes were lost are restored from the word list (one candidate)
    assert "規模化合成、" in text and "確保科技成果" in text
    assert [n.split(":")[0] for n in article.notes] == ["paragraph 5"] * 3 + ["paragraph 6"] * 2
    assert sum("restored the lost character" in n for n in article.notes) == 3
    assert all("\n" not in note for note in article.notes)


def test_seed_as_copied_text(seed_text: str) -> None:
    article = extract(seed_text, source="seed.txt")
    _check_seed(article)
    assert article.site == "蘭州新聞網"
    assert article.source == "seed.txt"


def test_extract_text_keeps_the_original_script(seed_text: str) -> None:
    article = extract_text(seed_text)
    assert "聯席會議" in article.paragraphs[0] or "聯席會議" in article.paragraphs[1]
    assert "联席会议" not in _everything(article)


def test_seed_as_a_news_page(seed_text: str) -> None:
    page = seed_page(seed_text)
    article = extract(page, source="https://news.example.cn/2024/0702/1.html")
    _check_seed(article)
    assert article.source == "https://news.example.cn/2024/0702/1.html"
    text = _everything(article)
    for related in ("黄河风情线", "暑期安全", "城市公园", "相关新闻", "Copyright"):
        assert related not in text


def test_extract_html_directly(seed_text: str) -> None:
    article = extract_html(seed_page(seed_text), url="https://news.example.cn/a.html")
    assert article.title == SEED_TITLE
    assert len(article.paragraphs) == 9


CLEAN_ARTICLE = """城市公园今天开放

　　今天上午，新建的城市公园正式向市民开放，首批游客在开园前就排起了长队。

　　公园占地约二十公顷，设有儿童游乐区、运动场和湖边步道。

设计理念

　　设计团队介绍，公园保留了原有的树木和水系，
让市民在城市中心也能亲近自然。

（记者 王小明）
"""


def test_a_clean_article_as_text() -> None:
    article = extract_text(CLEAN_ARTICLE, source="-")
    assert article.title == "城市公园今天开放"
    assert [b.kind for b in article.blocks] == [
        BlockKind.PARAGRAPH,
        BlockKind.PARAGRAPH,
        BlockKind.HEADING,
        BlockKind.PARAGRAPH,
    ]
    assert article.headings == ("设计理念",)
    # a hard-wrapped paragraph is one paragraph again; indentation is gone
    assert (
        article.paragraphs[2]
        == "设计团队介绍，公园保留了原有的树木和水系，让市民在城市中心也能亲近自然。"
    )
    assert article.paragraphs[0].startswith("今天上午")
    assert "王小明" not in _everything(article)
    assert article.published is None and article.site is None and article.notes == ()


def test_a_closing_credit_in_parentheses_is_not_read() -> None:
    article = extract_text("标题在此\n\n第一段正文内容写在这里。（张三）\n")
    assert article.paragraphs == ("第一段正文内容写在这里。",)


def test_a_short_article_is_still_an_article() -> None:
    article = extract_text("一句话新闻\n\n市图书馆明天闭馆一天。")
    assert article.title == "一句话新闻"
    assert article.paragraphs == ("市图书馆明天闭馆一天。",)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\n  ",
        "首页| 国内| 国际| 财经| 体育\n\n责任编辑：张三\n\n关闭",
        "只有标题没有正文",
    ],
)
def test_text_without_an_article_is_an_extraction_error(text: str) -> None:
    with pytest.raises(ExtractionError, match=r"no article text found in notes\.txt"):
        extract(text, source="notes.txt")


def test_a_page_of_links_is_an_extraction_error() -> None:
    links = "".join(f'<li><a href="/{n}.html">栏目{n}</a></li>' for n in range(20))
    page = f"<html><head><title>首页</title></head><body><ul>{links}</ul></body></html>"
    with pytest.raises(ExtractionError, match=r"no article text found in https://x\.cn/"):
        extract(page, source="https://x.cn/")


# ── web pages: the rules that keep the chrome out, one page each ─────────────────────────────
# The scored gate on real pages is tests/corpus/test_gate.py; these pages isolate one rule each.

LEAD = "本市第一家二十四小时城市书房今天正式开放，市民可以免费借阅图书，还能参加读书会。"
SECOND = "书房位于市中心广场东侧，面积约三百平方米，馆内藏书一万余册，设有阅读区和儿童区。"
THIRD = "工作人员介绍，书房将定期举办讲座和展览，欢迎市民前来阅读，也欢迎志愿者报名参与服务。"


def portal(
    body: str,
    *,
    title: str = "城市书房今天开放_某某新闻网",
    headline: str = "<h1>城市书房今天开放</h1>",
    after: str = "",
) -> str:
    """A portal page: navigation, headline, date line, share bar, the body, then related links,
    a ranking and a footer."""
    nav = "".join(
        f'<a href="/c{n}">{name}</a>'
        for n, name in enumerate(["首页", "国内", "国际", "财经", "体育"])
    )
    related = "".join(
        f'<li><a href="/n{n}.html">{h}</a></li>'
        for n, h in enumerate(
            ["黄河风情线夜景提升工程启动", "全市中小学暑期安全教育周开幕", "新建城市公园向市民开放"]
        )
    )
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>
<body><div class="nav">{nav}</div>
<div class="main"><div class="crumb">您的位置：<a href="/">首页</a> &gt; 正文</div>
{headline}<div class="info">2024-07-02 07:42 来源：某某新闻网</div>
<div class="share"><a href="#">微信</a><a href="#">微博</a><span>字号：大 中 小</span></div>
<div class="content">{body}</div>{after}</div>
<div class="related"><h3>相关新闻</h3><ul>{related}</ul></div>
<div class="footer">Copyright © 2024 某某新闻网 版权所有</div></body></html>"""


def _paragraphs(*texts: str) -> str:
    return "".join(f"<p>{t}</p>" for t in texts)


def test_a_portal_page_reads_the_story_and_nothing_around_it() -> None:
    article = extract_html(portal(_paragraphs(LEAD, SECOND, THIRD)))
    assert article.title == "城市书房今天开放"
    assert article.paragraphs == (LEAD, SECOND, THIRD)
    assert article.published == datetime(2024, 7, 2, 7, 42, tzinfo=clean.CHINA_TZ)
    assert article.site == "某某新闻网"


@pytest.mark.parametrize(
    ("caption", "read"),
    [
        ('<p style="text-align: center">大会开幕式</p>', False),  # centred under the photo
        ("<p>时尚商务男式纯棉休闲裤</p>", False),  # a block of its own, no punctuation
        ("<p><strong>缘起：一次偶然的机会</strong></p>", True),  # a subheading after a photo
        ("<p>“起初，这感觉很不自然。”她说。</p>", True),  # a paragraph after a photo
        ("<p>▲航站楼的造型灵感来源于鲸鱼</p>", False),
        ("<p>雨游黄鹤楼照样开心。城市摄影队 周斌 摄</p>", False),
        ("<p>某报网站题为《城市书房》的报道截图。</p>", False),
        ("<p>共享充电宝。视觉中国 资料</p>", False),
    ],
    ids=[
        "centred",
        "own-block",
        "subheading",
        "quote",
        "triangle",
        "photographer",
        "screenshot",
        "agency",
    ],
)
def test_photo_captions_are_not_read(caption: str, read: bool) -> None:
    page = portal(f'<p>{LEAD}</p><p><img src="/a.jpg"></p>{caption}<p>{SECOND}</p>')
    text = re.sub(r"<[^>]+>", "", caption)
    article = extract_html(page)
    assert any(text in b.text for b in article.blocks) is read
    assert article.paragraphs[0] == LEAD and article.paragraphs[-1] == SECOND


def test_a_line_under_a_divider_image_is_not_a_caption() -> None:
    page = portal(
        f'<p>{LEAD}</p><p><img src="/line.gif" height="12"></p><p>大会开幕式</p><p>{SECOND}</p>'
    )
    assert "大会开幕式" in _everything(extract_html(page))


def test_the_editors_sign_off_ends_the_story() -> None:
    teaser = "<blockquote>" + _paragraphs(
        "香港警方：示威行动未发生致命事件", "港铁公司表示，因激进示威者的破坏行为启动疏散程序。"
    )
    teaser += "</blockquote>"
    page = portal(_paragraphs(LEAD, SECOND, "采写：南都记者 余毅菁", "责任编辑：张三") + teaser)
    article = extract_html(page)
    assert article.paragraphs == (LEAD, SECOND)


def test_an_editor_line_before_the_story_does_not_end_it() -> None:
    article = extract_html(portal(_paragraphs("编辑：张三", LEAD, SECOND)))
    assert article.paragraphs == (LEAD, SECOND)


def test_a_qr_code_promotion_ends_the_story() -> None:
    promo = _paragraphs(
        "扫描下方二维码关注公众号", "1、回复【福利】查看各种政策福利", "看都看完了，点【在看】试试"
    )
    article = extract_html(portal(_paragraphs(LEAD, SECOND) + promo))
    assert article.paragraphs == (LEAD, SECOND)


@pytest.mark.parametrize(
    ("headline", "original", "read"),
    [
        (
            "定了！城市书房即将开放！地铁直达+免...",
            "本文原标题：《定了！城市书房即将开放！地铁直达+免费借书......》",
            "定了！城市书房即将开放！地铁直达+免费借书",
        ),
        ("[某某化妆品]城市书房今天开放", "原标题：城市书房今天开放", "城市书房今天开放"),
        ("城市书房今天开放", "原标题：城市书房开放", "城市书房今天开放"),
    ],
    ids=["cut-short", "ad-prefix", "different"],
)
def test_the_headline_is_completed_from_its_original_title_line(
    headline: str, original: str, read: str
) -> None:
    page = portal(
        _paragraphs(original, LEAD, SECOND), title=headline, headline=f"<h1>{headline}</h1>"
    )
    article = extract_html(page)
    assert article.title == read
    assert "原标题" not in _everything(article)


@pytest.mark.parametrize(
    ("lead", "read"),
    [
        (
            "新华社巴黎12月9日电（记者唐霁）法国9日再次爆发全国跨行业大罢工。",
            "新华社巴黎12月9日电 法国9日再次爆发全国跨行业大罢工。",
        ),
        (
            "本站讯（职工通讯员 李琴雯 刘会）为深入推进党建工作，我院举办了大赛。",
            "本站讯 为深入推进党建工作，我院举办了大赛。",
        ),
        ("（记者 王小明）今天上午，新建的城市公园正式开放。", "今天上午，新建的城市公园正式开放。"),
        (
            "新华社北京7月2日电（2024年第5号）今天发布了公告。",
            "新华社北京7月2日电（2024年第5号）今天发布了公告。",
        ),
    ],
    ids=["dateline", "station-report", "credit-first", "not-a-credit"],
)
def test_the_credit_inside_a_dateline_is_not_read(lead: str, read: str) -> None:
    article = extract_html(portal(_paragraphs(lead, SECOND, THIRD)))
    assert article.paragraphs[0] == read


def test_a_story_after_an_early_closing_html_tag_is_read() -> None:
    story = f"<h2>城市书房今天开放</h2>{_paragraphs(LEAD, SECOND, THIRD)}"
    page = portal("").replace("</body></html>", "") + f"</body></html>\n<div>{story}</div>"
    assert extract_html(page).paragraphs == (LEAD, SECOND, THIRD)


def test_code_listings_are_not_read_but_inline_code_is() -> None:
    body = _paragraphs(LEAD, "Golang 里面有一个关键词叫做<code>defer</code>，它可以实现延迟调用。")
    body += "<pre><code>import json\nclient = redis.Redis()</code></pre>" + _paragraphs(SECOND)
    text = _everything(extract_html(portal(body)))
    assert "叫做defer，" in text
    assert "import" not in text and "Redis()" not in text


def test_an_article_set_in_preformatted_text_is_read() -> None:
    page = portal(f"<pre>{LEAD}\n{SECOND}\n{THIRD}</pre>")
    assert "".join(extract_html(page).paragraphs) == LEAD + SECOND + THIRD


def test_a_summary_the_body_repeats_is_read_once() -> None:
    body = f'<div class="summary">{LEAD}{SECOND}</div>' + _paragraphs(LEAD, SECOND, THIRD)
    assert extract_html(portal(body)).paragraphs == (LEAD, SECOND, THIRD)


def test_a_title_unrelated_to_the_story_gives_way_to_the_in_page_headline() -> None:
    page = portal(
        _paragraphs(LEAD, SECOND, THIRD),
        title="新闻动态--某某学会官网",
        headline="<h5>二十四小时城市书房在市中心正式开放</h5>",
    )
    assert extract_html(page).title == "二十四小时城市书房在市中心正式开放"


def test_a_subtitle_under_the_headline_is_read_first() -> None:
    page = portal(
        _paragraphs(LEAD, SECOND),
        headline="<div><h2>城市书房今天开放</h2><h3>藏书一万余册，设有儿童区</h3></div>",
    )
    article = extract_html(page)
    assert article.title == "城市书房今天开放"
    assert article.paragraphs[0] == "藏书一万余册，设有儿童区"


def test_a_headline_set_over_several_lines_is_not_read_twice() -> None:
    body = "<p>全国人民代表大会常务委员会</p><p>关于城市书房开放的决定</p>" + _paragraphs(
        LEAD, SECOND
    )
    page = portal(body, title="全国人民代表大会常务委员会关于城市书房开放的决定", headline="")
    article = extract_html(page)
    assert article.title == "全国人民代表大会常务委员会关于城市书房开放的决定"
    assert article.paragraphs == (LEAD, SECOND)


def test_list_items_of_the_story_are_read_but_its_links_are_not() -> None:
    items = (
        "<ol><li>被添加的回调函数进入了一个栈</li><li>回调函数会在结束缩进的时候被调用</li></ol>"
    )
    links = '<p><a href="/promo">点击进入“文艺星青年”&gt;&gt;</a></p>'
    article = extract_html(portal(_paragraphs(LEAD) + items + links + _paragraphs(SECOND)))
    text = _everything(article)
    assert "被添加的回调函数进入了一个栈" in text and "回调函数会在结束缩进的时候被调用" in text
    assert "文艺星青年" not in text


def test_a_login_box_beside_the_story_is_not_read() -> None:
    login = '<div class="login"><p><u>登录超时，稍后再试</u></p><a href="/reg">注册</a></div>'
    page = portal(_paragraphs(LEAD)).replace('<div class="main">', f'{login}<div class="main">')
    assert "登录超时" not in _everything(extract_html(page))
