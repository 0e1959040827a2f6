"""A web page as lines of text with layout hints, and the block that holds the article.

``page_lines`` walks the DOM the way a browser lays text out: one ``Line`` per block or ``<br>``,
each with what the markup says about it (inside a link, a heading, all bold, centred, right after
a photo). ``main_content`` scores every element by the prose under it and picks the one that holds
the article: portal pages wrap the story in navigation, related-headline lists, share bars and
footers, and only the story is mostly long lines with sentence punctuation and few links.

The scoring (one number per line, summed over each element's subtree):

- a line of prose (ten or more characters outside links, with sentence punctuation) counts its
  characters;
- a line that is mostly link text (navigation, related headlines) counts minus its link text;
- a line of page furniture (an editorial line, a notice, a breadcrumb, a date line) counts minus
  its length;
- a short scrap without punctuation (a tool bar's 超大, 标准, 关注) counts minus one;
- anything else (subheadings, longer lines without punctuation) counts nothing.

The element with the highest sum wins; among elements with the same sum, the outermost (it holds
the same story with its subheadings and lead). Inside it, blocks whose lines sum below zero (a
tool bar or a byline box between the headline and the body, a share bar after it) are left
out (see ``story``). Everything here is markup and density, never a site's name.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import lxml.html  # lxml ships no type information
from lxml import etree

from newsreader.text.clean import is_credit
from newsreader.text.htmltree import parse_document

__all__ = ["Line", "line_value", "main_content", "page_lines", "parse_page", "prune", "story"]

_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "center",
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
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    }
)
_HEADING_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BOLD_TAGS = frozenset({"b", "strong"})
# never read: scripts, form controls and media; their text is not the story (code listings, a
# <pre> that holds a program, go too: see _is_code)
_DROP_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "iframe",
    "object",
    "embed",
    "canvas",
    "video",
    "audio",
    "select",
    "option",
    "textarea",
    "button",
    "input",
)
_SPACE = re.compile(r"[\s\u3000\u00a0\u200b\ufeff]+")
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_PUNCTUATION = re.compile("[，。；！？、：,;!?]")
_CENTERED = re.compile(r"text-align\s*:\s*center", re.IGNORECASE)
_HEADING_CLASS = re.compile(r"(?:^|[\s_-])(?:h[1-6]|subtitle|sub-title|heading)(?:$|[\s_-])")
_CAPTION_CLASS = re.compile(
    r"(?:^|[\s_-])(?:caption|figcaption|pictext|pic_?txt|pic_?text|pic_?note|pic_?desc|img_?desc"
    r"|img_?txt|image_?desc|photo_?desc|photo_?txt|illustration)(?:$|[\s_-])",
    re.IGNORECASE,
)
_SMALL_IMAGE = 60
"""An image this many pixels high or wide, or less, is a divider or an icon, not a photo."""


@dataclass
class Line:
    """One line of a page's text, with what its markup says about it."""

    text: str
    container: lxml.html.HtmlElement
    """The innermost block element the line starts in."""
    links: int = 0
    """Characters of the line inside links."""
    heading: bool = False
    """In an ``<h1>``–``<h6>``, all bold, or in an element classed as a heading."""
    centered: bool = False
    after_image: bool = False
    """A photo stands between this line and the text before it."""
    in_list: bool = False
    caption: bool = False
    """In a ``<figcaption>`` or an element classed as a caption (``wp-caption-text``,
    ``pictext``, ``img_desc`` …)."""
    alone: bool = False
    """The only line of its block (a ``<p>`` of its own, not one of a run split by ``<br>``)."""

    @property
    def link_share(self) -> float:
        return self.links / max(1, len(self.text))


def parse_page(html: str) -> lxml.html.HtmlElement | None:
    """Parse a page as a browser would read it, or None when it cannot be parsed (every element,
    however deep: see ``newsreader.text.htmltree``)."""
    return parse_document(html)


def prune(tree: lxml.html.HtmlElement) -> None:
    """Remove what is never read (scripts, styles, forms, media, code, comments) in place; the
    ``<head>`` and its ``<title>`` stay."""
    for element in list(tree.iter(*_DROP_TAGS, etree.Comment, etree.ProcessingInstruction)):
        if element.getparent() is not None:
            element.drop_tree()  # keeps the tail text
    for listing in list(tree.iter("pre")):
        if listing.getparent() is not None and _is_code(listing):
            listing.drop_tree()
    for section in tree.iter("section"):
        section.tag = "div"  # WeChat and others build paragraphs from <section>s
    _drop_profile_links(tree)


