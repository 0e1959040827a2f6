"""Sentences and segments: where text is cut, what each segment says, and the pauses between."""

from __future__ import annotations

import itertools
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsreader.errors import ExtractionError
from newsreader.models import Article, Block, BlockKind, Pause, Script, SegmentKind
from newsreader.text.normalize import is_speakable, normalize_for_speech, to_script
from newsreader.text.segment import (
    EDGE_REQUEST_BYTES,
    MAX_SEGMENT_CHARS,
    build_script,
    escaped_size,
    split_sentences,
)

H, P = BlockKind.HEADING, BlockKind.PARAGRAPH


def article(title: str, *blocks: tuple[BlockKind, str]) -> Article:
    return Article(title=title, blocks=tuple(Block(kind, text) for kind, text in blocks))


# ── split_sentences ───────────────────────────────────────────────────────────────────────────────

SPLITS = [
    ("full-stops", "今天晴。明天雨。", ["今天晴。", "明天雨。"]),
    ("no-end", "没有句号", ["没有句号"]),
    ("empty", "", []),
    ("quote-after-end", "他说：“今天很好。”明天再说。", ["他说：“今天很好。”", "明天再说。"]),
    ("quoted-ellipsis", "“……。”后面", ["“……。”", "后面"]),
    ("corner-quotes", "「你好。」他说。", ["「你好。」", "他说。"]),
    ("double-corner-quotes", "『好！』『行！』", ["『好！』", "『行！』"]),
    ("book-title-after-end", "读了《三体。》很好", ["读了《三体。》", "很好"]),
    ("bracket-after-end", "（完。）下一段", ["（完。）", "下一段"]),
    ("lenticular-after-end", "【快讯。】正文", ["【快讯。】", "正文"]),
    ("ellipsis", "好吧……走吧", ["好吧……", "走吧"]),
    ("single-ellipsis", "等等…来了", ["等等…", "来了"]),
    ("mixed-ends", "真的吗？！好吧", ["真的吗？！", "好吧"]),
    ("exclamations", "太好了！！！走", ["太好了！！！", "走"]),
    ("semicolon", "第一；第二", ["第一；", "第二"]),
    ("ascii-semicolon-before-latin", "第一;third", ["第一;third"]),
    ("ascii-question-then-cjk", "为什么?因为", ["为什么?", "因为"]),
    ("decimal", "圆周率是3.14。好", ["圆周率是3.14。", "好"]),
    ("version", "版本v2.0.1发布。", ["版本v2.0.1发布。"]),
    ("domain", "访问example.com即可。", ["访问example.com即可。"]),
    ("url-question-mark", "见https://a.com/?q=1!x 好。", ["见https://a.com/?q=1!x 好。"]),
    ("us-abbreviation", "The U.S. economy grew. 中国", ["The U.S. economy grew. ", "中国"]),
    ("title-abbreviation", "Mr. Smith left. He said hi!", ["Mr. Smith left. ", "He said hi!"]),
    ("initials", "J. K. Rowling wrote.", ["J. K. Rowling wrote."]),
    ("english-in-chinese", "他说Hello world. 然后走了。", ["他说Hello world. ", "然后走了。"]),
    ("latin-stop-then-cjk", "OK.好的", ["OK.", "好的"]),
    ("ascii-ellipsis", "Wait... what?", ["Wait... ", "what?"]),
    ("ascii-quote-closing", 'He said "Hi." Then left.', ['He said "Hi." ', "Then left."]),
    ("ascii-quote-opening", '他说。"你好"', ["他说。", '"你好"']),
    ("whitespace-kept", "句子。  \n下一句", ["句子。  \n", "下一句"]),
    ("leading-space", "  开头。", ["  开头。"]),
    ("only-blank", "   ", ["   "]),
    ("long-no-end", "很长" * 300, ["很长" * 300]),
]


@pytest.mark.parametrize(("text", "sentences"), [r[1:] for r in SPLITS], ids=[r[0] for r in SPLITS])
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


_SENTENCE_ALPHABET = st.sampled_from(
    [
        *"。！？；…!?;.”’」』）》】\"' \n中文字aZ09,，：“「（《",
        *["U.S.", "3.14", "v2.0.1", "Mr.", "……", "https://a.cn/?x=1"],
    ]
)


@given(st.lists(_SENTENCE_ALPHABET, max_size=40).map("".join))
def test_split_sentences_rejoins_to_the_input(text: str) -> None:
    sentences = split_sentences(text)
    assert "".join(sentences) == text
    assert all(sentences)


# ── build_script: structure ───────────────────────────────────────────────────────────────────────

NEWS = article(
    "标题：经济发展",
    (P, "导语第一句。导语第二句。"),
    (H, "第一部分"),
    (P, "内容一。"),
    (P, "内容二。"),
    (H, "★★"),  # nothing to say: no segment, no chapter
    (P, "仍属第一部分。"),
    (H, "第二部分"),
    (P, "结尾2024年7月2日。"),
)


