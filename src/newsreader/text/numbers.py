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


@functools.lru_cache(maxsize=4096)
def integer(run: str) -> str:
    """An integer as a quantity: 1234 → 一千二百三十四, 200 → 两百, 2000 → 两千.

    Cached: cn2an takes tens of microseconds a call, and news repeats its numbers."""
    if len(run) > 1 and run[0] == "0":
        return digits(run)  # 007, 0931: a code, not a quantity
    if len(run) > 16:
        return digits(run)  # beyond 万亿亿: nobody says it as a number (cn2an stops at 16)
    # Imported here: cn2an costs 0.25 s at start-up, and only text with numbers needs it.
    import cn2an

    words: str = cn2an.an2cn(run)
    # cn2an writes 二百/二千/二万/二亿; a leading two before a power of ten is said 两.
    if len(words) > 1 and words[0] == "二" and words[1] in "百千万亿":
        words = "两" + words[1:]
    return words


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
