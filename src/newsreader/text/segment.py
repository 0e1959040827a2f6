"""Sentences → segments: the article cut into requests a voice engine accepts, with pause marks.

edge-tts only splits text over 4096 bytes at a newline or a space, and Chinese has neither, so a
long paragraph would go out whole. Here every segment is built from whole sentences and kept far
below that limit; a sentence that alone is too long is cut at commas first, then between
characters, never inside a number or a Latin word.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from newsreader.errors import ExtractionError
from newsreader.models import Article, BlockKind, Pause, Script, Segment, SegmentKind
from newsreader.text.normalize import is_speakable, normalize_for_speech, to_script

EDGE_REQUEST_BYTES = 4096
"""edge-tts's request size limit, counted on the XML-escaped text."""
WORST_BYTES_PER_CHAR = 5
"""The most one character can take once escaped: ``&`` becomes ``&amp;`` (CJK takes 3 bytes,
characters outside the BMP 4)."""
MAX_SEGMENT_CHARS = 800
MIN_SEGMENT_CHARS = 20
DEFAULT_SEGMENT_CHARS = 250
"""About 15 seconds of speech: short enough to stream the first paragraph early and to retry
cheaply, long enough that requests are few."""

assert MAX_SEGMENT_CHARS * WORST_BYTES_PER_CHAR < EDGE_REQUEST_BYTES

# ── sentences ─────────────────────────────────────────────────────────────────────────────────────

_ENDS = frozenset("。！？；…⋯!?;｡")
"""Characters that end a sentence (the ASCII ones only before a space, CJK or the end)."""
_ASCII_ENDS = frozenset("!?;")
_CLOSERS = frozenset("”’」』）》】〗〉)]}'")
"""Closing quotes and brackets stay with the sentence they close: “……。” ends after ”."""
_ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "jr",
        "sr",
        "inc",
        "ltd",
        "co",
        "corp",
        "vs",
        "etc",
        "no",
        "gen",
        "gov",
        "sen",
        "rep",
        "dept",
        "est",
        "fig",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    }
)


def _is_cjk(ch: str) -> bool:
    return "\u2e80" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or "\uff00" <= ch <= "\uffef"


def _may_follow_end(text: str, index: int) -> bool:
    """An ASCII terminator ends a sentence only before a space, CJK, a closer or the end:
    ``?`` inside a URL and ``!`` inside a name do not."""
    if index >= len(text):
        return True
    ch = text[index]
    return ch.isspace() or _is_cjk(ch) or ch in _CLOSERS or ch in _ENDS or ch in '."'


def _is_full_stop(text: str, index: int) -> bool:
    """Whether the ``.`` at ``index`` ends a sentence (not 3.14, v2.0.1, U.S., Mr., example.com)."""
    if not _may_follow_end(text, index + 1):
        return False  # 3.14, v2.0.1, example.com, U.S.A
    if index > 0 and text[index - 1] == ".":
        return True  # the last dot of an ellipsis: "Wait... what"
    start, limit = index, max(0, index - 16)  # abbreviations are short; bound the look back
    while start > limit and not (text[start - 1].isspace() or _is_cjk(text[start - 1])):
        start -= 1
    word = text[start:index]
    if "." in word:
        return False  # U.S. / e.g.
    letters = word.strip("\"'([{“‘")
    if len(letters) == 1 and letters.isalpha():
        return False  # an initial: J. K. Rowling
    return letters.lower() not in _ABBREVIATIONS


def _ends_here(text: str, index: int) -> bool:
    ch = text[index]
    if ch == ".":
        return _is_full_stop(text, index)
    if ch in _ASCII_ENDS:
        return _may_follow_end(text, index + 1)
    return ch in _ENDS


def split_sentences(text: str) -> list[str]:
    """Cut ``text`` after each sentence end; ``"".join(result) == text``.

    A sentence keeps its closing quotes and brackets and the whitespace after it.
    """
    sentences: list[str] = []
    start = index = 0
    open_quote = False  # an ASCII " after an end closes a quote only when one is open
    while index < len(text):
        if not _ends_here(text, index):
            open_quote ^= text[index] == '"'
            index += 1
            continue
        end = index + 1
        while end < len(text):
            nxt = text[end]
            if nxt == '"':
                if not open_quote:
                    break
                open_quote = False
            elif not (nxt in _CLOSERS or nxt in _ENDS or (nxt == "." and _ends_here(text, end))):
                break
            end += 1
        while end < len(text) and text[end].isspace():
            end += 1
        sentences.append(text[start:end])
        start = index = end
        open_quote = False
    if start < len(text):
        sentences.append(text[start:])
    return sentences


# ── cutting a sentence that is too long ───────────────────────────────────────────────────────────