_PROFILE_LINK = frozenset({"微博", "微信", "博客", "个人主页", "主页"})


def _drop_profile_links(tree: lxml.html.HtmlElement) -> None:
    """``张敏（<a>微博</a>）表示`` → ``张敏表示``: a portal's link to a person's account,
    in parentheses inside a sentence, is not part of the sentence."""
    for link in list(tree.iter("a")):
        if (link.text_content() or "").strip() not in _PROFILE_LINK or len(link):
            continue
        previous = link.getprevious()
        parent = link.getparent()
        if parent is None:
            continue
        before = (previous.tail if previous is not None else parent.text) or ""
        after = link.tail or ""
        if not (before.rstrip().endswith(("（", "(")) and after.lstrip().startswith(("）", ")"))):
            continue
        before = before.rstrip()[:-1]
        after = after.lstrip()[1:]
        if previous is not None:
            previous.tail = before
        else:
            parent.text = before
        link.tail = after
        link.drop_tree()


def _is_code(pre: lxml.html.HtmlElement) -> bool:
    """A ``<pre>`` that holds a program (a ``<code>`` inside, or mostly ASCII), not a notice or
    an old site's article set in preformatted text."""
    if pre.find(".//code") is not None:
        return True
    text = _SPACE.sub("", pre.text_content())
    return bool(text) and sum(1 for c in text if c.isascii()) >= 0.7 * len(text)


@dataclass
class _Piece:
    text: str
    link: bool
    bold: bool


@dataclass
class _Walker:
    lines: list[Line] = field(default_factory=list)
    pieces: list[_Piece] = field(default_factory=list)
    container: lxml.html.HtmlElement | None = None
    heading: bool = False
    centered: bool = False
    in_list: bool = False
    caption: bool = False
    image: bool = False

    def flush(self) -> None:
        text = _SPACE.sub(" ", "".join(p.text for p in self.pieces)).strip()
        if text and self.container is not None:
            visible = [p for p in self.pieces if p.text.strip()]
            links = sum(len(_SPACE.sub("", p.text)) for p in visible if p.link)
            bold = bool(visible) and all(p.bold for p in visible)
            self.lines.append(
                Line(
                    text=text,
                    container=self.container,
                    links=links,
                    heading=self.heading or bold,
                    centered=self.centered,
                    after_image=self.image,
                    in_list=self.in_list,
                    caption=self.caption,
                )
            )
            # a caption can take two centred lines: 摄影：… / what the photo shows
            self.image = self.image and self.centered and is_credit(text)
        self.pieces = []
        self.container = None
        self.heading = self.centered = self.in_list = self.caption = False

    def add(
        self, text: str, block: lxml.html.HtmlElement, *, link: bool, bold: bool, flags: _Flags
    ) -> None:
        if flags.preformatted and "\n" in text:
            first, *rest = text.split("\n")
            self.add(first, block, link=link, bold=bold, flags=flags)
            for line in rest:
                self.flush()
                self.add(line, block, link=link, bold=bold, flags=flags)
            return
        if not text:
            return
        if self.container is None and text.strip():
            self.container = block
        self.pieces.append(_Piece(text, link, bold))
        if text.strip():
            self.heading = self.heading or flags.heading
            self.centered = self.centered or flags.centered
            self.in_list = self.in_list or flags.in_list
            self.caption = self.caption or flags.caption


@dataclass(frozen=True)
class _Flags:
    heading: bool = False
    centered: bool = False
    in_list: bool = False
    preformatted: bool = False
    """Inside a ``<pre>``, where a line break is a line break."""
    caption: bool = False


def page_lines(root: lxml.html.HtmlElement) -> list[Line]:
    """The text under ``root`` as lines, in reading order (prune the tree first)."""
    walker = _Walker()
    _walk(root, walker)
    walker.flush()
    per_block: dict[lxml.html.HtmlElement, int] = {}
    for line in walker.lines:
        per_block[line.container] = per_block.get(line.container, 0) + 1
    for line in walker.lines:
        line.alone = per_block[line.container] == 1
    return walker.lines


def _is_photo(image: lxml.html.HtmlElement) -> bool:
    for attribute in ("height", "width"):
        value = re.match(r"\s*(\d+)", image.get(attribute) or "")
        if value and int(value.group(1)) <= _SMALL_IMAGE:
            return False
    return True


