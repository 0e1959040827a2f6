"""Speech forms: the script a voice wants (简/繁) and digits, symbols and links as they are said.

``to_script`` converts characters with OpenCC; ``normalize_for_speech`` rewrites what a voice would
misread: numbers become Chinese numerals (so a zh-CN and a zh-TW voice read them alike), dates,
times, percentages, money and units become their spoken forms, links become a short placeholder,
ornaments and emoji are dropped. Latin words and abbreviations (GDP, iPhone, 5G's G) are kept: the
voices read them.

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
    return words if locale in _SIMPLIFIED_LOCALES else to_script(words, locale)


def is_speakable(text: str) -> bool:
    """True when ``text`` holds something a voice can say: a letter or digit of any script.

    Whitespace, punctuation and symbols alone are silence (or an engine error).
    """
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


# ── data ──────────────────────────────────────────────────────────────────────────────────────────

_CODE_DIGITS = "〇一二三四五六七八九"
"""Digits read one by one (years, codes, phone numbers): 2024 → 二〇二四."""
_FRACTION_DIGITS = "零一二三四五六七八九"
"""Digits after a decimal point, as cn2an writes them: 3.05 → 三点零五."""

URL_WORD = "网址"
"""Said instead of a web address: spelling out ``https://…`` letter by letter helps no listener."""
EMAIL_WORD = "邮箱"
"""Said instead of an e-mail address."""
# A link right after one of these words is dropped instead (网址：https://… → 网址：), so the
# placeholder is not said twice.
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
)
_NOT_LIANG_WORDS = ("年级", "年級")  # 2年 is 两年, 2年级 二年级

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


def _digits(digits: str) -> str:
    """Digit by digit: 0931 → 〇九三一."""
    return "".join(_CODE_DIGITS[int(d)] for d in digits)


def _integer(digits: str) -> str:
    """An integer as a number: 1234 → 一千二百三十四, 2000 → 两千."""
    if len(digits) > 1 and digits[0] == "0":
        return _digits(digits)  # 007, 0931: a code, not a quantity
    if len(digits) > 16:
        return _digits(digits)  # beyond 万亿亿: nobody says it as a number (cn2an stops at 16)
    # Imported here: cn2an costs 0.25 s at start-up, and only text with numbers needs it.
    import cn2an

    words: str = cn2an.an2cn(digits)
    # cn2an writes 二千/二万/二亿; a leading two before 千, 万 or 亿 is said 两.
    if len(words) > 1 and words[0] == "二" and words[1] in "千万亿":
        words = "两" + words[1:]
    return words


def _number(text: str) -> str:
    """A signed decimal with optional thousands separators: -1,234.5 → 负一千二百三十四点五."""
    text = text.replace(",", "")
    sign = ""
    if text[0] in "-−":
        sign, text = "负", text[1:]
    elif text[0] == "+":
        text = text[1:]
    whole, _, fraction = text.partition(".")
    words = _integer(whole.lstrip("0") or "0")  # a quantity: 05% is five per cent
    if fraction:
        words += "点" + "".join(_FRACTION_DIGITS[int(d)] for d in fraction)
    return sign + words


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


def _say_link(word: str) -> Callable[[re.Match[str]], str]:
    def say(match: re.Match[str]) -> str:
        before = match.string[max(0, match.start() - 4) : match.start()]
        if any(intro in before for intro in _LINK_INTRODUCERS):
            return ""  # 网址：https://… already says what it is
        return word

    return say


def _say_date(match: re.Match[str]) -> str:
    year, month, day = match.group("y"), int(match.group("m")), int(match.group("d"))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match.group(0)
    return f"{_digits(year)}年{_integer(str(month))}月{_integer(str(day))}日"


def _say_time(match: re.Match[str]) -> str:
    hour, minute, second = match.group("h"), match.group("min"), match.group("s")
    words = ("两" if int(hour) == 2 else _integer(str(int(hour)))) + "点"  # 两点, not 二点
    if minute != "00" or (second and second != "00"):
        words += ("零" if minute[0] == "0" and minute != "00" else "") + _integer(str(int(minute)))
        words += "分"
    if second and second != "00":
        words += ("零" if second[0] == "0" else "") + _integer(str(int(second))) + "秒"
    return words


