"""The voice list: edge's online voices when reachable, the embedded ones always."""

from __future__ import annotations

from dataclasses import dataclass

from newsreader.errors import EngineUnavailable
from newsreader.synth.base import Voice


@dataclass(frozen=True)
class VoiceListing:
    voices: list[Voice]
    unavailable: str | None = None
    """Why the online list is missing, when it is."""


async def list_voices(locale: str | None = None) -> VoiceListing:
    from newsreader.synth.edge import EdgeEngine
    from newsreader.synth.espeak import EspeakEngine

    embedded = await EspeakEngine().voices()
    edge = EdgeEngine()
    unavailable = None
    try:
        online = await edge.voices()
    except EngineUnavailable as exc:
        online = []
        unavailable = f"online voice list unavailable ({exc.message}); embedded voices only."
    finally:
        await edge.close()
    found = [v for v in online + embedded if locale is None or v.locale.lower() == locale.lower()]
    found.sort(key=lambda v: (v.engine != "edge", v.locale, v.short_name))
    return VoiceListing(found, unavailable)
