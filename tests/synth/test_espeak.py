"""The offline engine: real espeak-ng from the espeakng-loader wheel, real LAME, real ffmpeg."""

from __future__ import annotations

import asyncio
import ctypes.util
import math
import subprocess
from array import array
from itertools import pairwise
from pathlib import Path

import pytest

from newsreader.audio.encode import ENCODER_DELAY
from newsreader.audio.ffmpeg import ffmpeg_exe
from newsreader.config import Settings
from newsreader.errors import EngineUnavailable
from newsreader.models import FRAME_BYTES, Pause, Segment, SegmentAudio
from newsreader.synth.base import Engine
from newsreader.synth.espeak import EspeakEngine, Prosody, espeak_voice
from tests.audio import make_segment

RATE = 24_000
NEWS = (
    "国务院近日印发通知，部署进一步优化营商环境。",
    "通知要求各地区各部门加强协调配合。",
    "记者从市科技局了解到，院地合作联席会议制度已经建立。",
)


def segment(*sentences: str, index: int = 0) -> Segment:
    return make_segment(index, sentences, pause=Pause.PARAGRAPH)


def synthesize(seg: Segment, settings: Settings | None = None) -> SegmentAudio:
    return asyncio.run(EspeakEngine().synthesize(seg, settings or Settings(engine="espeak")))


def decode(mp3: bytes) -> array[int]:
    run = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "mp3", "-i", "pipe:0", "-f", "s16le", "pipe:1"],
        input=mp3,
        capture_output=True,
        check=False,
    )
    assert run.returncode == 0 and run.stderr == b"", run.stderr.decode(errors="replace")
    return array("h", run.stdout)


def rms(samples: array[int], start: float, end: float) -> float:
    window = samples[int(start * RATE) : int(end * RATE)]
    return math.sqrt(sum(x * x for x in window) / max(len(window), 1))


def test_is_an_engine() -> None:
    engine: Engine = EspeakEngine()
    assert engine.name == "espeak"


def test_audio_is_bare_edge_format_frames_that_decode_cleanly() -> None:
    audio = synthesize(segment(*NEWS))

    assert audio.mp3 and len(audio.mp3) % FRAME_BYTES == 0
    assert all(
        audio.mp3[at : at + 3] == b"\xff\xf3\x64" for at in range(0, len(audio.mp3), FRAME_BYTES)
    )
    samples = decode(audio.mp3)
    assert len(samples) == audio.frames * 576
    assert rms(samples, 0, audio.duration) > 500  # speech, not silence


def test_one_timing_per_sentence_in_order_inside_the_audio() -> None:
    audio = synthesize(segment(*NEWS))

    assert [t.text for t in audio.sentences] == list(NEWS)
    assert audio.sentences[0].start >= ENCODER_DELAY
    for timing in audio.sentences:
        assert timing.start < timing.end <= audio.duration
    for before, after in pairwise(audio.sentences):
        assert before.end <= after.start


def test_timings_match_the_decoded_audio() -> None:
    # Between sentences the decoded audio is silent, inside them it is speech. A 10 ms margin
    # leaves no room for an error of the encoder delay's size (46 ms).
    audio = synthesize(segment(*NEWS))
    samples = decode(audio.mp3)
    margin = 0.010

    timings = audio.sentences
    assert rms(samples, 0, timings[0].start - margin) < 30
    for before, after in pairwise(timings):
        assert after.start - before.end > 0.2  # espeak's sentence pause
        assert rms(samples, before.end + margin, after.start - margin) < 30
    for timing in timings:
        assert rms(samples, timing.start, timing.start + 0.1) > 300
        assert rms(samples, timing.end - 0.1, timing.end) > 100


def test_duration_grows_with_the_text() -> None:
    short = synthesize(segment(NEWS[1]))
    long = synthesize(segment(NEWS[1] * 3))

    assert short.duration > 1.0
    assert 2.5 < long.duration / short.duration < 3.5
    # Mandarin at espeak's default speed: a few characters a second.
    assert 2 < len(NEWS[1]) / short.duration < 8


def test_faster_rate_gives_shorter_audio() -> None:
    fast = synthesize(segment(*NEWS), Settings(engine="espeak", rate="+50%"))
    slow = synthesize(segment(*NEWS), Settings(engine="espeak", rate="-30%"))

    assert fast.duration < 0.6 * slow.duration


def test_volume_and_pitch_change_the_audio() -> None:
    # With --loudness off: at a loudness target every volume comes out at the target.
    normal = synthesize(segment(NEWS[0]), Settings(engine="espeak", loudness=None))
    quiet = synthesize(segment(NEWS[0]), Settings(engine="espeak", volume="-50%", loudness=None))
    higher = synthesize(segment(NEWS[0]), Settings(engine="espeak", pitch="+30Hz", loudness=None))

    loud_rms = rms(decode(normal.mp3), 0, normal.duration)
    quiet_rms = rms(decode(quiet.mp3), 0, quiet.duration)
    assert 0.35 < quiet_rms / loud_rms < 0.65
    assert higher.mp3 != normal.mp3


def test_a_sentence_without_sound_gets_a_zero_length_timing_in_place() -> None:
    audio = synthesize(segment(NEWS[0], "……", NEWS[1]))

    first, silent, last = audio.sentences
    assert silent.text == "……"
    assert silent.start == silent.end
    assert first.end <= silent.start <= last.start


