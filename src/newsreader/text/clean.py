"""Chinese-news cleanup: pure functions on lines of text, for Simplified and Traditional alike.

Three jobs, used by ``extract`` on every line or block it finds:

1. **Repair converter damage.** Simplified→Traditional converters that annotate each
   converted character with its pinyin leave ``機(jī)``, ``網(wǎng)`` behind; when the annotated
   character itself was lost the page shows ``日?qǐng)?bào)``. ``repair_pinyin`` removes the
   annotations and restores a lost character from a small table of frequent news words.
2. **Repair mojibake.** ``repair_mojibake`` re-decodes GBK text that was decoded one byte out of
   step (see its docstring), fixes UTF-8 read as Latin-1, and drops what cannot be recovered,
   returning one note per loss.
3. **Classify lines** a listener must not hear: spam titles, navigation bars, breadcrumbs,
   editorial lines (责任编辑/来源/原标题/关闭 …), reporter credits, captions, notices, datelines,
   and the markers of trailing sections (相关新闻/推荐阅读/评论 …). ``looks_like_heading`` is the
   subheading heuristic.

The classifiers fold their input to Simplified with OpenCC first, so every keyword list below is
written once, in Simplified.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import opencc

__all__ = [
    "CHINA_TZ",
    "is_breadcrumb",
    "is_caption",
    "is_credit",
    "is_editorial",
    "is_navigation",
    "is_notice",
    "is_section_end",
    "is_site_name",
    "is_spam_title",
    "is_stamp",
    "is_traditional",
    "looks_like_heading",
    "parse_dateline",
    "repair_mojibake",
    "repair_pinyin",
    "to_simplified",
]

CHINA_TZ = timezone(timedelta(hours=8), "CST")
"""Times on Chinese news pages carry no zone; they are local time in China (UTC+8)."""

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_PUA = "\ue000-\uf8ff"
_CJK_RE = re.compile(f"[{_CJK}]")
_SENTENCE_PUNCT = "。！？!?；;，,"
_CJK_PUNCT = "、。，；：？！「」『』（）《》〈〉【】“”‘’…—·～"


@functools.cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """The text in Simplified characters (OpenCC ``t2s``); Simplified text comes back unchanged."""
    return str(_t2s().convert(text))


def is_traditional(text: str) -> bool:
    """Whether the text is mostly written in Traditional characters."""
    simplified = to_simplified(text)
    changed = sum(1 for a, b in zip(text, simplified, strict=False) if a != b)
    return changed * 50 >= max(1, len(_CJK_RE.findall(text)))


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _cjk_count(text: str) -> int:
    return len(_CJK_RE.findall(text))


# ── 1. pinyin annotations ─────────────────────────────────────────────────────────────────────

_TONED = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜńňǹḿ"
_SYLLABLE = f"[a-zü{_TONED}]{{1,6}}"
_PINYIN = f"{_SYLLABLE}(?:[ '’]{_SYLLABLE}){{0,3}}"
_NEUTRAL = frozenset({"de", "le", "ne", "ma", "me", "ba", "zi", "men", "zhe"})
_OPEN, _CLOSE = "[(（]", "[)）]"
_LOST = "[?？\ufffd]"
# a lost character (shown as ?) with its annotation, the opening parenthesis often lost with it
_LOST_ANNOTATED = re.compile(f"(?<=[{_CJK}])(?:{_LOST}+{_OPEN}?\\s*(?P<py>{_PINYIN})\\s*{_CLOSE})+")
_ANNOTATION = re.compile(f"(?<=[{_CJK}]){_OPEN}\\s*(?P<py>{_PINYIN})\\s*{_CLOSE}")
_HALF_ANNOTATION = re.compile(
    f"(?<=[{_CJK}])(?:{_OPEN}\\s*(?P<a>{_PINYIN})(?![a-zü{_TONED})）])"
    f"|(?P<b>{_PINYIN})\\s*{_CLOSE})"
)

# (characters that come before, pinyin) → the lost character (Simplified, Traditional): the
# annotated character is always one the converter changed, so these are the frequent news words
# whose second character differs between the scripts.
_LOST_CHARACTERS: tuple[tuple[str, str, str, str], ...] = (
    ("日晚早晨周週快时時商画畫学學年通公简簡海情电電警预預汇匯导導", "bào", "报", "報"),
    ("新要旧舊趣传傳", "wén", "闻", "聞"),
    ("上联聯互新官外内內", "wǎng", "网", "網"),
    ("中全各我美英法德韩韓两兩外", "guó", "国", "國"),
    ("社大开開学學协協都年议議", "huì", "会", "會"),
    ("手飞飛司危时時契", "jī", "机", "機"),
    ("经經救", "jì", "济", "濟"),
    ("市省县縣局部厅廳校院处處所科社董", "zhǎng", "长", "長"),
    ("政服商财財业業任事", "wù", "务", "務"),
    ("房生资資地财財物", "chǎn", "产", "產"),
    ("企产產行就专專商农農毕畢", "yè", "业", "業"),
    ("地社园園城景辖轄", "qū", "区", "區"),
    ("发發供停", "diàn", "电", "電"),
)


def _pinyin_ok(syllables: str) -> bool:
    toned = any(c in _TONED for c in syllables)
    return toned or all(s in _NEUTRAL for s in re.split(r"[ '’]", syllables))


def _restore(before: str, syllables: Sequence[str], traditional: bool) -> str | None:
    for chars, pinyin, simplified, trad in _LOST_CHARACTERS:
        if before and before in chars and pinyin in syllables:
            return trad if traditional else simplified
    return None


def repair_pinyin(text: str, *, notes: list[str] | None = None) -> str:
    """Remove pinyin annotations a script converter left after characters.

    ``機(jī)`` → ``機``; an annotation that lost a parenthesis (``網wǎng)``, ``網(wǎng``) goes too.
    A lost character with its annotation (``日?qǐng)?bào)``) is restored from a small table of
    frequent news words (→ ``日報``) or else dropped, with a one-line note appended to ``notes``.
    Toneless syllables count only for a few neutral-tone particles, so ``(AI)`` or ``(app)``
    survive.
    """
    traditional: bool | None = None

    def lost(match: re.Match[str]) -> str:
        nonlocal traditional
        groups = re.findall(f"{_OPEN}?\\s*({_PINYIN})\\s*{_CLOSE}", match.group())
        if not all(_pinyin_ok(g) for g in groups):
            return match.group()
        if traditional is None:
            traditional = is_traditional(text)
        before = text[match.start() - 1]
        restored = _restore(before, groups, traditional)
        if restored is not None:
            return restored
        if notes is not None:
            notes.append(
                f"dropped a character lost in conversion after {_context(text, match.start())}"
                f" (pinyin {' '.join(groups)})"
            )
        return ""

    text = _LOST_ANNOTATED.sub(lost, text)
    text = _ANNOTATION.sub(lambda m: "" if _pinyin_ok(m["py"]) else m.group(), text)

    def half(match: re.Match[str]) -> str:
        syllables = match["a"] or match["b"] or ""
        return "" if any(c in _TONED for c in syllables) else match.group()

    return _HALF_ANNOTATION.sub(half, text)


def _context(text: str, at: int, width: int = 6) -> str:
    return f'"{_visible(text[max(0, at - width) : at])}"'


def _visible(text: str) -> str:
    """Text fit for a one-line note: private-use and control characters as escapes."""
    return "".join(
        f"\\u{ord(c):04x}" if re.match(f"[{_PUA}\\x00-\\x1f\\x7f-\\x9f]", c) else c for c in text
    )


# ── 2. mojibake ───────────────────────────────────────────────────────────────────────────────


@functools.cache
def _common_characters() -> tuple[frozenset[str], frozenset[str]]:
    """(common, known) CJK characters, read off the legacy code tables.

    Common: GB2312 level 1 (3,755 most frequent Simplified) and Big5 level 1 (5,401 frequent
    Traditional). Known: GB2312 level 2 and Big5 level 2. Everything else (GBK extensions, private
    use) is rare in news text and typical of text decoded out of step.
    """
    common: set[str] = set()
    known: set[str] = set()
    for lead in range(0xB0, 0xF8):
        for trail in range(0xA1, 0xFF):
            try:
                char = bytes((lead, trail)).decode("gb2312")
            except UnicodeDecodeError:
                continue
            (common if lead <= 0xD7 else known).add(char)
    for lead in range(0xA4, 0xFA):
        for trail in itertools.chain(range(0x40, 0x7F), range(0xA1, 0xFF)):
            try:
                char = bytes((lead, trail)).decode("big5")
            except UnicodeDecodeError:
                continue
            (common if (lead << 8 | trail) <= 0xC67E else known).add(char)
    return frozenset(common), frozenset(known - common)


_QUESTION_MARKS = "?\ufffd"
_LOST_MARK = "\x00"  # stands for a character whose bytes were lost, while scoring candidates


def _char_score(char: str) -> int:
    common, known = _common_characters()
    if char in common:
        return 1
    if char in known or char in _CJK_PUNCT or "\uff01" <= char <= "\uff20":
        return 0
    if char == _LOST_MARK or _CJK_RE.match(char):
        return -1
    if re.match(f"[{_PUA}]", char):
        return -3
    return -2  # ?, ASCII or anything else inside CJK text


def _score(text: str) -> int:
    return sum(_char_score(c) for c in text)


def _is_cjk_or_pua(char: str) -> bool:
    return bool(re.match(f"[{_CJK}{_PUA}]", char))


_QUESTION_FINAL = "吗嗎呢么麼吧啊呀嘛哪"
_QUESTION_WORDS = re.compile(
    "什么|什麼|怎么|怎麼|为什么|為什麼|为何|為何|谁|誰|哪|几|幾|多少|是否|难道|難道|何时|何時|如何"
)


def _is_question_mark(text: str, at: int) -> bool:
    """Whether the ``?`` at ``at`` ends a question rather than standing for lost bytes."""
    before = text[at - 1] if at else ""
    after = text[at + 1] if at + 1 < len(text) else ""
    if (before and before in _QUESTION_MARKS) or (after and after in _QUESTION_MARKS):
        return False
    if re.match(f"[{_PUA}]", after):
        return False
    if not after or after.isspace() or after in "”’」』)）\"'》!！":
        return True  # where a sentence ends
    if not _is_cjk_or_pua(after):
        return False  # ?; or ?、 is no question
    if before and before in _QUESTION_FINAL:
        return True
    sentence = re.split("[。！？!?\n]", text[:at])[-1]
    return bool(_QUESTION_WORDS.search(sentence))


def _anchors(text: str) -> list[int]:
    """Positions of certain damage: private-use characters and ``?`` standing for lost bytes."""
    found = []
    for i, char in enumerate(text):
        if re.match(f"[{_PUA}]", char):
            found.append(i)
        elif char in _QUESTION_MARKS:
            j, k = i, i
            while j > 0 and text[j - 1] in _QUESTION_MARKS:
                j -= 1
            while k + 1 < len(text) and text[k + 1] in _QUESTION_MARKS:
                k += 1
            before = text[j - 1] if j else ""
            after = text[k + 1] if k + 1 < len(text) else ""
            if (_is_cjk_or_pua(before) or _is_cjk_or_pua(after)) and (
                char == "\ufffd" or not _is_question_mark(text, i)
            ):
                found.append(i)
    return found


def _clusters(text: str, anchors: list[int]) -> Iterator[tuple[int, int]]:
    """Group anchors no more than a few non-space characters apart: [first, last] inclusive."""
    if not anchors:
        return
    first = last = anchors[0]
    for pos in anchors[1:]:
        if pos - last <= 5 and not any(c.isspace() for c in text[last:pos]):
            last = pos
        else:
            yield first, last
            first = last = pos
    yield first, last


_UNKNOWN = -1  # a byte lost for good


def _byte_options(char: str) -> list[tuple[int, ...]] | None:
    """What bytes a character of GBK text decoded out of step may stand for."""
    if char in _QUESTION_MARKS:
        # a byte the decoder gave up on, or a full-width ？ (A3 BF) folded to ASCII by the copy
        return [(_UNKNOWN,), (0xA3, 0xBF)]
    if "!" <= char <= "~":
        # a stray single byte, or a full-width form (A3 xx) folded to ASCII
        return [(ord(char),), (0xA3, ord(char) | 0x80)]
    try:
        encoded = char.encode("gb18030")
    except UnicodeEncodeError:
        return None
    return [tuple(encoded)] if len(encoded) == 2 else None


def _decode_pairs(data: Sequence[int]) -> str | None:
    """Decode GBK bytes where some are unknown: a pair holding an unknown byte is a lost char."""
    out = []
    i = 0
    while i < len(data):
        byte = data[i]
        if byte != _UNKNOWN and byte < 0x80:
            out.append(chr(byte))
            i += 1
            continue
        pair = data[i : i + 2]
        if len(pair) < 2 or _UNKNOWN in pair:
            out.append(_LOST_MARK)
        else:
            try:
                out.append(bytes(pair).decode("gbk"))
            except UnicodeDecodeError:
                return None
        i += 2
    return "".join(out)


@dataclass(frozen=True)
class _Repair:
    start: int
    end: int
    text: str
    """The recovered characters, with _LOST_MARK where one was lost."""
    gain: int
    assumptions: int
    data: tuple[int, ...] = ()
    """The bytes re-read (``_UNKNOWN`` for a lost one)."""
    shift: int = 0
    """Leading bytes skipped: the trail of a character whose lead byte was lost."""


_ASSUMPTION_COST = 2
"""Reading a ``?`` or ASCII character as a folded full-width form must pay for itself."""


def _redecodings(span: str) -> Iterator[tuple[str, int, list[int], int]]:
    """Every reading of the span one byte out of step:
    (text, number of full-width readings, the bytes read, how many leading bytes were skipped).
    """
    options = [_byte_options(c) for c in span]
    if any(o is None for o in options):
        return
    choices = [o for o in options if o is not None]
    ambiguous = [i for i, o in enumerate(choices) if len(o) > 1]
    for i in ambiguous[10:]:  # keep the search small: the first reading for the rest
        choices[i] = choices[i][:1]
    for picked in itertools.product(*choices):
        data = [b for seq in picked for b in seq]
        assumptions = sum(1 for seq, opts in zip(picked, choices, strict=True) if seq != opts[0])
        for shift in (0, 1):
            reading = _reading(data, shift)
            if reading is not None:
                yield reading, assumptions, data, shift


def _reading(data: Sequence[int], shift: int) -> str | None:
    decoded = _decode_pairs(data[shift:])
    return None if decoded is None else (_LOST_MARK if shift else "") + decoded


def _plain_bytes(char: str) -> tuple[int, ...] | None:
    """The two GBK bytes of a CJK character or punctuation mark, None for anything else."""
    if char.isascii() or char.isspace() or char in _QUESTION_MARKS:
        return None
    options = _byte_options(char)
    return options[0] if options and len(options) == 1 else None


_REACH = 40
"""How far a garbled run may extend beyond its first and last damaged character."""


def _best_repair(text: str, first: int, last: int) -> _Repair | None:
    """The best one-byte-shifted reading of the run around the damage from ``first`` to
    ``last`` (inclusive), or ``None`` when none is clearly better than the garbled text and
    plausible throughout.

    The damage marks the run's core; the run itself may start earlier (a decoder that lost a
    byte without saying so) and end later, as far as the re-reading keeps improving the text, and
    may end in a stray ASCII character: a trail byte below 0x80 put the decoder back in step
    (``…\ue38bD`` is the end of 轉, DE 44).
    """
    ends = [last + 1]
    if last + 1 < len(text) and "@" <= text[last + 1] <= "~":
        ends.append(last + 2)
    best: _Repair | None = None
    core: tuple[list[int], int] = ([], 0)
    for end in ends:
        original = _score(text[first:end])
        for candidate, assumptions, data, shift in _redecodings(text[first:end]):
            gain = _score(candidate) - original - _ASSUMPTION_COST * assumptions
            repair = _Repair(first, end, candidate, gain, assumptions, tuple(data), shift)
            if best is None or _rank(repair) > _rank(best):
                best, core = repair, (data, shift)
    if best is None:
        return None
    best = _extend(text, best, *core)
    if best.gain < 3:
        return None
    recovered = [c for c in best.text if c != _LOST_MARK]
    common, known = _common_characters()
    if (
        sum(1 for c in recovered if c in common or c in known) < 2
        or any(_char_score(c) < 0 for c in recovered)
        or best.text.count(_LOST_MARK) > len(recovered)
    ):
        return None
    return best


def _extend(text: str, repair: _Repair, data: list[int], shift: int) -> _Repair:
    """Grow the repair over neighbouring characters while re-reading them gains (same step)."""
    cost = _ASSUMPTION_COST * repair.assumptions
    best = repair
    prefix: list[int] = []
    start = repair.start
    while start > 0 and repair.start - start < _REACH:
        plain = _plain_bytes(text[start - 1])
        if plain is None:
            break
        start -= 1
        prefix = [*plain, *prefix]
        reading = _reading(prefix + data, shift)
        if reading is None:
            break
        gain = _score(reading) - _score(text[start : repair.end]) - cost
        candidate = _Repair(
            start, repair.end, reading, gain, repair.assumptions, tuple(prefix + data), shift
        )
        if _rank(candidate) > _rank(best):
            best = candidate
    data = [*(b for c in text[best.start : repair.start] for b in _plain_bytes(c) or ()), *data]
    if text[best.end - 1].isascii():
        return best  # the run already ends where the decoder got back in step
    end = best.end
    while end < len(text) and end - best.end < _REACH:
        char = text[end]
        plain = _plain_bytes(char)
        stray = plain is None and "@" <= char <= "~"
        if plain is None and not stray:
            break
        end += 1
        data = [*data, *(plain or (ord(char),))]
        reading = _reading(data, shift)
        if reading is None:
            break
        gain = _score(reading) - _score(text[best.start : end]) - cost
        candidate = _Repair(best.start, end, reading, gain, best.assumptions, tuple(data), shift)
        if _rank(candidate) > _rank(best):
            best = candidate
        if stray:
            break
    return best


def _rank(repair: _Repair) -> tuple[int, int, int]:
    return repair.gain, -repair.text.count(_LOST_MARK), -repair.assumptions


def _lost_pairs(data: Sequence[int], shift: int) -> list[tuple[int, int]]:
    """The two bytes (``_UNKNOWN`` for a lost one) of each character ``_reading`` marks lost,
    in order."""
    pairs = [(_UNKNOWN, data[0] if data else _UNKNOWN)] if shift else []
    rest = data[shift:]
    i = 0
    while i < len(rest):
        byte = rest[i]
        if byte != _UNKNOWN and byte < 0x80:
            i += 1
            continue
        pair = (*rest[i : i + 2], _UNKNOWN)[:2]
        if _UNKNOWN in pair:
            pairs.append((pair[0], pair[1]))
        i += 2
    return pairs


_TRAILS = (*range(0x40, 0x7F), *range(0x80, 0xFF))


def _lost_candidates(pair: tuple[int, int], traditional: bool) -> dict[str, str]:
    """What the lost character may have been, given its surviving byte: Simplified form →
    the character as the text writes it. Only frequent characters of the text's own script."""
    lead, trail = pair
    if (lead == _UNKNOWN) == (trail == _UNKNOWN):
        return {}  # both bytes lost: nothing to go on
    pairs = (
        [(lead, t) for t in _TRAILS]
        if trail == _UNKNOWN
        else [(b, trail) for b in range(0x81, 0xFF)]
    )
    common, known = _common_characters()
    found: dict[str, str] = {}
    for pair_bytes in pairs:
        try:
            char = bytes(pair_bytes).decode("gbk")
        except UnicodeDecodeError:
            continue
        if char not in common and char not in known:
            continue
        simplified = to_simplified(char)
        if traditional and _s2t().convert(char) != char:
            continue  # a Simplified-only form in Traditional text
        if not traditional and simplified != char:
            continue
        found.setdefault(simplified, char)
    return found


