"""Speech forms: the script a voice wants (简/繁) and digits, symbols and links as they are said.

``to_script`` converts characters with OpenCC; ``normalize_for_speech`` rewrites what a voice would
misread: numbers become Chinese numerals (so a zh-CN and a zh-TW voice read them alike), dates,
times, percentages, money, units and symbols become their spoken forms, codes are said digit by
digit (``numbers.code``: 幺 for 1), addresses are read out or summarized by their site, ornaments
and emoji are dropped. Latin words and abbreviations (GDP, iPhone, 5G's G) are kept: the voices
read them. ``tests/text/normalization_cases.tsv`` holds a case for every rule.

The rules run in a fixed order, each one on the output of the previous; a rule that writes Chinese
numerals takes its digits out of reach of the rules after it, so the specific rules (dates,
phone numbers, percentages) come before the general ones (decimals, plain integers).

Words inserted here are written in Simplified Chinese and converted for a Traditional locale;
the text around them is left in whatever script it came in.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import opencc

from newsreader.text.numbers import code, digits, fraction_digits, integer, number, roman

# ── script (简/繁) ────────────────────────────────────────────────────────────────────────────────

# Character-level configurations: s2tw/s2hk change characters and Taiwan/Hong Kong variants, never
# vocabulary (s2twp would turn 软件 into 軟體 and rewrite what the article says).
_OPENCC_CONFIG: dict[str, str] = {
    "zh-CN": "t2s",
    "zh-SG": "t2s",
    "zh-TW": "s2tw",
    "zh-HK": "s2hk",
    "zh-MO": "s2hk",
}
_SIMPLIFIED_LOCALES = frozenset(k for k, v in _OPENCC_CONFIG.items() if v == "t2s")


@functools.cache
def _converter(config: str) -> opencc.OpenCC:
    # Loading a configuration reads its dictionaries from disk: do it once per process.
    return opencc.OpenCC(config)


def _config_for(locale: str) -> str:
    try:
        return _OPENCC_CONFIG[locale]
    except KeyError:
        known = ", ".join(_OPENCC_CONFIG)
        raise ValueError(f"no Chinese script for locale {locale!r}: use one of {known}") from None


def to_script(text: str, locale: str) -> str:
    """``text`` in the script the locale's voices read: Simplified (zh-CN) or Traditional (zh-TW,
    zh-HK), converted character by character."""
    config = _config_for(locale)
    if not text:
        return text
    result: str = _converter(config).convert(text)
    return result


@functools.lru_cache(maxsize=4096)
def _inserted(words: str, locale: str) -> str:
    # The words rules insert (三点五万, 摄氏度, 网址) repeat endlessly: convert each spelling once.
    if locale != "zh-CN":
        # 幺 for 1 in codes is the mainland's habit; Taiwan, Hong Kong (Cantonese) and Singapore
        # say 一, and OpenCC would turn 幺 into 么.
        words = words.replace("幺", "一")
    return words if locale in _SIMPLIFIED_LOCALES else to_script(words, locale)


def is_speakable(text: str) -> bool:
    """True when ``text`` holds something a voice can say: a letter or digit of any script.

    Whitespace, punctuation and symbols alone are silence (or an engine error).
    """
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


# ── data ──────────────────────────────────────────────────────────────────────────────────────────

URL_WORD = "网址"
"""Said before the site of a long web address (网址gov点cn): its path helps no listener."""
# After one of these words a long link is said by its site alone (网址：gov点cn), so 网址 is not
# said twice.
_LINK_INTRODUCERS = ("网址", "網址", "链接", "鏈接", "連結", "邮箱", "郵箱", "信箱", "邮件", "郵件")

# Units written after a number → how they are said. Matched longest first, so km/h wins over km
# and mm over m; only after a digit and not before another Latin letter (5min is not 5m + "in").
UNITS: dict[str, str] = {
    "km/h": "公里每小时",
    "m/s": "米每秒",
    "μg/m³": "微克每立方米",
    "µg/m³": "微克每立方米",  # MICRO SIGN, not Greek mu: both occur in pasted text
    "mg/m³": "毫克每立方米",
    "km²": "平方公里",
    "km2": "平方公里",
    "m²": "平方米",
    "㎡": "平方米",
    "cm²": "平方厘米",
    "m³": "立方米",
    "km": "公里",
    "㎞": "公里",
    "cm": "厘米",
    "㎝": "厘米",
    "mm": "毫米",
    "㎜": "毫米",
    "nm": "纳米",
    "m": "米",
    "kg": "千克",
    "㎏": "千克",
    "mg": "毫克",
    "㎎": "毫克",
    "g": "克",
    "mL": "毫升",
    "ml": "毫升",
    "L": "升",
    "kWh": "千瓦时",
    "kW": "千瓦",
    "MW": "兆瓦",
    "GW": "吉瓦",
    "W": "瓦",
    "mAh": "毫安时",
    "V": "伏",
    "kHz": "千赫兹",
    "MHz": "兆赫兹",
    "GHz": "吉赫兹",
    "Hz": "赫兹",
    "mph": "英里每小时",
    "ft": "英尺",
    "ha": "公顷",
    "h": "小时",
    "min": "分钟",
    "ms": "毫秒",
    "℃": "摄氏度",
    "°C": "摄氏度",
    "℉": "华氏度",
    "°F": "华氏度",
    "°": "度",
    # Currency codes written after an amount: 100USD → 100美元.
    "USD": "美元",
    "RMB": "元人民币",
    "CNY": "元人民币",
    "EUR": "欧元",
    "HKD": "港元",
    "JPY": "日元",
    "GBP": "英镑",
}
# GB, MB, TB, Mbps and similar are left alone on purpose: voices say the letters, as people do.

# Currency signs written before an amount → the word said after it ($5 → 五美元).
CURRENCY_SIGNS: dict[str, str] = {
    "US$": "美元",
    "HK$": "港元",
    "NT$": "新台币",
    "$": "美元",
    "¥": "元",
    "€": "欧元",
    "£": "英镑",
    "₩": "韩元",
}

# Measure words and other characters after which a number counts something: 100人, 3个, 2万.
# A run of digits followed by one of these is a quantity, never a code.
_MEASURE_WORDS = (
    "个個位名人次件条條种種家只隻头頭张張台臺辆輛架艘项項座栋棟层層门門所场場届屆期批份款部本册冊"
    "篇首句字页頁章节節集轮輪局盘盤枚颗顆粒块塊片根支把杯瓶袋包箱桶吨噸斤两兩克米里亩畝升度倍成折"
    "岁歲周週天晚夜宗例起户戶组組队隊级級趟班列股手封则則幅双雙对對副国國省市县縣城步代"
    "间間套处處笔筆扇棵株匹圈段遍盒碗盆罐滴声聲顿頓"
)
_MULTIPLIERS = "十百千万萬亿億兆"
_APPROXIMATE = "多余餘来來几幾左以"  # 1000多人, 300余家, 10来个, 100左右, 500以上
_DATE_TIME = "年月日号號时時点點分秒"
_CURRENCY_WORDS = "元圆圓块塊角美欧歐英港日韩韓"
_QUANTITY_AFTER = frozenset(
    _MEASURE_WORDS
    + _MULTIPLIERS
    + _APPROXIMATE
    + _DATE_TIME
    + _CURRENCY_WORDS
    + "".join(word[0] for word in UNITS.values())
    + "%‰"
    + "比到至"  # 112比108, 300到500: a score or a range, not a code
)
# Words before a number that make it a quantity or an ordinal: 第1139, 约1200, 增长到1500.
_QUANTITY_BEFORE = frozenset(
    "第约約近超达達共逾有了为為是至到从從和与與或及比增减減涨漲跌降升占佔过過等每前后後仅僅只计計"
    "合值价價额額率于於在总總之"
)
# 2 before these is 两 (两个, 两万, 两公里); before 月/日/号/楼 it stays 二 (二月, 二号).
_TWO_IS_LIANG = frozenset(
    "个個位名人次件条條种種家只隻头頭张張台臺辆輛架艘项項座栋棟层層场場届屆份部本篇首句页頁章节節"
    "集轮輪局盘盤枚颗顆粒块塊片根支把杯瓶袋包箱桶吨噸斤倍成岁歲周週天晚夜国國年点點小公千万萬亿億"
    "百米克升度元美欧歐英港"
    "分秒时時套间間处處起例宗户戶组組队隊款批道笔筆扇棵株匹口圈亩畝段遍胜勝负負球金银銀铜銅折"
    "双雙对對副幅封则則趟列股门門所盒碗盆罐滴声聲眼回顿頓岸"
)
# Not 两 before 手 (二手), 胎/孩 (二胎), 代 (二代), 审 (二审), 班 (二班), 类 (Ⅱ类), 期 (二期),
# 级 (二级), 号 (二号), 楼 (二楼), 路 (二路), 月 and 日 (二月二日): there 2 is a name, not a count.
_NOT_LIANG_WORDS = ("年级", "年級")  # 2年 is 两年, 2年级 二年级

# Numbers that are dialled or keyed in are said digit by digit with 幺 (see numbers.code).
_CODE_WORDS = (
    "拨打", "撥打", "致电", "致電", "电话", "電話", "热线", "熱線", "手机", "手機", "报警", "報警",
    "呼叫", "求助", "邮编", "郵編", "邮政编码", "郵政編碼", "代码", "代碼", "编号", "編號",
    "传真", "傳真", "号码", "號碼", "证号", "證號", "账号", "賬號",
)  # fmt: skip
_EMERGENCY_NUMBERS = frozenset({"110", "119", "120", "122"})
_SERVICE_NUMBER = re.compile(r"12[0-9]{3}|9[56][0-9]{3}|100(?:86|10)")
"""12306, 12345, 12315 (government hotlines), 95588, 96110 (service lines), 10086, 10010."""
_COUNTING_BEFORE = frozenset("达達超约約近共逾计計增减減涨漲跌降升余餘")
"""Before a number these make it a count even after 电话/热线: 热线接听量达12000."""
_CODE_INTRODUCED = re.compile(
    "(?:" + "|".join(_CODE_WORDS) + r")[为為是了：:\s()（）号號码碼0-9〇幺二三四五六七八九-]*\Z"
)
"""A code word right before the number, with nothing between but 为/：/号码 or an area code
(电话：, 拨打了, 手机号码为, 电话(010)); 手机内存为256GB has 内存 between, a count."""
_DESIGNATION_BRANDS = (
    "波音", "空客", "骁龙", "驍龍", "麒麟", "天玑", "天璣", "酷睿", "锐龙", "銳龍", "鲲鹏", "鯤鵬",
    "昇腾", "昇騰", "龙芯", "龍芯", "飞腾", "飛騰",
)  # fmt: skip
"""A number after these names a model, said digit by digit with 一: 波音737, 骁龙865."""
_YEAR_RUN = re.compile(r"(?:19|20)[0-9]{2}")
_YEAR_WORDS = ("届", "屆", "级", "級", "赛季", "賽季", "年度", "财年", "財年", "款", "版")
"""After a four-digit year these say it is one: 2024届, 2019级, 2025赛季."""

# Decorative characters that are punctuation, not symbols, so the category test below misses them.
_ORNAMENTS = frozenset("※•◦‣⁃⁂〓【】〖〗")
# Symbols that carry meaning for the unit rule: kept although their category is "symbol, other".
_KEEP_SYMBOLS = frozenset("℃℉°³²㎡㎞㎏㎜㎝㎎")
# Emoji glue that is not a symbol itself: variation selectors, keycap, zero-width joiner.
_EMOJI_GLUE = frozenset("\ufe0e\ufe0f\u20e3\u200d")

# Full-width forms that are not Chinese punctuation: digits, Latin letters and number signs are
# folded to ASCII so the rules below see one spelling. ！（），：；？～ stay: they are the text's
# punctuation. ．and ：only count as a decimal point / time colon between digits (see below).
_FOLD: dict[int, int | str] = {
    code: code - 0xFEE0
    for code in range(0xFF01, 0xFF5F)
    if chr(code) not in "！（），：；？～｛｝［］＂＇．｜"
}
# Vulgar fractions become digits for the fraction rule: ½ → 1/2 → 二分之一.
_FOLD.update(
    {
        ord(c): f
        for c, f in zip("½⅓⅔¼¾⅕⅛", ("1/2", "1/3", "2/3", "1/4", "3/4", "1/5", "1/8"), strict=True)
    }
)
_FOLD[ord("￥")] = ord("¥")
_FOLD[ord("\u00a0")] = ord(" ")  # no-break space
_FOLD[ord("﹪")] = ord("%")


# ── conversions ───────────────────────────────────────────────────────────────────────────────────


def _is_cjk(ch: str) -> bool:
    return bool(ch) and (
        "\u4e00" <= ch <= "\u9fff"
        or "\u3400" <= ch <= "\u4dbf"
        or "\uf900" <= ch <= "\ufaff"
        or "\U00020000" <= ch <= "\U0003134f"
    )


def _is_latin(ch: str) -> bool:
    return bool(ch) and ch.isascii() and ch.isalpha()


# ── rules ─────────────────────────────────────────────────────────────────────────────────────────

_NUM = r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?"
"""A non-negative decimal, with or without thousands separators."""
_DASH = r"(?:[-~～〜–—]{1,2})"
"""A range dash between two numbers: 3-5, 3～5, 3—5, 3——5."""
_YEAR = r"(?:1[5-9]|20)[0-9]{2}"
"""A four-digit year read digit by digit (1500-2099; 3000年 is three thousand years)."""


@dataclass(frozen=True)
class _Rule:
    why: str
    pattern: re.Pattern[str]
    say: Callable[[re.Match[str]], str]


def _sub(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _say_name(name: str) -> str:
    """A host name or an e-mail's local part as it is read out: letters as written, digits one by
    one (幺 for 1), dots as 点: jubao@12377.cn → jubao at 幺二三七七点cn."""
    name = re.sub(r"[0-9]+", lambda m: code(m.group(0)), name)
    return name.translate(_NAME_MARKS)


def _say_url(match: re.Match[str]) -> str:
    # A bare address (www.12306.cn) is information a listener can use: read it out. A long one
    # with a path or query is not: say 网址 and the site it is on (网址gov点cn).
    parts = _URL_PARTS.match(match.group(0))
    host, rest = (parts.group("host"), parts.group("rest")) if parts else (match.group(0), "")
    if not rest.strip("/"):
        return _say_name(host)
    site = _say_name(host.removeprefix("www."))
    before = match.string[max(0, match.start() - 4) : match.start()]
    if any(intro in before for intro in _LINK_INTRODUCERS):
        return site  # 网址：https://… already says what it is
    return URL_WORD + site


def _say_email(match: re.Match[str]) -> str:
    local, _, domain = match.group(0).rpartition("@")
    return f"{_say_name(local)} at {_say_name(domain)}"


def _say_case_number(match: re.Match[str]) -> str:
    # （2024）京0105民初12345号: the year, then the court's code and the case's serial number,
    # digit by digit. Without the court part (国发〔2024〕5号) only the year is read so.
    year = match.group("open") + digits(match.group("y")) + match.group("close")
    if match.group("n") is None:
        return year
    court = match.group("court") + code(match.group("c") or "")
    return year + court + match.group("kind") + code(match.group("n"))


def _say_temperature_range(match: re.Match[str]) -> str:
    # -5~3℃ → 零下五到三摄氏度: a minus before a temperature is 零下 at either end of the range.
    low, high = match.group("a"), match.group("b")
    if low[0] not in "-−" and high[0] not in "-−":
        return match.group(0)  # the general range rule says it

    def say(value: str) -> str:
        return "零下" + value[1:] if value[0] in "-−" else value

    return say(low) + (match.group("u") or "") + "到" + say(high)


def _say_per_unit(match: re.Match[str]) -> str:
    # 50元/吨 → 每吨50元, 3.5万元/㎡ → 每平方米3.5万元 (the numbers are said later).
    per = match.group("per")
    return f"每{UNITS.get(per, per)}{match.group('n')}{match.group('mult')}{match.group('unit')}"


def _say_designation(match: re.Match[str]) -> str:
    # 歼-20 → 歼二十: a hyphen between a name and a number joins them; it is no minus.
    start = match.start()
    before = match.string[start - 1] if start else ""
    if before in _VALUE_WORDS or before in _QUANTITY_AFTER:
        return match.group(0)  # 气温-3度, 为-0.5, 2日-5日: a sign or a range, said later
    return integer(match.group("n"))


def _say_date(match: re.Match[str]) -> str:
    year, month, day = match.group("y"), int(match.group("m")), int(match.group("d"))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match.group(0)
    return f"{digits(year)}年{integer(str(month))}月{integer(str(day))}日"


def _say_time(match: re.Match[str]) -> str:
    hour, minute, second = match.group("h"), match.group("min"), match.group("s")
    words = ("两" if int(hour) == 2 else integer(str(int(hour)))) + "点"  # 两点, not 二点
    if minute != "00" or (second and second != "00"):
        words += ("零" if minute[0] == "0" and minute != "00" else "") + integer(str(int(minute)))
        words += "分"
    if second and second != "00":
        words += ("零" if second[0] == "0" else "") + integer(str(int(second))) + "秒"
    return words


def _say_percent(match: re.Match[str]) -> str:
    sign = "负" if match.group("sign") in ("-", "−") else ""
    word = "千分之" if match.group("per") == "‰" else "百分之"
    return sign + word + number(match.group("n"))


def _say_percent_range(match: re.Match[str]) -> str:
    word = "千分之" if match.group("per") == "‰" else "百分之"
    link = "到" if match.group("dash") not in ("至", "到") else match.group("dash")
    return f"{word}{number(match.group('a'))}{link}{word}{number(match.group('b'))}"


def _say_money(match: re.Match[str]) -> str:
    # The multiplier stays between amount and currency: $5亿 → 5亿美元; a range names the
    # currency once: $5-10 → 5到10美元. Digits are left for the integer rule, which knows 2美元
    # is 两美元; cents that are zero are not said (¥12.50 → 12.5元).
    amount = _cents(match.group("n"))
    if match.group("n2"):
        amount += "到" + _cents(match.group("n2"))
    return f"{amount}{match.group('mult') or ''}{CURRENCY_SIGNS[match.group('sign')]}"


def _cents(amount: str) -> str:
    """An amount of money without the zeros that end its decimals: 12.50 → 12.5, 3.00 → 3."""
    if "." not in amount:
        return amount
    return amount.rstrip("0").rstrip(".")


def _say_unit(match: re.Match[str]) -> str:
    return match.group("n") + UNITS[match.group("unit")]


def _say_fraction(match: re.Match[str]) -> str:
    numerator, denominator = match.group("a"), match.group("b")
    if int(denominator) == 0:
        return f"{integer(numerator)}比{integer(denominator)}"
    return f"{integer(denominator)}分之{integer(numerator)}"


def _say_version(match: re.Match[str]) -> str:
    # v10.15.7 → 十点十五点七; a part of three digits or more is said digit by digit, as in an
    # address: 192.168.1.1 → 一九二点一六八点一点一.
    return "点".join(
        digits(part) if len(part) >= 3 else integer(part) for part in match.group(0).split(".")
    )


def _say_range(match: re.Match[str]) -> str:
    # Ranges run upwards (3-5天); two plain numbers where the first is not smaller are a score
    # (女排3-0阿根廷, 2-1逆转) and are said with 比.
    low, high = match.group("a"), match.group("b")
    if low.isdigit() and high.isdigit() and int(low) >= int(high):
        return f"{low}比"
    return f"{low}到"


def _say_integer(match: re.Match[str]) -> str:
    run = match.group(0)
    text, start, end = match.string, match.start(), match.end()
    before = text[start - 1] if start else ""
    after = text[end] if end < len(text) else ""
    counted = after in _QUANTITY_AFTER
    if len(run) >= 11 or (len(run) > 1 and run[0] == "0"):
        return code(run)  # phone, ID and account numbers; 0311, 01号: no quantity starts with 0
    if (
        len(run) >= 3
        and not counted
        and before not in _COUNTING_BEFORE
        and _is_code_context(text, start, end, before, run)
    ):
        return code(run)
    if len(run) >= 3 and _is_latin(before):
        return digits(run)  # MH370, A320, C919: a model or flight, said digit by digit
    if len(run) >= 3 and text.endswith(_DESIGNATION_BRANDS, 0, start - (before == " ")):
        return digits(run)  # 波音737, 骁龙865: a model
    if _YEAR_RUN.fullmatch(run) and _is_year(text, end, before, after):
        return digits(run)  # 2024届, 2024中国国际服务贸易交易会, 2035远景目标
    if (
        len(run) >= 3
        and _is_cjk(before)
        and _is_cjk(after)
        and before not in _QUANTITY_BEFORE
        and not counted
    ):
        # Glued between Chinese words with nothing that counts (市委1139工作部署): a code.
        return code(run)
    if (
        run == "2"
        and after in _TWO_IS_LIANG
        and before != "第"
        and not text.startswith(_NOT_LIANG_WORDS, end)
    ):
        return "两"
    return integer(run)


def _is_code_context(text: str, start: int, end: int, before: str, run: str) -> bool:
    """A number that is dialled or keyed in: after 拨打/电话/邮编/代码…, a hotline (110, 12306),
    or six digits in brackets after a company's name (a stock code)."""
    if _CODE_INTRODUCED.search(text, max(0, start - 12), start):
        return True
    if run in _EMERGENCY_NUMBERS:
        return True  # 110, 119, 120, 122 are said as numbers only before a measure word
    if _SERVICE_NUMBER.fullmatch(run):
        # 通过12306网站: a word after it names the service; 超过12000。 is a count
        return before not in _QUANTITY_BEFORE or _is_cjk(text[end : end + 1])
    return len(run) == 6 and before in "（(" and text[end : end + 1] in "）)"