def _say_percent(match: re.Match[str]) -> str:
    sign = "负" if match.group("sign") in ("-", "−") else ""
    word = "千分之" if match.group("per") == "‰" else "百分之"
    return sign + word + _number(match.group("n"))


def _say_percent_range(match: re.Match[str]) -> str:
    word = "千分之" if match.group("per") == "‰" else "百分之"
    link = "到" if match.group("dash") not in ("至", "到") else match.group("dash")
    return f"{word}{_number(match.group('a'))}{link}{word}{_number(match.group('b'))}"


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
        return f"{_integer(numerator)}比{_integer(denominator)}"
    return f"{_integer(denominator)}分之{_integer(numerator)}"


def _say_version(match: re.Match[str]) -> str:
    # v10.15.7 → 十点十五点七; a part of three digits or more is said digit by digit, as in an
    # address: 192.168.1.1 → 一九二点一六八点一点一.
    return "点".join(
        _digits(part) if len(part) >= 3 else _integer(part) for part in match.group(0).split(".")
    )


def _say_range(match: re.Match[str]) -> str:
    # Ranges run upwards (3-5天); two plain numbers where the first is not smaller are a score
    # (女排3-0阿根廷, 2-1逆转) and are said with 比.
    low, high = match.group("a"), match.group("b")
    if low.isdigit() and high.isdigit() and int(low) >= int(high):
        return f"{low}比"
    return f"{low}到"


def _say_integer(match: re.Match[str]) -> str:
    digits = match.group(0)
    text, start, end = match.string, match.start(), match.end()
    before = text[start - 1] if start else ""
    after = text[end] if end < len(text) else ""
    if len(digits) >= 11:
        return _digits(digits)  # phone, ID and account numbers
    if len(digits) >= 3 and (
        _is_latin(before)  # MH370, A320, RTX4090: a model or flight, said digit by digit
        or (
            _is_cjk(before)
            and _is_cjk(after)
            and before not in _QUANTITY_BEFORE
            and after not in _QUANTITY_AFTER
        )
    ):
        # Glued between Chinese words with nothing that counts (市委1139工作部署): a code.
        return _digits(digits)
    if (
        digits == "2"
        and after in _TWO_IS_LIANG
        and before != "第"
        and not text.startswith(_NOT_LIANG_WORDS, end)
    ):
        return "两"
    return _integer(digits)


_UNIT_ALTERNATIVES = "|".join(re.escape(unit) for unit in sorted(UNITS, key=len, reverse=True))
_SIGN_ALTERNATIVES = "|".join(
    re.escape(sign) for sign in sorted(CURRENCY_SIGNS, key=len, reverse=True)
)