@functools.cache
def _s2t() -> opencc.OpenCC:
    return opencc.OpenCC("s2t")


def _shared_start(a: str, b: str) -> int:
    """How many leading characters ``a`` and ``b`` share."""
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _word_chars(text: str) -> str:
    """The run of CJK characters at the end of ``text``."""
    match = re.search(f"[{_CJK}]*$", text)
    return match.group() if match else ""


def _fill_lost(before: str, repair: _Repair, after: str) -> tuple[str, list[str]]:
    """``before`` + the repair's text with every lost character restored from the word list
    when its surviving byte and its neighbours leave one candidate (``wordlist.fill``), or else
    dropped with the neighbours that would have made a word with it: a broken word is dropped
    whole, never read in part. Returns (text, one note per lost character)."""
    from newsreader.text import wordlist

    pairs = _lost_pairs(repair.data, repair.shift)
    traditional = is_traditional(before[-40:] + repair.text + after[:40])
    result = before
    notes: list[str] = []
    skip = 0
    marks = 0
    for at, char in enumerate(repair.text):
        if char != _LOST_MARK:
            if skip and _CJK_RE.match(char):
                skip -= 1
            else:
                skip = 0
                result += char
            continue
        pair = pairs[marks] if marks < len(pairs) else (_UNKNOWN, _UNKNOWN)
        marks += 1
        candidates = _lost_candidates(pair, traditional)
        left = _word_chars(result)
        right_text = repair.text[at + 1 :] + after
        right = re.match(f"[{_CJK}]*", right_text)
        right_chars = right.group() if right else ""
        chosen = wordlist.fill(to_simplified(left), to_simplified(right_chars), list(candidates))
        if chosen.char is not None:
            restored = candidates[chosen.char]
            notes.append(
                f'restored the lost character "{restored}" in "{left[-3:]}{restored}'
                f'{right_chars[:3]}" from the word list'
            )
            result += restored
            continue
        dropped_left = left[len(left) - chosen.left :] if chosen.left else ""
        dropped_right = right_chars[: chosen.right]
        result = result[: len(result) - len(dropped_left)]
        skip = chosen.right
        if dropped_left or dropped_right:
            notes.append(
                f'dropped the broken word "{dropped_left}?{dropped_right}": the lost character'
                " is not certain"
            )
        else:
            notes.append(f"dropped a lost character after {_context(result, len(result))}")
    return result, notes