def _is_year(text: str, end: int, before: str, after: str) -> bool:
    """A four-digit year without 年: 2024届, 2019级, 2025赛季, 2024中国…大会."""
    if text.startswith(_YEAR_WORDS, end):
        return not text.startswith("00", end - 2)  # 2000级台阶 counts steps
    return _is_cjk(after) and after not in _QUANTITY_AFTER and before not in _QUANTITY_BEFORE


_UNIT_ALTERNATIVES = "|".join(re.escape(unit) for unit in sorted(UNITS, key=len, reverse=True))
_SIGN_ALTERNATIVES = "|".join(
    re.escape(sign) for sign in sorted(CURRENCY_SIGNS, key=len, reverse=True)
)
_URL_PARTS = re.compile(
    r"(?:(?:https?|ftp)://)?(?:[^/?#@]*@)?(?P<host>[^/?#:]+)(?::[0-9]+)?(?P<rest>.*)", re.DOTALL
)
_NAME_MARKS = str.maketrans({".": "点", "_": "下划线", "-": "杠", "+": "加"})
_TOP_DOMAINS = "cn|com|net|org|gov|edu|int|info|top|io|hk|tw|mo"
"""Endings that make a bare word.word an address (12377.cn, gov.cn), not an abbreviation."""
_VALUE_WORDS = frozenset("为為是至到达達约約降跌低减減负負率值温溫度差")
"""Before these a minus is a sign (气温-3度, 增速为-0.5), never the hyphen of a designation."""
_EVENT_AFTER_DOT_DATE = (
    "晚会|晚會|事件|大地震|地震|特大|事故|暴雨|爆炸|购物节|購物節|消费者|消費者|国际消费者|國際消費者"
    "|大促|狂欢节|狂歡節|电商节|電商節"
)  # fmt: skip
"""After M.DD or MDD these make it a dot date (3.15晚会, 618大促), not a number (3.15亿)."""
_PER_NUMERATOR = (
    "美元|欧元|歐元|英镑|英鎊|日元|港元|韩元|韓元|元|块|塊|千瓦时|千瓦時|千瓦|公里|千米|米|吨|噸|"
    "公斤|千克|毫克|微克|克|斤|毫升|升|人次|次|人|个|個|件|辆|輛|台|户|戶|度"
)
_PER_DENOMINATOR = "|".join(
    sorted(
        (
            *"吨噸斤克升桶人次月年天日秒周週亩畝度股件台辆輛个個张張份套间間晚夜盒瓶袋箱只头頭户戶家床位株棵米",
            *(
                "平方米",
                "平米",
                "立方米",
                "千瓦时",
                "千瓦時",
                "人次",
                "小时",
                "小時",
                "分钟",
                "分鐘",
            ),
            *("公里", "千米", "公斤", "千克", "公顷", "公頃", "平方公里"),
            *("㎡", "m²", "m³", "kg", "km", "kWh", "h", "L"),
        ),
        key=len,
        reverse=True,
    )
)
"""What a price or a rate is per: 元/吨, 万元/㎡, 公里/小时."""
_SYMBOL_WORDS = {
    "×": "乘",
    "÷": "除以",
    "=": "等于",
    "≠": "不等于",
    "≈": "约等于",
    "≥": "大于等于",
    "⩾": "大于等于",
    "≤": "小于等于",
    "⩽": "小于等于",
    "±": "正负",
    "+": "加",
}
_SYMBOLS = re.escape("".join(_SYMBOL_WORDS))

