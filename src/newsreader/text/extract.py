"""Page or text → ``Article``: the headline and the body, nothing else.

Two front ends feed one cleanup:

- ``extract_text``: a copied page (the seed) or a clean article as plain text, one line or
  blank-line-separated paragraph per unit;
- ``extract_html``: trafilatura finds the main text (paragraphs and subheadings), the headline
  comes from the page (an in-page headline beats a spammed or site-suffixed ``<title>``).

Both then go through the same stages:

1. repair converter pinyin and mojibake in every unit (``clean.repair_pinyin``,
   ``clean.repair_mojibake``), keeping a note for everything lost;
2. find the headline, the date/source line (→ ``published``) and the site name;
3. walk the body: drop navigation, breadcrumbs, editorial lines, credits, captions and notices,
   stop at the first trailing section (相关新闻, 推荐阅读, 评论 …), merge consecutive subheading
   lines into one heading block, and keep the rest as paragraphs.

Decisions: consecutive short heading lines are joined with "，" (one heading, read with a
pause between its parts); reporter credit lines (``记者 … 通讯员 …``) are not read; a
parenthesized credit that closes the last paragraph (``（张三）``) is removed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import lxml.html  # lxml ships no type information
import trafilatura
from lxml import etree

from newsreader.errors import ExtractionError
from newsreader.models import Article, Block, BlockKind
from newsreader.sources.decode import looks_like_html
from newsreader.text import clean

__all__ = ["extract", "extract_html", "extract_text"]

_HEADING_JOIN = "，"
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_READABLE = re.compile(f"[{_CJK}A-Za-z0-9]")
_SENTENCE_END = "。！？!?…”」"


@dataclass
class _Unit:
    """One line or block of the input on its way to becoming a Block."""

    text: str
    heading: bool = False
    """Marked as a heading by the page's markup."""
    notes: list[str] = field(default_factory=list)


def extract(text_or_html: str, *, source: str = "") -> Article:
    """Extract the article from an HTML page or from plain text, whichever the input is."""
    if looks_like_html(text_or_html):
        return _extract_html(text_or_html, url=source if _is_url(source) else "", source=source)
    return extract_text(text_or_html, source=source)


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


# ── plain text ────────────────────────────────────────────────────────────────────────────────


def extract_text(text: str, *, source: str = "") -> Article:
    """Extract the article from plain text: a page as a reader copied it, or a clean article.

    The headline is the line before the date/source line when there is one, else the first line
    that is not page furniture; lines before it are the page's header (a site name among them
    becomes ``Article.site``).
    """
    units = [_repaired(u) for u in _text_units(text)]
    units = [u for u in units if _READABLE.search(u.text)]
    title_at, published = _find_headline(units)
    if title_at is None:
        raise ExtractionError(f"no article text found in {_name(source)}: no headline found")
    site = next(
        (_site_name(u.text) for u in units[:title_at] if clean.is_site_name(u.text)),
        None,
    )
    title = units[title_at]
    return _assemble(
        units[title_at + 1 :],
        title=title.text,
        title_notes=title.notes,
        site=site,
        published=published,
        source=source,
    )


def _text_units(text: str) -> Iterator[_Unit]:
    """Lines, except that a hard-wrapped paragraph (long lines, no sentence end) is rejoined."""
    group: list[str] = []
    for raw in [*text.splitlines(), ""]:
        line = _squeeze(raw)
        if line:
            group.append(line)
            continue
        wrapped = len(group) > 1 and all(
            len(g) >= 20 and not g.endswith(tuple(_SENTENCE_END)) for g in group[:-1]
        )
        if wrapped:
            yield _Unit(_join_lines(group))
        else:
            yield from (_Unit(g) for g in group)
        group = []


def _join_lines(lines: Iterable[str]) -> str:
    joined = ""
    for line in lines:
        ascii_seam = joined[-1:].isascii() and joined[-1:].isalnum() and line[:1].isascii()
        joined += (" " if ascii_seam else "") + line
    return joined


def _find_headline(units: list[_Unit]) -> tuple[int | None, datetime | None]:
    """(index of the headline, publication time from the date line after it)."""
    for i, unit in enumerate(units[:15]):
        published = clean.parse_dateline(unit.text)
        if published is None:
            continue
        for j in range(i - 1, -1, -1):
            if _is_title_candidate(units[j].text):
                return j, published
        break
    for i, unit in enumerate(units):
        if _is_title_candidate(unit.text):
            return i, None
    return None, None


def _is_title_candidate(line: str) -> bool:
    return not (
        _is_furniture(line) or clean.is_site_name(line) or clean.parse_dateline(line) is not None
    )


