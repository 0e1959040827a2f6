"""The voice list: every registered engine's voices; an online engine's when it is reachable."""

from __future__ import annotations

from dataclasses import dataclass

from newsreader.errors import EngineUnavailable, UsageError
from newsreader.synth import registry
from newsreader.synth.base import Voice


@dataclass(frozen=True)
class VoiceListing:
    voices: list[Voice]
    unavailable: str | None = None
    """Why the online list is missing, when it is."""
    locales: tuple[str, ...] = ()
    """Every locale a voice was found for, before filtering by locale."""


async def list_voices(locale: str | None = None) -> VoiceListing:
    """The voices of ``locale`` (any when None); ``UsageError`` naming what exists if none is."""
    online: list[Voice] = []
    embedded: list[Voice] = []
    unavailable = None
    order: dict[str, int] = {}
    for n, entry in enumerate(registry.entries()):
        order[entry.name] = n
        engine = entry.create()
        try:
            if entry.kind == "online":
                online += await engine.voices()
            else:
                embedded += await engine.voices()
        except EngineUnavailable as exc:
            unavailable = unavailable or (
                f"{entry.label} list unavailable ({exc.message}); embedded voices only."
            )
        finally:
            await engine.close()
    every = online + embedded
    wanted = locale.replace("_", "-").lower() if locale is not None else None
    found = [v for v in every if wanted is None or v.locale.lower() == wanted]
    found.sort(key=lambda v: (order.get(v.engine, len(order)), v.locale, v.short_name))
    locales = tuple(sorted({v.locale for v in every}))
    if locale is not None and not found:
        raise UsageError(_no_match(locale, locales, online=bool(online)))
    return VoiceListing(found, unavailable, locales)


def _no_match(locale: str, locales: tuple[str, ...], *, online: bool) -> str:
    language = locale.replace("_", "-").split("-")[0].lower()
    near = [x for x in locales if x.split("-")[0].lower() == language]
    if not online:
        return (
            f"no embedded voice speaks --locale {locale}, and the online voice list cannot be "
            f"reached: the embedded voices are {', '.join(locales)}."
        )
    if near:
        return f"no voice for --locale {locale}: {language} voices exist for {', '.join(near)}."
    return (
        f"no voice for --locale {locale}: use a locale such as zh-CN "
        "(`newsreader voices` lists them all)."
    )
