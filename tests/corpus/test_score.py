"""The scorer and the gold format: what counts as a character, how recall and precision move, and
how a gold made of anchors is cut back out of its page."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsreader.models import Article, Block, BlockKind
from newsreader.text.score import (
    MAX_ANCHOR,
    GoldError,
    Score,
    article_text,
    common_length,
    line_digest,
    mean_score,
    page_text,
    parse_gold,
    reading_chars,
    score,
)

STORY = "市图书馆明天闭馆一天。读者可以在网上续借图书。"


@pytest.mark.parametrize(
    ("text", "chars"),
    [
        ("你好，世界！", "你好世界"),
        ("GDP增长5%。", "GDP增长5"),
        ("  空 格\n换行\u3000全角 ", "空格换行全角"),
        ("ＧＤＰ１２３", "GDP123"),  # full width folds (NFKC)
        ("好😀👍🏻★●", "好"),  # emoji and ornaments are not said
        ("“引号”《书名》——破折号……", "引号书名破折号"),
        ("", ""),
    ],
    ids=[
        "cjk-punctuation",
        "latin-digits",
        "whitespace",
        "full-width",
        "emoji",
        "quotes",
        "empty",
    ],
)
def test_reading_chars(text: str, chars: str) -> None:
    assert reading_chars(text) == chars


def test_the_gold_itself_scores_one() -> None:
    result = score(STORY, STORY)
    assert (result.recall, result.precision, result.f1) == (1.0, 1.0, 1.0)


def test_punctuation_and_layout_do_not_count() -> None:
    result = score(STORY, "市图书馆明天闭馆一天\n\n读者可以在网上续借图书 …")
    assert (result.recall, result.precision) == (1.0, 1.0)


def test_a_missing_sentence_lowers_recall_only() -> None:
    result = score(STORY, "市图书馆明天闭馆一天。")
    assert result.precision == 1.0
    assert result.recall == pytest.approx(10 / 21)


def test_junk_read_lowers_precision_only() -> None:
    junk = "责任编辑：张三"
    result = score(STORY, STORY + junk)
    assert result.recall == 1.0
    assert result.precision == pytest.approx(21 / 27)


def test_order_counts() -> None:
    first, second = "市图书馆明天闭馆一天。", "读者可以在网上续借图书。"
    swapped = score(first + second, second + first)
    assert swapped.recall < 0.6 and swapped.precision < 0.6


_SMALL_ALPHABET = st.text(st.sampled_from("ab的是了，"), max_size=40)


@given(_SMALL_ALPHABET, _SMALL_ALPHABET)
def test_common_length_is_the_longest_common_subsequence(a: str, b: str) -> None:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
            )
    assert common_length(a, b) == table[-1][-1]


def test_nothing_read() -> None:
    result = score(STORY, "")
    assert (result.recall, result.precision, result.f1) == (0.0, 0.0, 0.0)
    assert Score(gold=0, read=0, shared=0).precision == 1.0


def test_mean_weighs_pages_alike() -> None:
    assert mean_score([Score(10, 10, 10), Score(1000, 2000, 500)]) == (0.75, 0.625)
    with pytest.raises(ValueError, match="no scores"):
        mean_score([])


def test_article_text_is_the_title_then_every_block() -> None:
    article = Article(
        title="标题",
        blocks=(Block(BlockKind.PARAGRAPH, "第一段。"), Block(BlockKind.HEADING, "小标题")),
    )
    assert article_text(article) == "标题\n第一段。\n小标题"


_TEXT = st.text(st.sampled_from("市图书馆明天闭馆一天读者可以网上续借，。！ ab12"), max_size=60)


@given(_TEXT, _TEXT)
def test_recall_and_precision_stay_in_range(gold: str, read: str) -> None:
    result = score(gold, read)
    assert 0.0 <= result.recall <= 1.0 and 0.0 <= result.precision <= 1.0
    assert result.shared <= min(result.gold, result.read)


@given(_TEXT, _TEXT)
def test_reading_more_never_lowers_recall(gold: str, extra: str) -> None:
    assert score(gold, gold + extra).recall == 1.0
    if reading_chars(gold):  # reading nothing at all is precise about nothing
        assert score(gold + extra, gold).precision == 1.0


# ── page text ─────────────────────────────────────────────────────────────────────────────────

PAGE = """<!DOCTYPE html><html><head><title>城市书房开放_某某网</title>
<script>var x = "脚本里的字";</script><style>p {color: red}</style></head>
<body><div class="nav"><a href="/">首页</a> | <a href="/n">新闻</a></div>
<h1>城市书房今天开放</h1><p class="date">2024-07-02 07:42 来源：某某网</p>
<p>　　本市第一家二十四小时城市书房今天开放。<br>市民可以免费借阅图书。</p>
<p><img src="a.jpg"></p><p>图为城市书房。（张三摄）</p>
<p>记者从市文旅局了解到，书房藏书一万余册。</p>
<!-- 注释里的字 --><p>责任编辑：李四</p>
</body></html>
<p>工作人员介绍，书房将定期举办讲座。（王五）</p>
"""


def test_page_text_is_the_visible_text_line_by_line() -> None:
    lines = page_text(PAGE).split("\n")
    assert lines[0] == "城市书房开放_某某网"  # the <title> first
    assert "本市第一家二十四小时城市书房今天开放。" in lines  # indentation squeezed away
    assert "市民可以免费借阅图书。" in lines  # <br> breaks a line
    assert not any(word in page_text(PAGE) for word in ("脚本里的字", "color", "注释里的字"))
    # a browser shows what follows an early </html>, and so does the page text
    assert lines[-1] == "工作人员介绍，书房将定期举办讲座。（王五）"


# ── gold files ────────────────────────────────────────────────────────────────────────────────

GOLD = """# the photo caption, the editor line and the closing credit are left out
title 城市书房今天开放
para 本市第一家 … 借阅图书。
skip 图为城市书房
para 记者从市文旅 … 书一万余册。
para 工作人员介绍 … 定期举办讲座
more 。
"""


def test_a_gold_is_cut_back_out_of_its_page() -> None:
    gold = parse_gold("page", GOLD.splitlines())
    assert gold.rebuild(PAGE) == [
        ("title", "城市书房今天开放"),
        ("para", "本市第一家二十四小时城市书房今天开放。 市民可以免费借阅图书。"),
        ("para", "记者从市文旅局了解到，书房藏书一万余册。"),
        ("para", "工作人员介绍，书房将定期举办讲座。"),
    ]
    assert gold.text(PAGE).startswith("城市书房今天开放\n本市第一家")


def test_a_block_starts_a_line_and_a_single_anchor_is_a_whole_line() -> None:
    # 市民可以 begins a line; 免费借阅 does not, so a paragraph cannot start there
    assert parse_gold("g", ["title 城市书房今天开放", "para 市民可以 … 图书。"]).rebuild(PAGE)
    with pytest.raises(GoldError, match="block 2"):
        parse_gold("g", ["title 城市书房今天开放", "para 免费借阅 … 图书。"]).rebuild(PAGE)
    with pytest.raises(GoldError, match="block 1"):
        parse_gold("g", ["title 城市书房"]).rebuild(PAGE)  # a part of a line, not a line


def test_a_short_line_is_named_by_its_digest() -> None:
    lines = ["title 城市书房今天开放", f"para #{line_digest('市民可以免费借阅图书。')}"]
    assert parse_gold("g", lines).rebuild(PAGE)[1] == ("para", "市民可以免费借阅图书。")
    wrong = ["title 城市书房今天开放", f"para #{line_digest('市民可以免费借阅图书')}"]
    with pytest.raises(GoldError, match="block 2"):
        parse_gold("g", wrong).rebuild(PAGE)  # a digest names a whole line, exactly


def test_blocks_are_found_in_order() -> None:
    later_first = [
        "title 城市书房今天开放",
        "para 记者从市文旅 … 万余册。",
        "para 本市第一家 … 图书。",
    ]
    with pytest.raises(GoldError, match=r"block 3 \(para '本市第一家'\)"):
        parse_gold("g", later_first).rebuild(PAGE)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["para 本市第一家 … 图书。"], "starts with its title"),
        (["title 城市书房今天开放", "title 城市书房今天开放"], "exactly one title"),
        (["title 城市书房今天开放", "note 什么"], "unknown kind 'note'"),
        (["title 城市书房今天开放", "para " + "长" * (MAX_ANCHOR + 1)], "longer than"),
        (["title 城市书房今天开放", "para 一 … 二 … 三"], "START … END"),
        (["title 城市书房今天开放", "skip 一 … 二"], "one anchor"),
        (["more 本市第一家"], "needs a block before it"),
        (["title 城市书房今天开放", "more #0123456789ab"], "not a line's digest"),
        ([], "starts with its title"),
    ],
    ids=[
        "no-title",
        "two-titles",
        "unknown-kind",
        "long-anchor",
        "three-anchors",
        "skip-span",
        "more-first",
        "more-digest",
        "empty",
    ],
)
def test_malformed_gold_is_refused(lines: list[str], message: str) -> None:
    with pytest.raises(GoldError, match=message):
        parse_gold("g", lines)
