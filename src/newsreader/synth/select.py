"""Choosing the voice engine once per output, from the engine registry.

``--engine NAME`` makes that engine; ``auto`` takes the registry's first online engine (edge)
when it is reachable, else its first embedded engine (espeak), with a warning. One output never
mixes voices: if the online voice fails partway, the run fails naming the paragraphs, unless
``Settings.fallback`` names an embedded engine, in which case the streaming render in
``newsreader.pipeline`` renders everything again with it and warns. ``--engine edge --fallback
espeak`` also starts with the embedded voice when edge is unreachable.

Given the script, a run whose every segment is already cached in the online voice touches no
network at all (no probe, no voice list): it reads the same voice from the cache, online or not.

The caller owns the engine of the ``EngineChoice`` it gets, and closes it when done.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsreader.config import Settings
from newsreader.errors import EngineUnavailable
from newsreader.models import Script
from newsreader.synth import registry
from newsreader.synth.base import Engine
from newsreader.synth.cache import SegmentCache, cache_key
from newsreader.synth.registry import Reachable


@dataclass(frozen=True)
class EngineChoice:
    engine: Engine
    warning: str | None = None


def fallback_entry(settings: Settings) -> registry.EngineEntry:
    """The embedded engine that stands in when the online voice cannot be used."""
    if settings.fallback != registry.NO_FALLBACK:
        return registry.entry(settings.fallback)
    return registry.first("embedded")


async def choose_engine(
    settings: Settings, *, probe_timeout: float = 3.0, script: Script | None = None
) -> EngineChoice:
    if settings.engine == registry.AUTO:
        entry = registry.first("online")
    else:
        entry = registry.entry(settings.engine)
    engine = entry.create()
    if entry.kind != "online" or not isinstance(engine, Reachable):
        return EngineChoice(engine)
    if script is not None and _all_cached(engine, settings, script):
        return EngineChoice(engine)
    reason = await engine.probe(probe_timeout)
    if reason is None:
        try:
            await engine.check_voice(settings.voice)
        except BaseException:
            await engine.close()
            raise
        return EngineChoice(engine)
    await engine.close()
    embedded = fallback_entry(settings)
    if settings.engine != registry.AUTO and settings.fallback == registry.NO_FALLBACK:
        raise EngineUnavailable(
            f"the {entry.label} service is unreachable ({reason}): check the network, "
            f"or use --engine {embedded.name} for the embedded voice."
        )
    return EngineChoice(
        embedded.create(),
        warning=f"{entry.label} unreachable ({reason}); using the {embedded.label}.",
    )


def _all_cached(engine: Engine, settings: Settings, script: Script) -> bool:
    if not settings.use_cache:
        return False
    cache = SegmentCache(settings.cache_dir)
    voice = engine.voice_id(settings)
    return all(cache.get(cache_key(voice, seg), seg) is not None for seg in script.segments)
