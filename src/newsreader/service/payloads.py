"""The shapes of the service's own JSON: a reading's request as stored, and the sentences and
chapters of its timeline.

The API's request and response bodies are pydantic models in ``service.app``; these are the
plain values the worker builds, keeps live and stores in ``<id>.json``, typed so every key is
checked (and the app's models are made from them).
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path
from typing import Literal, TypedDict, cast

from newsreader.audio.assemble import RenderedSegment
from newsreader.models import Chapter, Reading, Script, Timeline

SentenceKind = Literal["title", "heading", "body"]
SourceKind = Literal["url", "text", "html"]


class RequestPayload(TypedDict):
    """What to read and how, as the job table and the cluster state keep it (``JobRequest``)."""

    kind: SourceKind
    content: str
    title: str | None
    source_url: str | None
    voice: str
    rate: str


class SentencePayload(TypedDict):
    """One sentence as the reader sees it, with its time in the reading once it is heard."""

    index: int
    text: str
    kind: SentenceKind
    block: int
    segment: int
    start: float | None
    end: float | None


class ChapterPayload(TypedDict):
    title: str
    start: float
    end: float


class TimelinePayload(TypedDict):
    """A finished reading's ``<id>.json``: its sentences and chapters (and what went wrong)."""

    title: str
    sentences: list[SentencePayload]
    chapters: list[ChapterPayload]
    warnings: list[str]


def sentence_list(script: Script) -> list[SentencePayload]:
    """Every sentence as the reader sees it, in order, with its place (times come later)."""
    sentences: list[SentencePayload] = []
    for segment in script.segments:
        for text in segment.display:
            sentences.append(
                {
                    "index": len(sentences),
                    "text": text,
                    "kind": segment.kind.value,
                    "block": segment.block,
                    "segment": segment.index,
                    "start": None,
                    "end": None,
                }
            )
    return sentences


def time_sentences(sentences: list[SentencePayload], rendered: RenderedSegment) -> None:
    """Give the sentences of ``rendered`` their times (seconds, from the audio module's ms)."""
    first = bisect.bisect_left(sentences, rendered.index, key=lambda s: s["segment"])
    for n, timed in enumerate(rendered.sentences):
        sentence = sentences[first + n]
        sentence["start"] = timed.start_ms / 1000
        sentence["end"] = timed.end_ms / 1000


def chapter_list(reading: Reading | Timeline) -> list[ChapterPayload]:
    return [
        {"title": c.title, "start": round(c.start, 3), "end": round(c.end, 3)}
        for c in reading.chapters
    ]


def chapters_of(timeline: TimelinePayload) -> list[Chapter]:
    return [Chapter(c["title"], c["start"], c["end"]) for c in timeline["chapters"]]


def empty_timeline() -> TimelinePayload:
    return {"title": "", "sentences": [], "chapters": [], "warnings": []}


def read_timeline(path: Path) -> TimelinePayload:
    """The timeline file (written by the worker), or an empty one if it is missing or damaged."""
    try:
        raw = path.read_bytes()
    except OSError:
        return empty_timeline()
    return parse_timeline(raw)


def parse_timeline(raw: bytes | None) -> TimelinePayload:
    """A timeline file's bytes (None: there is none) as a timeline; empty if damaged."""
    try:
        data = json.loads(raw.decode("utf-8")) if raw is not None else None
    except ValueError:
        return empty_timeline()
    if not isinstance(data, dict):
        return empty_timeline()
    timeline = empty_timeline()
    timeline.update(cast(TimelinePayload, data))  # older files have no "warnings"
    return timeline