# a UTF-8 lead byte then continuation bytes (0x80-0xBF), as Windows-1252 shows them
_CONTINUATION = (
    "\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122"
)
_LATIN1_RUN = re.compile(f"(?:[\u00c2-\u00f4][{_CONTINUATION}]{{1,3}})+")


def _repair_utf8_read_as_latin1(text: str) -> str:
    """``ä¸­æ–‡`` → ``中文``: UTF-8 bytes that were decoded as Windows-1252 or Latin-1."""

    def fix(match: re.Match[str]) -> str:
        run = match.group()
        data = bytearray()
        for char in run:
            if ord(char) < 0x100:
                data.append(ord(char))
            else:
                try:
                    data.extend(char.encode("cp1252"))
                except UnicodeEncodeError:
                    return run
        try:
            fixed = data.decode("utf-8")
        except UnicodeDecodeError:
            return run
        return fixed if _CJK_RE.search(fixed) else run

    return _LATIN1_RUN.sub(fix, text)


_REPLACEMENT_AS_GBK = re.compile("(?:锟斤拷|烫烫烫|屯屯屯)+")


def repair_mojibake(text: str) -> tuple[str, list[str]]:
    """Repair garbled runs in CJK text; drop what cannot be recovered. Returns (text, notes).

    The damage this knows (found on real pages, the seed among them):

    - **GBK decoded one byte out of step.** A decoder that loses one byte reads every following
      character as the second byte of one plus the first byte of the next, until a single-byte
      character brings it back in step. Such runs start at a ``?`` (the lost byte) and hold private
      use characters (GBK's user-defined area) and rare characters; a copy that folded full-width
      forms to ASCII turned A3 BF (？) and A3 BB (；) into ``?`` and ``;``. The run is re-encoded
      with gb18030, each ``?``/ASCII character tried as a lost byte, a stray byte or a folded
      full-width form, and decoded again one byte shifted. The reading kept is the one made of the
      most frequent characters (GB2312/Big5 level 1), and only when it is clearly better than the
      garbled run and all of its characters are plausible; a character that had a lost byte is
      gone for good and is dropped.
    - **UTF-8 decoded as Windows-1252** (``ä¸­æ–‡``): re-encoded and decoded again.
    - ``锟斤拷`` (replacement characters that went through GBK): dropped.

    A run that cannot be recovered is dropped whole. Every loss gets a one-line note. Private use
    characters away from CJK text (icon fonts) are dropped without a note.
    """
    notes: list[str] = []
    text = _repair_utf8_read_as_latin1(text)
    if _REPLACEMENT_AS_GBK.search(text):
        notes.append("dropped replacement characters garbled as 锟斤拷")
        text = _REPLACEMENT_AS_GBK.sub("", text)
    out: list[str] = []
    done = 0
    for first, last in _clusters(text, _anchors(text)):
        if first < done:
            continue
        repair = _best_repair(text, first, last)
        if repair is not None:
            garbled = text[repair.start : repair.end]
            before = "".join(out) + text[done : repair.start]
            repaired, fill_notes = _fill_lost(before, repair, text[repair.end :])
            kept = repaired[_shared_start(before, repaired) :]
            out = [repaired]
            done = repair.end
            if repair.text.count(_LOST_MARK):
                notes.append(f'repaired garbled text "{_visible(garbled)}" as "{kept}"')
                notes.extend(fill_notes)
            continue
        garbled = text[first : last + 1]
        out.append(text[done:first])
        done = last + 1
        near_cjk = any(
            _CJK_RE.match(c) for c in text[max(0, first - 1) : first] + text[last + 1 : last + 2]
        )
        if near_cjk or any(c in _QUESTION_MARKS for c in garbled) or _CJK_RE.search(garbled):
            notes.append(
                f'dropped garbled text "{_visible(garbled)}" after {_context(text, first)}'
            )
    out.append(text[done:])
    return "".join(out), notes


