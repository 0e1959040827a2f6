"""The edge engine, driven through the real edge_tts client against the local stand-in."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Sequence

import edge_tts.communicate
import edge_tts.drm
import edge_tts.voices
import pytest

from newsreader.audio.ffmpeg import ffmpeg_exe
from newsreader.config import Settings
from newsreader.errors import EngineUnavailable, TransientError, UsageError
from newsreader.models import FRAME_BYTES, Pause, Segment, SegmentAudio, SegmentKind
from newsreader.synth.edge import Boundary, EdgeEngine, sentence_timings
from tests.standin.server import EdgeStandin

SENTENCES = ("今天上午，市政府召开新闻发布会。", "会议介绍了今年的交通规划！", "记者在现场提问？")
SECONDS_PER_CHAR = 0.2  # the stand-in's default


# ffmpeg arguments: MP3 on stdin → 24 kHz mono 16-bit PCM on stdout, errors only on stderr.
DECODE_TO_PCM = (
    *("-v", "error", "-f", "mp3", "-i", "pipe:0"),
    *("-f", "s16le", "-ac", "1", "-ar", "24000", "pipe:1"),
)


def segment(*sentences: str, index: int = 0) -> Segment:
    return Segment(
        index=index,
        text="".join(sentences),
        sentences=tuple(sentences),
        display=tuple(sentences),
        kind=SegmentKind.BODY,
        block=0,
        chapter=0,
        pause=Pause.PARAGRAPH,
    )


def settings(**changes: object) -> Settings:
    values: dict[str, object] = {"request_timeout": 5.0, "voice": "zh-CN-XiaoxiaoNeural"}
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


def synthesize(seg: Segment, **changes: object) -> SegmentAudio:
    return asyncio.run(EdgeEngine().synthesize(seg, settings(**changes)))


def failure(seg: Segment, **changes: object) -> TransientError:
    with pytest.raises(TransientError) as caught:
        synthesize(seg, **changes)
    return caught.value


def cjk_chars(text: str) -> int:
    return sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")


def decode(mp3: bytes) -> tuple[int, str]:
    """(samples, ffmpeg's error output) for MP3 bytes, decoded to 24 kHz mono."""
    result = subprocess.run(
        [ffmpeg_exe(), *DECODE_TO_PCM],
        input=mp3,
        capture_output=True,
        check=True,
    )
    return len(result.stdout) // 2, result.stderr.decode()


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_ordered(starts_ends: Sequence[tuple[float, float]], duration: float) -> None:
    previous = 0.0
    for start, end in starts_ends:
        assert previous <= start <= end <= duration


# -- the happy path --------------------------------------------------------------------------------


def test_audio_decodes_and_fits_the_text(edge_standin: EdgeStandin) -> None:
    seg = segment(*SENTENCES)
    audio = synthesize(seg)

    assert len(audio.mp3) % FRAME_BYTES == 0 and audio.frames > 0
    samples, errors = decode(audio.mp3)
    assert errors == ""
    assert abs(samples / 24000 - audio.duration) < 0.1
    spoken = cjk_chars(seg.text) * SECONDS_PER_CHAR
    assert spoken <= audio.duration <= spoken + 1.0

    assert [t.text for t in audio.sentences] == list(SENTENCES)
    assert_ordered([(t.start, t.end) for t in audio.sentences], audio.duration)
    for timing in audio.sentences:
        expected = cjk_chars(timing.text) * SECONDS_PER_CHAR
        assert timing.end - timing.start == pytest.approx(expected, abs=0.01)
    assert len(edge_standin.requests) == 1


def test_voice_and_prosody_reach_the_service(edge_standin: EdgeStandin) -> None:
    seg = segment(*SENTENCES)
    normal = synthesize(seg, voice="zh-CN-YunyangNeural")
    fast = synthesize(seg, voice="zh-CN-YunyangNeural", rate="+50%", pitch="-10Hz", volume="+20%")

    first, second = edge_standin.requests
    assert (first.voice, first.rate, first.pitch, first.volume) == (
        "zh-CN-YunyangNeural",
        "+0%",
        "+0Hz",
        "+0%",
    )
    assert (second.rate, second.pitch, second.volume) == ("+50%", "-10Hz", "+20%")
    assert second.text == seg.text
    assert second.sentence_boundary and not second.word_boundary
    assert second.output_format == "audio-24khz-48kbitrate-mono-mp3"
    # The stand-in speaks faster at +50%, as edge does: shorter audio, shorter sentences.
    assert fast.duration < normal.duration * 0.8
    assert fast.sentences[0].end - fast.sentences[0].start < (
        normal.sentences[0].end - normal.sentences[0].start
    )


def test_escaped_characters_survive(edge_standin: EdgeStandin) -> None:
    seg = segment("A&B公司发布<新品>。", "价格为100元。")
    audio = synthesize(seg)
    assert edge_standin.requests[0].text == seg.text
    assert [t.text for t in audio.sentences] == list(seg.sentences)


def test_voice_id_names_everything_that_changes_the_audio() -> None:
    engine = EdgeEngine()
    base = engine.voice_id(settings())
    assert base == "edge:zh-CN-XiaoxiaoNeural:+0%:+0Hz:+0%"
    assert engine.voice_id(settings(rate="+10%")) != base
    assert engine.voice_id(settings(pitch="+5Hz")) != base
    assert engine.voice_id(settings(volume="-5%")) != base


def test_nothing_to_say_makes_no_request(edge_standin: EdgeStandin) -> None:
    audio = synthesize(segment("……", "！"))
    assert audio.mp3 == b""
    assert [t.text for t in audio.sentences] == ["……", "！"]
    assert edge_standin.handshakes == 0


# -- sentence timings when edge's sentences are not ours -------------------------------------------


def test_our_sentence_split_inside_one_boundary(edge_standin: EdgeStandin) -> None:
    # The stand-in, like edge, does not split at "，": one boundary spans our two sentences.
    audio = synthesize(segment("今天天气很好，", "我们去公园散步。"))
    first, second = audio.sentences
    assert first.text == "今天天气很好，" and second.text == "我们去公园散步。"
    whole = first.start, second.end
    assert whole[1] - whole[0] == pytest.approx(13 * SECONDS_PER_CHAR, abs=0.01)
    # Interpolated by characters: 6 of the 13 characters.
    assert first.end - first.start == pytest.approx(6 * SECONDS_PER_CHAR, abs=0.01)
    assert first.end == pytest.approx(second.start, abs=1e-6)


def test_two_boundaries_inside_our_one_sentence(edge_standin: EdgeStandin) -> None:
    audio = synthesize(segment("你好。我很好。", "再见！"))
    merged, last = audio.sentences
    requests = edge_standin.requests
    plan = edge_standin.plan(requests[0].text)
    assert len(plan.sentences) == 3
    assert merged.start == pytest.approx(plan.sentences[0].offset / 1e7)
    assert merged.end == pytest.approx(
        (plan.sentences[1].offset + plan.sentences[1].duration) / 1e7
    )
    assert last.start == pytest.approx(plan.sentences[2].offset / 1e7)


def test_timings_interpolate_and_stretch() -> None:
    boundaries = [Boundary(0.0, 1.0, "甲乙丙丁"), Boundary(1.5, 2.5, "戊己")]
    timings = sentence_timings(["甲乙", "丙丁戊", "，", "己"], boundaries, duration=3.0)
    assert [(t.start, t.end) for t in timings] == [
        (0.0, 0.5),
        (0.5, 2.0),
        (2.0, 2.0),
        (2.0, 2.5),
    ]
    # Edge counted characters differently (e.g. a number read out): positions stretch evenly.
    stretched = sentence_timings(["一二", "三四"], [Boundary(0.0, 2.0, "甲乙丙丁戊己甲乙")], 2.0)
    assert [(t.start, t.end) for t in stretched] == [(0.0, 1.0), (1.0, 2.0)]


def test_timings_stay_ordered_and_inside_the_audio() -> None:
    # Overlapping boundaries, and a last one that runs past the audio's end.
    boundaries = [Boundary(0.0, 1.0, "甲乙"), Boundary(0.8, 1.5, "丙"), Boundary(1.6, 9.0, "丁")]
    timings = sentence_timings(["甲乙", "丙", "丁"], boundaries, duration=2.0)
    assert [(t.start, t.end) for t in timings] == [(0.0, 1.0), (1.0, 1.5), (1.6, 2.0)]


# -- failures, one attempt each --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("http_503", "network"),
        ("http_404", "service_changed"),
        ("close_before_audio", "no_audio"),
        ("unknown_path", "service_changed"),
        ("malformed_metadata", "service_changed"),
        ("close_mid_audio", "truncated"),
        ("no_turn_end", "truncated"),
        ("truncated_boundaries", "truncated"),
        ("short_audio", "truncated"),
    ],
)
def test_fault_maps_to_kind(edge_standin: EdgeStandin, fault: str, kind: str) -> None:
    edge_standin.set_faults([fault])
    error = failure(segment(*SENTENCES))
    assert error.kind == kind
    assert edge_standin.faults_applied == [(1, fault)]
    assert edge_standin.handshakes == 1  # one attempt: retries belong to the scheduler