def _site_name(line: str) -> str:
    """The site named by a header line; a mobile edition's 手机/手機 prefix is not its name."""
    name = re.sub(r"^(?:手机|手機)", "", line.strip())
    name = re.sub(r"\s*(?:版权所有|版權所有|copyright|©).*$", "", name, flags=re.IGNORECASE)
    return name.strip() or line.strip()


# ── HTML ──────────────────────────────────────────────────────────────────────────────────────


def extract_html(html: str, *, url: str = "") -> Article:
    """Extract the article from an HTML page (``url`` is where it came from, if known)."""
    return _extract_html(html, url=url, source=url)


def _extract_html(html: str, *, url: str, source: str) -> Article:
    tree = _parse(html)
    if tree is None:
        raise ExtractionError(
            f"no article text found in {_name(source)}: the HTML cannot be parsed"
        )
    for section in tree.iter("section"):
        section.tag = "div"  # WeChat and others build paragraphs from <section>s
    headline = _headline(tree)
    site_hint = _meta(tree, "og:site_name")
    dateline = _page_dateline(tree, headline)
    best: Article | None = None
    # favor precision first; a page whose body that leaves (nearly) empty gets a second, wider pass
    for precision in (True, False):
        doc = trafilatura.bare_extraction(
            copy.deepcopy(tree),
            url=url or None,
            favor_precision=precision,
            include_comments=False,
            include_tables=False,
            include_images=False,
            with_metadata=True,
            # htmldate's extensive search runs dateparser over the page (seconds per page);
            # the date line in the body gives the time anyway
            date_extraction_params={"extensive_search": False, "original_date": True},
        )
        body = getattr(doc, "body", None)
        if body is None:
            continue
        sitename = getattr(doc, "sitename", None)
        title = headline or _clean_title(getattr(doc, "title", None) or "")
        try:
            article = _assemble(
                list(_body_units(body)),
                title=title,
                title_notes=[],
                site=_site_name(sitename) if sitename else site_hint,
                published=dateline or _date(getattr(doc, "date", None)),
                source=source,
                from_page=True,
            )
        except ExtractionError:
            continue
        if best is None or _length(article) > _length(best):
            best = article
        if _length(best) >= 150:
            break
    if best is None:
        raise ExtractionError(
            f"no article text found in {_name(source)}: the page holds no paragraphs to read"
        )
    return best


def _parse(html: str) -> lxml.html.HtmlElement | None:
    # lxml refuses a str that still carries an XML encoding declaration
    html = re.sub(r"^\s*<\?xml[^>]*\?>", "", html)
    try:
        tree = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return None
    return tree if isinstance(tree, lxml.html.HtmlElement) else None


def _length(article: Article) -> int:
    return sum(len(p) for p in article.paragraphs)


def _text_of(element: lxml.html.HtmlElement) -> str:
    return _squeeze(element.text_content())


def _meta(tree: lxml.html.HtmlElement, name: str) -> str | None:
    for meta in tree.iter("meta"):
        if name in (meta.get("property"), meta.get("name")):
            content = _squeeze(meta.get("content") or "")
            if content:
                return content
    return None


_TITLE_SEPARATORS = re.compile(r"\s*(?:[_|｜]|-{2,}|——|\s[-–—]\s|::)\s*")
_TITLE_CLASS = re.compile(
    r"(?:^|[\s_-])(?:article|news|main|post|art|detail|content)?[_-]?"
    r"(?:title|headline|tit|biaoti)(?:$|[\s_-])",
    re.IGNORECASE,
)


def _title_parts(title: str) -> list[str]:
    parts = [p for p in _TITLE_SEPARATORS.split(title) if p]
    if parts:
        tail = re.match(r"^(.{6,}?)-([^-]{2,15})$", parts[-1])
        if tail:
            parts[-1:] = [tail.group(1), tail.group(2)]
    return parts


def _headline(tree: lxml.html.HtmlElement) -> str | None:
    """The page's headline: an in-page heading that the ``<title>`` confirms, else the one
    ``<h1>``, else the main part of a ``<title>`` that is not spam."""
    title_element = tree.find(".//title")
    page_title = _text_of(title_element) if title_element is not None else ""
    spam_title = clean.is_spam_title(page_title)
    parts = [] if spam_title else _title_parts(page_title)

    def usable(text: str) -> bool:
        return (
            4 <= len(text) <= 100
            and not clean.is_spam_title(text)
            and not clean.is_site_name(text)
            and not clean.is_navigation(text)
        )

    h1s = [t for t in (_text_of(h) for h in tree.iter("h1")) if usable(t)]
    classed = [
        _text_of(e)
        for e in tree.iter()
        if isinstance(e.tag, str)
        and e.tag not in ("html", "body", "head", "title", "meta", "a", "li", "ul", "script")
        and _TITLE_CLASS.search(f"{e.get('class', '')} {e.get('id', '')}")
    ]
    h2s = [_text_of(h) for h in tree.iter("h2", "h3")]
    if parts:
        for candidate in [*h1s, *classed, *h2s]:
            if usable(candidate) and (
                candidate in parts or (len(candidate) >= 6 and candidate in page_title)
            ):
                return candidate
    if len(set(h1s)) == 1:
        return h1s[0]
    named = [p for p in parts if usable(p)]
    if named:
        return max(named, key=len)
    return None