@pytest.mark.parametrize(
    ("read_title", "expected", "chapters"),
    [
        (
            True,
            [
                (SegmentKind.TITLE, -1, 0, Pause.HEADING, "标题：经济发展"),
                (SegmentKind.BODY, 0, 0, Pause.PARAGRAPH, "导语第一句。导语第二句。"),
                (SegmentKind.HEADING, 1, 1, Pause.HEADING, "第一部分"),
                (SegmentKind.BODY, 2, 1, Pause.PARAGRAPH, "内容一。"),
                (SegmentKind.BODY, 3, 1, Pause.PARAGRAPH, "内容二。"),
                (SegmentKind.BODY, 5, 1, Pause.PARAGRAPH, "仍属第一部分。"),
                (SegmentKind.HEADING, 6, 2, Pause.HEADING, "第二部分"),
                (SegmentKind.BODY, 7, 2, Pause.END, "结尾二〇二四年七月二日。"),
            ],
            ("标题：经济发展", "第一部分", "第二部分"),
        ),
        (
            False,
            [
                (SegmentKind.BODY, 0, 0, Pause.PARAGRAPH, "导语第一句。导语第二句。"),
                (SegmentKind.HEADING, 1, 1, Pause.HEADING, "第一部分"),
                (SegmentKind.BODY, 2, 1, Pause.PARAGRAPH, "内容一。"),
                (SegmentKind.BODY, 3, 1, Pause.PARAGRAPH, "内容二。"),
                (SegmentKind.BODY, 5, 1, Pause.PARAGRAPH, "仍属第一部分。"),
                (SegmentKind.HEADING, 6, 2, Pause.HEADING, "第二部分"),
                (SegmentKind.BODY, 7, 2, Pause.END, "结尾二〇二四年七月二日。"),
            ],
            ("标题：经济发展", "第一部分", "第二部分"),
        ),
    ],
    ids=["with-title", "without-title"],
)
def test_kinds_pauses_and_chapters(
    read_title: bool, expected: list[tuple[SegmentKind, int, int, Pause, str]], chapters: tuple[str]
) -> None:
    script = build_script(NEWS, locale="zh-CN", read_title=read_title)
    got = [(s.kind, s.block, s.chapter, s.pause, s.text) for s in script.segments]
    assert got == expected
    assert script.chapters == chapters
    assert [s.index for s in script.segments] == list(range(len(expected)))
    assert script.title == "标题：经济发展"
    assert script.article is NEWS


@pytest.mark.parametrize(
    ("source", "read_title", "chapters", "segment_chapters"),
    [
        (article("题", (P, "一。"), (P, "二。")), True, ("题",), [0, 0, 0]),
        (article("题", (P, "一。"), (P, "二。")), False, ("题",), [0, 0]),
        # No lead and no title read: chapter 0 would be empty, so the headings are 0 and 1.
        (
            article("题", (H, "甲"), (P, "一。"), (H, "乙"), (P, "二。")),
            False,
            ("甲", "乙"),
            [0, 0, 1, 1],
        ),
        (article("題", (H, "甲"), (P, "一。")), True, ("题", "甲"), [0, 1, 1]),
    ],
    ids=["no-headings", "no-headings-no-title", "empty-chapter-zero-dropped", "title-chapter"],
)
def test_chapter_assignment(
    source: Article, read_title: bool, chapters: tuple[str, ...], segment_chapters: list[int]
) -> None:
    script = build_script(source, locale="zh-CN", read_title=read_title)
    assert script.chapters == chapters
    assert [s.chapter for s in script.segments] == segment_chapters


def test_display_is_the_written_sentence_and_sentences_the_spoken_one() -> None:
    script = build_script(article("", (P, "涨了12.5%。 见https://a.cn。")), locale="zh-CN")
    (segment,) = script.segments
    assert segment.display == ("涨了12.5%。", "见https://a.cn。")
    assert segment.sentences == ("涨了百分之十二点五。", "见a点cn。")
    assert segment.text == "".join(segment.sentences)


def test_latin_sentences_keep_a_space_between_them() -> None:
    (segment,) = build_script(article("", (P, "It rose. It fell.")), locale="zh-CN").segments
    assert segment.sentences == ("It rose. ", "It fell.")
    assert segment.text == "It rose. It fell."


def test_unspeakable_sentences_are_dropped() -> None:
    (segment,) = build_script(article("", (P, "★★★。正文。 ★！（）")), locale="zh-CN").segments
    assert segment.display == ("正文。",)


