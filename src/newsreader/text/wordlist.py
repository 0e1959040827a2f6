"""Which character a lost one was, by the words around it: the surviving byte of a garbled
character leaves a set of candidates, and a Chinese word list says which of them makes a word
with its neighbours (``規?化`` with 模, 梗, 海 … as candidates: only 模 makes 规模化).

The word list is jieba's dictionary (about 350,000 Simplified words with their frequencies, in
the ``jieba`` package). It is read only when a character was lost (rare), as text, and searched
with one regular expression per lost character (a few milliseconds); it is never loaded whole
into memory structures.

The rule (``fill``): a candidate counts only when a dictionary word of two to four characters
holds it together with at least one neighbour. Each such candidate's reading of the window
(three characters either side) is split into words the way a unigram segmenter does (the
likeliest split by word frequency, the gap inside a word); the best reading must be at least
``DOMINANT`` times as likely as every other candidate's. Anything else leaves no single
candidate: ``fill`` says which neighbours the likeliest reading's word around the gap takes, so
the caller drops that broken word whole instead of reading a fragment of it.
"""

from __future__ import annotations

import functools
import importlib.resources
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DOMINANT", "Fill", "fill"]

DOMINANT = 8
"""How many times likelier the winning reading must be than each other candidate's (今天 is
five times as frequent as 明天: not enough to tell which day a page meant)."""
CONTEXT = 3
"""Neighbouring characters on each side that a word may take with the lost one."""


@dataclass(frozen=True)
class Fill:
    """What the word list makes of a gap: the one character, or how much of the context the
    candidate words reach into (to drop the broken word whole)."""

    char: str | None
    left: int = 0
    """Characters before the gap that belong to the broken word (when ``char`` is None)."""
    right: int = 0
    """Characters after the gap that belong to the broken word (when ``char`` is None)."""


@functools.cache
def _dictionary() -> str:
    """The word list as text, a newline first: ``\\nword frequency tag`` per entry."""
    try:
        resource = importlib.resources.files("jieba").joinpath("dict.txt")
        return "\n" + resource.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return "\n"


@functools.cache
def _log_total() -> float:
    """The log of the sum of the list's frequencies (a word's probability is its share)."""
    total = sum(int(n) for n in re.findall(r" (\d+) ", _dictionary()))
    return math.log(max(1, total))


def _frequencies(words: set[str]) -> dict[str, int]:
    """The list's frequency of each of ``words`` that it holds."""
    if not words:
        return {}
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    pattern = re.compile(f"\n({alternatives}) (\\d+)")
    return {word: int(n) for word, n in pattern.findall(_dictionary())}


def _best_path(window: str, gap: int, frequencies: dict[str, int]) -> tuple[float, int, int]:
    """The likeliest split of ``window`` into listed words in which the character at ``gap`` is
    part of a word of two or more (a character the list does not hold counts as a word of
    frequency one): (its log probability, start and end of the word that holds ``gap``)."""
    log_total = _log_total()
    best = [0.0] + [-math.inf] * len(window)
    back = [0] * (len(window) + 1)
    for end in range(1, len(window) + 1):
        for start in range(max(0, end - 4), end):
            piece = window[start:end]
            if start <= gap < end and len(piece) < 2:
                continue
            frequency = frequencies.get(piece, 1 if end - start == 1 else 0)
            if frequency:
                value = best[start] + math.log(frequency) - log_total
                if value > best[end]:
                    best[end], back[end] = value, start
    end = len(window)
    while end > 0 and not back[end] <= gap < end:
        end = back[end]
    return best[-1], back[end], end


def fill(left: str, right: str, candidates: Sequence[str]) -> Fill:
    """The character that fills the gap between ``left`` and ``right`` (Simplified text, only
    the word characters next to the gap), chosen among ``candidates`` (Simplified too)."""
    left, right = left[-CONTEXT:], right[:CONTEXT]
    chars = "".join(dict.fromkeys(c for c in candidates if len(c) == 1))
    if not chars or not (left or right):
        return Fill(None)
    shapes = [
        (i, j)
        for i in range(len(left) + 1)
        for j in range(len(right) + 1)
        if 0 < i + j <= 3  # words of two to four characters
    ]
    klass = "[" + re.escape(chars) + "]"
    alternatives = "|".join(
        re.escape(left[len(left) - i :]) + klass + re.escape(right[:j]) for i, j in shapes
    )
    pattern = re.compile(f"\n({alternatives}) \\d+")
    # the candidates that make a word with a neighbour, and how far their words reach
    reach: dict[str, tuple[int, int]] = {}
    for word in pattern.findall(_dictionary()):
        for i, j in shapes:
            if (
                len(word) == i + j + 1
                and word[:i] == left[len(left) - i :]
                and word[i + 1 :] == right[:j]
                and word[i] in chars
            ):
                before, after = reach.get(word[i], (0, 0))
                reach[word[i]] = (max(before, i), max(after, j))
    if not reach:
        return Fill(None)
    windows = {char: left + char + right for char in reach}
    pieces = {w[a:b] for w in windows.values() for a in range(len(w)) for b in range(a + 1, a + 5)}
    frequencies = _frequencies({p for p in pieces if len(p) <= 4})
    gap = len(left)
    paths = {char: _best_path(window, gap, frequencies) for char, window in windows.items()}
    ranked = sorted(((path[0], char) for char, path in paths.items()), reverse=True)
    top_score, top = ranked[0]
    if all(top_score - score >= math.log(DOMINANT) for score, _ in ranked[1:]):
        return Fill(top)
    # no single candidate: the broken word is the likeliest reading's word around the gap
    _, start, end = paths[top]
    return Fill(None, left=gap - start, right=end - gap - 1)
