"""Page or text → ``Article``: the headline and the body, nothing else.

Two front ends feed one cleanup:

- ``extract_text``: a copied page (the seed) or a clean article as plain text, one line or
  blank-line-separated paragraph per unit;
- ``extract_html``: the page's own layout finds the story (``layout``: the block with the
  most prose and the fewest links, with its lines' markup hints: heading, caption under a photo,
  link); the headline comes from the page (an in-page headline beats a spammed,
  site-suffixed or unrelated ``<title>``). A page whose layout holds no clear story goes to
  trafilatura instead.

Both then go through the same stages:

1. repair converter pinyin and mojibake in every unit (``clean.repair_pinyin``,
   ``clean.repair_mojibake``), keeping a note for everything lost;
2. find the headline, the date/source line (→ ``published``) and the site name;
3. walk the body: drop navigation, breadcrumbs, editorial lines, credits, captions, links and
   notices; stop at the first trailing section (相关新闻, 推荐阅读, 评论 …) or, once the story
   has begun, at the editor's sign-off (责任编辑, 编辑|…) or a QR-code/app promotion; merge
   consecutive subheading lines into one heading block, and keep the rest as paragraphs.
4. tidy up: a summary box the body repeats is read once; a headline the page cut short or
   prefixed with an ad is completed from its own 原标题 line.

Decisions: consecutive short heading lines are joined with "，" (one heading, read with a
pause between its parts); reporter credit lines (``记者 … 通讯员 …``) are not read, nor the
credit inside a dateline (``新华社巴黎12月9日电（记者唐霁）法国…`` reads
``新华社巴黎12月9日电 法国…``); a parenthesized credit that closes the last paragraph
(``（张三）``) is removed; a subtitle under the headline is read as the first paragraph.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from newsreader.errors import ExtractionError
from newsreader.models import Article, Block, BlockKind
from newsreader.sources.decode import looks_like_html
from newsreader.text import clean

if TYPE_CHECKING:
    # Only HTML needs lxml, the page layout and trafilatura (0.2 s of imports): plain text, the
    # usual cached ``read`` of a file, never loads them.
    import lxml.html  # lxml ships no type information
    from lxml import etree

    from newsreader.text import layout

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
    caption: bool = False
    """A photo caption by its place on the page."""
    link: bool = False
    """Nearly all link text: a pointer to another page, not part of the story."""


def extract(
    text_or_html: str, *, source: str = "", read_title: bool = True, read_whole: bool = False
) -> Article:
    """Extract the article from an HTML page or from plain text, whichever the input is.

    ``read_whole`` and ``read_title`` matter only for plain text (see ``extract_text``).
    """
    if looks_like_html(text_or_html):
        return _extract_html(text_or_html, url=source if _is_url(source) else "", source=source)
    return extract_text(text_or_html, source=source, read_title=read_title, read_whole=read_whole)


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


# ── plain text ────────────────────────────────────────────────────────────────────────────────


def extract_text(
    text: str, *, source: str = "", read_title: bool = True, read_whole: bool = False
) -> Article:
    """Extract the article from plain text: a page as a reader copied it, or a clean article.

    The headline is the line before the date/source line when there is one, else the first line
    that is not page furniture; lines before it are the page's header (a site name among them
    becomes ``Article.site``).

    With ``read_whole`` (a text given to be read: the user's own words), a text with nothing
    after its first line (one paragraph, or lines that are all headings) is read whole: its
    first sentence is the title. With ``read_title`` that sentence is read as the headline and
    the rest as the body; without, the body is the whole text, each word read once either way.
    Without ``read_whole`` (text put together from a feed entry's title and content, say), such
    a text has no article: ``ExtractionError``.
    """
    units = [part for u in _text_units(text) for part in _split_dateline(_repaired(u))]
    units = [u for u in units if _READABLE.search(u.text)]
    title_at, published = _find_headline(units)
    if title_at is None:
        raise ExtractionError(f"no article text found in {_name(source)}: no headline found")
    site = next(
        (_site_name(u.text) for u in units[:title_at] if clean.is_site_name(u.text)),
        None,
    )
    title = units[title_at]
    try:
        return _assemble(
            units[title_at + 1 :],
            title=title.text,
            title_notes=title.notes,
            site=site,
            published=published,
            source=source,
        )
    except ExtractionError:
        if not read_whole:
            raise
        rest = [u for u in units[title_at + 1 :] if _is_title_candidate(u.text)]
        return _read_whole(
            [title, *rest], read_title=read_title, site=site, published=published, source=source
        )


def _split_dateline(unit: _Unit) -> list[_Unit]:
    """``发布时间：2024-07-02。今年全市…。`` is a date line and a paragraph run together: split
    them, or the date line's rule would drop the paragraph with it."""
    if clean.parse_dateline(unit.text) is None:
        return [unit]
    match = re.match(r"^(.{4,60}?)[。；;，,]\s*(.+)$", unit.text)
    if match is None:
        return [unit]
    head, rest = match[1].strip(), match[2].strip()
    if (
        clean.parse_dateline(head) is None
        or clean.parse_dateline(rest) is not None
        or not rest.endswith(tuple(_SENTENCE_END))
    ):
        return [unit]
    return [_Unit(head), _Unit(rest, unit.heading, unit.notes)]


def _read_whole(
    units: list[_Unit],
    *,
    read_title: bool,
    site: str | None,
    published: datetime | None,
    source: str,
) -> Article:
    """Every unit as a paragraph; the title is the first sentence (see ``extract_text``)."""
    from newsreader.text.segment import split_sentences

    first = units[0]
    sentences = split_sentences(first.text)
    title = sentences[0].strip() if sentences else first.text
    lead = "".join(sentences[1:]).strip() if read_title else first.text
    paragraphs = [_Unit(lead, notes=first.notes), *units[1:]]
    blocks = [(Block(BlockKind.PARAGRAPH, u.text), u.notes) for u in paragraphs if u.text]
    notes = [f"title: {n}" for n in first.notes] if read_title and not lead else []
    for number, (_, block_notes) in enumerate(blocks, start=1):
        notes.extend(f"paragraph {number}: {n}" for n in block_notes)
    return Article(
        title=title,
        blocks=tuple(b for b, _ in blocks),
        source=source,
        site=site,
        published=published,
        notes=tuple(notes),
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
    """(index of the headline, publication time from the date line after it, or before it
    when nothing above the date line can be the headline)."""
    published: datetime | None = None
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
            return i, published
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
    from newsreader.text import layout

    tree = layout.parse_page(html)
    if tree is None:
        raise ExtractionError(
            f"no article text found in {_name(source)}: the HTML cannot be parsed"
        )
    layout.prune(tree)
    site_hint = _meta(tree, "og:site_name")
    body = tree.find("body")
    lines = layout.page_lines(body if body is not None else tree)
    story = layout.without_inner_sections(
        layout.story(lines, _is_page_furniture), clean.is_section_end, _is_page_furniture
    )
    first_prose = next(
        (line.container for line in story if layout.line_value(line, _is_page_furniture) > 0),
        None,
    )
    headline = _headline(tree, " ".join(line.text for line in story), before=first_prose)
    subtitle = _subtitle(tree, headline) if headline else None
    dateline = _page_dateline(tree, headline)
    site = site_hint or _title_site(tree)
    article: Article | None = None
    if story:
        units = [_line_unit(line) for line in story]
        if subtitle and not any(_same(u.text, subtitle) for u in units):
            units.insert(0, _Unit(subtitle))
        try:
            article = _assemble(
                units,
                title=headline or "",
                title_notes=[],
                site=site,
                published=dateline,
                source=source,
                from_page=True,
            )
        except ExtractionError:
            article = None
    if article is not None and _length(article) >= _MIN_STORY:
        return article
    try:
        fallback = _extract_with_trafilatura(
            tree, url=url, source=source, headline=headline, site=site
        )
    except ExtractionError:
        if article is None:
            raise
        return article
    if article is None or _prose(fallback) > 2 * _prose(article):
        return fallback
    return article


def _prose(article: Article) -> int:
    """Characters of the article in sentences (a menu that trafilatura took for text has none)."""
    return sum(len(p) for p in article.paragraphs if re.search("[，。！？；,.!?;]", p))


_MIN_STORY = 80
"""Characters of body text below which the page's own layout is not trusted to hold the story:
trafilatura gets a try."""


def _is_page_furniture(text: str) -> bool:
    return _is_furniture(text) or clean.parse_dateline(text) is not None


def _line_unit(line: layout.Line) -> _Unit:
    unit = _repaired(_Unit(line.text, heading=line.heading and len(line.text) <= 60))
    unit.link = line.link_share >= 0.8 and not any(c in line.text for c in "。！？!?")
    unit.caption = _is_layout_caption(line)
    return unit


def _is_layout_caption(line: layout.Line) -> bool:
    """A photo's caption by its place: a short line right under a photo, not a heading, and
    either centred or a block of its own without sentence punctuation (``大会开幕式`` centred
    under the picture, a product name under its photo). Captions that say so in words
    (``图为…``, ``…摄``, ``▲…``) are ``clean.is_caption``'s."""
    if line.caption and not line.heading and len(line.text) <= _MAX_CAPTION:
        return True  # the markup says so: <figcaption>, <p class="caption">, …
    if not line.after_image or line.heading or line.in_list or len(line.text) > 40:
        return False
    return line.centered or (line.alone and not re.search("[，。；！？：,;!?:]", line.text))


_MAX_CAPTION = 100
"""Characters beyond which a line the markup calls a caption is a paragraph after all."""


def _extract_with_trafilatura(
    tree: lxml.html.HtmlElement, *, url: str, source: str, headline: str | None, site: str | None
) -> Article:
    """The fallback for pages whose layout holds no clear story: trafilatura finds the text."""
    import trafilatura

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
                site=site or (_site_name(sitename) if sitename else None),
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


def _title_site(tree: lxml.html.HtmlElement) -> str | None:
    """The site named in the ``<title>`` (``…_证券时报网``), if a part of it is a site name."""
    title_element = tree.find(".//title")
    if title_element is None:
        return None
    parts = _title_parts(_text_of(title_element))
    named = [p for p in parts[1:] if clean.is_site_name(p)]
    return _site_name(named[-1]) if named else None


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


def _headline(
    tree: lxml.html.HtmlElement, story: str, *, before: lxml.html.HtmlElement | None = None
) -> str | None:
    """The page's headline: an in-page heading that the ``<title>`` confirms, else the one
    ``<h1>``, else the main part of a ``<title>`` that is not spam. A headline that shares
    nothing with the story (a section name such as 新闻动态 in the ``<title>``) gives way to an
    in-page heading that does. In-page headings count only down to the story's first line of
    prose (``before``, which may be the headline itself), not in the footer or a sidebar."""
    if before is not None:
        order = {element: i for i, element in enumerate(tree.iter())}
        limit = order.get(before, len(order))

        def above(element: lxml.html.HtmlElement) -> bool:
            return order.get(element, 0) <= limit
    else:

        def above(element: lxml.html.HtmlElement) -> bool:
            return True

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
            and not clean.is_breadcrumb(text)
        )

    # a headline the page sets with a space (全市首家24小时 城市书房…) is still the <title>'s
    bare_title = _INVISIBLE.sub("", page_title)
    h1s = [t for t in (_text_of(h) for h in tree.iter("h1") if above(h)) if usable(t)]
    classed = [
        _text_of(e)
        for e in tree.iter()
        if isinstance(e.tag, str)
        and e.tag not in ("html", "body", "head", "title", "meta", "a", "li", "ul", "script")
        and _TITLE_CLASS.search(f"{e.get('class', '')} {e.get('id', '')}")
        and above(e)
    ]
    headings = [_text_of(h) for h in tree.iter("h2", "h3", "h4", "h5", "h6") if above(h)]
    if parts:
        for candidate in [*h1s, *classed, *headings]:
            if usable(candidate) and (
                candidate in parts
                or (len(candidate) >= 6 and _INVISIBLE.sub("", candidate) in bare_title)
            ):
                return candidate
    if len(set(h1s)) == 1:
        return h1s[0]
    named = [p for p in parts if usable(p)]
    best = max(named, key=len) if named else None
    if story and (best is None or _shared_bigrams(best, story) < _RELATED):
        related = [
            c
            for c in [*h1s, *classed, *headings]
            if usable(c) and _shared_bigrams(c, story) >= _RELATED and not _same(c, story)
        ]
        if related:
            return related[0]
    return best


_RELATED = 0.5
"""Share of a headline's character pairs that the story must contain for it to be its headline."""


def _shared_bigrams(text: str, story: str) -> float:
    """The share of ``text``'s CJK character pairs that occur in ``story``."""
    pairs = {text[i : i + 2] for i in range(len(text) - 1)}
    pairs = {p for p in pairs if re.fullmatch(f"[{_CJK}]{{2}}", p)}
    if not pairs:
        return 0.0
    return sum(1 for p in pairs if p in story) / len(pairs)


def _subtitle(tree: lxml.html.HtmlElement, headline: str) -> str | None:
    """A subtitle right under the headline (``<h2>headline</h2><h3>subtitle</h3>``)."""
    for element in tree.iter("h1", "h2", "h3", "h4"):
        if not _same(_text_of(element), headline):
            continue
        following = element.getnext()
        while following is not None and not _text_of(following):
            following = following.getnext()
        if following is None or following.tag not in ("h2", "h3", "h4", "h5"):
            return None
        text = _text_of(following)
        if 4 <= len(text) <= 40 and not _is_furniture(text) and clean.parse_dateline(text) is None:
            return text
        return None
    return None


def _page_dateline(tree: lxml.html.HtmlElement, headline: str | None) -> datetime | None:
    """The date line that follows the headline on the page (``2024-07-02 07:42:11 来源：…``):
    trafilatura keeps it out of the body and its own date has no time of day."""
    after_headline = headline is None
    # An element's whole text is looked at only when it can be short enough: on a page nested
    # thousands deep, every element holds the rest of the page (quadratic if read each time).
    sizes = _visible_sizes(tree)
    headline_size = len(_INVISIBLE.sub("", headline or ""))
    for element in tree.iter():
        if not isinstance(element.tag, str) or element.tag in ("script", "style", "title"):
            continue
        own = _squeeze(element.text or "")
        if not after_headline:
            after_headline = (
                headline is not None
                and sizes[element] <= headline_size
                and _same(_text_of(element), headline)
            )
            continue
        whole = _text_of(element) if len(element) <= 8 and sizes[element] <= 80 else ""
        for text in (own, whole):
            if text and len(text) <= 80:
                published = clean.parse_dateline(text)
                if published is not None:
                    return published
    return None


_INVISIBLE = re.compile(r"[\s\u200b\ufeff]+")


def _visible_sizes(tree: lxml.html.HtmlElement) -> dict[etree._Element, int]:
    """Characters of each element's text (``text_content``) that ``_squeeze`` and ``_same``
    keep: at most its length once squeezed. One pass, children before parents."""
    sizes: dict[etree._Element, int] = {}
    for element in reversed(list(tree.iter())):
        size = len(_INVISIBLE.sub("", element.text or "")) if isinstance(element.tag, str) else 0
        for child in element:
            size += sizes[child] + len(_INVISIBLE.sub("", child.tail or ""))
        sizes[element] = size
    return sizes


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
        or clean.is_stamp(line)
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
    title_lines = _title_lines(units, title_unit.text)
    blocks: list[tuple[Block, list[str]]] = []
    heading: list[_Unit] = []
    previous = ""
    original_titles: list[str] = []
    read = 0
    for unit in units:
        text = unit.text
        if not _READABLE.search(text) or _same(text, previous):
            continue
        previous = text
        if unit.caption or unit.link:
            continue
        if not title_unit.text and not blocks and unit.heading:
            title_unit = unit
            continue
        dateline = clean.parse_dateline(text)
        if dateline is not None:
            published = published if published and published.hour + published.minute else dateline
            continue
        original = _original_title(text)
        if original:
            original_titles.append(original)
            continue
        if blocks and (clean.is_section_end(text) or (read >= _SIGNED_OFF and _is_sign_off(text))):
            break
        if _is_furniture(text) or _same(text, title_unit.text):
            continue
        if id(unit) in title_lines:
            continue  # the headline, set over several lines above the body
        if unit.heading or clean.looks_like_heading(text):
            heading.append(unit)
            continue
        if _is_crumb(text):
            continue
        blocks.extend(_heading_blocks(heading))
        heading = []
        text = _strip_inline_credit(_strip_lead_credit(text))
        blocks.append((Block(BlockKind.PARAGRAPH, text), unit.notes))
        read += len(text)
    blocks = _strip_closing_credit(_drop_repeated_summary(blocks))
    title_unit.text = _completed_title(title_unit.text, original_titles)
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
_SIGNED_OFF = 30
"""Characters of story after which an editor's sign-off or a promotion ends the article."""


def _is_sign_off(text: str) -> bool:
    """What closes an article: the editor's line (责任编辑, 责编, 编辑|…, 校对) or a promotion
    (QR code, follow the account, download the app). What follows it is another page's."""
    folded = clean.to_simplified(text)
    return bool(_SIGN_OFF.match(folded)) or (
        clean.is_notice(folded) and bool(_PROMOTION.search(folded))
    )


_SIGN_OFF = re.compile(
    r"^[\[【(（]?\s*(?:责任编辑|责编|编辑|值班编辑|实习编辑|校对|审核|监制)\s*(?:[:：/|｜]|\s|$)"
)
_PROMOTION = re.compile("扫一扫|扫码|扫描|二维码|长按|关注|公众号|点击|下载|客户端|APP|app|转载")


def _original_title(text: str) -> str | None:
    """The headline a ``原标题：《…》`` line gives, without its quotes and trailing dots."""
    match = re.match(r"^[(（]?\s*(?:本文)?原标?题\s*(?:为|[:：]|(?=《))\s*(.+?)[)）]?$", text)
    if match is None:
        return None
    original = match.group(1).strip().strip("《》").strip()
    original = re.sub(r"(?:\.{2,}|…+)$", "", original).strip()
    return original or None


def _completed_title(title: str, originals: list[str]) -> str:
    """A headline the page cut short (``…无敌免...``) or prefixed with an ad (``[化妆品]…``),
    as the page's own 原标题 line gives it whole."""
    for original in originals:
        stem = re.sub(r"(?:\.{2,}|…+)$", "", title).strip()
        if stem != title and len(original) > len(stem) and original.startswith(stem):
            return original
        prefix = title[: len(title) - len(original)] if title.endswith(original) else None
        if prefix and re.fullmatch(r"\s*[\[【(（][^\]】)）]{1,20}[\]】)）]\s*", prefix):
            return original
    return title


def _title_lines(units: list[_Unit], title: str) -> set[int]:
    """The units (by ``id``) at the top of the body that set the headline over several lines:
    consecutive parts of it that together make all of it. A single line that repeats only a
    part of the headline (a first subheading that says its tail again, a document's own title
    under a ``国家统计局：…`` headline) is read."""
    whole = _bare(title)
    run: list[_Unit] = []
    for unit in units:
        if not _READABLE.search(unit.text) or unit.caption or unit.link:
            continue
        if _is_furniture(unit.text) or clean.parse_dateline(unit.text) is not None:
            if run:
                break
            continue
        if _same(unit.text, title) or not _part_of(unit.text, title):
            break
        run.append(unit)
    joined = "".join(_bare(u.text) for u in run)
    if len(run) >= 2 and joined == whole:
        return {id(u) for u in run}
    return set()


def _bare(text: str) -> str:
    """Letters and digits only: a headline set over lines loses its spaces and punctuation."""
    return "".join(re.findall(f"[{_CJK}A-Za-z0-9]", text))


def _part_of(text: str, title: str) -> bool:
    squeezed, whole = re.sub(r"\s+", "", text), re.sub(r"\s+", "", title)
    return len(squeezed) >= 4 and squeezed in whole


_LEAD_CREDIT = re.compile(
    r"^(?P<lead>[^（(]{0,30}?(?:讯|电|消息|报道)\s*)?[（(](?P<credit>[^（）()]{2,40})[)）]\s*"
)


def _strip_lead_credit(text: str) -> str:
    """``新华社巴黎12月9日电（记者唐霁）法国…`` → ``新华社巴黎12月9日电 法国…``: the reporter
    credit in a dateline is not read; the dateline is, with the space news copy puts after it."""
    match = _LEAD_CREDIT.match(text)
    if match is None or match.end() >= len(text) or not clean.is_credit(match["credit"]):
        return text
    lead = (match["lead"] or "").rstrip()
    return f"{lead} {text[match.end() :]}" if lead else text[match.end() :]


_INLINE_CREDIT = re.compile(r"[（(]\s*(?P<credit>[^（）()]{2,40}?)\s*[)）]")


def _strip_inline_credit(text: str) -> str:
    """``…扩岗补助（作者：华中日报记者 王蕾），政策…`` → ``…扩岗补助，政策…``: an author or
    reporter credit in parentheses inside a paragraph is not read."""

    def credit(match: re.Match[str]) -> str:
        inner = match["credit"]
        if re.match(r"^(?:作者|撰稿|撰文)\s*[:：/]", inner) or clean.is_credit(inner):
            return ""
        return match.group()

    stripped = _INLINE_CREDIT.sub(credit, text).strip()
    return stripped if _READABLE.search(stripped) else text


def _bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1) if _READABLE.match(text[i])}