def test_no_turn_end_is_caught_although_all_audio_arrived(edge_standin: EdgeStandin) -> None:
    seg = segment(*SENTENCES)
    complete = synthesize(seg)
    edge_standin.set_faults(["no_turn_end"])
    error = failure(seg)
    assert error.kind == "truncated"
    assert "end of the turn" in error.message
    assert complete.frames == edge_standin.plan(seg.text).frames


def test_rate_limit_carries_retry_after(edge_standin: EdgeStandin) -> None:
    edge_standin.configure(retry_after=7)
    edge_standin.set_faults(["http_429"])
    error = failure(segment(*SENTENCES))
    assert error.kind == "rate_limit"
    assert error.retry_after == 7.0


def test_clock_skew_403_is_recovered_by_the_client(edge_standin: EdgeStandin) -> None:
    edge_standin.set_faults(["http_403_skew"])
    audio = synthesize(segment(*SENTENCES))
    assert audio.frames > 0
    assert edge_standin.handshakes == 2
    assert edge_standin.refused_by_status == {403: 1}
    assert edge_tts.drm.DRM.clock_skew_seconds == pytest.approx(3600, abs=5)


def test_second_403_means_the_service_changed(edge_standin: EdgeStandin) -> None:
    # The client has already corrected its clock from the first 403's Date: a second 403 is a
    # changed access check (edge's token), which no network check fixes.
    edge_standin.set_faults(["http_403_skew", "http_403_skew"])
    error = failure(segment(*SENTENCES))
    assert error.kind == "service_changed"
    assert "403" in error.message
    assert edge_standin.handshakes == 2