# ── 3. line classifiers ───────────────────────────────────────────────────────────────────────


_FULL_WIDTH_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
"""Full-width ``！``…``～`` to their ASCII forms."""


@functools.lru_cache(maxsize=256)
def _fold(line: str) -> str:
    """Simplified, whitespace collapsed, full-width ASCII folded: what keyword rules look at.

    Every classifier folds the line it looks at, so a line is folded once (cached), not once a
    classifier."""
    line = re.sub(r"\s+", " ", line.replace("\u3000", " ")).strip()
    return to_simplified(line.translate(_FULL_WIDTH_ASCII))


_SPAM_WORDS = _words(
    "无码 有码 三级 人妻 色情 成人 一区 二区 三区 国产精品 精品视频 在线观看 在线播放 在线视频 "
    "免费观看 亚洲 日韩 欧美 中文字幕 伦理 自拍 偷拍 激情 久久 av 黄色 午夜 丝袜 少妇 熟女 "
    "乱伦 一本道 综合 博彩 赌场 赌博 娱乐城 百家乐 老虎机 时时彩 六合彩 彩票 葡京 威尼斯人 "
    "太阳城 真人 棋牌 投注 开户 彩金 注册送"
)


def is_spam_title(line: str) -> bool:
    """A hijacked title: porn/gambling keywords strung together, or ``_``-joined keyword runs."""
    folded = _fold(line).lower()
    hits = sum(1 for word in _SPAM_WORDS if word in folded)
    parts = [p for p in re.split(r"\s*_\s*", folded) if p]
    keyword_run = len(parts) >= 4 and all(
        len(p) <= 10 and not any(c in p for c in _SENTENCE_PUNCT + "：:") for p in parts
    )
    spam_chars = sum(len(w) for w in _SPAM_WORDS if w in folded)
    dense = spam_chars * 3 >= max(1, _cjk_count(folded))
    return (
        (hits >= 3 and (len(parts) >= 3 or dense))
        or (hits >= 2 and keyword_run)
        or (keyword_run and hits >= 1)
        or (keyword_run and len(parts) >= 6)
    )


