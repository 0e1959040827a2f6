"""extract: one small page per kind of text a listener must not hear, or must hear, found on
pages the rules were not written on (comment sections, captions the markup marks, promotions
and provenance lines, boxes inside the story; block quotes, subheadings and document titles
that repeat part of the headline)."""

from __future__ import annotations

import pytest

from newsreader.models import BlockKind
from newsreader.text import clean
from newsreader.text.extract import extract_html
from tests.text.test_extract import LEAD, SECOND, THIRD, _everything, _paragraphs, portal

COMMENTS = (
    '<div class="comment-box"><div class="cmt-head">评论 139，请先<a href="/login">登录</a>'
    '后发表评论</div><div class="cmt-item"><p class="cmt-user">网友甲</p>'
    '<p class="cmt-text">书房环境很好，周末带孩子去看了。</p><p class="cmt-time">·05月10日</p>'
    '</div><div class="cmt-item"><p class="cmt-user">网友乙</p><p class="cmt-text">希望开到'
    '晚上十点。</p><p class="cmt-time">·05月10日</p></div></div>'
)


def test_a_comment_section_after_the_story_is_not_read() -> None:
    article = extract_html(portal(_paragraphs(LEAD, SECOND), after=COMMENTS))
    assert article.paragraphs == (LEAD, SECOND)
    assert not article.headings


@pytest.mark.parametrize(
    "header",
    ["评论 139，请先登录后发表评论", "跟贴 139 人参与", "2 条评论", "添加新评论", "网友评论(15)"],
)
def test_comment_headers_open_a_trailing_section(header: str) -> None:
    assert clean.is_section_end(header)


@pytest.mark.parametrize("line", ["评论员文章指出，城市书房要办好。", "评论区"])
def test_a_sentence_about_comments_is_no_header(line: str) -> None:
    assert not clean.is_section_end(line)


@pytest.mark.parametrize("stamp", ["·05月10日", "05月10日 12:30", "3小时前", "发表于 5月9日"])
def test_bare_time_stamps_are_never_read(stamp: str) -> None:
    assert clean.is_stamp(stamp)
    article = extract_html(
        portal(_paragraphs(LEAD, SECOND) + f"<p>{stamp}</p>" + _paragraphs(THIRD))
    )
    assert article.paragraphs == (LEAD, SECOND, THIRD)
    assert not article.headings


@pytest.mark.parametrize(
    "caption",
    [
        '<p class="caption">开放当天的城市书房外景</p>',
        '<figure><img src="/b.jpg"><figcaption>开放当天，市民在书房阅读</figcaption></figure>',
        '<p class="wp-caption-text">开放当天，市民在书房阅读</p>',
        '<p class="pictext">市民在书房里看书，孩子们在一旁的绘本区翻看图书</p>',
        "<p>图注：开放当天的城市书房</p>",
        "<p>◎ 开放当天的城市书房</p>",
        "<p>◎ 开放当天，书房里坐满了读者，不少人是一家几口专程赶来的，还有人带着午饭</p>",
        "<p>（图片）市民在城市书房里阅读</p>",
    ],
    ids=[
        "class-caption",
        "figcaption",
        "wp-caption",
        "pictext",
        "tuzhu",
        "ring",
        "long-ring",
        "removed-photo",
    ],
)
def test_captions_the_layout_or_wording_marks_are_not_read(caption: str) -> None:
    article = extract_html(portal(_paragraphs(LEAD) + caption + _paragraphs(SECOND)))
    assert article.paragraphs == (LEAD, SECOND)
    assert not article.headings  # nor read as a subheading


def test_a_ring_point_with_sentences_is_read() -> None:
    point = "◎ 第一，书房实行免费开放。读者凭身份证即可入馆。"
    article = extract_html(portal(_paragraphs(LEAD, point, SECOND)))
    assert point in article.paragraphs


def test_a_long_paragraph_classed_as_a_caption_is_still_read() -> None:
    long = "据介绍，" + "城市书房由街道和图书馆共同运营，" * 7 + "全年无休。"
    article = extract_html(portal(_paragraphs(LEAD) + f'<p class="caption">{long}</p>'))
    assert long in article.paragraphs


@pytest.mark.parametrize(
    "promotion",
    [
        "本文首发于微信公众号“城市观察”（ID：csgc2024），转载请联系授权。",
        "本文首发于“城市观察”公众号（ID：csgc001），作者：周宁。",
    ],
)
def test_first_published_notices_are_not_read(promotion: str) -> None:
    article = extract_html(portal(_paragraphs(LEAD, SECOND, promotion)))
    assert article.paragraphs == (LEAD, SECOND)