_RULES: tuple[_Rule, ...] = (
    _Rule(
        "Web addresses: a bare address is read out (www点gov点cn); a long one is summarized as "
        "网址 and its site, never dropped.",
        _sub(
            r"(?:(?:https?|ftp)://|www\.)[^\s\u3000-\u303f\u4e00-\u9fff\uff00-\uffef\"'<>]*"
            r"[^\s\u3000-\u303f\u4e00-\u9fff\uff00-\uffef\"'<>.,;:!?)\]]"
        ),
        _say_url,
    ),
    _Rule(
        "E-mail addresses are read out: jubao@12377.cn → jubao at 幺二三七七点cn.",
        _sub(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
        ),
        _say_email,
    ),
    _Rule(
        "Bare addresses without www, 12377.cn, gov.cn: read out like www addresses.",
        _sub(
            r"(?<![A-Za-z0-9.@/_-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
            r"(?:" + _TOP_DOMAINS + r")(?![A-Za-z0-9])(?!\.[A-Za-z0-9])"
        ),
        lambda m: _say_name(m.group(0)),
    ),
    _Rule(
        "Stock codes with their exchange, 300750.SZ, 00700.HK: digit by digit (幺), no dot.",
        _sub(r"(?<![0-9.])(?P<n>[0-9]{5,6})\.(?P<x>SH|SZ|BJ|HK)(?![A-Za-z])"),
        lambda m: code(m.group("n")) + m.group("x"),
    ),
    _Rule(
        "A year in brackets, and the case number after it: （2024）京0105民初12345号 → "
        "（二〇二四）京〇幺〇五民初幺二三四五号; 国发〔2024〕5号 keeps 五号.",
        _sub(
            r"(?P<open>[（(〔\[【])(?P<y>(?:19|20)[0-9]{2})(?P<close>[）)〕\]】])"
            r"(?:(?P<court>[\u4e00-\u9fff]{1,4}?)(?P<c>[0-9]+)?(?P<kind>[\u4e00-\u9fff]{1,4})"
            r"(?P<n>[0-9]+)(?=[号號]))?"
        ),
        _say_case_number,
    ),
    _Rule(
        "Roman numerals: Ⅲ期临床 → 三期临床, I级响应 → 一级响应.",
        _sub(
            r"[\u2160-\u216b\u2170-\u217b]"
            r"|(?<![A-Za-z])(?:VIII|VII|VI|IV|IX|V|III|II|I)(?=[级級期类類型])"
        ),
        lambda m: roman(m.group(0)),
    ),
    _Rule(
        "Numeric dates 2024-07-02, 2024/7/2, 2024.7.2: the year digit by digit, month and day "
        "as numbers.",
        _sub(
            r"(?<![0-9.])(?P<y>" + _YEAR + r")(?P<sep>[-/.])(?P<m>[0-9]{1,2})(?P=sep)"
            r"(?P<d>[0-9]{1,2})(?![0-9])"
        ),
        _say_date,
    ),
    _Rule(
        "Dot dates 3·15, 9·11, 7·20: each digit said (三一五, 九一一, 七二〇), as events are named",
        _sub(r"(?<![0-9.])(?P<m>1[0-2]|[1-9])·(?P<d>[12][0-9]|3[01]|0?[1-9])(?![0-9])"),
        lambda m: digits(m.group("m") + m.group("d")),
    ),
    _Rule(
        "3.15晚会: a dot date written with a full stop, told from 3.15亿 by the event after it.",
        _sub(
            r"(?<![0-9.])(?P<m>1[0-2]|[1-9])\.(?P<d>[12][0-9]|3[01]|0?[1-9])"
            r"(?=" + _EVENT_AFTER_DOT_DATE + r")"
        ),
        lambda m: digits(m.group("m") + m.group("d")),
    ),
    _Rule(
        "Dot dates written without the dot, 618大促, 315晚会: told by the event after them.",
        _sub(
            r"(?<![0-9.])(?:1[0-2]|[1-9])(?:[12][0-9]|3[01]|0[1-9])"
            r"(?=" + _EVENT_AFTER_DOT_DATE + r")"
        ),
        lambda m: digits(m.group(0)),
    ),
    _Rule(
        "Clock times 07:42 and 07:42:11 (before ratios, which share the colon).",
        _sub(
            r"(?<![0-9:])(?P<h>[01]?[0-9]|2[0-4]):(?P<min>[0-5][0-9])(?::(?P<s>[0-5][0-9]))?"
            r"(?![0-9:])"
        ),
        _say_time,
    ),
    _Rule(
        "Hundredths after seconds, 9秒83 → 9秒八三: a sports time, not 八十三.",
        _sub(r"(?<=[0-9]秒)[0-9]{2}(?![0-9.])"),
        lambda m: fraction_digits(m.group(0)),
    ),
    _Rule(
        "A minute or second written with a leading zero, 2小时05分 → 2小时零5分.",
        _sub(r"(?:(?<=[0-9][分时時点點])|(?<=小时)|(?<=小時))0(?P<d>[0-9])(?=\s?[分秒])"),
        lambda m: "零" + m.group("d"),
    ),
    _Rule(
        "Scores and ratios 3:1 → 三比一 (what is left of digit:digit after clock times).",
        _sub(r"(?<![0-9:.])(?P<a>[0-9]+):(?P<b>[0-9]+)(?![0-9:])"),
        lambda m: f"{integer(m.group('a'))}比{integer(m.group('b'))}",
    ),
    _Rule(
        "Landline and service numbers 0931-8888888, 400-810-8888: digit by digit, before ranges.",
        _sub(r"(?<![0-9-])(?:0[0-9]{2,3}-[0-9]{7,8}|[48]00-[0-9]{3}-[0-9]{4})(?![0-9-])"),
        lambda m: " ".join(code(group) for group in m.group(0).split("-")),
    ),
    _Rule(
        "Mobile numbers written in groups, 159 1234 5678: digit by digit (幺), groups kept.",
        _sub(r"(?<![0-9])1[3-9][0-9] [0-9]{4} [0-9]{4}(?![0-9])"),
        lambda m: " ".join(code(group) for group in m.group(0).split(" ")),
    ),
    _Rule(
        "Year ranges 2024-2025 (年): both ends are years, not quantities.",
        _sub(
            r"(?<![0-9.])(?P<a>" + _YEAR + r")\s?" + _DASH + r"\s?(?P<b>" + _YEAR + r")(?![0-9.])"
        ),
        lambda m: f"{digits(m.group('a'))}到{digits(m.group('b'))}",
    ),
    _Rule(
        "Years 2024年: digit by digit, as they are said.",
        _sub(r"(?<![0-9.])" + _YEAR + r"(?=\s?年)"),
        lambda m: digits(m.group(0)),
    ),
    _Rule(
        "Generations 90后, 95后, 00后: digit by digit (九〇后, 九五后).",
        _sub(r"(?<![0-9.])[0-9]{2}(?=[后後])"),
        lambda m: digits(m.group(0)),
    ),
    _Rule(
        "Codes after capitals, ISO 9001, GB/T 7714-2015, RTX 4090: each part digit by digit.",
        _sub(
            r"(?<![A-Za-z])(?P<prefix>[A-Z]{2,}(?:/[A-Z]+)?\s?)(?P<code>[0-9]{3,}(?:-[0-9]+)*)"
            r"(?![0-9.,])(?!\s?["
            + re.escape("".join(sorted(set(_MULTIPLIERS + _MEASURE_WORDS))))
            + r"])"
        ),
        lambda m: m.group("prefix") + " ".join(digits(part) for part in m.group("code").split("-")),
    ),
    _Rule(
        "A number before a hyphen and Latin letters, 2019-nCoV: digit by digit.",
        _sub(r"(?<![0-9.])[0-9]{3,}(?=-[A-Za-z])"),
        lambda m: digits(m.group(0)),
    ),
    _Rule(
        "Percentage ranges 5-10%, 5%～10%: 百分之五到百分之十, not 五到百分之十.",
        _sub(
            r"(?<![0-9.])(?P<a>"
            + _NUM
            + r")\s?%?\s?(?P<dash>"
            + _DASH
            + r"|至|到)\s?(?P<b>"
            + _NUM
            + r")\s?(?P<per>[%‰])"
        ),
        _say_percent_range,
    ),
    _Rule(
        "Percentages and per mille 12.5% → 百分之十二点五, with a sign when there is one.",
        _sub(r"(?<![0-9.])(?P<sign>(?<![0-9A-Za-z])[-−+])?(?P<n>" + _NUM + r")\s?(?P<per>[%‰])"),
        _say_percent,
    ),
    _Rule(
        "Currency signs before the amount: $5 → 5美元, $5-10 → 5到10美元 (numbers are said later).",
        _sub(
            r"(?<![A-Za-z])(?P<sign>" + _SIGN_ALTERNATIVES + r")\s?(?P<n>" + _NUM + r")"
            r"(?:\s?(?:" + _DASH + r"|至|到)\s?(?P=sign)?\s?(?P<n2>" + _NUM + r"))?"
            r"(?P<mult>\s?[千万萬亿億]+)?"
        ),
        _say_money,
    ),
    _Rule(
        "Prices and rates per unit, 50元/吨 → 每吨50元, 3.5万元/㎡ → 每平方米3.5万元.",
        _sub(
            r"(?<![0-9.])(?P<n>"
            + _NUM
            + r")(?P<mult>[千万萬亿億]*)(?P<unit>"
            + _PER_NUMERATOR
            + r")"
            r"\s?/\s?(?P<per>" + _PER_DENOMINATOR + r")(?![A-Za-z])"
        ),
        _say_per_unit,
    ),
    _Rule(
        "Amounts of money say no zero cents: 3.50元 → 3.5元, 12.00美元 → 12美元.",
        _sub(
            r"(?<![0-9.])[0-9]+\.[0-9]+(?=\s?[千万萬亿億]*\s?(?:元|圆|块|美元|欧元|英镑|日元|港元|韩元))"
        ),
        lambda m: _cents(m.group(0)),
    ),
    _Rule(
        "Units after a number: 5km → 5公里, 30℃ → 30摄氏度 (numbers are said later).",
        _sub(
            r"(?<![A-Za-z0-9.])(?P<n>" + _NUM + r")\s?(?P<unit>" + _UNIT_ALTERNATIVES + r")"
            r"(?![A-Za-z0-9])"
        ),
        _say_unit,
    ),
    _Rule(
        "Temperature ranges below zero, -5~3℃ → 零下5到3摄氏度 (before the range rule).",
        _sub(
            r"(?<![0-9A-Za-z.])(?P<a>[-−]?(?:" + _NUM + r"))(?P<u>摄氏度|攝氏度|度)?\s?"
            r"(?:[~～〜]|[–—]{1,2}|-)\s?(?P<b>[-−]?(?:" + _NUM + r"))(?=\s?(?:摄氏度|攝氏度|度))"
        ),
        _say_temperature_range,
    ),
    _Rule(
        "Ranges 3-5, 3～5, 3—5天, 7月2日-5日 → 到 (numbers are said later, in context).",
        _sub(
            r"(?<![0-9A-Za-z.\-])(?P<a>(?:"
            + _NUM
            + r")[日号號月天年个個万萬亿億千百]?)\s?"
            + _DASH
            + r"\s?(?=(?P<b>[0-9]+))"
        ),
        _say_range,
    ),
    _Rule(
        "Ranges between spoken quantities: 3℃-5℃, 10:30-11:30 → 到 (before signs are read).",
        _sub(r"(?<=[度分秒点时元米克])\s?" + _DASH + r"\s?(?=[0-9〇一二三四五六七八九十两零])"),
        lambda m: "到",
    ),
    _Rule(
        "Designations 歼-20, 东风-41, 轰-6K: the hyphen joins a name and a number (歼二十).",
        _sub(
            r"(?<=[\u4e00-\u9fff])-(?P<n>[0-9]{1,3})(?![0-9.,%‰])"
            r"(?!\s?(?:摄氏度|攝氏度|华氏度|華氏度|度))"
        ),
        _say_designation,
    ),
    _Rule(
        "Temperatures below zero: -5摄氏度 → 零下五摄氏度.",
        _sub(r"(?<![0-9A-Za-z.])[-−](?P<n>" + _NUM + r")(?=\s?(?:摄氏度|華氏度|华氏度|攝氏度|度))"),
        lambda m: "零下" + number(m.group("n")),
    ),
    _Rule(
        "Negative numbers -5 → 负五 (a dash after a letter or digit is a hyphen, not a sign).",
        _sub(r"(?<![0-9A-Za-z.])[-−](?P<n>" + _NUM + r")"),
        lambda m: number("-" + m.group("n")),
    ),
    _Rule(
        "Fractions 1/3 → 三分之一 (after dates and units, which use the slash too).",
        _sub(r"(?<![0-9/.])(?P<a>[0-9]+)/(?P<b>[0-9]+)(?![0-9/]|\.[0-9])"),
        _say_fraction,
    ),
    _Rule(
        "Thousands separators 1,234,567 → a number said whole.",
        _sub(r"(?<![0-9.,])[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?(?![0-9]|,[0-9])"),
        lambda m: number(m.group(0)),
    ),
    _Rule(
        "Versions and addresses with several dots, v2.0.1 → 二点零点一.",
        _sub(r"(?<![0-9.])[0-9]+(?:\.[0-9]+){2,}(?![0-9])"),
        _say_version,
    ),
    _Rule(
        "Decimals 3.14 → 三点一四.",
        _sub(r"(?<![0-9.])[0-9]+\.[0-9]+(?![0-9])"),
        lambda m: number(m.group(0)),
    ),
    _Rule(
        "Symbols said as words: × 乘, + 加, = 等于, ≥ 大于等于, ± 正负 (10万+ → 十万加); a run of "
        "them (=====, C++) is a rule line or a name and is left alone.",
        _sub(
            "(?<![" + _SYMBOLS + "])[" + _SYMBOLS + "](?![" + _SYMBOLS + "])"
            "|(?<=[0-9])\\s?[xX*]\\s?(?=[0-9])"
        ),
        lambda m: _SYMBOL_WORDS.get(m.group(0), "乘"),
    ),
    _Rule(
        "Comparisons before a number, 温差>10℃: 大于, 小于 (elsewhere > and < are markup).",
        _sub(r"(?<=[0-9\u4e00-\u9fff])\s?[<>]\s?(?=[0-9])"),
        lambda m: "大于" if ">" in m.group(0) else "小于",
    ),
    _Rule(
        "Every integer left: a number, or digit by digit when it is a code (see _say_integer).",
        _sub(r"[0-9]+"),
        _say_integer,
    ),
)