@dataclass(frozen=True)
class _Context:
    """What an element passes on to its text, its children and their tails."""

    block: lxml.html.HtmlElement
    link: bool
    bold: bool
    flags: _Flags
    is_block: bool = False
    leaf: bool = False
    """A ``<br>`` or an ``<img>``: nothing inside it is read."""


def _walk(root: lxml.html.HtmlElement, walker: _Walker) -> None:
    """Feed ``root``'s text to ``walker`` in document order: without recursion, since a page
    can nest deeper than Python's recursion limit."""
    contexts = [_Context(root, link=False, bold=False, flags=_Flags())]
    walk = etree.iterwalk(root, events=("start", "end"))
    for event, element in walk:
        if event == "start":
            context = _enter(element, walker, contexts[-1])
            contexts.append(context)
            if context.leaf:
                walk.skip_subtree()
            continue
        context = contexts.pop()
        if context.is_block:
            walker.flush()
        if len(contexts) > 1:  # the root's own tail is not its text
            outer = contexts[-1]
            walker.add(
                element.tail or "", outer.block, link=outer.link, bold=outer.bold, flags=outer.flags
            )


def _enter(element: lxml.html.HtmlElement, walker: _Walker, outer: _Context) -> _Context:
    """Start an element: its own text goes to the walker; returns what it passes on."""
    tag = element.tag.lower() if isinstance(element.tag, str) else ""
    if tag == "br":
        walker.flush()
        return dataclasses.replace(outer, is_block=False, leaf=True)
    if tag == "img":
        if _is_photo(element):
            walker.flush()
            walker.image = True
        return dataclasses.replace(outer, is_block=False, leaf=True)
    block, flags = outer.block, outer.flags
    is_block = tag in _BLOCK_TAGS
    if is_block:
        walker.flush()
        block = element
        style = element.get("style") or ""
        flags = _Flags(
            heading=flags.heading
            or tag in _HEADING_TAGS
            or bool(_HEADING_CLASS.search(element.get("class") or "")),
            centered=(flags.centered or tag == "center" or bool(_CENTERED.search(style))),
            in_list=flags.in_list or tag == "li",
            preformatted=flags.preformatted or tag == "pre",
            caption=flags.caption
            or tag == "figcaption"
            or bool(_CAPTION_CLASS.search(element.get("class") or "")),
        )
    elif tag == "span" and _HEADING_CLASS.search(element.get("class") or ""):
        flags = dataclasses.replace(flags, heading=True)
    link = outer.link or tag == "a"
    bold = outer.bold or tag in _BOLD_TAGS or _bold_style(element)
    walker.add(element.text or "", block, link=link, bold=bold, flags=flags)
    return _Context(block, link, bold, flags, is_block)


def _bold_style(element: lxml.html.HtmlElement) -> bool:
    return bool(re.search(r"font-weight\s*:\s*(?:bold|[6-9]00)", element.get("style") or ""))


# ── the block that holds the article ──────────────────────────────────────────────────────────


def _reading_length(text: str) -> int:
    return len(re.findall(f"[{_CJK}]|[A-Za-z0-9]+", text))


def line_value(line: Line, furniture: Callable[[str], bool]) -> int:
    """What a line says about the element that holds it (see the module docstring)."""
    size = _reading_length(line.text)
    if line.heading and size <= 60:
        return 0
    if line.link_share >= 0.5:
        return -min(size, 40)
    if furniture(line.text):
        return -min(size, 40)
    outside_links = size - line.links
    punctuated = bool(_PUNCTUATION.search(line.text))
    if outside_links >= 10 and punctuated:
        return outside_links
    # a scrap of a tool bar (超大 / 标准 / 关注): a little against the block it stands in
    return 0 if line.heading or punctuated or size > 10 else -1


def main_content(
    lines: list[Line], furniture: Callable[[str], bool]
) -> lxml.html.HtmlElement | None:
    """The element whose lines score highest (see the module docstring); None for a page without
    prose."""
    return _best(_totals(lines, [line_value(line, furniture) for line in lines]))


