"""The edge stand-in itself: protocol, audio, voice list, faults, counters, latency."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import threading
import time
from typing import Any

import aiohttp
import edge_tts
import pytest
from edge_tts.exceptions import NoAudioReceived

from newsreader.audio.ffmpeg import ffmpeg_exe
from newsreader.audio.mp3 import bare_frames
from tests.standin.fixtures import point_edge_tts_at
from tests.standin.server import (
    FRAME_BYTES,
    TICKS_PER_SECOND,
    EdgeStandin,
    keyed_faults,
    split_sentences,
    tone_mp3,
)

TEXT = "北京时间今天上午，新闻发布会举行。发言人介绍了最新进展！记者们提出了问题？"
VOICE = "zh-CN-XiaoxiaoNeural"

CONFIG_FRAME = (
    "X-Timestamp:Thu Jan 01 2026 00:00:00 GMT+0000 (Coordinated Universal Time)\r\n"
    "Content-Type:application/json; charset=utf-8\r\n"
    "Path:speech.config\r\n\r\n"
    '{"context":{"synthesis":{"audio":{"metadataoptions":{'
    '"sentenceBoundaryEnabled":"true","wordBoundaryEnabled":"false"},'
    '"outputFormat":"audio-24khz-48kbitrate-mono-mp3"}}}}\r\n'
)


# ffmpeg arguments: MP3 on stdin → 24 kHz mono 16-bit PCM on stdout, errors only on stderr.
DECODE_TO_PCM = (
    *("-v", "error", "-f", "mp3", "-i", "pipe:0"),
    *("-f", "s16le", "-ac", "1", "-ar", "24000", "pipe:1"),
)


def ssml_frame(text: str, voice: str = "zh-CN, XiaoxiaoNeural") -> str:
    return (
        "X-RequestId:0123456789abcdef\r\nContent-Type:application/ssml+xml\r\n"
        "X-Timestamp:Thu Jan 01 2026 00:00:00 GMT+0000Z\r\nPath:ssml\r\n\r\n"
        "<speak version='1.0' xmlns='http://www.w3.org/2001/10/synthesis' xml:lang='en-US'>"
        f"<voice name='Microsoft Server Speech Text to Speech Voice ({voice})'>"
        f"<prosody pitch='+0Hz' rate='+0%' volume='+0%'>{text}</prosody></voice></speak>"
    )


async def raw_exchange(url: str, text: str) -> list[tuple[str, Any]]:
    """Talk to the stand-in without edge_tts: each message as ("text", str) or ("binary", bytes)."""
    received: list[tuple[str, Any]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{url}&ConnectionId=abc", compress=15) as ws,
    ):
        await ws.send_str(CONFIG_FRAME)
        await ws.send_str(ssml_frame(text))
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                received.append(("text", message.data))
                if "Path:turn.end\r\n" in message.data:
                    break
            elif message.type == aiohttp.WSMsgType.BINARY:
                received.append(("binary", message.data))
    return received


async def collect(text: str, voice: str = VOICE, **options: Any) -> tuple[bytes, list[Any]]:
    communicate = edge_tts.Communicate(text, voice, **options)
    audio = b""
    boundaries = []
    async for chunk in communicate.stream():
        if chunk["type"] == "audio":
            audio += chunk["data"]
        else:
            boundaries.append(chunk)
    return audio, boundaries


def audio_payload(message: bytes) -> bytes:
    return message[2 + int.from_bytes(message[:2], "big") :]


def text_path(message: str) -> str:
    head = message.split("\r\n\r\n", 1)[0]
    return dict(line.split(":", 1) for line in head.split("\r\n"))["Path"]


# -- protocol --------------------------------------------------------------------------------------


def test_wire_format_matches_edge(edge_standin: EdgeStandin) -> None:
    messages = asyncio.run(raw_exchange(edge_standin.wss_url, TEXT))
    kinds = [
        text_path(data) if kind == "text" else ("audio" if audio_payload(data) else "audio-end")
        for kind, data in messages
    ]
    assert kinds[:2] == ["turn.start", "response"]
    assert kinds[-2:] == ["audio-end", "turn.end"]
    assert set(kinds[2:-2]) == {"audio.metadata", "audio"}
    assert kinds.count("audio.metadata") == 3  # one per sentence

    for kind, data in messages:
        if kind == "text":
            assert "\r\n\r\n" in data and "Path: " not in data
            continue
        length = int.from_bytes(data[:2], "big")
        headers = data[2 : 2 + length]
        assert headers.endswith(b"\r\n") and b"Path:audio\r\n" in headers
        payload = data[2 + length :]
        if payload:
            assert b"Content-Type:audio/mpeg\r\n" in headers
            assert len(payload) % FRAME_BYTES == 0 and len(payload) // FRAME_BYTES <= 6
        else:
            assert b"Content-Type" not in headers

    metadata = [json.loads(d.split("\r\n\r\n", 1)[1]) for k, d in messages if k == "text"][2:5]
    for body, sentence in zip(metadata, split_sentences(TEXT), strict=True):
        (item,) = body["Metadata"]
        assert item["Type"] == "SentenceBoundary"
        assert item["Data"]["text"] == {
            "Text": sentence,
            "Length": len(sentence),
            "BoundaryType": "SentenceBoundary",
        }


def test_client_gets_audio_and_one_boundary_per_sentence(edge_standin: EdgeStandin) -> None:
    audio, boundaries = asyncio.run(collect(TEXT))
    plan = edge_standin.plan(TEXT)
    assert len(audio) == plan.frames * FRAME_BYTES
    assert bare_frames(audio) == audio  # edge's format, no tags
    assert [b["text"] for b in boundaries] == split_sentences(TEXT)
    assert [b["type"] for b in boundaries] == ["SentenceBoundary"] * 3
    ends = [b["offset"] + b["duration"] for b in boundaries]
    assert all(a <= b["offset"] for a, b in zip(ends, boundaries[1:], strict=False))
    assert ends[-1] <= plan.duration * TICKS_PER_SECOND
    for boundary in boundaries:
        chars = sum(1 for ch in boundary["text"] if "\u4e00" <= ch <= "\u9fff")
        assert boundary["duration"] == pytest.approx(chars * 0.2 * TICKS_PER_SECOND, rel=1e-6)


def test_sync_api_does_not_deadlock(edge_standin: EdgeStandin) -> None:
    chunks = list(edge_tts.Communicate("你好。", VOICE).stream_sync())
    assert any(c["type"] == "audio" for c in chunks)


def test_request_is_recorded_unescaped(edge_standin: EdgeStandin) -> None:
    text = "A&B <公司> 发布新品。"
    audio, boundaries = asyncio.run(
        collect(text, "zh-TW-HsiaoChenNeural", rate="-20%", pitch="+5Hz", volume="-10%")
    )
    (request,) = edge_standin.requests
    assert request.text == text
    assert request.voice == "zh-TW-HsiaoChenNeural"
    assert (
        request.voice_name
        == "Microsoft Server Speech Text to Speech Voice (zh-TW, HsiaoChenNeural)"
    )
    assert (request.rate, request.pitch, request.volume) == ("-20%", "+5Hz", "-10%")
    assert [b["text"] for b in boundaries] == [text]
    assert len(audio) == edge_standin.plan(text, "-20%").frames * FRAME_BYTES


def test_audio_is_a_quiet_tone_that_decodes_cleanly() -> None:
    mp3 = tone_mp3(500)  # 12 s: far past the encoder's periodic point
    result = subprocess.run(
        [ffmpeg_exe(), *DECODE_TO_PCM],
        input=mp3,
        capture_output=True,
        check=True,
    )
    assert result.stderr == b""
    samples = memoryview(result.stdout).cast("h")
    assert abs(len(samples) / 24000 - 12.0) < 0.1
    peak = max(abs(s) for s in samples[24000:48000])
    assert 300 < peak < 3000  # audible but quiet


def test_sentence_splitting() -> None:
    assert split_sentences("第一句。第二句！“第三句？”他说……好的；OK. Version 3.5 is out!") == [
        "第一句。",
        "第二句！",
        "“第三句？”",
        "他说……",
        "好的；",
        "OK.",
        "Version 3.5 is out!",
    ]
    assert split_sentences("……！？") == []


def test_punctuation_only_gets_no_audio(edge_standin: EdgeStandin) -> None:
    with pytest.raises(NoAudioReceived):
        asyncio.run(collect("……"))


def test_unknown_voice_closes_before_audio(edge_standin: EdgeStandin) -> None:
    with pytest.raises(NoAudioReceived):
        asyncio.run(collect("你好。", "zh-CN-NobodyNeural"))
    assert edge_standin.requests[0].voice == "zh-CN-NobodyNeural"


# -- voice list ------------------------------------------------------------------------------------


def test_voice_list(edge_standin: EdgeStandin) -> None:
    voices = asyncio.run(edge_tts.list_voices())
    names = {v["ShortName"]: v for v in voices}
    for short in (
        "zh-CN-XiaoxiaoNeural",
        "zh-CN-XiaoyiNeural",
        "zh-CN-YunjianNeural",
        "zh-CN-YunxiNeural",
        "zh-CN-YunxiaNeural",
        "zh-CN-YunyangNeural",
        "zh-CN-liaoning-XiaobeiNeural",
        "zh-CN-shaanxi-XiaoniNeural",
        "zh-TW-HsiaoChenNeural",
        "zh-TW-HsiaoYuNeural",
        "zh-TW-YunJheNeural",
        "zh-HK-HiuGaaiNeural",
        "zh-HK-HiuMaanNeural",
        "zh-HK-WanLungNeural",
    ):
        assert short in names
    assert sum(1 for v in voices if v["Locale"] == "en-US") >= 2
    xiaobei = names["zh-CN-liaoning-XiaobeiNeural"]
    assert xiaobei["Locale"] == "zh-CN-liaoning"
    # The name the client sends for a ShortName is the list's Name, as with the real service.
    config = edge_tts.communicate.TTSConfig(
        "zh-CN-liaoning-XiaobeiNeural", "+0%", "+0%", "+0Hz", "SentenceBoundary"
    )
    assert config.voice == xiaobei["Name"]
    assert set(xiaobei) >= {
        "Name",
        "ShortName",
        "Gender",
        "Locale",
        "SuggestedCodec",
        "FriendlyName",
        "Status",
        "VoiceTag",
    }
    assert set(xiaobei["VoiceTag"]) == {"ContentCategories", "VoicePersonalities"}
    assert edge_standin.voice_list_requests == 1


# -- faults ----------------------------------------------------------------------------------------


def test_script_is_consumed_one_entry_per_handshake(edge_standin: EdgeStandin) -> None:
    edge_standin.set_faults(["http_503", None, "close_before_audio"])
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        asyncio.run(collect("你好。"))
    assert refused.value.status == 503
    audio, _ = asyncio.run(collect("你好。"))
    assert audio
    with pytest.raises(NoAudioReceived):
        asyncio.run(collect("你好。"))
    assert asyncio.run(collect("你好。"))[0]  # the script is used up
    assert edge_standin.faults_applied == [(1, "http_503"), (3, "close_before_audio")]
    assert edge_standin.handshakes == 4 and edge_standin.refused == 1
    assert [r.number for r in edge_standin.requests] == [2, 3, 4]


def test_chooser_sees_number_then_text(edge_standin: EdgeStandin) -> None:
    calls: list[tuple[int, str | None]] = []

    def chooser(number: int, text: str | None) -> str | None:
        calls.append((number, text))
        if number == 1:
            return "http_429"
        return "close_mid_audio" if text and "坏" in text else None

    edge_standin.set_faults(chooser=chooser)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        asyncio.run(collect("好消息。"))
    assert refused.value.status == 429
    assert refused.value.headers is not None and refused.value.headers["Retry-After"] == "1"
    good, _ = asyncio.run(collect("好消息。"))
    cut, _ = asyncio.run(collect("坏消息传来了。又一个坏消息。"))
    full = edge_standin.plan("坏消息传来了。又一个坏消息。").frames * FRAME_BYTES
    assert len(good) == edge_standin.plan("好消息。").frames * FRAME_BYTES
    assert 0 < len(cut) < full  # the client hands back partial audio without an error
    assert calls == [
        (1, None),
        (2, None),
        (2, "好消息。"),
        (3, None),
        (3, "坏消息传来了。又一个坏消息。"),
    ]


def test_rates_are_reproducible(edge_standin: EdgeStandin) -> None:
    def run() -> list[tuple[int, str]]:
        edge_standin.reset()
        edge_standin.set_faults(rates={"http_503": 0.3, "close_before_audio": 0.3}, seed=7)
        for _ in range(12):
            with contextlib.suppress(aiohttp.WSServerHandshakeError, NoAudioReceived):
                asyncio.run(collect("你好。"))
        return edge_standin.faults_applied

    first = run()
    assert first == run()
    assert {fault for _, fault in first} == {"http_503", "close_before_audio"}
    assert 0 < len(first) < 12


def test_handshake_log_and_moved_endpoint(edge_standin: EdgeStandin) -> None:
    edge_standin.set_faults(["http_404"])
    before = time.monotonic()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        asyncio.run(collect("你好。"))
    assert refused.value.status == 404
    asyncio.run(collect("你好。"))
    log = edge_standin.handshake_log
    assert [(h.number, h.status) for h in log] == [(1, 404), (2, 101)]
    assert before <= log[0].at <= log[1].at <= time.monotonic()


def test_keyed_faults_follow_the_text_not_the_arrival_order() -> None:
    texts = [f"第{n}条新闻。" for n in "一二三四五六七八"]

    def faults(order: list[str]) -> dict[tuple[str, int], str | None]:
        chooser = keyed_faults({"close_mid_audio": 0.3, "stall": 0.2}, seed=4)
        seen: dict[tuple[str, int], str | None] = {}
        for attempt in (1, 2, 3):
            for number, text in enumerate(order, 1):
                assert chooser(number, None) is None  # no handshake fault asked for
                seen[text, attempt] = chooser(number, text)
        return seen

    forwards = faults(texts)
    assert forwards == faults(texts[::-1])
    assert set(forwards.values()) == {None, "close_mid_audio", "stall"}

    late = keyed_faults({"http_503": 0.0, "stall": 0.0}, always_after=2)
    assert [late(n, None) for n in (1, 2, 3, 4)] == [None, None, "http_503", "http_503"]
    late_stream = keyed_faults({"no_turn_end": 0.0}, always_after=1)
    assert (late_stream(1, "甲。"), late_stream(2, "甲。")) == (None, "no_turn_end")
    with pytest.raises(ValueError, match="unknown fault"):
        keyed_faults({"http_500": 0.1})


def test_unknown_fault_names_are_refused(edge_standin: EdgeStandin) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        edge_standin.set_faults(["http_500"])


def test_reset_forgets_everything(edge_standin: EdgeStandin) -> None:
    edge_standin.configure(seconds_per_char=0.5)
    edge_standin.set_faults(["http_503", "http_503"])
    with pytest.raises(aiohttp.WSServerHandshakeError):
        asyncio.run(collect("你好。"))
    edge_standin.reset()
    assert edge_standin.options.seconds_per_char == 0.2
    assert (edge_standin.handshakes, edge_standin.refused, edge_standin.requests) == (0, 0, [])
    assert asyncio.run(collect("你好。"))[0]


def test_stall_ends_when_the_server_stops() -> None:
    server = EdgeStandin().start()
    undo = point_edge_tts_at(server)
    try:
        server.set_faults(["stall"])
        outcome: list[BaseException | None] = []

        def stalled_client() -> None:
            try:
                asyncio.run(collect("你好。"))
                outcome.append(None)
            except BaseException as error:
                outcome.append(error)

        client = threading.Thread(target=stalled_client)
        client.start()
        deadline = time.monotonic() + 5
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.open_connections == 1
        client.join(timeout=0.3)
        assert client.is_alive()  # stalled
        started = time.monotonic()
        server.stop()
        client.join(timeout=5)
        assert not client.is_alive() and time.monotonic() - started < 5
        assert isinstance(outcome[0], NoAudioReceived)
    finally:
        undo()
        server.stop()


# -- counters, cap, latency ------------------------------------------------------------------------


async def _concurrently(count: int) -> list[Any]:
    jobs = [collect(f"第{i}条新闻。") for i in range(count)]
    return await asyncio.gather(*jobs, return_exceptions=True)


def test_open_connection_counters(edge_standin: EdgeStandin) -> None:
    edge_standin.configure(first_audio_latency=0.3)
    results = asyncio.run(_concurrently(4))
    assert all(isinstance(r, tuple) for r in results)
    assert edge_standin.max_open_connections == 4
    assert edge_standin.wait_idle(2.0)


def test_cap_refuses_with_429_and_retry_after(edge_standin: EdgeStandin) -> None:
    edge_standin.configure(first_audio_latency=0.3, max_connections=3, retry_after=4)
    results = asyncio.run(_concurrently(5))
    refused = [r for r in results if isinstance(r, aiohttp.WSServerHandshakeError)]
    assert len(refused) == 2
    assert all(r.status == 429 and r.headers and r.headers["Retry-After"] == "4" for r in refused)
    assert edge_standin.max_open_connections == 3
    assert edge_standin.refused_by_status == {429: 2}


def test_latency_model(edge_standin: EdgeStandin) -> None:
    text = "这是一段大约两秒的新闻。"  # 11 characters: 2.2 s of speech
    started = time.monotonic()
    asyncio.run(collect(text))
    unpaced = time.monotonic() - started

    edge_standin.configure(handshake_latency=0.2, first_audio_latency=0.2, realtime_multiple=5)
    started = time.monotonic()
    audio, _ = asyncio.run(collect(text))
    paced = time.monotonic() - started
    expected = 0.2 + 0.2 + edge_standin.plan(text).duration / 5
    assert expected - 0.05 <= paced <= expected + 0.5
    assert unpaced < expected - 0.3
    assert len(audio) == edge_standin.plan(text).frames * FRAME_BYTES
