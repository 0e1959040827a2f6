"""Numbers said in Chinese: as quantities, digit by digit, and the readings around them.

Three ways to say a run of digits, chosen by ``normalize``'s rules from the words around it:

- a **quantity**: ``integer``/``number`` (2024 → 两千零二十四, 3.05 → 三点零五);
- **digit by digit with 一**: ``digits`` for years, dot dates and model designations (2024年 →
  二〇二四, 9·11 → 九一一, C919 → C九一九);
- **digit by digit with 幺**: ``code`` for what is dialled or keyed in: phone numbers, hotlines,
  postcodes, stock codes, case numbers (110 → 幺幺〇). This is how a Mandarin newsreader says
  them, so that 1 (yī) is not heard as 7 (qī).
"""

from __future__ import annotations

import functools

_DIGITS = "〇一二三四五六七八九"
_CODE_DIGITS = "〇幺二三四五六七八九"
_FRACTION_DIGITS = "零一二三四五六七八九"
"""Digits after a decimal point, as cn2an writes them: 3.05 → 三点零五."""

ROMAN_NUMERALS: dict[str, int] = {
    **{chr(0x2160 + i): i + 1 for i in range(12)},  # Ⅰ … Ⅻ
    **{chr(0x2170 + i): i + 1 for i in range(12)},  # ⅰ … ⅻ
    "I": 1,
    "II": 2,
    "III": 3,
    "IV": 4,
    "V": 5,
    "VI": 6,
    "VII": 7,
    "VIII": 8,
    "IX": 9,
}


def digits(run: str) -> str:
    """Digit by digit, 1 as 一: 2024 → 二〇二四 (years, dot dates, designations)."""
    return "".join(_DIGITS[int(d)] for d in run)


def code(run: str) -> str:
    """Digit by digit, 1 as 幺: 12306 → 幺二三〇六 (numbers that are dialled or keyed in)."""
    return "".join(_CODE_DIGITS[int(d)] for d in run)


def fraction_digits(run: str) -> str:
    """Digits after a point or a second, 0 as 零: 07 → 零七 (1分52秒07, 3.05)."""
    return "".join(_FRACTION_DIGITS[int(d)] for d in run)


_QUANTITY_DIGITS = "零一二三四五六七八九"
_PLACES = ("", "十", "百", "千")
_SECTIONS = ("", "万", "亿", "万")
"""The units of the four-digit sections, lowest first: 1,0000,0000,0000 is 一万亿."""


@functools.lru_cache(maxsize=4096)
def integer(run: str) -> str:
    """An integer as a quantity: 1234 → 一千二百三十四, 200 → 两百, 2000 → 两千.

    Spelled as cn2an's ``an2cn`` spells it (tests/text/test_numbers.py compares the two), but
    for one rule: a whole section of zeros between two others is read 零 (1,0000,1000 is
    一亿零一千; cn2an says 一亿一千, though it says 一亿零一万 for 1,0001,0000). Our own code
    because importing cn2an cost a fully cached ``read`` 0.15-0.25 s of its start-up."""
    if len(run) > 1 and run[0] == "0":
        return digits(run)  # 007, 0931: a code, not a quantity
    if len(run) > 16:
        return digits(run)  # beyond 万亿亿: nobody says it as a number (cn2an stops at 16)
    value = int(run)
    if value == 0:
        return "零"
    words: list[str] = []
    skipped = False  # a section of zeros since the last words
    for index in range(3, -1, -1):
        section = value // 10 ** (4 * index) % 10000
        if section:
            if words and (section < 1000 or skipped):
                words.append("零")  # 1,0001 → 一万零一; 1,0000,1000 → 一亿零一千
            words.append(_section(section) + _SECTIONS[index])
            skipped = False
        elif words:
            skipped = True
            if index == 2:
                words.append("亿")  # 1,0000,0000,0000 → 一万亿
    spelled = "".join(words)
    if spelled.startswith("一十"):
        spelled = spelled[1:]  # 15 → 十五, 10,0000 → 十万
    # A leading two before a power of ten is said 两: 两百, 两千, 两万, 两亿.
    if len(spelled) > 1 and spelled[0] == "二" and spelled[1] in "百千万亿":
        spelled = "两" + spelled[1:]
    return spelled


def _section(section: int) -> str:
    """1 to 9999 with its places, one 零 for each gap inside: 1010 → 一千零一十."""
    words: list[str] = []
    gap = False
    for place in range(3, -1, -1):
        digit = section // 10**place % 10
        if not digit:
            gap = True
            continue
        if gap and words:
            words.append("零")
        words.append(_QUANTITY_DIGITS[digit] + _PLACES[place])
        gap = False
    return "".join(words)


def number(text: str) -> str:
    """A signed decimal with optional thousands separators: -1,234.5 → 负一千二百三十四点五."""
    text = text.replace(",", "")
    sign = ""
    if text[0] in "-−":
        sign, text = "负", text[1:]
    elif text[0] == "+":
        text = text[1:]
    whole, _, fraction = text.partition(".")
    words = integer(whole.lstrip("0") or "0")  # a quantity: 05% is five per cent
    if fraction:
        words += "点" + fraction_digits(fraction)
    return sign + words


def roman(numeral: str) -> str:
    """A Roman numeral as a Chinese one: Ⅲ → 三, IV → 四."""
    return integer(str(ROMAN_NUMERALS[numeral]))