@pytest.mark.parametrize(
    ("locale", "title", "paragraph", "spoken_title", "display"),
    [
        ("zh-CN", "經濟發展", "頭髮產業增長3.5萬元。", "经济发展", "头发产业增长3.5万元。"),
        ("zh-TW", "经济发展", "头发产业增长3.5万元。", "經濟發展", "頭髮產業增長3.5萬元。"),
        ("zh-HK", "经济发展", "里面。", "經濟發展", "裏面。"),
    ],
    ids=["traditional-to-simplified", "simplified-to-taiwan", "simplified-to-hong-kong"],
)
def test_script_conversion(
    locale: str, title: str, paragraph: str, spoken_title: str, display: str
) -> None:
    script = build_script(article(title, (P, paragraph)), locale=locale)
    assert script.title == spoken_title
    assert script.chapters == (spoken_title,)
    assert script.segments[0].text == spoken_title
    assert script.segments[1].display == (display,)


def test_spoken_numbers_follow_the_locale() -> None:
    script = build_script(article("", (P, "增长3.5万元。")), locale="zh-TW")
    assert script.segments[0].text == "增長三點五萬元。"


@pytest.mark.parametrize(
    "source",
    [article(""), article("★", (P, "……"), (H, "  ")), article("🎉", (P, "。。"))],
    ids=["empty", "ornaments-and-punctuation", "emoji-title"],
)
def test_nothing_to_say_is_an_extraction_error(source: Article) -> None:
    with pytest.raises(ExtractionError, match="nothing to read"):
        build_script(source, locale="zh-CN")


def test_title_only_read_without_title_is_an_extraction_error() -> None:
    with pytest.raises(ExtractionError):
        build_script(article("只有标题"), locale="zh-CN", read_title=False)


@pytest.mark.parametrize("max_chars", [0, 19, MAX_SEGMENT_CHARS + 1, 4096])
def test_max_chars_out_of_range_is_refused(max_chars: int) -> None:
    with pytest.raises(ValueError, match="max_chars"):
        build_script(article("题"), locale="zh-CN", max_chars=max_chars)


def test_the_largest_segment_fits_an_edge_request_even_if_all_ampersands() -> None:
    assert escaped_size("&" * MAX_SEGMENT_CHARS) < EDGE_REQUEST_BYTES
    assert escaped_size("\U0001f600" * MAX_SEGMENT_CHARS) < EDGE_REQUEST_BYTES


# ── build_script: long paragraphs and sentences ───────────────────────────────────────────────────


def _body(script: Script) -> list[str]:
    return [s.text for s in script.segments if s.kind is SegmentKind.BODY]


def test_a_paragraph_that_fits_is_one_segment() -> None:
    text = "这是一句话。" * 40  # 240 characters
    assert _body(build_script(article("", (P, text)), locale="zh-CN")) == [text]


def test_a_long_paragraph_splits_at_sentence_ends_into_balanced_pieces() -> None:
    sentence = "这" * 99 + "。"  # 100 characters
    script = build_script(article("", (P, sentence * 5)), locale="zh-CN", max_chars=250)
    body = script.segments
    assert [len(s.text) for s in body] == [200, 200, 100]
    assert all(len(s.sentences) == len(s.display) for s in body)
    assert [s.pause for s in body] == [Pause.SENTENCE, Pause.SENTENCE, Pause.END]


def test_balance_prefers_even_pieces() -> None:
    # Greedy packing would give 240 + 60; balanced packing gives 180 + 120.
    sentences = ["甲" * 59 + "。"] * 5
    script = build_script(article("", (P, "".join(sentences))), locale="zh-CN", max_chars=250)
    assert [len(s.text) for s in script.segments] == [180, 120]


def test_a_long_sentence_is_cut_at_commas() -> None:
    clause = "这" * 29 + "，"  # 30 characters
    script = build_script(article("", (P, clause * 20 + "完。")), locale="zh-CN", max_chars=100)
    pieces = [d for s in script.segments for d in s.display]
    assert all(len(s.text) <= 100 for s in script.segments)
    assert all(p.endswith("，") for p in pieces[:-1])
    assert "".join(pieces) == clause * 20 + "完。"


def test_a_long_sentence_without_commas_is_cut_between_words() -> None:
    words = ["市委1139工作", "iPhone", "3.14", "2024年", "经济", "GDP"]
    text = "".join(words[i % len(words)] for i in range(200)) + "。"
    script = build_script(article("", (P, text)), locale="zh-CN", max_chars=60)
    pieces = [d for s in script.segments for d in s.display]
    assert len(pieces) > 5
    assert "".join(pieces) == text
    for left, right in itertools.pairwise(pieces):
        assert not (left[-1].isascii() and left[-1].isalnum() and right[0].isascii())
        assert not (left[-1] == "." or right[0] in ".年")
    assert all(len(s.text) <= 60 for s in script.segments)
    # Cut next to a number, the code would lose its context; it never is.
    assert "".join(s.text for s in script.segments).count("幺幺三九") == text.count("1139")