# ── character passes ──────────────────────────────────────────────────────────────────────────────

_BETWEEN_DIGITS = re.compile(r"(?<=[0-9])[．：∶•・](?=[0-9])")
_BETWEEN_DIGITS_AS = {"．": ".", "：": ":", "∶": ":", "•": "·", "・": "·"}
_SEPARATOR = re.compile(r"\s*[|｜丨]\s*")
_LABEL_END = re.compile(r"[】〗]\s*(?=\w)")


def _fold_width(text: str) -> str:
    text = text.translate(_FOLD)
    # ３．１４ and ０７：４２ are a decimal and a time, 3∶1 a score; elsewhere ．and ：are
    # punctuation.
    # 3•15 and 3・15 are the dot date 3·15 (and • would otherwise go as an ornament).
    return _BETWEEN_DIGITS.sub(lambda m: _BETWEEN_DIGITS_AS[m.group(0)], text)


def _is_ornament(ch: str) -> bool:
    if ch in _KEEP_SYMBOLS:
        return False
    if ch in _ORNAMENTS or ch in _EMOJI_GLUE:
        return True
    category = unicodedata.category(ch)
    # So: emoji, dingbats, geometric shapes (★●■◆▶); Sk: skin tones; Co: private-use icons;
    # Cf: zero-width and bidi marks; arrows are Sm but only ever decorate.
    return category in ("So", "Sk", "Co", "Cf", "Cs") or "\u2190" <= ch <= "\u21ff"


