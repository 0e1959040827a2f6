"""The embedded voice at a loudness target: a real article, one gain, judged by ffmpeg's ebur128."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from newsreader.audio.encode import encode_pcm
from newsreader.audio.level import LevelMeter
from newsreader.audio.mp3 import silence
from newsreader.config import Settings
from newsreader.errors import UsageError
from newsreader.models import Pause
from newsreader.pipeline import load_article, make_script
from newsreader.synth import espeak
from newsreader.synth.cache import LevelCache
from newsreader.synth.espeak import EspeakEngine, Prosody, render_pcm
from tests.audio import ffmpeg_errors, make_segment
from tests.audio.meter import ebur128

ARTICLE = Path(__file__).parents[1] / "corpus" / "synthetic" / "dev" / "gov-1.html"


def read_article(settings: Settings) -> tuple[bytes, LevelMeter]:
    """The article's segments as the engine makes them, joined with their pauses."""
    script = make_script(load_article(str(ARTICLE), settings), settings)
    meter = LevelMeter(LevelCache(None))

    async def run() -> bytes:
        engine = EspeakEngine()
        body = bytearray()
        for segment in script.segments:
            audio = await engine.synthesize(segment, settings)
            for piece in (audio.mp3, silence(int(segment.pause))):
                body += piece
                meter.add(piece)
        return bytes(body)

    return asyncio.run(run()), meter


@pytest.mark.parametrize("volume", ["+0%", "-50%"])
def test_a_real_article_comes_out_at_the_target(volume: str) -> None:
    settings = Settings(engine="espeak", use_cache=False, volume=volume)
    assert settings.loudness == -16.0  # the default
    mp3, meter = read_article(settings)
    assert len(mp3) > 60 / 0.024 * 144  # over a minute of speech
    assert ffmpeg_errors(mp3) == ""
    loudness, peak = ebur128(mp3)
    assert loudness == pytest.approx(-16.0, abs=1.0)
    assert peak <= -1.0
    # The meter agrees with ffmpeg, and the finishing step has nothing left to do.
    level = meter.plan(-16.0)
    assert level.steps == 0
    assert level.loudness == pytest.approx(loudness, abs=0.15)


def test_another_target_and_off() -> None:
    quiet, _ = read_article(Settings(engine="espeak", use_cache=False, loudness=-23.0))
    assert ebur128(quiet)[0] == pytest.approx(-23.0, abs=1.0)
    own, _ = read_article(Settings(engine="espeak", use_cache=False, loudness=None))
    loudness, peak = ebur128(own)
    assert -21.0 < loudness < -17.0 and peak > -1.0  # espeak's own level, peaks unlimited


def test_one_gain_for_every_segment_only_peaks_limited() -> None:
    """No segment is levelled on its own: every sample of every segment gets the voice's one
    gain, except around peaks, where the limiter turns it down (never up)."""
    engine = EspeakEngine()
    gain = asyncio.run(engine.level_gain("cmn", Prosody(), -16.0))
    factor = 10 ** (gain / 20)
    texts = ("国务院近日印发通知，部署进一步优化营商环境。", "一，二，三。", "据新华社电。")
    for text in texts:
        raw = np.frombuffer(b"".join(asyncio.run(render_pcm((text,)))), dtype="<i2")
        levelled = np.frombuffer(espeak.level_pcm(raw.tobytes(), gain), dtype="<i2")
        loud = np.abs(raw) > 200  # where rounding to 16 bits does not blur the ratio
        applied = 20 * np.log10(levelled[loud] / raw[loud]) - gain
        assert applied.max() < 0.05  # never more than the one gain
        assert abs(float(np.median(applied))) < 0.15  # half the samples or more get exactly it
        assert np.mean(np.abs(applied) < 0.09) > 0.45
    assert factor > 1.5  # the premise: espeak is turned up, so its peaks must be limited


