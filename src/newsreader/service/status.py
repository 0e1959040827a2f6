"""A reading's live status: what a running reading has made so far."""

from __future__ import annotations

from dataclasses import dataclass, field

from newsreader.service.payloads import SentencePayload


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


__all__ = [
    "Progress",
]
