"""Bytes → text for pages and files: Chinese pages still come in GBK, GB18030 and Big5.

Order of evidence: a byte-order mark; the charset declared by the HTTP header (``declared``) or,
failing that, by the document itself (``<meta charset>``, ``http-equiv``, an XML declaration);
strict UTF-8; and last charset-normalizer, limited to the encodings Chinese text actually uses.
A declaration is trusted only when the bytes decode under it without error: servers and pages
often lie.
"""

from __future__ import annotations

import codecs
import re

from newsreader.errors import SourceError

__all__ = ["decode_bytes", "looks_like_html"]

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# Labels mapped to the codec that decodes everything the label is used for in practice: pages
# declared GB2312 or GBK routinely hold GBK/GB18030 characters, Big5 pages hold HKSCS ones.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gb_2312": "gb18030",
    "gb_2312-80": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "windows-936": "gb18030",
    "euc-cn": "gb18030",
    "hz-gb-2312": "hz",
    "big5": "big5hkscs",
    "big5-hkscs": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "cp950": "big5hkscs",
    "ascii": "utf-8",
    "us-ascii": "utf-8",
}
# Single-byte charsets decode any bytes at all, so a declaration of one proves nothing; they are
# used only after UTF-8 and the CJK encodings have failed.
_ANY_BYTES = {"latin_1", "iso8859-1", "cp1252", "iso8859-15"}
_DETECT = ["utf_8", "gb18030", "big5hkscs", "big5", "utf_16", "cp1252"]

_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)"""
    rb"""|<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""",
    re.IGNORECASE,
)


def _codec(label: str | None) -> str | None:
    """The Python codec for a charset label, widened to its superset; None if unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _SUPERSETS.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def _declared_in(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    if match is None:
        return None
    return (match.group(1) or match.group(2)).decode("ascii", "replace")


def _is_binary(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b < 0x20 and b not in b"\t\n\r\f\x1b")
    return controls * 20 > len(sample)  # more than 5 % control bytes


def decode_bytes(data: bytes, *, declared: str | None = None) -> str:
    """Decode a page or file to text.

    ``declared`` is the charset the HTTP ``Content-Type`` header named, if any. Raises
    ``SourceError`` for empty or whitespace-only input and for binary input.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            text = data.decode(codec, errors="replace")
            return _checked(text.lstrip("\ufeff"))
    if not data.strip():
        raise SourceError("the input is empty: give a page, a text file or text on standard input")
    if _is_binary(data):
        raise SourceError(
            "the input is binary, not text or HTML: give a news page (its URL or HTML file) "
            "or a text file"
        )
    tried: set[str] = set()
    labels: tuple[str | None, ...] = (declared, _declared_in(data), "utf-8")
    for label in labels:
        candidate = _codec(label)
        if candidate is None or candidate in tried or candidate in _ANY_BYTES:
            continue
        tried.add(candidate)
        try:
            return _checked(data.decode(candidate))
        except UnicodeDecodeError:
            continue
    import charset_normalizer  # only undeclared, non-UTF-8 input gets here (50 ms of imports)

    best = charset_normalizer.from_bytes(data, cp_isolation=_DETECT).best()
    if best is not None and best.encoding:
        return _checked(str(best))
    # nothing decodes cleanly: GB18030 with replacement keeps most of a damaged Chinese page
    return _checked(data.decode("gb18030", errors="replace"))


def _checked(text: str) -> str:
    if not text.strip():
        raise SourceError("the input is empty: give a page, a text file or text on standard input")
    return text


_HTML_START = re.compile(
    r"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta|title|div|article|p|section)\b",
    re.IGNORECASE | re.DOTALL,
)
_TAG = re.compile(
    r"<(?:html|head|body|div|p|br|article|section|span|h[1-6]|ul|li|a|table|script|meta)\b[^>]*>",
    re.IGNORECASE,
)


def looks_like_html(text: str) -> bool:
    """Whether the text is an HTML document or fragment rather than plain text."""
    head = text[:4096].lstrip("\ufeff")
    if _HTML_START.match(head):
        return True
    return len(_TAG.findall(head)) >= 3