def _has_sentence_punct(text: str) -> bool:
    return any(c in text for c in "。！？!?；;，,")


_NAV_SPLIT = re.compile(r"[|｜/·•>»›]+|\s+")


def is_navigation(line: str) -> bool:
    """A navigation bar: many short items (``首页| 兰州| 新闻| …``), no sentence punctuation."""
    folded = _fold(line)
    if _has_sentence_punct(folded):
        return False
    items = [i for i in _NAV_SPLIT.split(folded) if i]
    if len(items) < 4:
        return False
    mean = sum(len(i) for i in items) / len(items)
    separated = len(re.findall(r"[|｜·•]", folded)) >= 3 or folded.startswith("首页")
    if separated:
        return mean <= 8
    return len(items) >= 6 and mean <= 3


_BREADCRUMB_START = re.compile(
    r"^(?:您|你)?(?:现在)?(?:的|当前|所在)?(?:的)?位置\s*[:：]?|^当前位置"
)
_HOME = ("首页", "主页", "网站首页", "home", "首頁")


def is_breadcrumb(line: str) -> bool:
    """``您的位置:网站首页 > 数码> 正文`` and ``首页 > 科技湃``."""
    folded = _fold(line)
    if _BREADCRUMB_START.match(folded):
        return True
    if len(folded) <= 16 and re.search(r"[>»›＞→]$", folded):
        return True  # a breadcrumb split over lines: 快讯 >
    items = [i.strip() for i in re.split(r"[>»›＞→]", folded)]
    return (
        len(items) >= 2
        and all(len(i) <= 16 for i in items)
        and (items[0].lower() in _HOME or items[-1] == "正文")
    )