def test_concurrent_calls_match_sequential_calls_byte_for_byte() -> None:
    segments = [segment(text, index=i) for i, text in enumerate(NEWS)] + [segment(*NEWS)]
    settings = Settings(engine="espeak")
    engine = EspeakEngine()

    async def sequential() -> list[SegmentAudio]:
        return [await engine.synthesize(s, settings) for s in segments]

    async def concurrent() -> list[SegmentAudio]:
        return list(await asyncio.gather(*(engine.synthesize(s, settings) for s in segments)))

    async def concurrent_reversed() -> list[SegmentAudio]:
        reverse = await asyncio.gather(*(engine.synthesize(s, settings) for s in segments[::-1]))
        return list(reverse[::-1])

    expected = asyncio.run(sequential())
    assert asyncio.run(concurrent()) == expected
    assert asyncio.run(concurrent_reversed()) == expected


def test_traditional_characters_read_like_simplified() -> None:
    simplified = synthesize(segment("国务院发布新规定，台湾经济发展迅速。"))
    traditional = synthesize(segment("國務院發佈新規定，臺灣經濟發展迅速。"))

    assert abs(traditional.duration - simplified.duration) <= 0.05


def test_erhua_is_not_read_as_english_digits() -> None:
    # Without the work-around, cmn reads 一点儿 as "yi two dian three r five": +1.5 s here.
    plain = synthesize(segment("我们一点也不累，这事好办。"))
    erhua = synthesize(segment("我们一点儿也不累，这事儿好办。"))

    assert erhua.duration - plain.duration < 0.8


def test_cantonese_voice_for_hong_kong() -> None:
    settings = Settings(engine="espeak", voice="zh-HK-HiuGaaiNeural")
    assert espeak_voice(settings) == "yue"

    cantonese = synthesize(segment(NEWS[0]), settings)
    mandarin = synthesize(segment(NEWS[0]))

    assert cantonese.duration > 1.0
    assert cantonese.mp3 != mandarin.mp3
    decode(cantonese.mp3)


def test_voice_selection() -> None:
    assert espeak_voice(Settings()) == "cmn"
    assert espeak_voice(Settings(voice="zh-TW-HsiaoChenNeural")) == "cmn"
    assert espeak_voice(Settings(voice="yue")) == "yue"
    assert espeak_voice(Settings(voice="cmn-latn-pinyin")) == "cmn-latn-pinyin"


def test_prosody_maps_edge_style_settings_onto_espeak_scales() -> None:
    def prosody(**options: str) -> Prosody:
        return Prosody.from_settings(Settings(**options))  # type: ignore[arg-type]

    assert prosody() == Prosody(rate=175, pitch=50, volume=100)
    assert prosody(rate="+50%").rate == 262
    assert prosody(rate="-30%").rate == 122
    assert prosody(rate="-100%").rate == 80  # espeak's slowest
    assert prosody(rate="+200%").rate == 450  # espeak's fastest
    assert prosody(pitch="+100Hz").pitch == 100  # an octave up
    assert prosody(pitch="-50Hz").pitch == 0  # an octave down
    assert prosody(pitch="-100Hz").pitch == 0
    assert 55 < prosody(pitch="+10Hz").pitch < 60
    assert prosody(volume="-100%").volume == 0
    assert prosody(volume="+200%").volume == 200


def test_voice_id_names_version_voice_and_parameters() -> None:
    engine = EspeakEngine()

    default = engine.voice_id(Settings())
    faster = engine.voice_id(Settings(rate="+20%"))
    hong_kong = engine.voice_id(Settings(voice="zh-HK-HiuGaaiNeural"))

    assert default.startswith("espeak-ng 1.")
    assert ":cmn:175:50:100:-16LUFS." in default  # the loudness target changes the frames
    assert ":cmn:210:50:100:" in faster
    assert ":yue:" in hong_kong
    assert engine.voice_id(Settings(loudness=None)).endswith(":cmn:175:50:100")
    assert ":-20LUFS." in engine.voice_id(Settings(loudness=-20))


def test_voices_are_the_embedded_ones() -> None:
    voices = asyncio.run(EspeakEngine().voices())

    by_name = {v.short_name: v for v in voices}
    assert by_name["cmn"].locale == "zh-CN"
    assert by_name["yue"].locale == "zh-HK"
    assert {v.engine for v in voices} == {"espeak"}


def test_a_library_that_cannot_load_is_engine_unavailable(tmp_path: Path) -> None:
    broken = tmp_path / "libespeak-ng.so"
    broken.write_bytes(b"not a shared object")
    engine = EspeakEngine(library=str(broken))

    with pytest.raises(EngineUnavailable, match="cannot load espeak-ng"):
        asyncio.run(engine.synthesize(segment(NEWS[0]), Settings()))
    with pytest.raises(EngineUnavailable):
        engine.voice_id(Settings())


def test_a_library_that_is_not_espeak_is_engine_unavailable() -> None:
    libm = ctypes.util.find_library("m")
    assert libm is not None
    engine = EspeakEngine(library=libm)

    with pytest.raises(EngineUnavailable, match="not an espeak-ng library"):
        asyncio.run(engine.synthesize(segment(NEWS[0]), Settings()))


def test_missing_data_is_engine_unavailable(tmp_path: Path) -> None:
    engine = EspeakEngine(data=str(tmp_path))

    with pytest.raises(EngineUnavailable, match="data"):
        asyncio.run(engine.synthesize(segment(NEWS[0]), Settings()))