def story(lines: list[Line], furniture: Callable[[str], bool]) -> list[Line]:
    """The lines of the article: those of ``main_content``, less the blocks inside it that score
    below zero (a tool bar or a byline box above the story, a share bar below it, an advert
    inside it). A lone short line inside the story stays (it may be a plain subheading), and so
    does furniture: an editor's line or a 相关新闻 label says where the story ends, a 原标题
    line what its headline is. Empty for a page without prose."""
    values = [line_value(line, furniture) for line in lines]
    totals = _totals(lines, values)
    root = _best(totals)
    if root is None:
        return []
    # the lowest total among each element's blocks below the root (itself included)
    worst: dict[lxml.html.HtmlElement, int] = {}
    for element in root.iterdescendants():
        parent = element.getparent()
        own = totals.get(element, 0)
        worst[element] = own if parent is root else min(own, worst[parent])
    inside = [
        (line, value, 0 if line.container is root else worst[line.container])
        for line, value in zip(lines, values, strict=True)
        if line.container is root or line.container in worst
    ]
    prose = [i for i, (_, value, _) in enumerate(inside) if value > 0]
    first, last = (prose[0], prose[-1]) if prose else (0, -1)
    return [
        line
        for i, (line, _, worst_total) in enumerate(inside)
        if worst_total >= 0
        or furniture(line.text)
        or (first <= i <= last and worst_total > -_LONE_SCRAP)
    ]


_LONE_SCRAP = 3
"""A block inside the story scoring above minus this is a short line, not an advert."""


def _totals(lines: list[Line], values: list[int]) -> dict[lxml.html.HtmlElement, int]:
    """Every element's sum of the values of the lines under it (each line counts for its
    container and all the container's ancestors), in one pass over the tree."""
    totals: dict[lxml.html.HtmlElement, int] = {}
    for line, value in zip(lines, values, strict=True):
        if value:
            totals[line.container] = totals.get(line.container, 0) + value
    if not totals:
        return totals
    document = lines[0].container.getroottree().getroot()
    # children before their parents: each element hands its sum up once
    for element in reversed(list(document.iter())):
        total = totals.get(element)
        parent = element.getparent()
        if total and parent is not None:
            totals[parent] = totals.get(parent, 0) + total
    return totals


def _best(totals: dict[lxml.html.HtmlElement, int]) -> lxml.html.HtmlElement | None:
    if not totals:
        return None
    best = max(totals.values())
    if best <= 0:
        return None
    # the outermost of the elements that share the best score: same story, more of its context
    winners = [e for e, total in totals.items() if total == best]
    if len(winners) == 1:
        return winners[0]
    depths: dict[lxml.html.HtmlElement, int] = {}
    for element in winners[0].getroottree().getroot().iter():
        parent = element.getparent()
        depths[element] = depths[parent] + 1 if parent is not None else 1
    return min(winners, key=depths.__getitem__)


def without_inner_sections(
    lines: list[Line], is_label: Callable[[str], bool], furniture: Callable[[str], bool]
) -> list[Line]:
    """The story's lines less the boxes inside it that a section label opens (a 延伸阅读 box
    with another story's text, a 相关视频 list) when the story goes on after the box.

    The box is the outermost element around the label that holds no prose before the label and
    leaves sentences of the story after it. A label with no such box (a trailing section, or one
    set among the story's own paragraphs) is left for the reader to stop at.
    """
    if not any(is_label(line.text) for line in lines):
        return lines
    values = [line_value(line, furniture) for line in lines]
    dropped: set[int] = set()
    for i, line in enumerate(lines):
        if i in dropped or not is_label(line.text):
            continue
        box = _box(lines, values, i)
        if box is not None:
            dropped.update(j for j, other in enumerate(lines) if _inside(other.container, box))
    return [line for j, line in enumerate(lines) if j not in dropped]


def _inside(element: lxml.html.HtmlElement, box: lxml.html.HtmlElement) -> bool:
    return element is box or any(a is box for a in element.iterancestors())


def _box(lines: list[Line], values: list[int], at: int) -> lxml.html.HtmlElement | None:
    found = None
    for candidate in (lines[at].container, *lines[at].container.iterancestors()):
        members = [j for j, line in enumerate(lines) if _inside(line.container, candidate)]
        if any(values[j] > 0 for j in members if j < at):
            break  # holds story before the label: the label is one of the story's lines
        last = members[-1]
        if members != list(range(members[0], last + 1)):
            break
        if not any(_is_sentence(lines[j], values[j]) for j in range(last + 1, len(lines))):
            break  # nothing of the story after it: a trailing section, where reading stops
        if len(members) > 1:  # a label alone is no box: what follows it may be its list
            found = candidate
    return found


def _is_sentence(line: Line, value: int) -> bool:
    """Prose that ends as a sentence does (a related headline, even with a comma, does not)."""
    return value > 0 and line.text.rstrip().endswith(("。", "！", "？", "!", "?", "…", "”", "」"))