def _drop_ornaments(text: str) -> str:
    # 【导读】今天… → 导读，今天…: the label keeps a pause after it, its brackets go.
    text = _LABEL_END.sub("，", text)
    text = _SEPARATOR.sub("，", text)  # 新闻丨标题, A | B: a separator is a pause
    # Line breaks and tabs are spacing; other control characters and ornaments go.
    return "".join(
        " " if ch in "\t\r\n" else ch
        for ch in text
        if ch in "\t\r\n" or not (_is_ornament(ch) or unicodedata.category(ch) == "Cc")
    )


def normalize_for_speech(text: str, *, locale: str = "zh-CN") -> str:
    """``text`` as a voice should read it: numbers, dates, units and symbols in spoken Chinese.

    Works on Simplified and Traditional input alike; the words it inserts (点, 万, 摄氏度, 网址)
    are in the script of ``locale``. Never turns speakable text into silence: it drops only
    ornaments and whitespace, and replaces links by a word.
    """
    _config_for(locale)  # fail early on an unknown locale
    text = _drop_ornaments(_fold_width(text))
    for rule in _RULES:
        text = _apply(rule, text, locale)
    return text


def _apply(rule: _Rule, text: str, locale: str) -> str:
    def replace(match: re.Match[str]) -> str:
        return _inserted(rule.say(match), locale)

    return rule.pattern.sub(replace, text)