_EDITORIAL_LABELS = _words(
    "责任编辑 责编 编辑 主编 值班编辑 实习编辑 美编 审核 审校 审稿 初审 复审 终审 校对 监制 "
    "统筹 策划 出品 来源 稿源 信息来源 资料来源 新闻来源 文章来源 原标题 本文原标题 原题 作者 撰稿 "
    "排版 制作 翻译 编译 供稿 关键词 关键字 标签 tags"
)
_EDITORIAL = re.compile(
    r"^[\[【(（<《]?\s*(?:" + "|".join(sorted(_EDITORIAL_LABELS, key=len, reverse=True)) + r")"
    r"(?:于|自)?\s*(?:[:：/|｜为為>»]|\s|$)"
)
_PAGE_CONTROL = (
    r"[\[【(（]?\s*(?:关闭(?:窗口|本页)?|打印(?:本页|本文|文章)?|返回(?:顶部|首页|列表)?|收藏(?:本文)?"
    r"|分享(?:到|至)?\s*[:：]?|(?:调整)?(?:字号|字体)\s*[:：]?\s*(?:大\s*中\s*小)?|上一篇.*|下一篇.*|【?\s*大\s*中\s*小\s*】?"
    r"|我要纠错|纠错|举报|点赞|复制链接|登录|注册|免注册|快速登录|退出(?:登录)?|个人中心|消息|通知"
    r"|公告\d*|邮箱|无障碍(?:浏览)?|简|繁|简体|繁体|EN|English|设为首页|加入收藏|搜索|更多"
    r"|[+＋]?\s*关注|已关注|取消关注)"
    r"\s*[\]】)）]?"
)
_PAGE_CONTROLS = re.compile(rf"^{_PAGE_CONTROL}(?:[\s|｜/]*{_PAGE_CONTROL})*$")


def is_editorial(line: str) -> bool:
    """Editorial metadata and page controls: ``责任编辑：…``, ``来源：…``, ``原标题：…``,
    ``校对``, ``【编辑：…】``, ``关闭``, ``打印``, ``返回顶部``. Never a sentence of the story.
    """
    folded = _fold(line)
    if not folded:
        return False
    if _PAGE_CONTROLS.match(folded):
        return True
    if _EDITORIAL.match(folded):
        return len(folded) <= 80 and "。" not in folded.rstrip("。")
    # (综合整理自…) and （原题为《…》）
    return (
        bool(
            re.match(
                r"^[(（]?\s*(?:综合整理自|综合自|据.{1,12}综合|原题为|本文来源|本文转自)", folded
            )
        )
        and len(folded) <= 80
    )