_CLAUSE_END = re.compile(r"[，、：；,;:](?![0-9])|——")
"""Where a long sentence is cut first: after a comma, colon or semicolon (not 1,234, 07:42)."""
_WORD = r"[0-9A-Za-z０-９Ａ-Ｚａ-ｚ]+"
_ATOM = re.compile(
    r"(?:\S?" + _WORD + r"(?:[-.,:/_@%+&'~#=?．：／－％]+" + _WORD + r")*)+\S?"
    r"|.[\u0300-\u036f\u200d\ufe00-\ufe0f\u20e3\U0001f3fb-\U0001f3ff]*",
    re.DOTALL,
)
"""What a hard cut never splits: a number or Latin word with the characters on each side (so
2024年 and 市委1139工作 keep their reading), or one character with its combining marks."""


@dataclass(frozen=True)
class _Spoken:
    display: str
    spoken: str


def _speak(display: str, locale: str) -> _Spoken | None:
    display = display.strip()
    spoken = normalize_for_speech(display, locale=locale).strip()
    if not is_speakable(spoken):
        return None
    if spoken[-1].isascii():
        # A sentence ending in Latin keeps a space so the next one does not run into it
        # ("world.Second" reads as one token). It counts towards the limit; the segment's last
        # sentence drops it again.
        spoken += " "
    return _Spoken(display, spoken)


def _fit(display: str, locale: str, max_chars: int) -> Iterator[_Spoken]:
    """One display sentence as spoken pieces of at most ``max_chars`` characters."""
    whole = _speak(display, locale)
    if whole is None:
        return
    if len(whole.spoken) <= max_chars:
        yield whole
        return
    clauses = _cut_after(display, _CLAUSE_END)
    if len(clauses) > 1:
        yield from _pack_pieces(clauses, locale, max_chars)
    else:
        yield from _hard_cut(display, locale, max_chars)


def _cut_after(text: str, pattern: re.Pattern[str]) -> list[str]:
    pieces, start = [], 0
    for match in pattern.finditer(text):
        pieces.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _estimate(piece: str, locale: str) -> int:
    """The spoken length of ``piece`` said alone (Chinese characters are said as written)."""
    if all(_is_cjk(ch) or (ch.isascii() and ch.isalnum()) for ch in piece) and len(piece) == 1:
        return 1  # the common case of a hard cut, which measures one character at a time
    if all(_is_cjk(ch) for ch in piece):
        return len(piece)
    return len(normalize_for_speech(piece, locale=locale)) + 1  # + the space after Latin


def _pack_pieces(pieces: list[str], locale: str, max_chars: int) -> Iterator[_Spoken]:
    """Join neighbouring pieces while they fit; a piece too long alone is cut further.

    Pieces are measured alone first and the joined text is normalized once per piece of output
    (and again only when context made it longer), so a huge sentence costs linear time.
    """
    sizes = [_estimate(piece, locale) for piece in pieces]
    start = 0
    while start < len(pieces):
        end, size = start + 1, sizes[start]
        while end < len(pieces) and size + sizes[end] <= max_chars:
            size += sizes[end]
            end += 1
        candidate = _speak("".join(pieces[start:end]), locale)
        while candidate is not None and len(candidate.spoken) > max_chars and end - start > 1:
            end -= 1
            candidate = _speak("".join(pieces[start:end]), locale)
        if candidate is not None and len(candidate.spoken) > max_chars:
            yield from _fit(pieces[start], locale, max_chars)  # one piece, too long alone
        elif candidate is not None:
            yield candidate
        start = end


def _hard_cut(display: str, locale: str, max_chars: int) -> Iterator[_Spoken]:
    if len(display) == 1:
        # Nothing left to cut. No single character says more than MIN_SEGMENT_CHARS characters.
        if spoken := _speak(display, locale):
            yield spoken
        return
    atoms = [m.group(0) for m in _ATOM.finditer(display)]
    if len(atoms) == 1:
        # One number or word longer than a segment: the limit wins, cut between characters.
        atoms = list(display)
    yield from _pack_pieces(atoms, locale, max_chars)


# ── segments ──────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class _Draft:
    kind: SegmentKind
    block: int
    chapter: int
    units: tuple[_Spoken, ...]
    pause: Pause


def _balanced(units: list[_Spoken], max_chars: int) -> list[list[_Spoken]]:
    """Whole units in as few groups as fit, with the longest group as short as possible."""

    def greedy(cap: int) -> list[list[_Spoken]]:
        groups: list[list[_Spoken]] = []
        size = cap + 1
        for unit in units:
            length = len(unit.spoken)
            if size + length > cap:
                groups.append([])
                size = 0
            groups[-1].append(unit)
            size += length
        return groups

    fewest = len(greedy(max_chars))
    low, high = max(len(u.spoken) for u in units), max_chars
    while low < high:  # the smallest cap that needs no more groups than the max_chars packing
        middle = (low + high) // 2
        if len(greedy(middle)) <= fewest:
            high = middle
        else:
            low = middle + 1
    return greedy(low)