def _drop_repeated_summary(
    blocks: list[tuple[Block, list[str]]],
) -> list[tuple[Block, list[str]]]:
    """A summary box above the body (摘要) that the body then says again is read once: the first
    paragraph goes when nearly all of it recurs in the paragraphs after it."""
    paragraphs = [i for i, (b, _) in enumerate(blocks) if b.kind is BlockKind.PARAGRAPH]
    if len(paragraphs) < 2:
        return blocks
    first = paragraphs[0]
    summary = re.sub(r"^(?:摘要|内容摘要|内容提要|导读|提要)\s*[:：]\s*", "", blocks[first][0].text)
    rest = "".join(b.text for i, (b, _) in enumerate(blocks) if i > first)
    pairs = _bigrams(summary)
    if len(summary) < 20 or not pairs:
        return blocks
    recurring = sum(1 for p in pairs if p in rest) / len(pairs)
    if recurring < _REPEATED:
        return blocks
    # A page of formulaic paragraphs, each much like the next, has no summary box: when the
    # second paragraph recurs later just as much, the first is only one of them.
    if len(paragraphs) >= 3:
        second = paragraphs[1]
        after = "".join(b.text for i, (b, _) in enumerate(blocks) if i > second)
        pairs = _bigrams(blocks[second][0].text)
        if pairs and sum(1 for p in pairs if p in after) / len(pairs) >= _REPEATED:
            return blocks
    return [*blocks[:first], *blocks[first + 1 :]]


_REPEATED = 0.9
"""Share of a paragraph's character pairs that recur later for it to count as a repeat."""
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