# roles a person is credited with; a bare name may follow them
_PERSON_ROLES = _words(
    "记者 通讯员 实习生 见习记者 特约记者 特约撰稿 摄影 摄像 采写 执笔 撰文 撰稿 供稿 主持人 口述"
)
# roles that are also ordinary words: credited only with a separator (``文/张三``, ``编辑：李四``)
_WORD_ROLES = _words("文 图 文图 文字 编辑 整理 视频 拍摄 制图 设计 校对")
_NAME = f"[{_CJK}A-Za-z·]{{1,8}}"
_ANY_ROLE = "|".join(sorted((*_PERSON_ROLES, *_WORD_ROLES), key=len, reverse=True))
_NAMES = rf"{_NAME}(?:[、,，&＆\s]+(?!(?:{_ANY_ROLE})\s*[:：/｜|]){_NAME})*"
_CREDIT_CHUNK = re.compile(
    rf"(?:[{_CJK}A-Za-z、·]{{0,16}}?(?:{'|'.join(sorted(_PERSON_ROLES, key=len, reverse=True))})"
    rf"\s*[:：/｜|]?\s*(?:{_NAMES})?"
    rf"|(?:{'|'.join(sorted(_WORD_ROLES, key=len, reverse=True))})\s*[:：/｜|]\s*{_NAMES})"
)


def is_credit(line: str) -> bool:
    """A reporter/photo credit line: ``兰州日报社全媒体记者 华静 通讯员 权冬玲``,
    ``（记者 张三）``, ``文/张三 图/李四``, ``采写：南都记者 余毅菁 向雪妮``, ``执笔/叨叨姐``.

    Only a whole line of role words and names counts; a sentence that starts with 记者
    (``记者从市科技局了解到，…``) is story text.
    """
    folded = _fold(line).strip("（）()[]【】 ")
    if not folded or len(folded) > 50 or any(c in folded for c in "。！？!?；;"):
        return False
    rest = folded
    while rest:
        match = _CREDIT_CHUNK.match(rest)
        if not match or not match.group():
            return False
        rest = rest[match.end() :].lstrip(" ,，、;；")
    return True


_CAPTION = re.compile(
    r"^[(（]?\s*(?:图为|图片为|图:|图：|图片[:：]|图片来源|图片来自|图源|来源[:：]?\s*视觉中国|视频截图|"
    r"资料图|图片均来自|配图|供图|截图|摄影[:：/]|图注\s*[:：]|[▲△↑]"
    r"|[(（\[【]\s*(?:图片|图|组图)\s*[)）\]】]"  # the mark a removed photo left: （图片）…
    r"|◎[^。！？!?]*$)"  # ◎ before a caption (a ◎ point of a list has sentences)
    r"|(?:报道|网站|网页|页面|视频|微博)截图[。.]?$"
    r"|[。！？\s](?=[^。！？]{0,16}(?:\s|记者|通讯员|摄影|图))[^。！？]{1,16}摄[。.]?$"
    r"|(?:[(（]\s*[^()（）]{0,12}(?:摄|供图|图|资料图|截图)\s*[)）]|视觉中国(?:\s*资料)?|资料图片?"
    r"|供图|图片来源[^。]{0,20})\s*$"
)


def is_caption(line: str) -> bool:
    """An image caption or photo credit: ``图为…（刘通摄）``, ``视频截图``, ``图片来源：…``."""
    folded = _fold(line)
    return bool(folded) and len(folded) <= 100 and bool(_CAPTION.search(folded))


_NOTICE = re.compile(
    r"免责声明|版权声明|版权所有|未经(?:允许|授权|许可).{0,10}(?:转载|使用)|转载请|禁止转载|"
    r"(?:本文|文章)(?:来自|转自|系|为).{0,30}(?:原创|客户端|APP|app|公众号)|下载.{0,12}(?:APP|app|客户端)|"
    r"扫一扫|扫码|二维码|长按.{0,6}(?:识别|关注)|关注.{0,10}公众号|点击.{0,6}(?:阅读原文|菜单|关注)|"
    r"^声明[:：]|仅供参考，不构成|不构成.{0,6}投资建议|点.{0,3}在看|"
    r"首发于.{0,30}(?:公众号|微信|微博|客户端|APP|app|头条号|百家号)"
)


def is_notice(line: str) -> bool:
    """Site boilerplate inside the body: disclaimers, copyright and reprint notices, app and
    QR-code promotions."""
    folded = _fold(line)
    return len(folded) <= 200 and bool(_NOTICE.search(folded))


