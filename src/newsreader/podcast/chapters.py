"""Podcasting 2.0 JSON chapters: the one builder, for podcast episodes and service readings.

    {"version": "1.2.0", "chapters": [{"startTime": 0.0, "endTime": 12.48, "title": "…"}, …]}

Times are seconds, exact to the millisecond (chapters start and end on 24 ms frames).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TypedDict

from newsreader.models import Chapter

VERSION = "1.2.0"
MEDIA_TYPE = "application/json+chapters"


class ChapterMark(TypedDict):
    startTime: float
    endTime: float
    title: str


class ChaptersDocument(TypedDict):
    version: str
    chapters: list[ChapterMark]


def _seconds(value: float) -> float:
    return round(value * 1000) / 1000


def chapters_payload(chapters: Iterable[Chapter]) -> ChaptersDocument:
    marks: list[ChapterMark] = [
        {
            "startTime": _seconds(chapter.start),
            "endTime": _seconds(chapter.end),
            "title": chapter.title,
        }
        for chapter in sorted(chapters, key=lambda chapter: chapter.start)
    ]
    return {"version": VERSION, "chapters": marks}


def chapters_json(chapters: Iterable[Chapter]) -> bytes:
    """The chapters file's bytes (UTF-8, indented, ending in a newline)."""
    document = chapters_payload(chapters)
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
