"""A reading's live status, declared once: what it has made so far, and whether it runs or ended.

``Progress`` is what a ``ReadingRunner`` fills as it goes; ``LiveStatus`` adds the state and the
error, and is what ``GET /api/readings/{id}`` shows while a reading is made: in one process the
embedded service's ``readings.LiveReading`` (a ``LiveStatus`` with its live audio), in a cluster
what an API node reads back from the hash a worker keeps in Redis (``scale.live.progress``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from newsreader.service.payloads import SentencePayload
from newsreader.service.store import Status


@dataclass
class Progress:
    """What a running reading has made so far: the fields of its live status."""

    title: str | None = None
    total: int = 0
    done: int = 0
    """Segments delivered in order."""
    sentences: list[SentencePayload] = field(default_factory=list)
    engine: str | None = None
    audio_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    """What the listener should know, e.g. that the embedded voice read it (``--fallback``)."""
    takes: int = 1
    """Live audio streams begun: a second after a ``--fallback`` restart."""


@dataclass
class LiveStatus(Progress):
    """A reading's live status: its ``Progress``, its state and, once failed, why."""

    status: Status = "queued"
    error: tuple[str, str] | None = None
    """``(code, message)`` of a failed reading."""

    def show(self, progress: Progress) -> None:
        """Take every field of ``progress`` (its lists too, shared: the runner extends them)."""
        for name in PROGRESS_FIELDS:
            setattr(self, name, getattr(progress, name))


PROGRESS_FIELDS = tuple(f.name for f in dataclasses.fields(Progress))
"""The names of ``Progress``'s fields, in their order."""


__all__ = ["PROGRESS_FIELDS", "LiveStatus", "Progress"]
