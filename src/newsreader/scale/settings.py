"""One cluster, one sound: the settings that change a reading's audio, agreed in Redis.

A reading's id is derived on the API node from its content, voice and rate; its audio is made
by whichever worker takes the job, with *that worker's* engine, fallback, loudness target and
intro/outro. Two workers started with different settings would make different audio for one
id (and a re-delivered job could switch voice half-way through a stream). So:

- the first worker to start records its audio settings in ``newsreader:settings`` (``SET NX``:
  exactly one first, however many start together);
- every later worker compares its own with them and refuses to start, in one line naming each
  difference and what to do, if they differ (``ConfigError``, exit 2);
- an API node shows them in ``/healthz`` (``settings``); given any of those options itself
  (``serve --redis … --engine …``) it refuses to start the same way if they differ;
- changing the cluster's sound is deliberate: stop every worker, delete the key
  (``redis-cli DEL newsreader:settings``), start the workers with the new settings. Readings
  made before keep their audio (ids do not depend on the settings, as in the embedded service
  after a restart with other options).

The intro and outro are compared by their contents (a hash), not by path: every machine may keep
the files elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from newsreader.errors import ConfigError
from newsreader.scale.live import call

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from newsreader.service.config import ServiceConfig

SETTINGS_KEY = "newsreader:settings"
OPTIONS = {
    "engine": "--engine",
    "fallback": "--fallback",
    "loudness": "--loudness",
    "intro": "--intro",
    "outro": "--outro",
}
"""Each recorded setting and the option that sets it (the same on serve and worker)."""


def _clip(path: Path | None) -> str:
    if path is None:
        return "none"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"sha256:{digest}"


def audio_settings(config: ServiceConfig) -> dict[str, str]:
    """What ``config`` makes a reading sound like, as text (the same on every machine)."""
    return {
        "engine": config.engine,
        "fallback": config.fallback,
        "loudness": "off" if config.loudness is None else f"{config.loudness:g}",
        "intro": _clip(config.intro),
        "outro": _clip(config.outro),
    }


def _shown(name: str, value: str, config: ServiceConfig | None) -> str:
    if name in ("intro", "outro") and config is not None:
        path = getattr(config, name)
        return "none" if path is None else f"{path} ({value})"
    return value


def differences(
    recorded: Mapping[str, str], own: Mapping[str, str], config: ServiceConfig | None = None
) -> list[str]:
    """``--engine espeak (the cluster's: edge)`` for each setting of ``own`` that differs."""
    return [
        f"{OPTIONS[name]} {_shown(name, value, config)} (the cluster's: {recorded.get(name)})"
        for name, value in own.items()
        if name in OPTIONS and recorded.get(name) != value
    ]


async def recorded_settings(redis: Redis) -> dict[str, str] | None:
    """The cluster's audio settings, or None before the first worker started (or if the key
    is not a record of them)."""
    raw = await call(redis.get(SETTINGS_KEY))
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return None
    return {str(k): v for k, v in value.items()}


def _refusal(role: str, found: list[str]) -> ConfigError:
    return ConfigError(
        f"this {role}'s audio settings differ from the cluster's: {'; '.join(found)}. Start it "
        f"with the cluster's settings, or to change them stop every worker and delete "
        f"{SETTINGS_KEY} in Redis first."
    )


async def agree_worker(redis: Redis, config: ServiceConfig, *, record: bool = True) -> None:
    """Record this worker's audio settings if it is the first; else ``ConfigError`` (one line)
    if they differ from the recorded ones. Without ``record`` only the comparison (a worker
    checks early, and records once every other check has passed: a worker that does not start
    leaves nothing behind)."""
    own = audio_settings(config)
    encoded = json.dumps(own, sort_keys=True)
    if record and bool(await call(redis.set(SETTINGS_KEY, encoded, nx=True))):
        return
    if not record and await call(redis.exists(SETTINGS_KEY)) == 0:
        return
    recorded = await recorded_settings(redis)
    if recorded is None:
        raise ConfigError(
            f"the cluster's audio settings in Redis ({SETTINGS_KEY}) are damaged: delete the key "
            "and start the workers again."
        )
    found = differences(recorded, own, config)
    if found:
        raise _refusal("worker", found)


async def agree_api_node(redis: Redis, config: ServiceConfig, given: Collection[str]) -> None:
    """An API node given some of the audio options (``given``: their names, e.g. ``engine``):
    ``ConfigError`` if the cluster recorded others. Nothing is recorded by an API node (it
    makes no audio; the first worker decides)."""
    asked = {name: value for name, value in audio_settings(config).items() if name in given}
    if not asked:
        return
    recorded = await recorded_settings(redis)
    if recorded is None:
        return
    found = differences(recorded, asked, config)
    if found:
        raise _refusal("API node", found)


__all__ = [
    "OPTIONS",
    "SETTINGS_KEY",
    "agree_api_node",
    "agree_worker",
    "audio_settings",
    "differences",
    "recorded_settings",
]
