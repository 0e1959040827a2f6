"""The Chinese-news cleanup: pinyin and mojibake repair, line classifiers (both scripts)."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from newsreader.text import clean, wordlist

PRIVATE_USE = re.compile("[\ue000-\uf8ff]")


# ── pinyin annotations ────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("damaged", "repaired"),
    [
        ("手機(jī)蘭州", "手機蘭州"),
        ("新聞網(wǎng)", "新聞網"),
        ("實(shí)施創(chuàng)新", "實施創新"),
        ("轉(zhuǎn)化", "轉化"),
        ("會（huì）議", "會議"),  # full-width parentheses
        ("網wǎng)站", "網站"),  # opening parenthesis lost
        ("網(wǎng站", "網站"),  # closing parenthesis lost
        ("蘭州日?qǐng)?bào)社", "蘭州日報社"),  # lost character restored from the table
        ("兰州日?bào)社", "兰州日报社"),  # ... in the script of its text
        ("蘭州晚?bào)", "蘭州晚報"),
        ("好的(de)", "好的"),  # a neutral-tone particle
        ("使用(AI)技術", "使用(AI)技術"),  # not pinyin
        ("下載(app)", "下載(app)"),  # toneless and not a particle
        ("張三(Zhang San)說", "張三(Zhang San)說"),
        ("(以下簡稱聯席會議)", "(以下簡稱聯席會議)"),
        ("f(x) = 2", "f(x) = 2"),
    ],
)
def test_repair_pinyin(damaged: str, repaired: str) -> None:
    notes: list[str] = []
    assert clean.repair_pinyin(damaged, notes=notes) == repaired
    assert notes == []


def test_a_lost_character_not_in_the_table_is_dropped_with_a_note() -> None:
    notes: list[str] = []
    assert clean.repair_pinyin("某?qǐng)字", notes=notes) == "某字"
    assert len(notes) == 1
    assert "qǐng" in notes[0]
    assert "\n" not in notes[0]


def test_the_seeds_newspaper_name_is_restored(seed_text: str) -> None:
    source_line = next(line for line in seed_text.splitlines() if line.startswith("來源"))
    assert "日報" in clean.repair_pinyin(source_line)


# ── mojibake ──────────────────────────────────────────────────────────────────────────────────


def test_the_seeds_one_byte_shifted_gbk_is_re_read(seed_text: str) -> None:
    repaired, notes = clean.repair_mojibake(clean.repair_pinyin(seed_text))
    repaired = clean.repair_pinyin(repaired)
    # 模, 成 and 保 lost a byte each; the surviving byte and the word list leave one candidate
    assert "新材料規模化合成、" in repaired
    assert "確保科技成果能夠順利轉化" in repaired
    assert not PRIVATE_USE.search(repaired)
    assert "?" not in repaired
    restored = [note for note in notes if note.startswith("restored the lost character")]
    assert [note.split('"')[1] for note in restored] == ["模", "成", "保"]
    assert all("\n" not in note for note in notes)


def test_a_lost_character_the_words_leave_uncertain_takes_its_word_with_it() -> None:
    """件 lost its trail byte: 零? has more than one likely reading, so 零 is not read alone."""
    garbled = _drop_a_byte("这家工厂每年生产各类零件三百万件，产值超过十亿元。", 22)
    repaired, notes = clean.repair_mojibake(garbled)
    assert "生产各类三百万件，产值超过十亿元" in repaired
    assert "零" not in repaired
    assert any(note.startswith('dropped the broken word "零?"') for note in notes)


@pytest.mark.parametrize(
    ("left", "right", "candidates", "expected"),
    [
        ("規", "化", "梗模海", "模"),  # only 模 makes a word: 规模化
        ("化合", "", "唱成出", "成"),  # 合成 is nine times as frequent as 合唱
        ("确", "科技成", "保专桑", "保"),  # 确保|科技|成 against 确|专科|技|成
    ],
)
def test_the_word_list_restores_a_character_it_leaves_no_doubt_about(
    left: str, right: str, candidates: str, expected: str
) -> None:
    assert wordlist.fill(left.replace("規", "规"), right, list(candidates)).char == expected


def test_the_word_list_names_the_broken_word_when_in_doubt() -> None:
    doubtful = wordlist.fill("", "天", list("今明"))  # 今天 and 明天: which day is not certain
    assert doubtful.char is None
    assert (doubtful.left, doubtful.right) == (0, 1)  # the broken word is ?天
    assert wordlist.fill("零", "", list("件售")).char is None
    assert wordlist.fill("", "", list("上下")).char is None  # no neighbours, no evidence
    assert wordlist.fill("规", "化", list("梗海")).char is None  # no word at all


def _drop_a_byte(text: str, at: int) -> str:
    """What a GBK decoder that lost one byte makes of the text (it runs out of step)."""
    data = text.encode("gb18030")
    return (data[:at] + data[at + 1 :]).decode("gb18030", errors="replace")


@pytest.mark.parametrize(
    ("sentence", "at", "recovered"),
    [
        (
            "今天上午，市政府召开新闻发布会，介绍城市建设和交通发展的最新情况。",
            11,
            "召开新闻发布会",
        ),
        ("今天上午，市政府召开新闻发布会，介绍城市建设和交通发展的最新情况。", 17, "新闻发布会"),
        ("今天上午，市政府召开新闻发布会，介绍城市建设和交通发展的最新情况。", 25, "介绍城市建设"),
    ],
)
def test_text_decoded_out_of_step_is_re_read(sentence: str, at: int, recovered: str) -> None:
    garbled = _drop_a_byte(sentence, at)
    assert recovered not in garbled
    repaired, notes = clean.repair_mojibake(garbled)
    assert recovered in repaired
    assert "交通发展的最新情况" in repaired
    assert not PRIVATE_USE.search(repaired) and "\ufffd" not in repaired
    assert notes  # a character at the damage is lost and reported


@pytest.mark.parametrize(
    "text",
    [
        "他會來嗎?我不知道。",
        "你知道为什么?",
        "访问 https://example.com/a.php?id=1 查看。",
        "一切正常，没有任何问题。",
        "標點符號，全形與半形,混用也可以。",
    ],
)
def test_clean_text_is_left_alone(text: str) -> None:
    assert clean.repair_mojibake(text) == (text, [])


@pytest.mark.parametrize(
    "text",
    [
        "會議在\ue001\ue002\ue003召開。",
        "這是?\ue123??的結果",
    ],
)
def test_unrecoverable_runs_are_dropped_and_reported(text: str) -> None:
    repaired, notes = clean.repair_mojibake(text)
    assert not PRIVATE_USE.search(repaired) and "?" not in repaired
    assert len(notes) == 1 and "dropped" in notes[0]


def test_icon_font_characters_away_from_text_go_quietly() -> None:
    assert clean.repair_mojibake("\ue600 分享") == (" 分享", [])


def test_utf8_read_as_latin1_is_re_read() -> None:
    garbled = "新闻标题".encode().decode("cp1252", errors="replace")
    repaired, _ = clean.repair_mojibake(f"標題：{garbled}")
    assert repaired == "標題：新闻标题"


def test_gbk_replacement_characters_are_dropped() -> None:
    repaired, notes = clean.repair_mojibake("正文锟斤拷锟斤拷结束")
    assert repaired == "正文结束"
    assert len(notes) == 1


# ── line classifiers ──────────────────────────────────────────────────────────────────────────

CLASSIFIERS = {
    "spam": clean.is_spam_title,
    "navigation": clean.is_navigation,
    "breadcrumb": clean.is_breadcrumb,
    "editorial": clean.is_editorial,
    "credit": clean.is_credit,
    "caption": clean.is_caption,
    "notice": clean.is_notice,
    "section end": clean.is_section_end,
    "site": clean.is_site_name,
}

# (line, the classifiers that must say yes); the others must say no, except that an editorial
# line may also read as a credit (编辑：张三) and the other way round
LINES = [
    ("人妻中文在线_多人无码在线观看_在线能看三级网站_一区二区三区亚洲综合", {"spam"}),
    ("今日股市行情_明日大盘_今日股市_股票行情_明日股市_大盘预测_股市分析", {"spam"}),
    ("澳門娛樂城_百家樂_真人線上投注", {"spam"}),
    ("首頁| 蘭州| 新聞| 政務| 房產| 旅遊| 汽車| 教育", {"navigation"}),
    ("首页 | 国内 | 国际 | 财经 | 体育 | 娱乐", {"navigation"}),
    ("您的位置:網站首頁 > 數碼> 正文", {"breadcrumb"}),
    ("当前位置：首页 > 新闻中心 > 正文", {"breadcrumb"}),
    ("首页 > 科技湃", {"breadcrumb"}),
    ("責任編輯:王旭偉", {"editorial"}),
    ("责任编辑：张三", {"editorial"}),
    ("来源：澎湃新闻·澎湃号·政务", {"editorial"}),
    ("來源: 蘭州日報", {"editorial"}),
    ("原标题：某地召开会议", {"editorial"}),
    ("【编辑：姚昊】", {"editorial"}),
    ("責編：Demi Xia", {"editorial"}),
    ("校对 李四", {"editorial"}),
    ("關閉", {"editorial"}),
    ("【关闭窗口】", {"editorial"}),
    ("打印本页 | 关闭", {"editorial"}),
    ("（原题为《是“收割韭菜”还是“回归理性”》）", {"editorial"}),
    ("蘭州日報社全媒體記者 華靜 通訊員 權冬玲", {"credit"}),
    ("（记者 张三 李四）", {"credit"}),
    ("采写：南都记者 余毅菁 向雪妮", {"credit"}),
    ("文/张三 图/李四", {"credit"}),
    ("执笔/叨叨姐、胡一刀", {"credit"}),
    ("澎湃新闻记者 贺梨萍", {"credit"}),
    ("图为山西品牌丝路行启动仪式。（刘通摄）", {"caption"}),
    ("视频截图", {"caption"}),
    ("图片来源：视觉中国", {"caption"}),
    ("本文为CSDN原创文章，未经允许不得转载", {"notice"}),
    ("【免责声明】本文仅代表作者本人观点，与本网无关。", {"notice"}),
    ("微信扫一扫关注该公众号", {"notice"}),
    ("相关新闻", {"section end"}),
    ("推薦閱讀", {"section end"}),
    ("评论(15)", {"section end"}),
    ("为您推荐", {"section end"}),
    ("手機蘭州新聞網", {"site"}),
    ("人民网", {"site"}),
    # story text: nothing may claim it
    ("記者從市科技局了解到,為深入實施創新驅動發展戰略,圍繞市委工作部署。", set()),
    ("记者了解到，该项目已于上月完工。", set()),
    ("澳门特区政府今天举办亚洲美食节，吸引大批游客。", set()),
    ("共治共享", set()),
    ("發揮聯席會議制度新功能", set()),
    ("推动设计创新", set()),
    ("来源于基层的经验值得推广。", set()),
    ("关闭的工厂重新开工，工人们回到岗位。", set()),
    ("新華社巴黎12月9日電（記者唐霽）法國9日再次爆發全國跨行業大罷工。", set()),
]


@pytest.mark.parametrize(("line", "expected"), LINES)
def test_line_classifiers(line: str, expected: set[str]) -> None:
    said = {name for name, classify in CLASSIFIERS.items() if classify(line)}
    if expected:
        assert expected <= said
        assert said <= expected | {"credit", "editorial"}  # these two may overlap
    else:
        assert said == set()


@pytest.mark.parametrize(
    ("line", "published"),
    [
        ("2024-07-02 07:42:11 智能朗讀:", datetime(2024, 7, 2, 7, 42, 11)),
        ("2019-09-26 12:11来源：证券时报网作者：李在山", datetime(2019, 9, 26, 12, 11)),
        ("2020-06-06 10:08 来源：澎湃新闻", datetime(2020, 6, 6, 10, 8)),
        ("发布时间：2019年06月15日 08:30 来源：人民网", datetime(2019, 6, 15, 8, 30)),
        ("2012年6月24日", datetime(2012, 6, 24)),
        ("發布日期：2016/11/22 瀏覽次數：", datetime(2016, 11, 22)),
        ("2019年2月27日下午，佛山顺德区大良街道党工委委员一行到众创金融街调研。", None),
        ("1-10月，全县固定资产投资完成246.79亿元。", None),
        ("2024-13-45 07:42", None),
        ("共治共享", None),
    ],
)
def test_parse_dateline(line: str, published: datetime | None) -> None:
    expected = published.replace(tzinfo=clean.CHINA_TZ) if published else None
    assert clean.parse_dateline(line) == expected


@pytest.mark.parametrize(
    ("line", "heading"),
    [
        ("共治共享", True),
        ("發揮聯席會議制度新功能", True),
        ("一、基本情况", True),
        ("提示嗅觉和味觉丧失的人应该自我隔离", True),
        ("記者從市科技局了解到,為深入實施創新驅動發展戰略。", False),
        ("英国《泰晤士报》：", False),
        ("——（宋）陆游", False),
        ("2012年6月24日", False),
        ("EN", False),
        ("这是一个非常长的句子没有任何标点符号但是长度已经超过了三十个字所以不能算作标题", False),
    ],
)
def test_looks_like_heading(line: str, heading: bool) -> None:
    assert clean.looks_like_heading(line) is heading


@pytest.mark.parametrize(
    ("text", "traditional"),
    [("蘭州日報社全媒體記者", True), ("兰州日报社全媒体记者", False), ("共治共享", False)],
)
def test_is_traditional(text: str, traditional: bool) -> None:
    assert clean.is_traditional(text) is traditional