def _units(text: str, locale: str, max_chars: int) -> list[_Spoken]:
    units: list[_Spoken] = []
    for sentence in split_sentences(text):
        # Script conversion sees the whole sentence (OpenCC picks 髮/發 from neighbouring words);
        # cutting comes after.
        units.extend(_fit(to_script(sentence, locale), locale, max_chars))
    return units


def _drafts(
    text: str, kind: SegmentKind, block: int, chapter: int, last: Pause, locale: str, max_chars: int
) -> list[_Draft]:
    units = _units(text, locale, max_chars)
    if not units:
        return []
    groups = _balanced(units, max_chars)
    return [
        _Draft(kind, block, chapter, tuple(g), last if i == len(groups) - 1 else Pause.SENTENCE)
        for i, g in enumerate(groups)
    ]


def _segment(index: int, draft: _Draft, chapter: int, pause: Pause) -> Segment:
    spoken = [u.spoken for u in draft.units]
    spoken[-1] = spoken[-1].rstrip()
    return Segment(
        index=index,
        text="".join(spoken),
        sentences=tuple(spoken),
        display=tuple(u.display for u in draft.units),
        kind=draft.kind,
        block=draft.block,
        chapter=chapter,
        pause=pause,
    )


def build_script(
    article: Article,
    *,
    locale: str,
    read_title: bool = True,
    max_chars: int = DEFAULT_SEGMENT_CHARS,
) -> Script:
    """The article as it will be spoken, in the script of ``locale`` (zh-CN, zh-TW, zh-HK).

    Title, headings and paragraphs become segments of whole sentences, each at most ``max_chars``
    characters, with a pause after each (sentence < paragraph < heading; none after the last).
    With headings, chapter 0 is the title with any lead paragraphs and each heading opens a
    chapter; without, the whole article is one chapter. Chapters without a speakable segment
    are left out. Raises ``ExtractionError`` when nothing speakable remains.
    """
    if not MIN_SEGMENT_CHARS <= max_chars <= MAX_SEGMENT_CHARS:
        raise ValueError(
            f"max_chars {max_chars} is out of range: use {MIN_SEGMENT_CHARS} to "
            f"{MAX_SEGMENT_CHARS} (edge-tts requests stay under {EDGE_REQUEST_BYTES} bytes)."
        )
    title = to_script(article.title, locale).strip()
    chapters = [title]
    drafts: list[_Draft] = []
    if read_title:
        drafts += _drafts(article.title, SegmentKind.TITLE, -1, 0, Pause.HEADING, locale, max_chars)
    for number, block in enumerate(article.blocks):
        if block.kind is BlockKind.HEADING:
            heading = _drafts(
                block.text,
                SegmentKind.HEADING,
                number,
                len(chapters),
                Pause.HEADING,
                locale,
                max_chars,
            )
            if heading:  # a heading with nothing to say opens no chapter
                chapters.append(to_script(block.text, locale).strip())
                drafts += heading
        else:
            drafts += _drafts(
                block.text,
                SegmentKind.BODY,
                number,
                len(chapters) - 1,
                Pause.PARAGRAPH,
                locale,
                max_chars,
            )
    if not drafts:
        where = f" in {article.source}" if article.source else ""
        raise ExtractionError(
            f"nothing to read{where}: the article has no speakable text after cleanup."
        )
    # Renumber chapters so that every chapter listed has a segment (chapter 0 can be empty when
    # the title is not read and no paragraph precedes the first heading).
    used = sorted({d.chapter for d in drafts})
    renumber = {old: new for new, old in enumerate(used)}
    segments = [
        _segment(
            i,
            draft,
            renumber[draft.chapter],
            Pause.END if i == len(drafts) - 1 else draft.pause,
        )
        for i, draft in enumerate(drafts)
    ]
    return Script(
        title=title,
        segments=tuple(segments),
        chapters=tuple(chapters[old] for old in used),
        article=article,
    )


def escaped_size(text: str) -> int:
    """Bytes of ``text`` once edge-tts has escaped it (for checks and tests)."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return len(escaped.encode("utf-8"))


__all__ = [
    "DEFAULT_SEGMENT_CHARS",
    "MAX_SEGMENT_CHARS",
    "MIN_SEGMENT_CHARS",
    "build_script",
    "escaped_size",
    "split_sentences",
]
