"""Integers as quantities: our spelling is cn2an's ``an2cn``, number for number.

cn2an is the reference (a test dependency only): every integer up to 100,000, every power of ten
and its neighbours up to 16 digits, a few thousand seeded random integers of 1 to 16 digits, and
as many sparse ones (a few digits among zeros, where the 零 rules are), all spelled alike, with
our two changes: a leading 二 before 百/千/万/亿 is said 两, and a whole four-digit section of
zeros between two others is read 零 even when the next one starts with its 千 (1,0000,1000:
一亿零一千, where cn2an says 一亿一千 but 一亿零一万 for 1,0001,0000).
"""

from __future__ import annotations

import random

import cn2an
import pytest

from newsreader.text.numbers import integer, number, roman


def _zero_section_then_thousands(value: int) -> bool:
    """A section of zeros after a non-zero one and before one of 1000 or more (our change)."""
    sections = [value // 10 ** (4 * i) % 10000 for i in range(3, -1, -1)]
    while sections and sections[0] == 0:
        sections.pop(0)
    for at in range(1, len(sections) - 1):
        if sections[at] == 0:
            rest = [s for s in sections[at + 1 :] if s]
            if rest and rest[0] >= 1000:
                return True
    return False


def _reference(value: int) -> str:
    words: str = cn2an.an2cn(str(value))
    if _zero_section_then_thousands(value):
        words = words.replace("亿", "亿零", 1) if "亿" in words else words
    if len(words) > 1 and words[0] == "二" and words[1] in "百千万亿":
        words = "两" + words[1:]
    return words


def _differences(values: list[int]) -> list[tuple[int, str, str]]:
    found = []
    for value in values:
        ours, theirs = integer(str(value)), _reference(value)
        if ours != theirs:
            found.append((value, ours, theirs))
    return found[:10]


def test_every_integer_up_to_100000_is_spelled_as_cn2an_spells_it() -> None:
    assert _differences(list(range(100_001))) == []


def test_powers_of_ten_and_their_neighbours_up_to_16_digits() -> None:
    values = [10**e + d for e in range(17) for d in (-1, 0, 1)]
    assert _differences([v for v in values if 0 <= v < 10**16]) == []


def test_seeded_random_integers_of_1_to_16_digits() -> None:
    rng = random.Random(20261130)
    values = []
    for _ in range(4000):
        length = rng.randint(1, 16)
        values.append(rng.randrange(10 ** (length - 1) if length > 1 else 0, 10**length))
    assert _differences(values) == []


def test_seeded_sparse_integers_where_the_zero_rules_apply() -> None:
    rng = random.Random(11302026)
    values = []
    for _ in range(4000):
        length = rng.randint(2, 16)
        places = ["0"] * length
        places[0] = str(rng.randint(1, 9))
        for _ in range(rng.randint(0, 3)):
            places[rng.randrange(length)] = str(rng.randint(1, 9))
        values.append(int("".join(places)))
    assert _differences(values) == []


@pytest.mark.parametrize(
    ("run", "spoken"),
    [
        ("0", "零"),
        ("10", "十"),
        ("15", "十五"),
        ("110", "一百一十"),
        ("200", "两百"),
        ("2000", "两千"),
        ("20000", "两万"),
        ("200000000", "两亿"),
        ("1010", "一千零一十"),
        ("10001", "一万零一"),
        ("1001000", "一百万一千"),
        ("100001000", "一亿零一千"),
        ("1000000001000", "一万亿零一千"),
        ("1000000010000", "一万亿零一万"),
        ("10001000", "一千万一千"),
        ("100010000", "一亿零一万"),
        ("1000010000", "十亿零一万"),
        ("1000000000000", "一万亿"),
        ("9999999999999999", "九千九百九十九万九千九百九十九亿九千九百九十九万九千九百九十九"),
    ],
)
def test_known_spellings(run: str, spoken: str) -> None:
    assert integer(run) == spoken


def test_runs_that_are_not_quantities_are_read_digit_by_digit() -> None:
    assert integer("007") == "〇〇七"
    assert integer("12345678901234567") == "一二三四五六七八九〇一二三四五六七"


def test_signed_decimals_and_roman_numerals_use_the_same_spelling() -> None:
    assert number("-1,234.05") == "负一千二百三十四点零五"
    assert number("+20") == "二十"
    assert roman("Ⅻ") == "十二"
