"""Extraction quality as numbers: what a reader reads, scored against a gold reading script.

A **gold reading script** says what a careful human editor would have a screen reader read from
a page: the headline, then the body's paragraphs and subheadings in order, and nothing else (no
captions, credits, 责任编辑/原标题/来源 lines, related lists, share blurbs or promotions).

Scoring is character-level. Both texts are reduced to the characters a voice says: NFKC-folded,
letters and digits of any script only (punctuation, whitespace, symbols and emoji are dropped).
The characters they share *in order* are counted (the length of their longest common
subsequence, computed exactly, bit-parallel), and

- **recall** = shared / gold characters: how much of the article is read;
- **precision** = shared / read characters: how much of what is read is the article.

A gold is stored without the page's prose, as references into the page: per block its first and
last few characters (at most ``MAX_ANCHOR`` each), or for a short line the start of its SHA-256.
``GoldScript.rebuild`` finds them in the page's text (``page_text``) and cuts the blocks out, so
the gold text exists only at run time. The file format, one block per line::

    # a comment: what was left out and why
    title 女儿出嫁，郑 … 兰花当嫁妆
    para 父亲的教诲像一 … 而深远……
    head #3f1c0a9e52b7
    more 国庆中秋长假 … 新闻报道中。
    skip 英国《泰晤士报》

``head`` and ``para`` start at the beginning of a line of the page's text; ``title`` may start
anywhere (past a site's ad prefix, inside a 原标题 line that holds the untruncated headline);
``more`` continues the previous block from anywhere after it (it skips text inside a paragraph,
such as a reporter credit). A block is one of:

- ``START … END``: from START to the end of the first END after it, over several lines if need
  be (a run of consecutive paragraphs is one block);
- one anchor alone: a whole line (for ``more``, just that text);
- ``#`` and twelve hex digits: the next whole line whose SHA-256 (of its UTF-8) starts so, for
  lines too short to quote a start and an end of.

Blocks are found in order, each after the one before, so a repeated phrase resolves to the
occurrence that follows; ``skip`` moves past the next occurrence of its anchor without reading it
(a caption that begins like the paragraph after it).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

from lxml import etree

from newsreader.models import Article
from newsreader.text.htmltree import parse_document

__all__ = [
    "DIGEST",
    "KINDS",
    "MAX_ANCHOR",
    "GoldBlock",
    "GoldError",
    "GoldScript",
    "Score",
    "article_text",
    "common_length",
    "line_digest",
    "load_gold",
    "mean_score",
    "page_text",
    "parse_gold",
    "reading_chars",
    "score",
]

MAX_ANCHOR = 8
"""The most characters of the page an anchor may quote."""
DIGEST = 12
"""Hex digits of a line's SHA-256 that name it."""
KINDS = ("title", "head", "para", "more", "skip")
_SEPARATOR = " … "


class GoldError(ValueError):
    """A gold file that cannot be parsed, or whose anchors are not in the page."""


# ── the characters that count ─────────────────────────────────────────────────────────────────