def test_a_profile_link_in_parentheses_is_not_read() -> None:
    said = (
        '市图书馆馆长张敏（<a href="https://weibo.example/x">微博</a>）说，书房全年无休，'
        "节假日照常开放。"
    )
    article = extract_html(portal(_paragraphs(LEAD) + f"<p>{said}</p>" + _paragraphs(SECOND)))
    assert "市图书馆馆长张敏说，书房全年无休，节假日照常开放。" in article.paragraphs
    assert "微博" not in _everything(article)


def test_an_author_credit_inside_a_paragraph_is_not_read() -> None:
    text = "书房每天开放十二小时（作者：某某日报记者 王蕾），节假日照常开放。"
    article = extract_html(portal(_paragraphs(LEAD, text, SECOND)))
    assert "书房每天开放十二小时，节假日照常开放。" in article.paragraphs
    kept = "书房共有藏书两万册（其中少儿读物五千册），全部免费借阅。"
    assert kept in extract_html(portal(_paragraphs(LEAD, kept))).paragraphs


def test_a_further_reading_box_inside_the_story_is_skipped() -> None:
    other = (
        "去年全市新建城市书房12家，累计接待读者超过200万人次，外借图书46万册，"
        "举办各类阅读活动1300多场，参与读者达到15万人次，读者满意度连续三年超过95%。"
    )
    box = (
        '<div class="related-box"><h4>延伸阅读</h4><p><a href="/n/1.html">全市已建成城市书房'
        f"30家</a></p><p>{other}</p></div>"
    )
    article = extract_html(portal(_paragraphs(LEAD) + box + _paragraphs(SECOND, THIRD)))
    assert article.paragraphs == (LEAD, SECOND, THIRD)


def test_a_further_reading_box_after_the_story_ends_it() -> None:
    box = (
        '<div class="ext-read"><p>延伸推荐</p><p><a href="/n/1.html">全市已建成城市书房30家</a>'
        "</p><p>去年全市新建城市书房12家，累计接待读者超过200万人次。</p></div>"
    )
    article = extract_html(portal(_paragraphs(LEAD, SECOND) + box))
    assert article.paragraphs == (LEAD, SECOND)


@pytest.mark.parametrize(
    "videos",
    [
        "<p>相关视频：</p><p>探访城市书房：夜里十点的读者</p><p>书房里的绘本课，孩子们抢着报名</p>",
        "<p>相关视频：城市书房是怎么建成的</p>",
    ],
    ids=["label-then-titles", "label-and-title"],
)
def test_related_video_titles_are_not_read(videos: str) -> None:
    article = extract_html(portal(_paragraphs(LEAD, SECOND) + videos))
    assert article.paragraphs == (LEAD, SECOND)


def test_a_block_quote_in_the_middle_of_the_story_is_read() -> None:
    quote = "“下班回来都九点多了，现在吃完饭还能过来坐一会儿。”在附近上班的小郑说。"
    body = _paragraphs(LEAD) + f"<blockquote><p>{quote}</p></blockquote>" + _paragraphs(SECOND)
    article = extract_html(portal(body))
    assert article.paragraphs == (LEAD, quote, SECOND)


def test_a_first_subheading_that_repeats_the_headlines_tail_is_read() -> None:
    page = portal(
        "<h2>城市书房今天开放</h2>" + _paragraphs(LEAD, SECOND),
        title="全市首家24小时城市书房今天开放_某某新闻网",
        headline="<h1>全市首家24小时 城市书房今天开放</h1>",
    )
    article = extract_html(page)
    assert article.blocks[0].kind is BlockKind.HEADING
    assert article.blocks[0].text == "城市书房今天开放"


def test_a_document_title_inside_the_body_is_read() -> None:
    page = portal(
        '<p style="text-align:center"><strong>4月份CPI同比上涨0.3%</strong></p>'
        + _paragraphs(LEAD, SECOND),
        title="国家统计局：4月份CPI同比上涨0.3%",
        headline="<h1>国家统计局：4月份CPI同比上涨0.3%</h1>",
    )
    article = extract_html(page)
    assert article.blocks[0].text == "4月份CPI同比上涨0.3%"


def test_both_lines_of_a_two_line_headline_block_in_the_body_are_read() -> None:
    block = (
        '<p style="text-align:center"><strong>海关总署：</strong></p>'
        '<p style="text-align:center"><strong>一季度跨境电商进出口1.22万亿元</strong></p>'
    )
    page = portal(
        block + _paragraphs(LEAD, SECOND),
        title="海关总署：一季度跨境电商进出口同比增长9.6%",
        headline="<h1>海关总署：一季度跨境电商进出口同比增长9.6%</h1>",
    )
    article = extract_html(page)
    assert article.blocks[0].kind is BlockKind.HEADING
    assert article.blocks[0].text == "海关总署：一季度跨境电商进出口1.22万亿元"