def _page_dateline(tree: lxml.html.HtmlElement, headline: str | None) -> datetime | None:
    """The date line that follows the headline on the page (``2024-07-02 07:42:11 来源：…``):
    trafilatura keeps it out of the body and its own date has no time of day."""
    after_headline = headline is None
    for element in tree.iter():
        if not isinstance(element.tag, str) or element.tag in ("script", "style", "title"):
            continue
        own = _squeeze(element.text or "")
        if not after_headline:
            after_headline = headline is not None and _same(_text_of(element), headline)
            continue
        for text in (own, _text_of(element) if len(element) <= 8 else ""):
            if text and len(text) <= 80:
                published = clean.parse_dateline(text)
                if published is not None:
                    return published
    return None


def _clean_title(title: str) -> str:
    if clean.is_spam_title(title):
        return ""
    parts = [p for p in _title_parts(_squeeze(title)) if not clean.is_site_name(p)]
    return max(parts, key=len) if parts else _squeeze(title)


def _date(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    match = re.match(r"(\d{4})-(\d{2})-(\d{2})", value)
    if match is None:
        return None
    try:
        year, month, day = (int(g) for g in match.groups())
        return datetime(year, month, day, tzinfo=clean.CHINA_TZ)
    except ValueError:
        return None


def _lines(element: etree._Element) -> list[str]:
    """The element's text split at its line breaks (``<lb/>`` in trafilatura's tree)."""
    pieces = [element.text or ""]
    for child in element:
        if child.tag == "lb":
            pieces.append("\n")
        else:
            pieces.append("".join(child.itertext()))
        pieces.append(child.tail or "")
    return [line for line in (_squeeze(s) for s in "".join(pieces).split("\n")) if line]


def _body_units(body: etree._Element) -> Iterator[_Unit]:
    for element in body:
        yield from _element_units(element)


def _element_units(element: etree._Element) -> Iterator[_Unit]:
    tag = element.tag
    if tag in ("code", "graphic", "table", "ref"):
        return
    if tag == "head":
        for line in _lines(element):
            yield _repaired(_Unit(line, heading=len(line) <= 60))
    elif tag == "p":
        for line in _lines(element):
            yield _repaired(_Unit(line))
    elif tag == "list":
        items = [" ".join(_lines(item)) for item in element.iter("item")]
        items = [i for i in items if i]
        link_list = len(items) >= 2 and all(
            len(i) <= 40 and not any(c in i for c in "。！？!?；;") for i in items
        )
        if not link_list:
            yield from (_repaired(_Unit(i)) for i in items)
    elif len(element):
        if element.text and element.text.strip():
            yield _repaired(_Unit(_squeeze(element.text)))
        for child in element:
            yield from _element_units(child)
            if child.tail and child.tail.strip():
                yield _repaired(_Unit(_squeeze(child.tail)))
    else:
        yield from (_repaired(_Unit(line)) for line in _lines(element))


# ── shared cleanup ────────────────────────────────────────────────────────────────────────────


def _squeeze(text: str) -> str:
    """Whitespace collapsed to single spaces (ideographic and no-break spaces too), trimmed."""
    return re.sub(r"[\s\u3000\u00a0\u200b\ufeff]+", " ", text).strip()


def _repaired(unit: _Unit) -> _Unit:
    notes: list[str] = []
    text = clean.repair_pinyin(unit.text, notes=notes)
    text, found = clean.repair_mojibake(text)
    notes.extend(found)
    # a repaired run can end in a character whose annotation follows it: 轉(zhuǎn)
    text = clean.repair_pinyin(text, notes=notes)
    return _Unit(_squeeze(text), unit.heading, [*unit.notes, *notes])


def _is_furniture(line: str) -> bool:
    """Page furniture: never read, wherever it stands."""
    return (
        clean.is_spam_title(line)
        or clean.is_navigation(line)
        or clean.is_breadcrumb(line)
        or clean.is_editorial(line)
        or clean.is_credit(line)
        or clean.is_caption(line)
        or clean.is_notice(line)
        or clean.is_section_end(line)
    )


def _same(a: str, b: str) -> bool:
    return re.sub(r"\s+", "", a) == re.sub(r"\s+", "", b)


def _assemble(
    units: list[_Unit],
    *,
    title: str,
    title_notes: list[str],
    site: str | None,
    published: datetime | None,
    source: str,
    from_page: bool = False,
) -> Article:
    """Walk the body units and build the Article (see the module docstring, stage 3)."""
    title_unit = _repaired(_Unit(title)) if from_page else _Unit(title, notes=title_notes)
    notes = [f"title: {n}" for n in title_unit.notes]
    units = _drop_header(units)
    blocks: list[tuple[Block, list[str]]] = []
    heading: list[_Unit] = []
    previous = ""
    for unit in units:
        text = unit.text
        if not _READABLE.search(text) or _same(text, previous):
            continue
        previous = text
        if not title_unit.text and not blocks and unit.heading:
            title_unit = unit
            continue
        dateline = clean.parse_dateline(text)
        if dateline is not None:
            published = published if published and published.hour + published.minute else dateline
            continue
        if clean.is_section_end(text) and blocks:
            break
        if _is_furniture(text) or _same(text, title_unit.text):
            continue
        if unit.heading or clean.looks_like_heading(text):
            heading.append(unit)
            continue
        if _is_crumb(text):
            continue
        blocks.extend(_heading_blocks(heading))
        heading = []
        blocks.append((Block(BlockKind.PARAGRAPH, text), unit.notes))
    blocks = _strip_closing_credit(blocks)
    body = "".join(b.text for b, _ in blocks if b.kind is BlockKind.PARAGRAPH)
    if not body or (from_page and len(re.findall(f"[{_CJK}]", body)) < _MIN_PAGE_TEXT):
        raise ExtractionError(
            f"no article text found in {_name(source)}: nothing but page furniture"
            " (navigation, links, metadata) remains; is this an article page?"
        )
    title_text = title_unit.text or blocks[0][0].text
    counters = {BlockKind.HEADING: 0, BlockKind.PARAGRAPH: 0}
    for block, block_notes in blocks:
        counters[block.kind] += 1
        notes.extend(f"{block.kind.value} {counters[block.kind]}: {n}" for n in block_notes)
    return Article(
        title=title_text,
        blocks=tuple(b for b, _ in blocks),
        source=source,
        site=site or None,
        published=published,
        notes=tuple(notes),
    )


_MIN_PAGE_TEXT = 30
"""CJK characters a web page's body must hold to be an article rather than a page of links."""
_MAX_HEADING_LINES = 3
"""More short lines in a row are a list (a poem, an index, a menu), not one subheading."""


def _heading_blocks(lines: list[_Unit]) -> list[tuple[Block, list[str]]]:
    """One heading from up to three consecutive heading lines; a longer run is paragraphs."""
    if not lines:
        return []
    if len(lines) > _MAX_HEADING_LINES:
        return [
            (Block(BlockKind.PARAGRAPH, u.text), u.notes) for u in lines if not _is_crumb(u.text)
        ]
    merged = _join_heading([u.text for u in lines])
    return [(Block(BlockKind.HEADING, merged), [n for u in lines for n in u.notes])]


def _is_crumb(text: str) -> bool:
    """A scrap no listener needs: a lone character, a URL, a few words of Latin script."""
    cjk = len(re.findall(f"[{_CJK}]", text))
    if cjk >= 2 or (cjk == 1 and any(c in text for c in _SENTENCE_END)):
        return False
    return cjk == 1 or len(text.split()) <= 5 or bool(re.fullmatch(r"\S+://\S+", text))


def _drop_header(units: list[_Unit]) -> list[_Unit]:
    """Short unpunctuated lines before a date line at the top of the body belong to the header
    (breadcrumb, repeated headline, byline): drop them with it."""
    for i, unit in enumerate(units[:6]):
        if clean.parse_dateline(unit.text) is not None:
            before = units[:i]
            if all(len(u.text) <= 40 and not u.text.endswith(tuple(_SENTENCE_END)) for u in before):
                return [u for u in units[i:]]
            break
    return units


def _join_heading(parts: list[str]) -> str:
    joined = parts[0]
    for part in parts[1:]:
        joined += ("" if joined.endswith(tuple("，。！？：；、,.!?:;")) else _HEADING_JOIN) + part
    return joined


_CLOSING_CREDIT = re.compile(r"(?<=[。！？!?”」])\s*[（(][^（）()。，,]{2,16}[)）]$")


def _strip_closing_credit(
    blocks: list[tuple[Block, list[str]]],
) -> list[tuple[Block, list[str]]]:
    """``…正式启动。（张巨峰）`` → ``…正式启动。``: the credit that closes the last paragraph."""
    for i in range(len(blocks) - 1, -1, -1):
        block, notes = blocks[i]
        if block.kind is BlockKind.PARAGRAPH:
            text = _CLOSING_CREDIT.sub("", block.text)
            blocks[i] = (Block(BlockKind.PARAGRAPH, text), notes)
            break
    return blocks


def _name(source: str) -> str:
    return source or "the input"