def test_one_enormous_number_is_cut_as_a_last_resort() -> None:
    text = "编号" + "7" * 500 + "。"
    script = build_script(article("", (P, text)), locale="zh-CN", max_chars=100)
    assert all(len(s.text) <= 100 for s in script.segments)
    assert "".join(s.text for s in script.segments).count("七") == 500


# ── build_script: properties ──────────────────────────────────────────────────────────────────────

_BLOCK_ALPHABET = st.sampled_from(
    list("。！？；，、：“”「」（）《》…!?;., 中国经济增长的了在是人年月日个万亿元第")
    + list("0123456789%$¥℃km-/：★😀【】")
    + ["GDP", "iPhone", "https://a.cn/x", "a@b.cn", "U.S.", "3.14", "2024-07-02", "07:42", "&<>"]
)
_BLOCKS = st.lists(
    st.tuples(st.sampled_from([H, P]), st.lists(_BLOCK_ALPHABET, max_size=60).map("".join)),
    min_size=1,
    max_size=6,
)


def _speech_of(script: Script, block: int) -> str:
    return "".join(s.text for s in script.segments if s.block == block)


def _no_space(text: str) -> str:
    return re.sub(r"\s", "", text)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(_BLOCK_ALPHABET, max_size=20).map("".join),
    _BLOCKS,
    st.sampled_from(["zh-CN", "zh-TW"]),
    st.sampled_from([20, 45, 250]),
)
def test_segments_are_speakable_and_within_limits(
    title: str, blocks: list[tuple[BlockKind, str]], locale: str, max_chars: int
) -> None:
    source = article(title, *blocks)
    try:
        script = build_script(source, locale=locale, max_chars=max_chars)
    except ExtractionError:
        assert not any(is_speakable(t) for t in [title, *(text for _, text in blocks)])
        return
    for index, segment in enumerate(script.segments):
        assert segment.index == index
        assert is_speakable(segment.text)
        assert all(is_speakable(s) for s in segment.sentences)
        assert len(segment.sentences) == len(segment.display)
        assert segment.text == "".join(segment.sentences)
        assert len(segment.text) <= max_chars
        assert len(segment.text.encode("utf-8")) <= max_chars * 4
        assert escaped_size(segment.text) < EDGE_REQUEST_BYTES
        assert 0 <= segment.chapter < len(script.chapters)
    assert script.segments[-1].pause is Pause.END
    assert {s.chapter for s in script.segments} == set(range(len(script.chapters)))
    # Every Chinese character of every block is said, in order, even where a sentence was cut.
    for number, (_, text) in enumerate(blocks):
        written = [ch for ch in to_script(text, locale) if "\u4e00" <= ch <= "\u9fff"]
        said = iter(_speech_of(script, number))
        assert all(ch in said for ch in written)


@settings(max_examples=150, deadline=None)
@given(_BLOCKS, st.sampled_from(["zh-CN", "zh-TW"]))
def test_spoken_blocks_rejoin_to_the_normalized_sentences(
    blocks: list[tuple[BlockKind, str]], locale: str
) -> None:
    source = article("标题", *blocks)
    script = build_script(source, locale=locale, max_chars=MAX_SEGMENT_CHARS)
    for number, (_, text) in enumerate(blocks):
        expected = [
            spoken
            for sentence in split_sentences(text)
            if is_speakable(
                spoken := normalize_for_speech(to_script(sentence, locale), locale=locale)
            )
        ]
        # Dropped: whitespace and the sentences with nothing to say.
        assert _no_space(_speech_of(script, number)) == _no_space("".join(expected))


@settings(max_examples=150, deadline=None)
@given(_BLOCKS, st.sampled_from(["zh-CN", "zh-TW"]), st.sampled_from([20, 45, 250]))
def test_displayed_pieces_rejoin_to_the_written_text(
    blocks: list[tuple[BlockKind, str]], locale: str, max_chars: int
) -> None:
    """However a block is cut, its pieces are its own text in order, minus only whitespace and
    pieces with nothing to say: no character a voice could say is lost, added or moved."""
    script = build_script(article("标题", *blocks), locale=locale, max_chars=max_chars)
    for number, (_, text) in enumerate(blocks):
        pieces = [d for s in script.segments if s.block == number for d in s.display]
        assert all(piece.strip() for piece in pieces)
        shown, written = _no_space("".join(pieces)), _no_space(to_script(text, locale))
        rest = iter(written)
        assert all(ch in rest for ch in shown)  # a subsequence: nothing added or reordered

        def sayable(s: str) -> list[str]:
            return [ch for ch in s if unicodedata.category(ch)[0] in "LN"]

        assert sayable(shown) == sayable(written)
