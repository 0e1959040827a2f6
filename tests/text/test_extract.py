"""extract: the seed page (as copied text and as HTML built around it), clean text, real pages."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from newsreader.errors import ExtractionError
from newsreader.models import Article, BlockKind
from newsreader.text import clean
from newsreader.text.extract import extract, extract_html, extract_text
from tests.conftest import CORPUS
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
    assert "規化合、" in text  # the two characters whose bytes were lost are dropped
    assert len(article.notes) == 2
    assert article.notes[0].startswith("paragraph 5: ")
    assert article.notes[1].startswith("paragraph 6: ")
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


# Real pages: a sensible headline and a body without editorial lines. The scored gold corpus is
# a later issue; these only guard against gross failures.
@pytest.mark.parametrize(
    ("page", "title", "min_paragraphs"),
    [
        ("people-1", "女儿出嫁，郑板桥画了几笔兰花当嫁妆", 20),
        ("xinhuanet-1", "法国全国大罢工再次严重影响交通", 5),
        ("thepaper-1", "共享充电宝涨价告别1元时代：是“收割韭菜”还是回归理性", 25),
        ("wechat-1", "三星 Galaxy S20 系列手机正式发布", 8),
        ("cjn-1", "外媒眼中的武汉长假：蓬勃发展，欢声笑语", 15),
        ("baijiahao-1", "英国美女在殡仪馆工作太痛苦，转行当美人鱼！每小时收入近千元", 10),
    ],
)
def test_corpus_pages(page: str, title: str, min_paragraphs: int) -> None:
    source = CORPUS / f"{page}.html"
    article = extract(source.read_text(encoding="utf-8"), source=str(source))
    assert article.title == title
    assert len(article.paragraphs) >= min_paragraphs
    assert sum(len(p) for p in article.paragraphs) >= 300
    for block in article.blocks:
        assert not clean.is_editorial(block.text)
        assert not re.match(r"^[【\[(（]?\s*(?:责任编辑|编辑|来源|原标题|原题)", block.text)
        assert block.text != title