def test_moved_endpoint_means_the_service_changed(edge_standin: EdgeStandin) -> None:
    edge_standin.set_faults(["http_404"])
    error = failure(segment(*SENTENCES))
    assert error.kind == "service_changed"
    assert "HTTP 404" in error.message and "address may have changed" in error.message


def test_stall_honours_the_deadline(edge_standin: EdgeStandin) -> None:
    edge_standin.set_faults(["stall"])
    started = time.monotonic()
    error = failure(segment(*SENTENCES), request_timeout=1.0)
    elapsed = time.monotonic() - started
    assert error.kind == "timeout"
    assert 0.9 <= elapsed < 3.0
    assert edge_standin.wait_idle(2.0)  # the client hung up


def test_unknown_voice_gets_no_audio(edge_standin: EdgeStandin) -> None:
    error = failure(segment(*SENTENCES), voice="zh-CN-NobodyNeural")
    assert error.kind == "no_audio"
    assert edge_standin.requests[0].voice == "zh-CN-NobodyNeural"


def test_nothing_listening_is_a_network_failure(
    edge_standin: EdgeStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"ws://127.0.0.1:{unused_port()}/edge/v1?TrustedClientToken=x"
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", url)
    assert failure(segment(*SENTENCES)).kind == "network"


def test_espeak_voice_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        synthesize(segment(*SENTENCES), voice="cmn")


# -- concurrency -----------------------------------------------------------------------------------


async def _synthesize_all(count: int, **changes: object) -> list[SegmentAudio | BaseException]:
    engine = EdgeEngine()
    jobs = [
        engine.synthesize(segment(*SENTENCES, index=i), settings(**changes)) for i in range(count)
    ]
    return await asyncio.gather(*jobs, return_exceptions=True)


def test_concurrent_requests_are_counted(edge_standin: EdgeStandin) -> None:
    edge_standin.configure(first_audio_latency=0.3)
    results = asyncio.run(_synthesize_all(3))
    assert all(isinstance(r, SegmentAudio) for r in results)
    assert edge_standin.max_open_connections == 3
    assert edge_standin.wait_idle(2.0)
    assert edge_standin.open_connections == 0


def test_connection_cap_answers_429(edge_standin: EdgeStandin) -> None:
    edge_standin.configure(first_audio_latency=0.3, max_connections=2, retry_after=2)
    results = asyncio.run(_synthesize_all(3))
    done = [r for r in results if isinstance(r, SegmentAudio)]
    limited = [r for r in results if isinstance(r, TransientError)]
    assert len(done) == 2 and len(limited) == 1
    assert limited[0].kind == "rate_limit" and limited[0].retry_after == 2.0
    assert edge_standin.max_open_connections == 2
    assert edge_standin.refused_by_status == {429: 1}


# -- voices and reachability -----------------------------------------------------------------------


def test_voices_come_from_the_service_once(edge_standin: EdgeStandin) -> None:
    async def twice() -> tuple[list[str], list[str]]:
        engine = EdgeEngine()
        first = await engine.voices()
        second = await engine.voices()
        return [v.short_name for v in first], [v.short_name for v in second]

    first, second = asyncio.run(twice())
    assert first == second
    assert {"zh-CN-YunyangNeural", "zh-TW-HsiaoChenNeural", "zh-HK-WanLungNeural"} <= set(first)
    assert edge_standin.voice_list_requests == 1

    voices = {v.short_name: v for v in asyncio.run(EdgeEngine().voices())}
    yunyang = voices["zh-CN-YunyangNeural"]
    assert (yunyang.locale, yunyang.gender, yunyang.engine) == ("zh-CN", "Male", "edge")
    assert "News" in yunyang.description


def test_voice_list_errors_are_engine_unavailable(
    edge_standin: EdgeStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge_standin.configure(voice_list_status=503)
    with pytest.raises(EngineUnavailable, match="HTTP 503"):
        asyncio.run(EdgeEngine().voices())
    url = f"http://127.0.0.1:{unused_port()}/voices/list?trustedclienttoken=x"
    monkeypatch.setattr(edge_tts.voices, "VOICE_LIST", url)
    with pytest.raises(EngineUnavailable, match="cannot connect"):
        asyncio.run(EdgeEngine().voices())


def test_check_voice(edge_standin: EdgeStandin, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = EdgeEngine()
    asyncio.run(engine.check_voice("zh-CN-XiaoxiaoNeural"))
    with pytest.raises(
        UsageError, match="unknown voice zh-CN-NobodyNeural: see `newsreader voices`"
    ):
        asyncio.run(engine.check_voice("zh-CN-NobodyNeural"))
    # An unreachable list cannot prove a voice unknown.
    url = f"http://127.0.0.1:{unused_port()}/voices/list?trustedclienttoken=x"
    monkeypatch.setattr(edge_tts.voices, "VOICE_LIST", url)
    asyncio.run(EdgeEngine().check_voice("zh-CN-NobodyNeural"))


def test_probe(edge_standin: EdgeStandin, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = EdgeEngine()
    assert asyncio.run(engine.probe(2.0)) is None

    port = unused_port()
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", f"ws://127.0.0.1:{port}/edge/v1?x=1")
    reason = asyncio.run(engine.probe(2.0))
    assert reason is not None and f"127.0.0.1:{port}" in reason

    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", "ws://standin.invalid/edge/v1?x=1")
    reason = asyncio.run(engine.probe(2.0))
    assert reason is not None and reason.startswith("no network")