_RULES: tuple[_Rule, ...] = (
    _Rule(
        "Web addresses: a listener cannot use a spelled-out URL; say that there is one.",
        _sub(
            r"(?:(?:https?|ftp)://|www\.)[^\s\u3000-\u303f\u4e00-\u9fff\uff00-\uffef\"'<>]*"
            r"[^\s\u3000-\u303f\u4e00-\u9fff\uff00-\uffef\"'<>.,;:!?)\]]"
        ),
        _say_link(URL_WORD),
    ),
    _Rule(
        "E-mail addresses, likewise.",
        _sub(
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
        ),
        _say_link(EMAIL_WORD),
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
        "Clock times 07:42 and 07:42:11 (before ratios, which share the colon).",
        _sub(
            r"(?<![0-9:])(?P<h>[01]?[0-9]|2[0-4]):(?P<min>[0-5][0-9])(?::(?P<s>[0-5][0-9]))?"
            r"(?![0-9:])"
        ),
        _say_time,
    ),
    _Rule(
        "Scores and ratios 3:1 → 三比一 (what is left of digit:digit after clock times).",
        _sub(r"(?<![0-9:.])(?P<a>[0-9]+):(?P<b>[0-9]+)(?![0-9:])"),
        lambda m: f"{_integer(m.group('a'))}比{_integer(m.group('b'))}",
    ),
    _Rule(
        "Landline and service numbers 0931-8888888, 400-810-8888: digit by digit, before ranges.",
        _sub(r"(?<![0-9-])(?:0[0-9]{2,3}-[0-9]{7,8}|[48]00-[0-9]{3}-[0-9]{4})(?![0-9-])"),
        lambda m: " ".join(_digits(group) for group in m.group(0).split("-")),
    ),
    _Rule(
        "Year ranges 2024-2025 (年): both ends are years, not quantities.",
        _sub(
            r"(?<![0-9.])(?P<a>" + _YEAR + r")\s?" + _DASH + r"\s?(?P<b>" + _YEAR + r")(?![0-9.])"
        ),
        lambda m: f"{_digits(m.group('a'))}到{_digits(m.group('b'))}",
    ),
    _Rule(
        "Years 2024年: digit by digit, as they are said.",
        _sub(r"(?<![0-9.])" + _YEAR + r"(?=\s?年)"),
        lambda m: _digits(m.group(0)),
    ),
    _Rule(
        "Generations 90后, 95后, 00后: digit by digit (九〇后, 九五后).",
        _sub(r"(?<![0-9.])[0-9]{2}(?=[后後])"),
        lambda m: _digits(m.group(0)),
    ),
    _Rule(
        "Codes after capitals, ISO 9001, GB/T 7714-2015, RTX 4090: each part digit by digit.",
        _sub(
            r"(?<![A-Za-z])(?P<prefix>[A-Z]{2,}(?:/[A-Z]+)?\s?)(?P<code>[0-9]{3,}(?:-[0-9]+)*)"
            r"(?![0-9.,])(?!\s?["
            + re.escape("".join(sorted(set(_MULTIPLIERS + _MEASURE_WORDS))))
            + r"])"
        ),
        lambda m: (
            m.group("prefix") + " ".join(_digits(part) for part in m.group("code").split("-"))
        ),
    ),
    _Rule(
        "A number before a hyphen and Latin letters, 2019-nCoV: digit by digit.",
        _sub(r"(?<![0-9.])[0-9]{3,}(?=-[A-Za-z])"),
        lambda m: _digits(m.group(0)),
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
        "Temperatures below zero: -5摄氏度 → 零下五摄氏度.",
        _sub(r"(?<![0-9A-Za-z.])[-−](?P<n>" + _NUM + r")(?=\s?(?:摄氏度|華氏度|华氏度|攝氏度|度))"),
        lambda m: "零下" + _number(m.group("n")),
    ),
    _Rule(
        "Negative numbers -5 → 负五 (a dash after a letter or digit is a hyphen, not a sign).",
        _sub(r"(?<![0-9A-Za-z.])[-−](?P<n>" + _NUM + r")"),
        lambda m: _number("-" + m.group("n")),
    ),
    _Rule(
        "Fractions 1/3 → 三分之一 (after dates and units, which use the slash too).",
        _sub(r"(?<![0-9/.])(?P<a>[0-9]+)/(?P<b>[0-9]+)(?![0-9/]|\.[0-9])"),
        _say_fraction,
    ),
    _Rule(
        "Thousands separators 1,234,567 → a number said whole.",
        _sub(r"(?<![0-9.,])[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?(?![0-9]|,[0-9])"),
        lambda m: _number(m.group(0)),
    ),
    _Rule(
        "Versions and addresses with several dots, v2.0.1 → 二点零点一.",
        _sub(r"(?<![0-9.])[0-9]+(?:\.[0-9]+){2,}(?![0-9])"),
        _say_version,
    ),
    _Rule(
        "Decimals 3.14 → 三点一四.",
        _sub(r"(?<![0-9.])[0-9]+\.[0-9]+(?![0-9])"),
        lambda m: _number(m.group(0)),
    ),
    _Rule(
        "Every integer left: a number, or digit by digit when it is a code (see _say_integer).",
        _sub(r"[0-9]+"),
        _say_integer,
    ),
)


# ── character passes ──────────────────────────────────────────────────────────────────────────────

_BETWEEN_DIGITS = re.compile(r"(?<=[0-9])[．：](?=[0-9])")
_SEPARATOR = re.compile(r"\s*[|｜丨]\s*")
_LABEL_END = re.compile(r"[】〗]\s*(?=\w)")


def _fold_width(text: str) -> str:
    text = text.translate(_FOLD)
    # ３．１４ and ０７：４２ are a decimal and a time; elsewhere ．and ：are punctuation.
    return _BETWEEN_DIGITS.sub(lambda m: "." if m.group(0) == "．" else ":", text)


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