_SECTION_END = re.compile(
    r"^[\[【]?\s*(?:相关(?:新闻|阅读|推荐|文章|链接|报道|专题|稿件)|推荐阅读|延伸阅读|热门(?:推荐|文章|新闻|评论|排行)?"
    r"|热点(?:推荐|新闻)|为你推荐|为您推荐|猜你喜欢|更多(?:精彩|新闻|阅读|推荐)|精彩推荐|今日推荐|编辑推荐"
    r"|网友评论|精彩评论|最新评论|热门评论|评论|发表评论|我要评论|相关评论|作者最新文章|往期回顾|往期推荐"
    r"|扫码|扫一扫|分享到|分享至|延伸推荐|相关视频|视频推荐|更多视频|热门视频|精彩视频)"
    r"\s*[\]】]?\s*(?:[(（]\s*\d*\s*[)）])?\s*[:：>›»]?\s*$"
)
# a comment section's header: 评论 139，请先登录后发表评论 · 跟贴 139 人参与 · 2 条评论 · 添加新评论
_COMMENTS_HEADER = re.compile(
    r"^(?:(?:网友|全部|最新|热门)?(?:评论|跟帖|跟贴|留言)\s*[(（]?\s*\d+\s*[)）]?\s*(?:条|人参与)?"
    r"(?:\s*[，,、|｜]?\s*.{0,6}(?:登录|注册).{0,12})?"
    r"|\d+\s*(?:条评论|条留言|人参与)|(?:请先?)?登录后(?:才能)?(?:发表|参与)?(?:评论|跟帖|跟贴|留言)"
    r"|(?:添加|发表|写)新?(?:评论|留言))\s*[:：>›»]?\s*$"
)
# related videos named on the label's own line: 相关视频：加装电梯，这个小区是怎么谈成的
_LABELLED_VIDEO = re.compile(r"^[\[【]?\s*(?:相关视频|视频推荐|推荐视频)\s*[\]】]?\s*[:：].{1,40}$")


def is_section_end(line: str) -> bool:
    """The label that opens a section after the story: 相关新闻, 推荐阅读, 热门推荐, 评论(15),
    a comment section's header (``评论 139，请先登录后发表评论``), 相关视频 …"""
    folded = _fold(line)
    return bool(
        _SECTION_END.match(folded)
        or _COMMENTS_HEADER.match(folded)
        or _LABELLED_VIDEO.match(folded)
    )


_STAMP = re.compile(
    r"^[·•|｜\s]*(?:(?:发布|发表|回复)(?:于|时间)?\s*[:：]?\s*)?"
    r"(?:\d{1,2}\s*月\s*\d{1,2}\s*日|\d{1,2}-\d{1,2}|昨天|今天|前天|\d+\s*(?:分钟|小时|天)前)"
    r"(?:\s*\d{1,2}:\d{2}(?::\d{2})?)?\s*$"
)


def is_stamp(line: str) -> bool:
    """A bare time stamp without a year (a comment's ``·05月10日``, ``3小时前``): never read."""
    return bool(_STAMP.match(_fold(line)))


_SITE_SUFFIX = re.compile(r"(?:网|网站|新闻网|门户网站|日报|晚报|报|报社|电视台|客户端)$")


def is_site_name(line: str) -> bool:
    """A short line that names a site: ``手机兰州新闻网``, ``人民网``, ``证券时报网``."""
    folded = _fold(line)
    return (
        0 < len(folded) <= 16
        and not _has_sentence_punct(folded)
        and not any(c in folded for c in ":：>|")
        and bool(_SITE_SUFFIX.search(folded))
    )


_DATE = re.compile(
    r"(?P<y>(?:19|20)\d\d)\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?"
    r"(?:\s*(?P<H>\d{1,2})\s*[:：时]\s*(?P<M>\d{1,2})(?:\s*[:：分]\s*(?P<S>\d{1,2}))?\s*秒?)?"
)
_DATELINE_LABELS = _words(
    "发布时间 发表时间 更新时间 时间 发布日期 日期 来源 稿源 作者 编辑 责任编辑 "
    "浏览次数 浏览量 浏览 阅读 点击 点击数 字号 智能朗读 语音播报 朗读 "
    "分享到 分享 打印 收藏 评论 访问量 信息来源"
)
_DATELINE_LABEL = re.compile(
    r"(?:" + "|".join(sorted(_DATELINE_LABELS, key=len, reverse=True)) + r")\s*[:：]?\s*\S*"
)


def parse_dateline(line: str) -> datetime | None:
    """The publication time of a date/source line such as ``2024-07-02 07:42:11 智能朗读:`` or
    ``2019-09-26 12:11来源：证券时报网作者：李在山``, in China's time zone; ``None`` for any other
    line, including a story sentence that mentions a date.
    """
    folded = _fold(line)
    if len(folded) > 80:
        return None
    match = _DATE.search(folded)
    if match is None:
        return None
    rest = folded[: match.start()] + " " + folded[match.end() :]
    rest = _DATELINE_LABEL.sub(" ", rest)
    rest = re.sub(r"[\s|｜:：\[\]【】()（）<>《》/·\d-]+", "", rest)
    if len(rest) > 10 or any(c in rest for c in "。，,"):
        return None
    try:
        return datetime(
            int(match["y"]),
            int(match["m"]),
            int(match["d"]),
            int(match["H"] or 0),
            int(match["M"] or 0),
            int(match["S"] or 0),
            tzinfo=CHINA_TZ,
        )
    except ValueError:
        return None


def looks_like_heading(line: str) -> bool:
    """A subheading: a short line of text without sentence punctuation (``共治共享``,
    ``发挥联席会议制度新功能``, ``一、基本情况``). Not a line ending in a colon (it leads into
    the next paragraph), not an attribution (``——（宋）陆游``), not a date.
    """
    text = line.strip()
    cjk = _cjk_count(text)
    return (
        cjk >= 2
        and len(text) <= 30
        and not any(c in text for c in "。！？!?；;，,：:")
        and not text.startswith(("—", "-", "－"))
        and _DATE.search(text) is None
    )