def test_frames_are_a_function_of_text_and_target() -> None:
    engine = EspeakEngine()
    segment = make_segment(0, ("国务院近日印发通知，部署进一步优化营商环境。",), pause=Pause.END)

    async def make(loudness: float | None) -> bytes:
        chosen = Settings(engine="espeak", loudness=loudness)
        return (await engine.synthesize(segment, chosen)).mp3

    first, again, quieter = (asyncio.run(make(v)) for v in (-16.0, -16.0, -20.0))
    assert first == again  # repeatable: cacheable under a key with the target in it
    assert first != quieter and len(first) == len(quieter)  # same length, another level
    assert ebur128(first)[0] - ebur128(quieter)[0] == pytest.approx(4.0, abs=0.7)


def test_off_encodes_espeak_as_it_is() -> None:
    text = "记者从市科技局了解到，院地合作联席会议制度已经建立。"
    audio = asyncio.run(
        EspeakEngine().synthesize(
            make_segment(0, (text,), pause=Pause.END), Settings(engine="espeak", loudness=None)
        )
    )
    pcm = b"".join(asyncio.run(render_pcm((text,))))
    assert audio.mp3 == encode_pcm(pcm, espeak.SAMPLE_RATE)


def test_the_gain_is_found_once_per_voice_and_settings() -> None:
    engine = EspeakEngine()
    first = asyncio.run(engine.level_gain("cmn", Prosody(), -16.0))
    assert 2.0 < first < 6.0  # espeak speaks at about -19 LUFS
    # 4 dB quieter, and less to limit: at least 4 dB less gain.
    assert first - 7.0 < asyncio.run(engine.level_gain("cmn", Prosody(), -20.0)) <= first - 4.0
    key = (None, None, "cmn", Prosody(), -16.0)
    assert espeak._GAINS[key] == first


def test_segments_that_ask_for_the_gain_at_once_level_the_passage_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first segments in flight all ask at the start of a run: levelling the passage for
    # each of them at the same time set the peak memory of a short reading.
    from newsreader.audio import normalize

    calls: list[float] = []

    def counted(*args: Any, **kwargs: Any) -> tuple[list[bytes], float]:
        calls.append(args[2])
        return real(*args, **kwargs)

    real = normalize.normalize_pieces
    monkeypatch.setattr(normalize, "normalize_pieces", counted)
    engine = EspeakEngine()

    async def together() -> list[float]:
        asking = [engine.level_gain("cmn", Prosody(rate=190), -17.25) for _ in range(3)]
        return list(await asyncio.gather(*asking))

    gains = asyncio.run(together())
    assert calls == [-17.25]  # once, with the real levelling, for all three
    assert (
        gains[0] == gains[1] == gains[2] == espeak._GAINS[(None, None, "cmn", Prosody(190), -17.25)]
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-60.0, "--loudness -60 is out of range: use -40 to -5 LUFS"),
        (0.0, "--loudness 0 is out of range"),
        (float("nan"), "--loudness nan is out of range"),
    ],
)
def test_a_target_out_of_range_is_refused(value: float, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Settings(loudness=value)


def test_loudness_as_given_on_the_command_line() -> None:
    from newsreader.config import parse_loudness

    assert parse_loudness("off") is None
    assert parse_loudness("OFF") is None
    assert parse_loudness("-16") == -16.0
    assert parse_loudness("-23LUFS") == -23.0
    assert parse_loudness(" -14.5 ") == -14.5
    with pytest.raises(UsageError, match="--loudness 'loud' is not valid"):
        parse_loudness("loud")
    with pytest.raises(UsageError, match="out of range"):
        parse_loudness("+3")


def test_intro_and_outro_must_be_readable_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^cannot read intro .*missing\.wav: No such file"):
        Settings(intro=tmp_path / "missing.wav")
    with pytest.raises(UsageError, match=r"^outro .* is not a file"):
        Settings(outro=tmp_path)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(UsageError, match=r"^intro .*empty\.wav is empty"):
        Settings(intro=empty)
    sound = tmp_path / "ok.wav"
    sound.write_bytes(b"RIFF")
    assert Settings(intro=sound, outro=sound).intro == sound
