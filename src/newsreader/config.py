"""Settings: every option validated once, then passed down unchanged.

Engine names, fallbacks and voice names are checked against the engine registry
(``newsreader.synth.registry``): each engine owns its voice names.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from newsreader.errors import UsageError
from newsreader.synth import registry

EngineName = str
"""``auto`` or a registered engine's name (``registry.engine_choices()``)."""
FallbackName = str
"""``none`` or a registered embedded engine's name (``registry.fallback_choices()``)."""

DEFAULT_VOICE = "zh-CN-YunyangNeural"
"""A zh-CN news voice (male, professional news style)."""

_PERCENT = re.compile(r"^[+-]\d{1,3}%$")
_HERTZ = re.compile(r"^[+-]\d{1,3}Hz$")


def default_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir("newsreader"))


def check_percent(name: str, value: str) -> str:
    if not _PERCENT.match(value):
        raise UsageError(
            f"--{name} {value!r} is not valid: use a signed percentage such as +10% or -20%."
        )
    if not -100 <= int(value[:-1]) <= 200:
        raise UsageError(f"--{name} {value!r} is out of range: use -100% to +200%.")
    return value


def check_pitch(value: str) -> str:
    if not _HERTZ.match(value):
        raise UsageError(f"--pitch {value!r} is not valid: use signed hertz such as +5Hz or -10Hz.")
    if not -100 <= int(value[:-2]) <= 100:
        raise UsageError(f"--pitch {value!r} is out of range: use -100Hz to +100Hz.")
    return value


DEFAULT_LOUDNESS = -16.0
"""LUFS every output is brought to (podcast loudness: Apple's and most apps' reference)."""
MIN_LOUDNESS, MAX_LOUDNESS = -40.0, -5.0


def check_loudness(value: float | None) -> float | None:
    """A loudness target in LUFS, or None (off: the voice's own level)."""
    if value is None:
        return None
    if not (math.isfinite(value) and MIN_LOUDNESS <= value <= MAX_LOUDNESS):
        raise UsageError(
            f"--loudness {value:g} is out of range: use {MIN_LOUDNESS:g} to {MAX_LOUDNESS:g} "
            f"LUFS (e.g. {DEFAULT_LOUDNESS:g}), or off to keep the voice's own level."
        )
    return float(value)


def parse_loudness(text: str) -> float | None:
    """``--loudness`` as given: ``off``, or LUFS such as ``-16`` / ``-16LUFS``."""
    value = text.strip()
    if value.lower() in ("off", "none"):
        return None
    number = value[:-4].strip() if value.upper().endswith("LUFS") else value
    try:
        parsed = float(number)
    except ValueError:
        raise UsageError(
            f"--loudness {text!r} is not valid: give LUFS such as {DEFAULT_LOUDNESS:g}, or off."
        ) from None
    return check_loudness(parsed)


def check_clip(path: Path | None, option: str) -> None:
    """An intro or outro file must exist and be readable (``UsageError``); whether ffmpeg can
    decode it is checked when the clip is loaded (``audio.intro.load_clip``), before synthesis."""
    if path is None:
        return
    from newsreader.audio.intro import check_clip_file

    check_clip_file(path, option)


def check_voice(value: str) -> str:
    """``value`` if a registered engine owns a voice of that name, else ``UsageError``."""
    return registry.check_voice(value, DEFAULT_VOICE)


@dataclass(frozen=True)
class Settings:
    """How to speak: validated on construction, so no stage re-checks anything."""

    voice: str = DEFAULT_VOICE
    rate: str = "+0%"
    pitch: str = "+0Hz"
    volume: str = "+0%"
    engine: EngineName = "auto"
    concurrency: int | None = None
    """Connections to the voice service at once, pinned; None: adaptive, from 4 up to
    ``max_concurrency`` while the service keeps up (``newsreader.synth.scheduler``)."""
    max_concurrency: int = 16
    """The most connections adaptive concurrency may open at once."""
    cache_dir: Path = field(default_factory=default_cache_dir)
    use_cache: bool = True
    read_title: bool = True
    request_timeout: float = 30.0
    """Deadline for one synthesis request, seconds (edge's client would otherwise wait forever)."""
    retries: int = 4
    """Attempts after the first for a transient failure."""
    backoff: float = 0.5
    """Base of the exponential back-off between attempts, seconds."""
    fetch_timeout: float = 20.0
    max_input_bytes: int = 5_000_000
    fallback: FallbackName = "none"
    """When the online voice fails partway: ``none`` fails the run naming the paragraphs; an
    embedded engine's name (``espeak``) re-renders the whole output with that voice (one output
    never mixes voices)."""
    loudness: float | None = DEFAULT_LOUDNESS
    """Integrated loudness (LUFS) every output is brought to, with one gain per reading and the
    true peak at most -1 dBTP; None (``--loudness off``): the voice's own level."""
    intro: Path | None = None
    """An audio file (WAV, M4A, MP3, …) played before each reading, at the same loudness."""
    outro: Path | None = None
    """An audio file played after each reading."""

    def __post_init__(self) -> None:
        check_voice(self.voice)
        check_percent("rate", self.rate)
        check_percent("volume", self.volume)
        check_pitch(self.pitch)
        registry.check_engine(self.engine)
        limits = (("concurrency", self.concurrency), ("max-concurrency", self.max_concurrency))
        for name, value in limits:
            if value is not None and not 1 <= value <= 16:
                raise UsageError(
                    f"--{name} {value} is out of range: use 1 to 16 "
                    "(the online service blocks clients that open many connections)."
                )
        if not (math.isfinite(self.request_timeout) and self.request_timeout > 0):
            raise UsageError(
                f"--timeout {self.request_timeout:g} is out of range: give a positive number of "
                "seconds, such as 30."
            )
        if not (math.isfinite(self.fetch_timeout) and self.fetch_timeout > 0):
            raise UsageError(
                f"the fetch timeout {self.fetch_timeout:g} is out of range: give a positive "
                "number of seconds."
            )
        if self.retries < 0:
            raise UsageError("--retries must be 0 or more.")
        registry.check_fallback(self.fallback, self.engine)
        check_loudness(self.loudness)
        check_clip(self.intro, "intro")
        check_clip(self.outro, "outro")

    @property
    def locale(self) -> str:
        """The voice's locale, e.g. ``zh-CN``; the embedded voice speaks Mandarin (``zh-CN``)."""
        if self.voice == "yue":
            return "zh-HK"
        parts = self.voice.split("-")
        if len(parts) >= 3 and parts[0] == "zh":
            return f"{parts[0]}-{parts[1]}"
        return "zh-CN"

    @property
    def wants_traditional(self) -> bool:
        return self.locale in ("zh-TW", "zh-HK")
