"""Choosing the voice engine: ``edge`` online, ``espeak`` embedded, ``auto`` picks once per run.

``auto`` probes edge at the start: reachable → edge for the whole output; unreachable → the
embedded voice for the whole output, with a warning. One output never mixes voices: if edge fails
partway, the run fails (the caller may re-render everything with the embedded voice on request).
"""

from __future__ import annotations

from dataclasses import dataclass

from newsreader.config import Settings
from newsreader.errors import EngineUnavailable
from newsreader.synth.base import Engine


@dataclass(frozen=True)
class EngineChoice:
    engine: Engine
    warning: str | None = None


async def choose_engine(settings: Settings, *, probe_timeout: float = 3.0) -> EngineChoice:
    from newsreader.synth.edge import EdgeEngine
    from newsreader.synth.espeak import EspeakEngine

    if settings.engine == "espeak":
        return EngineChoice(EspeakEngine())
    edge = EdgeEngine()
    if settings.engine == "edge":
        reason = await edge.probe(probe_timeout)
        if reason is not None:
            await edge.close()
            raise EngineUnavailable(
                f"the online voice service is unreachable ({reason}): check the network, "
                "or use --engine espeak for the embedded voice."
            )
        await edge.check_voice(settings.voice)
        return EngineChoice(edge)
    reason = await edge.probe(probe_timeout)
    if reason is None:
        await edge.check_voice(settings.voice)
        return EngineChoice(edge)
    await edge.close()
    return EngineChoice(
        EspeakEngine(),
        warning=f"online voice unreachable ({reason}); using the embedded espeak-ng voice.",
    )
