"""The engine registry drives every command's choices, Settings, choose_engine and voices.

A real small engine (tests/toneengine.py) is registered for these tests and taken out after.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from newsreader.cli import main
from newsreader.config import Settings
from newsreader.errors import UsageError
from newsreader.models import FRAME_BYTES, FRAME_SECONDS
from newsreader.synth import registry
from newsreader.synth.espeak import VOICES as ESPEAK_VOICES
from newsreader.synth.select import choose_engine
from newsreader.synth.voices import list_voices
from newsreader.text.extract import extract
from newsreader.text.segment import build_script
from tests.standin.server import EdgeStandin
from tests.toneengine import ToneEngine, tone_registered

ARTICLE = (
    "城市书房今天开放\n\n"
    "本市第一家城市书房今天正式开放。市民可以免费借阅图书。\n\n"
    "欢迎市民前来阅读。"
)


def _option(command: str, name: str) -> click.Option:
    found = main.commands[command]
    for param in found.params:
        if isinstance(param, click.Option) and name in param.opts:
            return param
    raise AssertionError(f"{command} has no {name}")


def _choices(command: str, name: str) -> tuple[str, ...]:
    kind = _option(command, name).type
    assert isinstance(kind, click.Choice)
    return tuple(kind.choices)


def test_the_built_in_engines_are_the_registry() -> None:
    assert registry.engine_choices() == ("auto", "edge", "espeak")
    assert registry.fallback_choices() == ("none", "espeak")
    for command in ("read", "feed", "serve"):
        assert _choices(command, "--engine") == ("auto", "edge", "espeak")
    assert _choices("read", "--fallback") == ("none", "espeak")
    assert _choices("serve", "--fallback") == ("none", "espeak")


def test_the_embedded_voice_names_are_the_engines_own() -> None:
    assert {voice.short_name for voice in ESPEAK_VOICES} == set(registry.ESPEAK_VOICES)
    for voice in ESPEAK_VOICES:
        owner = registry.owner(voice.short_name)
        assert owner is not None and owner.name == voice.engine == "espeak"
    edge = registry.owner("zh-TW-HsiaoChenNeural")
    assert edge is not None and edge.name == "edge"
    assert registry.owner("tone-a") is None


def test_a_registered_engine_is_offered_by_every_command_and_accepted_by_settings() -> None:
    with tone_registered():
        for command in ("read", "feed", "serve"):
            assert _choices(command, "--engine") == ("auto", "edge", "espeak", "tone")
            help_text = CliRunner().invoke(main, [command, "--help"]).output
            assert "[auto|edge|espeak|tone]" in help_text, help_text
        # an embedded engine can also be the fallback of the online voice
        assert _choices("read", "--fallback") == ("none", "espeak", "tone")
        settings = Settings(engine="tone", voice="tone-b")
        assert settings.engine == "tone"
        assert Settings(engine="edge", fallback="tone").fallback == "tone"
        with pytest.raises(UsageError, match=r"^--fallback tone is for --engine auto, edge or "):
            Settings(engine="tone", fallback="tone")
        with pytest.raises(UsageError, match=r"use auto, edge, espeak or tone\.$"):
            Settings(engine="organ")
        result = CliRunner().invoke(main, ["read", "x.txt", "--engine", "organ"])
        assert result.exit_code == 2
        assert "--engine must be auto, edge, espeak or tone, not 'organ'" in result.stderr
    # gone with its entry: its name and its voices are refused again
    assert _choices("read", "--engine") == ("auto", "edge", "espeak")
    with pytest.raises(UsageError, match=r"^--engine 'tone' is unknown: use auto, edge or espeak"):
        Settings(engine="tone")
    with pytest.raises(UsageError, match=r"^--voice 'tone-b' is not a voice name"):
        Settings(voice="tone-b")


def test_names_cannot_be_registered_twice() -> None:
    with tone_registered() as entry, pytest.raises(ValueError, match="exists already"):
        registry.register(entry)
    for taken in ("auto", "none", "edge"):
        with pytest.raises(ValueError, match="exists already"):
            registry.register(registry.EngineEntry(taken, "embedded", "x", "y", bool, "?"))


def test_read_with_a_registered_engine_writes_its_audio(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text(ARTICLE, encoding="utf-8")
    out = tmp_path / "a.mp3"
    with tone_registered():
        args = ["read", str(source), "-o", str(out), "--engine", "tone", "--voice", "tone-b"]
        result = CliRunner().invoke(main, [*args, "--no-cache", "--subtitles", str(out) + ".vtt"])
    assert result.exit_code == 0, result.stderr
    assert "engine tone" in result.stderr
    [engine] = ToneEngine.made
    assert engine.requests == 3  # title and two paragraphs
    assert engine.closed == 1  # chosen by read, closed by read, once
    data = out.read_bytes()
    assert len(data) > 20 * FRAME_BYTES
    cues = Path(str(out) + ".vtt").read_text(encoding="utf-8")
    assert "本市第一家城市书房今天正式开放。" in cues


def test_choose_engine_makes_the_registered_engine_and_voices_lists_it(
    edge_standin: EdgeStandin,
) -> None:
    with tone_registered():
        choice = asyncio.run(choose_engine(Settings(engine="tone", voice="tone-a")))
        assert isinstance(choice.engine, ToneEngine) and choice.warning is None
        listing = asyncio.run(list_voices("zh-CN"))
        result = CliRunner().invoke(main, ["voices", "--json"])
    names = [(voice.engine, voice.short_name) for voice in listing.voices]
    assert ("tone", "tone-a") in names and ("espeak", "cmn") in names
    engines = [engine for engine, _ in names]
    # in registry order: the online voice first, then the embedded ones, then the new one
    assert engines == sorted(engines, key=("edge", "espeak", "tone").index)
    assert engines[0] == "edge"
    assert result.exit_code == 0
    assert {"tone-a", "tone-b"} <= {v["short_name"] for v in json.loads(result.output)}
    # each listing closed what it made
    assert all(engine.closed == 1 for engine in ToneEngine.made[1:])


def test_frames_of_a_tone_are_in_edge_format() -> None:
    with tone_registered() as entry:
        engine = entry.create()
        settings = Settings(engine="tone", voice="tone-a", use_cache=False)
    script = build_script(extract(ARTICLE), locale=settings.locale, read_title=True)
    audio = asyncio.run(engine.synthesize(script.segments[1], settings))
    assert len(audio.mp3) % FRAME_BYTES == 0
    assert audio.sentences[-1].end <= audio.frames * FRAME_SECONDS
