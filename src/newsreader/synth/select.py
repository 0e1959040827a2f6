"""Choosing the voice engine: ``edge`` online, ``espeak`` embedded, ``auto`` picks once per run.

``auto`` probes edge at the start: reachable → edge for the whole output; unreachable → the
embedded voice for the whole output, with a warning. One output never mixes voices: if edge fails
partway, the run fails naming the paragraphs, unless ``Settings.fallback`` is ``espeak``, in which
case ``newsreader.pipeline.render`` re-renders everything with the embedded voice and warns.
``--engine edge --fallback espeak`` also starts with the embedded voice when edge is unreachable.

Given the script, a run whose every segment is already cached in edge's voice touches no network
at all (no probe, no voice list): it reads the same voice from the cache, online or not.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsreader.config import Settings
from newsreader.errors import EngineUnavailable
from newsreader.models import Script
from newsreader.synth.base import Engine
from newsreader.synth.cache import SegmentCache, cache_key


@dataclass(frozen=True)
class EngineChoice:
    engine: Engine
    warning: str | None = None


async def choose_engine(
    settings: Settings, *, probe_timeout: float = 3.0, script: Script | None = None
) -> EngineChoice:
    from newsreader.synth.edge import EdgeEngine
    from newsreader.synth.espeak import EspeakEngine

    if settings.engine == "espeak":
        return EngineChoice(EspeakEngine())
    edge = EdgeEngine()
    if script is not None and _all_cached(edge, settings, script):
        return EngineChoice(edge)
    reason = await edge.probe(probe_timeout)
    if reason is None:
        await edge.check_voice(settings.voice)
        return EngineChoice(edge)
    await edge.close()
    if settings.engine == "edge" and settings.fallback != "espeak":
        raise EngineUnavailable(
            f"the online voice service is unreachable ({reason}): check the network, "
            "or use --engine espeak for the embedded voice."
        )
    return EngineChoice(
        EspeakEngine(),
        warning=f"online voice unreachable ({reason}); using the embedded espeak-ng voice.",
    )


def _all_cached(engine: Engine, settings: Settings, script: Script) -> bool:
    if not settings.use_cache:
        return False
    cache = SegmentCache(settings.cache_dir)
    voice = engine.voice_id(settings)
    return all(cache.get(cache_key(voice, seg), seg) is not None for seg in script.segments)