def reading_chars(text: str) -> str:
    """The characters of ``text`` a voice says: letters and digits after NFKC, nothing else."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(c for c in folded if unicodedata.category(c)[0] in "LN")


@dataclass(frozen=True)
class Score:
    """Character-level agreement of what is read with the gold."""

    gold: int
    """Characters in the gold."""
    read: int
    """Characters read."""
    shared: int
    """Characters of the gold that are read, in order."""

    @property
    def recall(self) -> float:
        return self.shared / self.gold if self.gold else 1.0

    @property
    def precision(self) -> float:
        return self.shared / self.read if self.read else (1.0 if not self.gold else 0.0)

    @property
    def f1(self) -> float:
        total = self.recall + self.precision
        return 2 * self.recall * self.precision / total if total else 0.0


def score(gold: str, read: str) -> Score:
    """Score ``read`` (what an extractor would have read aloud) against ``gold``."""
    expected, actual = reading_chars(gold), reading_chars(read)
    return Score(gold=len(expected), read=len(actual), shared=common_length(expected, actual))


def common_length(a: str, b: str) -> int:
    """The length of the longest common subsequence of ``a`` and ``b``.

    Bit-parallel (Allison–Dix, in Hyyrö's form): bit i of ``row`` is 1 while ``a[i]`` is still
    unmatched; each character of ``b`` updates the whole row with a few big-integer operations,
    so two 10,000-character texts take milliseconds.
    """
    if not a or not b:
        return 0
    positions: dict[str, int] = {}
    for i, char in enumerate(a):
        positions[char] = positions.get(char, 0) | (1 << i)
    full = (1 << len(a)) - 1
    row = full
    for char in b:
        matches = positions.get(char)
        if matches is None:
            continue
        hits = row & matches
        row = ((row + hits) | (row - hits)) & full
    return len(a) - row.bit_count()


def mean_score(scores: Iterable[Score]) -> tuple[float, float]:
    """(mean recall, mean precision) over pages: every page weighs the same."""
    listed = list(scores)
    if not listed:
        raise ValueError("no scores to average")
    return fmean(s.recall for s in listed), fmean(s.precision for s in listed)


def article_text(article: Article) -> str:
    """What newsreader reads from an article: the headline, then every block in order."""
    return "\n".join([article.title, *(block.text for block in article.blocks)])


# ── the page as text ──────────────────────────────────────────────────────────────────────────

_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "audio",
        "blockquote",
        "body",
        "br",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "iframe",
        "li",
        "main",
        "nav",
        "ol",
        "option",
        "p",
        "pre",
        "section",
        "select",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "title",
        "tr",
        "ul",
        "video",
    }
)
_HIDDEN_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "textarea"})
_SPACE = re.compile(r"[\s\u3000\u00a0\u200b\ufeff]+")


def page_text(html: str) -> str:
    """The text a browser shows for ``html``, one line per block, whitespace squeezed.

    Scripts, styles and the ``<head>`` (except its ``<title>``, which comes first) are left out.
    This is the text gold anchors point into: it depends on nothing but the page. Every element
    is read, however deep it is nested (``newsreader.text.htmltree``).
    """
    root = parse_document(html)
    if root is None:
        raise GoldError("the page cannot be parsed")
    pieces: list[str] = []
    head = root.find("head")
    if head is not None:
        pieces.extend(f"\n{t.text_content()}\n" for t in head.iter("title"))
    body = root.find("body")
    if body is not None:
        _walk(body, pieces)
    lines = (_SPACE.sub(" ", line).strip() for line in "".join(pieces).split("\n"))
    return "\n".join(line for line in lines if line)


def _walk(root: etree._Element, pieces: list[str]) -> None:
    """``root``'s text into ``pieces``, a line break around each block; without recursion, since
    a page can nest deeper than Python's recursion limit."""
    walk = etree.iterwalk(root, events=("start", "end", "comment", "pi"))
    for event, element in walk:
        if event in ("comment", "pi"):  # not read, but the text after one is
            pieces.append(element.tail or "")
            continue
        tag = element.tag.lower() if isinstance(element.tag, str) else ""
        hidden = not tag or tag in _HIDDEN_TAGS  # scripts, styles
        if event == "start":
            if hidden:
                walk.skip_subtree()
                continue
            if tag in _BLOCK_TAGS:
                pieces.append("\n")
            pieces.append(element.text or "")
            continue
        if not hidden and tag in _BLOCK_TAGS:
            pieces.append("\n")
        if element is not root:
            pieces.append(element.tail or "")


# ── gold reading scripts ──────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class GoldBlock:
    kind: str
    """``title``, ``head``, ``para``, ``more`` (continues the previous block) or ``skip``."""
    start: str
    end: str | None
    """None: ``start`` is the whole block, and a whole line of the page unless ``more``."""
    digest: str | None = None
    """The block is the next whole line whose SHA-256 starts with these hex digits."""


@dataclass(frozen=True)
class GoldScript:
    """A page's gold reading script, as anchors into the page."""

    name: str
    blocks: tuple[GoldBlock, ...]

    def rebuild(self, html: str) -> list[tuple[str, str]]:
        """The gold as (kind, text) blocks, cut out of the page; ``more`` is merged into the
        block before it. Raises ``GoldError`` naming the block whose anchors are missing."""
        text = page_text(html)
        lines = _line_digests(text)
        cursor = 0
        blocks: list[tuple[str, str]] = []
        for number, block in enumerate(self.blocks, 1):
            if block.kind == "skip":
                found = text.find(block.start, cursor)
                if found < 0:
                    raise GoldError(
                        f"{self.name}: block {number} (skip {block.start!r}) is not in"
                        " the page after the block before it"
                    )
                cursor = found + len(block.start)
                continue
            if block.digest is not None:
                start, end = next(
                    ((a, b) for a, b, digest in lines if a >= cursor and digest == block.digest),
                    (-1, -1),
                )
            else:
                start, end = _locate(text, block, cursor)
            if start < 0:
                raise GoldError(
                    f"{self.name}: block {number} ({block.kind} {block.start or block.digest!r})"
                    " is not in the page after the block before it"
                )
            piece = _SPACE.sub(" ", text[start:end].replace("\n", " ")).strip()
            if block.kind == "more":
                kind, before = blocks[-1]
                blocks[-1] = (kind, before + piece)
            else:
                blocks.append((block.kind, piece))
            cursor = end
        return blocks

    def text(self, html: str) -> str:
        """The gold as one text: the blocks joined by line breaks."""
        return "\n".join(piece for _, piece in self.rebuild(html))


def line_digest(line: str) -> str:
    """The hex digits that name a line in a gold file."""
    return hashlib.sha256(line.encode("utf-8")).hexdigest()[:DIGEST]


def _line_digests(text: str) -> list[tuple[int, int, str]]:
    """(start, end, digest) of every line of the page text."""
    found, at = [], 0
    for line in text.split("\n"):
        found.append((at, at + len(line), line_digest(line)))
        at += len(line) + 1
    return found


def _locate(text: str, block: GoldBlock, cursor: int) -> tuple[int, int]:
    """(start, end) of the block in the page text, searching from ``cursor``; (-1, -1) if absent."""
    if block.end is None and block.kind == "more":
        at = text.find(block.start, cursor)
        return (at, at + len(block.start)) if at >= 0 else (-1, -1)
    if block.end is None:
        line = re.compile(f"(?m)^{re.escape(block.start)}$").search(text, cursor)
        return (line.start(), line.end()) if line else (-1, -1)
    if block.kind in ("title", "more"):
        start = text.find(block.start, cursor)
    else:
        line_start = re.compile(f"(?m)^{re.escape(block.start)}").search(text, cursor)
        start = line_start.start() if line_start else -1
    if start < 0:
        return -1, -1
    end = text.find(block.end, start)
    return (start, end + len(block.end)) if end >= 0 else (-1, -1)


def parse_gold(name: str, lines: Sequence[str]) -> GoldScript:
    """Parse a gold file's lines (see the module docstring for the format)."""
    blocks: list[GoldBlock] = []
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        kind, _, rest = line.partition(" ")
        where = f"{name} line {number}"
        if kind not in KINDS:
            raise GoldError(f"{where}: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
        reference = rest.strip()
        if re.fullmatch(f"#[0-9a-f]{{{DIGEST}}}", reference):
            if kind in ("more", "skip"):
                raise GoldError(f"{where}: '{kind}' takes text anchors, not a line's digest")
            blocks.append(GoldBlock(kind, "", None, digest=reference[1:]))
            continue
        anchors = reference.split(_SEPARATOR)
        if len(anchors) > 2 or not all(anchors):
            raise GoldError(f"{where}: write START … END or one anchor")
        if any(len(a) > MAX_ANCHOR for a in anchors):
            raise GoldError(f"{where}: an anchor is longer than {MAX_ANCHOR} characters")
        if kind == "more" and not blocks:
            raise GoldError(f"{where}: 'more' needs a block before it")
        if kind == "skip" and len(anchors) != 1:
            raise GoldError(f"{where}: 'skip' takes one anchor")
        blocks.append(GoldBlock(kind, anchors[0], anchors[1] if len(anchors) == 2 else None))
    reading = [b for b in blocks if b.kind != "skip"]
    if not reading or reading[0].kind != "title":
        raise GoldError(f"{name}: a gold starts with its title")
    if sum(1 for b in blocks if b.kind == "title") != 1:
        raise GoldError(f"{name}: a gold has exactly one title")
    return GoldScript(name=name, blocks=tuple(blocks))


def load_gold(path: Path) -> GoldScript:
    """Read a gold file (``SITE-N.gold`` for the page ``SITE-N.html``)."""
    return parse_gold(path.stem, path.read_text(encoding="utf-8").splitlines())
