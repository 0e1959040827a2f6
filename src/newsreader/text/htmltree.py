"""Untrusted HTML → an lxml tree, with every element of the page, however deep it is nested.

libxml2's HTML parser (lxml's) stops reading at a nesting depth of 256, or 2048 with
``huge_tree``, and drops the rest of the page without an error: a page that leaves one ``<div>``
open per paragraph (they exist, and browsers read them to the end) loses all but its first
paragraphs. So a page is parsed by libxml2 first (fast, and the tree every other part of the
extraction is tuned on), and when libxml2 reports that it hit one of its limits, parsed again by
Lexbor (``selectolax``), an HTML5 parser with no depth limit, and its tree rebuilt in lxml.

Code that walks these trees must not recurse in Python: a 6,000-deep tree is deeper than the
interpreter's recursion limit (``etree.iterwalk`` walks one in C, with no limit).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import lxml.html  # lxml ships no type information
from lxml import etree

if TYPE_CHECKING:
    from selectolax.lexbor import LexborNode

__all__ = ["parse_document", "parse_fragment"]

# Characters lxml refuses in text and attribute values (XML 1.0 does not allow them)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_EARLY_END = re.compile(r"</(?:body|html)\s*>", re.IGNORECASE)


def parse_document(html: str) -> lxml.html.HtmlElement | None:
    """The page as a browser reads it (its ``<html>`` element), or None if it cannot be parsed.

    An XML declaration is dropped (lxml refuses a str that carries one), and so are ``</body>``
    and ``</html>``, which browsers ignore where lxml would stop reading (pages glued together
    from templates have them early).
    """
    html = _XML_DECLARATION.sub("", html)
    html = _EARLY_END.sub("", html)
    parser = lxml.html.HTMLParser(huge_tree=True)
    try:
        tree = lxml.html.document_fromstring(html, parser=parser)
    except (etree.ParserError, ValueError):
        tree = None
    if _hit_a_limit(parser):
        return _rebuilt(html, fragment=False)
    return tree if isinstance(tree, lxml.html.HtmlElement) else None


def parse_fragment(fragment: str) -> lxml.html.HtmlElement | None:
    """A piece of HTML (a feed's content or summary) inside a ``<div>``; None if unparseable."""
    parser = lxml.html.HTMLParser(huge_tree=True)
    try:
        element = lxml.html.fragment_fromstring(fragment, create_parent="div", parser=parser)
    except (etree.ParserError, ValueError):
        element = None
    if _hit_a_limit(parser):
        return _rebuilt(fragment, fragment=True)
    return element if isinstance(element, lxml.html.HtmlElement) else None


def _hit_a_limit(parser: etree.HTMLParser) -> bool:
    """Whether libxml2 stopped at one of its resource limits (depth, above all)."""
    return any(entry.type_name == "ERR_RESOURCE_LIMIT" for entry in parser.error_log)


def _rebuilt(html: str, *, fragment: bool) -> lxml.html.HtmlElement | None:
    """The page parsed by Lexbor, as an lxml tree (its ``<html>``; for a fragment, a ``<div>``
    holding the body's content). Comments, the doctype and template contents are left out."""
    from selectolax.lexbor import LexborHTMLParser

    parsed = LexborHTMLParser(html)
    source: LexborNode | None = parsed.body if fragment else parsed.root
    if source is None:
        return None
    top = lxml.html.Element("div" if fragment else "html")
    if not fragment:
        _copy_attributes(source, top)
    # (lexbor node, its lxml copy): depth first, no recursion
    stack: list[tuple[LexborNode, lxml.html.HtmlElement]] = [(source, top)]
    while stack:
        node, copy = stack.pop()
        children: list[tuple[LexborNode, lxml.html.HtmlElement]] = []
        child = node.child
        while child is not None:
            if child.is_text_node:
                _append_text(copy, _NOT_XML.sub("", child.text_content or ""))
            elif child.is_element_node:
                element = _subelement(copy, child.tag)
                _copy_attributes(child, element)
                children.append((child, element))
            child = child.next
        stack.extend(reversed(children))
    return top


def _subelement(parent: lxml.html.HtmlElement, name: str | None) -> lxml.html.HtmlElement:
    try:
        return etree.SubElement(parent, (name or "span").lower())
    except ValueError:  # Lexbor keeps names that are not XML names (``x<y``): never read
        return etree.SubElement(parent, "span")


def _copy_attributes(node: LexborNode, element: lxml.html.HtmlElement) -> None:
    for name, value in node.attributes.items():
        try:
            element.set(name, _NOT_XML.sub("", value or ""))
        except ValueError:  # a name that is not an XML name (``"x"``, ``a:b``): never read
            continue


def _append_text(element: lxml.html.HtmlElement, text: str) -> None:
    if not text:
        return
    if len(element):
        last = element[-1]
        last.tail = (last.tail or "") + text
    else:
        element.text = (element.text or "") + text
