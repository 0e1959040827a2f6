"""The voice engines newsreader knows: one entry each, and everything else is driven from here.

``--engine`` and ``--fallback`` (their click choices in every command and their validation in
``Settings``), the voice-name check, ``choose_engine`` and ``newsreader voices`` all read this
registry. Adding an engine is one module with its ``Engine`` class and one ``EngineEntry`` in
``ENTRIES`` (or a ``register`` call).

An entry names its class by module and attribute and imports it only when an engine is made:
engine modules pull in heavy libraries (LAME, the edge client), and the CLI starts without them.
Each entry owns its voice names: a voice is valid when an entry's ``owns_voice`` accepts it.

Two kinds of engine:

- **online** engines talk to a service. ``auto`` tries the first of them, and it must also be
  ``Reachable`` (``probe`` and ``check_voice``), so the choice can be made before synthesis;
- **embedded** engines run here. The first is what ``auto`` falls back to when the online one is
  unreachable, and any of them can be a ``--fallback``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from newsreader.errors import UsageError

if TYPE_CHECKING:
    from newsreader.synth.base import Engine

AUTO = "auto"
"""Not an engine: the first online engine when it is reachable, else the first embedded one."""
NO_FALLBACK = "none"

EngineKind = Literal["online", "embedded"]


@runtime_checkable
class Reachable(Protocol):
    """What an online engine offers besides synthesis: a cheap reachability test and a check of
    a voice name against the service's own list."""

    async def probe(self, timeout: float = 3.0) -> str | None:
        """None when the service can be reached, else a short reason."""
        ...

    async def check_voice(self, voice: str) -> None:
        """``UsageError`` when the service is known to lack ``voice``."""
        ...


@dataclass(frozen=True)
class EngineEntry:
    name: str
    """What ``--engine`` calls it."""
    kind: EngineKind
    module: str
    """The module that defines the engine, imported only when an engine is made."""
    attribute: str
    """The engine class (or any factory taking no arguments) in ``module``."""
    owns_voice: Callable[[str], bool]
    """Whether a ``--voice`` name is one of this engine's (checked without importing it)."""
    help: str
    """For ``--help``: what the engine is."""
    voice_label: str = ""
    """How messages name its voice, e.g. "embedded espeak-ng voice" (default "NAME voice")."""

    def create(self) -> Engine:
        factory = getattr(importlib.import_module(self.module), self.attribute)
        engine: Engine = factory()
        return engine

    @property
    def label(self) -> str:
        return self.voice_label or f"{self.name} voice"


_EDGE_VOICE = re.compile(r"^[a-z]{2,3}-[A-Za-z]{2,4}(-[a-z]+)?-[A-Za-z]+Neural$")
ESPEAK_VOICES = ("cmn", "cmn-latn-pinyin", "yue")
"""The embedded voices (``newsreader.synth.espeak.VOICES`` describes them)."""

ENTRIES: list[EngineEntry] = [
    EngineEntry(
        name="edge",
        kind="online",
        module="newsreader.synth.edge",
        attribute="EdgeEngine",
        owns_voice=lambda voice: _EDGE_VOICE.match(voice) is not None,
        help="online neural voices",
        voice_label="online voice",
    ),
    EngineEntry(
        name="espeak",
        kind="embedded",
        module="newsreader.synth.espeak",
        attribute="EspeakEngine",
        owns_voice=lambda voice: voice in ESPEAK_VOICES,
        help="embedded, offline",
        voice_label="embedded espeak-ng voice",
    ),
]
"""Every engine, in the order ``voices`` lists them (online first)."""


def entries() -> tuple[EngineEntry, ...]:
    return tuple(ENTRIES)


def names() -> tuple[str, ...]:
    return tuple(entry.name for entry in ENTRIES)


def engine_choices() -> tuple[str, ...]:
    """What ``--engine`` accepts."""
    return (AUTO, *names())


def fallback_choices() -> tuple[str, ...]:
    """What ``--fallback`` accepts: none, or an embedded engine."""
    return (NO_FALLBACK, *(entry.name for entry in ENTRIES if entry.kind == "embedded"))


def entry(name: str) -> EngineEntry:
    for candidate in ENTRIES:
        if candidate.name == name:
            return candidate
    raise UsageError(f"--engine {name!r} is unknown: use {alternatives(engine_choices())}.")


def first(kind: EngineKind) -> EngineEntry:
    """The engine ``auto`` tries (online) or falls back to (embedded)."""
    for candidate in ENTRIES:
        if candidate.kind == kind:
            return candidate
    raise UsageError(f"no {kind} voice engine is registered.")


def check_engine(name: str) -> str:
    if name != AUTO:
        entry(name)
    return name


def check_fallback(name: str, engine: str) -> str:
    choices = fallback_choices()
    if name not in choices:
        raise UsageError(f"--fallback {name!r} is unknown: use {alternatives(choices)}.")
    if name != NO_FALLBACK and name == engine:
        others = [choice for choice in engine_choices() if choice != name]
        raise UsageError(f"--fallback {name} is for --engine {alternatives(others)}.")
    return name


def owner(voice: str) -> EngineEntry | None:
    """The engine whose voice ``voice`` is, if any."""
    for candidate in ENTRIES:
        if candidate.owns_voice(voice):
            return candidate
    return None


def check_voice(voice: str, example: str) -> str:
    """``voice`` when a registered engine owns it, else ``UsageError`` (``example`` is a voice
    to suggest)."""
    if owner(voice) is None:
        raise UsageError(
            f"--voice {voice!r} is not a voice name: use a ShortName such as "
            f"{example} (see `newsreader voices`)."
        )
    return voice


def alternatives(choices: tuple[str, ...] | list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    if len(choices) <= 1:
        return "".join(choices)
    return f"{', '.join(choices[:-1])} or {choices[-1]}"


def register(new: EngineEntry) -> None:
    """Add an engine (after the built-in ones); its name must be new."""
    if new.name in (AUTO, NO_FALLBACK) or new.name in names():
        raise ValueError(f"an engine named {new.name!r} exists already")
    ENTRIES.append(new)


def unregister(name: str) -> None:
    ENTRIES[:] = [candidate for candidate in ENTRIES if candidate.name != name]


@contextmanager
def registered(new: EngineEntry) -> Iterator[EngineEntry]:
    """``new`` in the registry for the duration of a ``with`` block."""
    register(new)
    try:
        yield new
    finally:
        unregister(new.name)
