"""A local stand-in for edge's read-aloud TTS service, driven by the real ``edge_tts`` client.

It speaks the service's websocket protocol (see /work/shared/design/edge-tts.md) on 127.0.0.1 with
an ephemeral port, in a background thread with its own event loop: ``edge_tts``' sync API runs its
own loop in a worker thread, so a server on the test's loop would deadlock.

    with EdgeStandin() as edge:
        point_edge_tts_at(edge)          # tests.standin.fixtures; or use the edge_standin fixture
        ...
        edge.requests                    # what the client asked for
        edge.set_faults(["http_503", None, "close_mid_audio"])

Audio is real MP3 in edge's format (MPEG-2 Layer III, 24 kHz, mono, 48 kbit/s, 144-byte frames): a
quiet 250 Hz tone encoded once with lameenc. Its length follows the text (``seconds_per_char`` per
CJK character, divided by the requested rate), with one SentenceBoundary per sentence.

Faults are chosen per websocket request (handshake), see ``FAULTS`` and ``set_faults``: by script,
by rate, or by a chooser such as ``keyed_faults`` (a rate per fault, drawn from each request's
text so that concurrent runs are reproducible). The latency model (``handshake_latency``,
``first_audio_latency``, ``realtime_multiple``) and the global connection cap
(``max_connections``: HTTP 429 with ``Retry-After`` beyond it) make it a benchmark instrument too;
``handshake_log``, ``max_open_connections`` and ``requests`` record what a client did.
``tests/standin/verify.py`` checks an episode against the answers it gives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import functools
import http
import itertools
import json
import math
import random
import re
import struct
import threading
import time
import unicodedata
import uuid
import xml.etree.ElementTree as ET
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

TICKS_PER_SECOND = 10_000_000
FRAME_BYTES = 144
FRAME_SECONDS = 0.024
OUTPUT_FORMAT = "audio-24khz-48kbitrate-mono-mp3"

HANDSHAKE_FAULTS = ("http_503", "http_403_skew", "http_429", "http_404")
"""Faults answered with an HTTP status instead of the websocket upgrade (``http_404``: the endpoint
has moved, as it does every few months)."""
STREAM_FAULTS = (
    "close_before_audio",  # turn.start and response, then close: the client raises NoAudioReceived
    "close_mid_audio",  # about half the audio, then close: the client returns it silently
    "stall",  # accept the upgrade, read the request, then send nothing until the client leaves
    "unknown_path",  # a text frame with an unknown Path after the first audio: UnknownResponse
    "malformed_metadata",  # an audio.metadata item without its text: the client raises KeyError
    "no_turn_end",  # all audio and the end-of-audio frame, then close instead of turn.end
    "truncated_boundaries",  # all audio and turn.end, but the last sentence's boundary is missing
    "short_audio",  # every boundary and turn.end, but only half the audio (as when edge caps it)
)
FAULTS = HANDSHAKE_FAULTS + STREAM_FAULTS

FaultChooser = Callable[[int, str | None], str | None]
"""``(request_number, text) -> fault``: called at the handshake with ``text=None`` (may return
any fault); if that returned None, called again once the request's text is known (stream faults
only)."""


def keyed_faults(
    rates: Mapping[str, float],
    *,
    seed: int = 0,
    always_after: int | None = None,
) -> FaultChooser:
    """A ``FaultChooser`` that injects each fault into about ``rates[fault]`` of the requests.

    A stream fault is drawn from the request's text and how many times that text was asked for,
    so which segment meets which fault on which attempt does not depend on the order in which
    concurrent requests happen to arrive: a run is reproducible. A handshake fault is drawn from
    the handshake's number (the text is not known yet). With ``always_after=N``, every handshake
    after the N-th gets a fault (the first of ``rates``' faults): a way to make some segments
    certainly fail.
    """
    for name in rates:
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}: use one of {', '.join(FAULTS)}")
    handshake = {k: v for k, v in rates.items() if k in HANDSHAKE_FAULTS}
    stream = {k: v for k, v in rates.items() if k in STREAM_FAULTS}
    forced = next(iter(rates), None)
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def draw(table: Mapping[str, float], key: str) -> str | None:
        value = random.Random(f"{seed}:{key}").random()
        for name, rate in table.items():
            if value < rate:
                return name
            value -= rate
        return None

    def choose(number: int, text: str | None) -> str | None:
        late = always_after is not None and number > always_after
        if text is None:
            if late and forced in HANDSHAKE_FAULTS:
                return forced
            return draw(handshake, f"handshake:{number}")
        if late and forced in STREAM_FAULTS:
            return forced
        with lock:
            seen[text] += 1
            attempt = seen[text]
        return draw(stream, f"{text}:{attempt}")

    return choose


_SENTENCE_ENDS = frozenset("。！？；…")
_LATIN_ENDS = frozenset(".!?")
_CLOSERS = frozenset("”’」』）)》〉\"'")
_SYNTHESIS_NS = "{http://www.w3.org/2001/10/synthesis}"
_VOICE_NAME = re.compile(r"^Microsoft Server Speech Text to Speech Voice \((.+), (.+)\)$")


# ---------------------------------------------------------------------------------------------
# Options, plans and records


@dataclass(frozen=True)
class StandinOptions:
    """How the stand-in speaks. Change with ``EdgeStandin.configure``; ``reset`` restores."""

    seconds_per_char: float = 0.2
    """Speech per CJK character at rate +0%."""
    latin_char_weight: float = 0.3
    """A Latin letter or digit costs this fraction of a CJK character."""
    lead_in: float = 0.1
    """Silence before the first sentence, seconds (edge's audio starts with a short pause too)."""
    sentence_gap: float = 0.15
    tail: float = 0.15
    frames_per_message: int = 6
    """MP3 frames per binary websocket message."""
    handshake_latency: float = 0.0
    first_audio_latency: float = 0.0
    """Delay between the client's SSML and turn.start, seconds."""
    realtime_multiple: float = 0.0
    """Deliver audio at this multiple of real time (2.0: a 10 s segment takes 5 s); 0: unpaced."""
    max_connections: int | None = None
    """Global cap on concurrent websocket connections; beyond it a handshake gets HTTP 429."""
    retry_after: float = 1.0
    """Seconds sent in ``Retry-After`` with every 429."""
    clock_skew: float = 3600.0
    """For ``http_403_skew``: how far ahead of this machine's clock the 403's ``Date`` is."""
    voice_list_status: int = 200
    """HTTP status for the voice list (anything but 200 answers with that error)."""


@dataclass(frozen=True)
class PlannedSentence:
    text: str
    offset: int
    """Start of its speech, 100 ns ticks from the start of the request's audio."""
    duration: int
    """Length of its speech, ticks."""


@dataclass(frozen=True)
class SpeechPlan:
    """What the stand-in says for one text: its sentences' boundaries and how many MP3 frames."""

    sentences: tuple[PlannedSentence, ...]
    frames: int

    @property
    def duration(self) -> float:
        return self.frames * FRAME_SECONDS


@dataclass(frozen=True)
class SpeechRequest:
    """One synthesis request as the stand-in received it."""

    number: int
    """The handshake's number (1-based, counting refused handshakes too)."""
    voice: str
    """ShortName derived from the SSML voice name, e.g. ``zh-CN-XiaoxiaoNeural``."""
    voice_name: str
    """The voice name as sent: ``Microsoft Server Speech Text to Speech Voice (zh-CN, …)``."""
    text: str
    """The SSML text, unescaped."""
    rate: str
    pitch: str
    volume: str
    output_format: str
    sentence_boundary: bool
    word_boundary: bool
    fault: str | None
    """The stream fault applied to this request, if any."""


@dataclass(frozen=True)
class Handshake:
    """One websocket handshake as the stand-in answered it."""

    number: int
    at: float
    """``time.monotonic()`` when it was answered (after ``handshake_latency``)."""
    status: int
    """101 for an upgrade, else the refusal's HTTP status."""


@dataclass
class _Connection:
    number: int
    fault: str | None
    fault_from_chooser: bool
    released: bool = False


class _Stopped(Exception):
    """The server is shutting down: leave the handler quietly."""


# ---------------------------------------------------------------------------------------------
# Text → sentences → plan


def split_sentences(text: str) -> list[str]:
    """Split at 。！？；… and Latin .!? (a period only before whitespace or the end), keeping
    closing quotes with their sentence; punctuation-only pieces join the previous sentence."""
    pieces: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        current.append(ch)
        ends = ch in _SENTENCE_ENDS or (
            ch in _LATIN_ENDS and (ch != "." or i + 1 == len(text) or text[i + 1].isspace())
        )
        if ends:
            while i + 1 < len(text) and (
                text[i + 1] in _SENTENCE_ENDS
                or text[i + 1] in _LATIN_ENDS
                or text[i + 1] in _CLOSERS
            ):
                i += 1
                current.append(text[i])
            pieces.append("".join(current))
            current = []
        i += 1
    if current:
        pieces.append("".join(current))
    sentences: list[str] = []
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        if sentences and not _speech_weight(piece, 1.0):
            sentences[-1] += piece
        else:
            sentences.append(piece)
    return [s for s in sentences if _speech_weight(s, 1.0)]


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (
        0x3400 <= code <= 0x9FFF  # CJK ideographs (+ extension A)
        or 0xF900 <= code <= 0xFAFF
        or 0x20000 <= code <= 0x3FFFF
        or 0x3040 <= code <= 0x30FF  # kana
        or 0xAC00 <= code <= 0xD7AF  # hangul
    )


def _speech_weight(text: str, latin_weight: float) -> float:
    """How many 'CJK characters' of speech a text holds (punctuation and spaces are silent)."""
    weight = 0.0
    for ch in text:
        if _is_cjk(ch):
            weight += 1.0
        elif unicodedata.category(ch)[0] in "LN":
            weight += latin_weight
    return weight


def _rate_factor(rate: str) -> float:
    match = re.fullmatch(r"([+-]\d+)%", rate)
    percent = int(match.group(1)) if match else 0
    return max(0.1, 1.0 + percent / 100.0)


def make_plan(text: str, rate: str, options: StandinOptions) -> SpeechPlan:
    """The boundaries and frame count the stand-in produces for ``text`` at ``rate``."""
    sentences = split_sentences(text)
    if not sentences:
        return SpeechPlan((), 0)
    speed = _rate_factor(rate)
    planned: list[PlannedSentence] = []
    cursor = options.lead_in
    for index, sentence in enumerate(sentences):
        seconds = (
            _speech_weight(sentence, options.latin_char_weight) * options.seconds_per_char / speed
        )
        offset = round(cursor * TICKS_PER_SECOND)
        duration = max(1, round(seconds * TICKS_PER_SECOND))
        planned.append(PlannedSentence(sentence, offset, duration))
        cursor += seconds
        if index + 1 < len(sentences):
            cursor += options.sentence_gap
    cursor += options.tail
    return SpeechPlan(tuple(planned), max(1, math.ceil(cursor / FRAME_SECONDS - 1e-9)))


# ---------------------------------------------------------------------------------------------
# Audio: a quiet tone in edge's MP3 format


@functools.cache
def _tone_frames() -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """(prefix, cycle): the encoder's output for a steady tone, which becomes periodic.

    A 250 Hz tone is exactly six periods per 576-sample frame, so after a few frames LAME's
    output repeats with a short period. ``prefix + cycle * n`` is then a valid stream of any
    length (every frame's bit reservoir points into frames that really precede it).
    """
    import lameenc

    encoder = lameenc.Encoder()
    encoder.set_bit_rate(48)
    encoder.set_in_sample_rate(24000)
    encoder.set_channels(1)
    encoder.set_quality(5)
    period = b"".join(
        struct.pack("<h", round(1000 * math.sin(2 * math.pi * i / 96))) for i in range(96)
    )
    data = bytes(encoder.encode(period * 2500))  # 10 s
    data += bytes(encoder.flush())
    frames = [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]
    frames = frames[: len(frames) - 20]  # the flushed end is not steady
    for cycle in range(1, 17):
        start = len(frames) - cycle
        while start > 0 and frames[start - 1] == frames[start - 1 + cycle]:
            start -= 1
        if start + cycle < len(frames) - 100:
            return tuple(frames[: start + cycle]), tuple(frames[start + cycle : start + 2 * cycle])
    raise RuntimeError("lameenc's output for a steady tone never became periodic")


def tone_mp3(frames: int) -> bytes:
    """``frames`` MP3 frames (24 ms each) of a quiet tone in edge's format."""
    prefix, cycle = _tone_frames()
    stream = itertools.chain(prefix, itertools.cycle(cycle))
    return b"".join(itertools.islice(stream, frames))


# ---------------------------------------------------------------------------------------------
# Voices


def _voice_entry(
    locale: str, name: str, gender: str, language: str, categories: list[str], traits: list[str]
) -> dict[str, Any]:
    return {
        "Name": f"Microsoft Server Speech Text to Speech Voice ({locale}, {name})",
        "ShortName": f"{locale}-{name}",
        "Gender": gender,
        "Locale": locale,
        "SuggestedCodec": OUTPUT_FORMAT,
        "FriendlyName": f"Microsoft {name.removesuffix('Neural')} Online (Natural) - {language}",
        "Status": "GA",
        "VoiceTag": {"ContentCategories": categories, "VoicePersonalities": traits},
    }


_MAINLAND = "Chinese (Mainland)"
_TAIWAN = "Chinese (Taiwanese Mandarin, Traditional)"
_HONG_KONG = "Chinese (Cantonese, Traditional)"
_US = "English (United States)"

VOICES: tuple[dict[str, Any], ...] = (
    _voice_entry("en-US", "AriaNeural", "Female", _US, ["News", "Novel"], ["Positive"]),
    _voice_entry("en-US", "GuyNeural", "Male", _US, ["News", "Novel"], ["Passion"]),
    _voice_entry(
        "en-US", "EmmaMultilingualNeural", "Female", _US, ["Conversation"], ["Cheerful", "Clear"]
    ),
    _voice_entry("zh-CN", "XiaoxiaoNeural", "Female", _MAINLAND, ["News", "Novel"], ["Warm"]),
    _voice_entry("zh-CN", "XiaoyiNeural", "Female", _MAINLAND, ["Cartoon", "Novel"], ["Lively"]),
    _voice_entry("zh-CN", "YunjianNeural", "Male", _MAINLAND, ["Sports", "Novel"], ["Passion"]),
    _voice_entry("zh-CN", "YunxiNeural", "Male", _MAINLAND, ["Novel"], ["Lively", "Sunshine"]),
    _voice_entry("zh-CN", "YunxiaNeural", "Male", _MAINLAND, ["Cartoon", "Novel"], ["Cute"]),
    _voice_entry(
        "zh-CN", "YunyangNeural", "Male", _MAINLAND, ["News"], ["Professional", "Reliable"]
    ),
    _voice_entry(
        "zh-CN-liaoning",
        "XiaobeiNeural",
        "Female",
        "Chinese (Northeastern Mandarin, Simplified)",
        ["Dialect"],
        ["Humorous"],
    ),
    _voice_entry(
        "zh-CN-shaanxi",
        "XiaoniNeural",
        "Female",
        "Chinese (Zhongyuan Mandarin Shaanxi, Simplified)",
        ["Dialect"],
        ["Bright"],
    ),
    _voice_entry("zh-TW", "HsiaoChenNeural", "Female", _TAIWAN, ["General"], ["Friendly"]),
    _voice_entry("zh-TW", "HsiaoYuNeural", "Female", _TAIWAN, ["General"], ["Friendly"]),
    _voice_entry("zh-TW", "YunJheNeural", "Male", _TAIWAN, ["General"], ["Friendly"]),
    _voice_entry("zh-HK", "HiuGaaiNeural", "Female", _HONG_KONG, ["General"], ["Friendly"]),
    _voice_entry("zh-HK", "HiuMaanNeural", "Female", _HONG_KONG, ["General"], ["Friendly"]),
    _voice_entry("zh-HK", "WanLungNeural", "Male", _HONG_KONG, ["General"], ["Friendly"]),
)
VOICE_SHORT_NAMES = frozenset(v["ShortName"] for v in VOICES)


def short_voice_name(voice_name: str) -> str:
    """``Microsoft Server Speech Text to Speech Voice (zh-CN, XiaoxiaoNeural)`` → short name."""
    match = _VOICE_NAME.match(voice_name)
    return f"{match.group(1)}-{match.group(2)}" if match else voice_name


# ---------------------------------------------------------------------------------------------
# Wire format


def _split_message(message: str) -> tuple[dict[str, str], str]:
    head, _, body = message.partition("\r\n\r\n")
    headers: dict[str, str] = {}
    for line in head.split("\r\n"):
        key, _, value = line.partition(":")
        headers[key] = value
    return headers, body


def _timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _text_frame(path: str, request_id: str, body: str, content_type: str | None) -> str:
    headers = f"X-RequestId:{request_id}\r\n"
    if content_type:
        headers += f"Content-Type:{content_type}\r\n"
    return f"{headers}X-Timestamp:{_timestamp()}\r\nPath:{path}\r\n\r\n{body}"


def _audio_frame(request_id: str, mp3: bytes) -> bytes:
    content_type = "Content-Type:audio/mpeg\r\n" if mp3 else ""
    headers = f"X-RequestId:{request_id}\r\n{content_type}Path:audio\r\n".encode()
    return len(headers).to_bytes(2, "big") + headers + mp3


def _boundary_body(sentence: PlannedSentence, *, malformed: bool = False) -> str:
    text: dict[str, Any] = {
        "Text": sentence.text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
        "Length": len(sentence.text),
        "BoundaryType": "SentenceBoundary",
    }
    data: dict[str, Any] = {"Offset": sentence.offset, "Duration": sentence.duration}
    if not malformed:
        data["text"] = text
    return json.dumps(
        {"Metadata": [{"Type": "SentenceBoundary", "Data": data}]}, ensure_ascii=False
    )


# ---------------------------------------------------------------------------------------------
# The server


class EdgeStandin:
    """The stand-in server. Use as a context manager, or ``start()``/``stop()``."""

    def __init__(
        self,
        options: StandinOptions | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **changes: Any,
    ) -> None:
        self._initial = dataclasses.replace(options or StandinOptions(), **changes)
        self._host = host
        self._requested_port = port
        self._lock = threading.RLock()  # a chooser may read counters
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._port = 0
        self._connections: dict[ServerConnection, _Connection] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._asking = 0  # handshakes in progress
        self._clear()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> EdgeStandin:
        if self._thread is not None:
            raise RuntimeError("the stand-in is already running")
        _tone_frames()  # encode once, before the first request is timed
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="edge-standin", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("the edge stand-in did not start within 10 s")
        if self._startup_error is not None:
            raise RuntimeError("the edge stand-in failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=15)
        self._thread = None

    def __enter__(self) -> EdgeStandin:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def wss_url(self) -> str:
        """For ``edge_tts.communicate.WSS_URL`` (the client appends ``&ConnectionId=…``)."""
        return f"ws://{self._host}:{self._port}/edge/v1?TrustedClientToken=standin"

    @property
    def voice_list_url(self) -> str:
        """For ``edge_tts.voices.VOICE_LIST``."""
        return f"http://{self._host}:{self._port}/voices/list?trustedclienttoken=standin"

    # -- configuration --------------------------------------------------------------------------

    @property
    def options(self) -> StandinOptions:
        with self._lock:
            return self._options

    def configure(self, **changes: Any) -> StandinOptions:
        """Change options (see ``StandinOptions``) for the following requests."""
        with self._lock:
            self._options = dataclasses.replace(self._options, **changes)
            return self._options

    def set_faults(
        self,
        script: Iterable[str | None] = (),
        *,
        chooser: FaultChooser | None = None,
        rates: Mapping[str, float] | None = None,
        seed: int = 0,
    ) -> None:
        """Choose faults per request (each websocket handshake is one request).

        ``script`` is consumed one entry per handshake (None: no fault) and wins while it lasts;
        then ``chooser`` decides (see ``FaultChooser``); otherwise each handshake draws from
        ``rates`` (fault → probability) with a ``random.Random(seed)``.
        """
        names = list(script)
        for name in [*names, *(rates or {})]:
            if name is not None and name not in FAULTS:
                raise ValueError(f"unknown fault {name!r}: use one of {', '.join(FAULTS)}")
        if rates and sum(rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        with self._lock:
            self._script = deque(names)
            self._chooser = chooser
            self._rates = dict(rates or {})
            self._rng = random.Random(seed)

    def reset(self) -> None:
        """Forget counters, requests and faults; restore the constructor's options."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._options = self._initial
        self._script: deque[str | None] = deque()
        self._chooser: FaultChooser | None = None
        self._rates: dict[str, float] = {}
        self._rng = random.Random(0)
        self._requests: list[SpeechRequest] = []
        self._faults_applied: list[tuple[int, str]] = []
        self._handshakes = 0
        self._handshake_log: list[Handshake] = []
        self._refused: Counter[int] = Counter()
        self._open = sum(1 for c in self._connections.values() if not c.released)
        self._max_open = self._open
        self._max_asked = self._open + self._asking  # a gauge, like _open: not reset
        self._voice_list_requests = 0

    # -- observations ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[SpeechRequest]:
        """Every synthesis request whose SSML arrived, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def handshakes(self) -> int:
        """Websocket handshakes seen, refused ones included."""
        with self._lock:
            return self._handshakes

    @property
    def handshake_log(self) -> list[Handshake]:
        """Every handshake in order, with when it was answered and how."""
        with self._lock:
            return list(self._handshake_log)

    @property
    def refused(self) -> int:
        with self._lock:
            return sum(self._refused.values())

    @property
    def refused_by_status(self) -> dict[int, int]:
        with self._lock:
            return dict(self._refused)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return self._open

    @property
    def max_open_connections(self) -> int:
        with self._lock:
            return self._max_open

    @property
    def max_asked_connections(self) -> int:
        """The most connections open or being asked for at once: handshakes in progress count,
        refused ones included (what a client tried to open, where ``max_open_connections`` is
        what the cap let through)."""
        with self._lock:
            return self._max_asked

    @property
    def voice_list_requests(self) -> int:
        with self._lock:
            return self._voice_list_requests

    @property
    def faults_applied(self) -> list[tuple[int, str]]:
        """(handshake number, fault) for every fault acted on."""
        with self._lock:
            return list(self._faults_applied)

    def plan(self, text: str, rate: str = "+0%") -> SpeechPlan:
        """What the stand-in would answer for ``text`` with the current options."""
        return make_plan(text, rate, self.options)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no websocket connection is open; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.open_connections == 0:
                return True
            time.sleep(0.005)
        return self.open_connections == 0

    # -- server thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as error:  # reported to start() if it happens while starting
            self._startup_error = error
            self._ready.set()
        finally:
            loop.close()
            self._loop = None

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        server: Server
        async with serve(
            self._handle,
            self._host,
            self._requested_port,
            process_request=self._process_request,
            ping_interval=None,
            close_timeout=2,
        ) as server:
            self._port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stopping.wait()
            server.close()
            await server.wait_closed()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, or raise ``_Stopped`` as soon as the server stops."""
        assert self._stopping is not None
        if seconds <= 0:
            if self._stopping.is_set():
                raise _Stopped
            return
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return
        raise _Stopped

    # -- HTTP: voice list and handshakes --------------------------------------------------------

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        path = urlsplit(request.path).path
        if path.endswith("/voices/list"):
            return self._voice_list(connection)
        if not path.endswith("/edge/v1"):
            return connection.respond(http.HTTPStatus.NOT_FOUND, "Not Found\n")
        with self._lock:
            self._asking += 1
            self._max_asked = max(self._max_asked, self._open + self._asking)
        try:
            return await self._handshake(connection)
        finally:
            with self._lock:
                self._asking -= 1

    async def _handshake(self, connection: ServerConnection) -> Response | None:
        options = self.options
        if options.handshake_latency > 0:
            try:
                await self._sleep(options.handshake_latency)
            except _Stopped:
                return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "Stopping\n")
        with self._lock:
            self._handshakes += 1
            number = self._handshakes
            cap = self._options.max_connections
            if cap is not None and self._open >= cap:
                return self._refuse(connection, 429, number)
            fault, from_chooser = self._choose_fault(number)
            if fault in HANDSHAKE_FAULTS:
                self._faults_applied.append((number, fault))
                status = {"http_503": 503, "http_429": 429, "http_404": 404}.get(fault, 403)
                return self._refuse(connection, status, number)
            self._handshake_log.append(Handshake(number, time.monotonic(), 101))
            state = _Connection(number, fault, from_chooser)
            self._connections[connection] = state
            self._open += 1
            self._max_open = max(self._max_open, self._open)
        watcher = asyncio.get_running_loop().create_task(self._release_when_closed(connection))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return None

    def _choose_fault(self, number: int) -> tuple[str | None, bool]:
        """Called with the lock held."""
        if self._script:
            return self._script.popleft(), False
        if self._chooser is not None:
            return self._chooser(number, None), True
        if self._rates:
            draw = self._rng.random()
            for name, rate in self._rates.items():
                if draw < rate:
                    return name, False
                draw -= rate
        return None, False

    def _refuse(self, connection: ServerConnection, status: int, number: int) -> Response:
        """Called with the lock held."""
        self._refused[status] += 1
        self._handshake_log.append(Handshake(number, time.monotonic(), status))
        response = connection.respond(status, f"{http.HTTPStatus(status).phrase}\n")
        if status == 429:
            response.headers["Retry-After"] = f"{self._options.retry_after:g}"
        elif status == 403:
            del response.headers["Date"]
            response.headers["Date"] = email.utils.formatdate(
                time.time() + self._options.clock_skew, usegmt=True
            )
        return response

    def _voice_list(self, connection: ServerConnection) -> Response:
        with self._lock:
            self._voice_list_requests += 1
            status = self._options.voice_list_status
        if status != 200:
            return connection.respond(status, f"{http.HTTPStatus(status).phrase}\n")
        body = json.dumps(list(VOICES), ensure_ascii=False).encode()
        headers = Headers(
            [
                ("Date", email.utils.formatdate(usegmt=True)),
                ("Connection", "close"),
                ("Content-Length", str(len(body))),
                ("Content-Type", "application/json; charset=utf-8"),
            ]
        )
        return Response(200, "OK", headers, body)

    async def _release_when_closed(self, connection: ServerConnection) -> None:
        await connection.wait_closed()
        self._release(connection)

    def _release(self, connection: ServerConnection) -> None:
        with self._lock:
            state = self._connections.pop(connection, None)
            if state is not None and not state.released:
                state.released = True
                self._open -= 1

    # -- websocket: one synthesis request ---------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        with self._lock:
            state = self._connections.get(connection)
        if state is None:  # released already: the client left during the handshake
            return
        try:
            await self._converse(connection, state)
        except (ConnectionClosed, _Stopped):
            pass
        finally:
            self._release(connection)

    async def _converse(self, connection: ServerConnection, state: _Connection) -> None:
        config_message = await connection.recv()
        ssml_message = await connection.recv()
        if not isinstance(config_message, str) or not isinstance(ssml_message, str):
            await connection.close(1003, "expected text frames")
            return
        config_headers, config_body = _split_message(config_message)
        ssml_headers, ssml_body = _split_message(ssml_message)
        if config_headers.get("Path") != "speech.config" or ssml_headers.get("Path") != "ssml":
            await connection.close(1002, "expected speech.config then ssml")
            return
        request_id = ssml_headers.get("X-RequestId", uuid.uuid4().hex)
        options_json = json.loads(config_body)["context"]["synthesis"]["audio"]
        metadata_options = options_json.get("metadataoptions", {})
        voice_name, rate, pitch, volume, text = _parse_ssml(ssml_body)

        fault = state.fault
        if fault is None and state.fault_from_chooser:
            with self._lock:
                chooser = self._chooser
            chosen = chooser(state.number, text) if chooser is not None else None
            fault = chosen if chosen in STREAM_FAULTS else None
        request = SpeechRequest(
            number=state.number,
            voice=short_voice_name(voice_name),
            voice_name=voice_name,
            text=text,
            rate=rate,
            pitch=pitch,
            volume=volume,
            output_format=str(options_json.get("outputFormat", "")),
            sentence_boundary=metadata_options.get("sentenceBoundaryEnabled") == "true",
            word_boundary=metadata_options.get("wordBoundaryEnabled") == "true",
            fault=fault,
        )
        with self._lock:
            self._requests.append(request)
            if fault is not None:
                self._faults_applied.append((state.number, fault))
            options = self._options

        if fault == "stall":
            assert self._stopping is not None
            closed = asyncio.ensure_future(connection.wait_closed())
            stopping = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({closed, stopping}, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            stopping.cancel()
            return
        if request.voice not in VOICE_SHORT_NAMES:
            await connection.close(1007, "unsupported voice")
            return
        await self._sleep(options.first_audio_latency)
        service_tag = uuid.uuid4().hex
        await connection.send(
            _text_frame(
                "turn.start",
                request_id,
                json.dumps({"context": {"serviceTag": service_tag}}),
                "application/json; charset=utf-8",
            )
        )
        await connection.send(
            _text_frame(
                "response",
                request_id,
                json.dumps(
                    {
                        "context": {"serviceTag": service_tag},
                        "audio": {"type": "inline", "streamId": uuid.uuid4().hex.upper()},
                    }
                ),
                "application/json; charset=utf-8",
            )
        )
        if fault == "close_before_audio":
            await connection.close(1011, "internal error")
            return
        plan = make_plan(text, rate, options)
        if plan.frames == 0 or not plan.sentences:  # nothing to say: the real service ends too
            await connection.send(_text_frame("turn.end", request_id, "{}", None))
            return
        await self._stream_audio(connection, request_id, plan, fault, options)

    async def _stream_audio(
        self,
        connection: ServerConnection,
        request_id: str,
        plan: SpeechPlan,
        fault: str | None,
        options: StandinOptions,
    ) -> None:
        mp3 = tone_mp3(plan.frames // 2 if fault == "short_audio" else plan.frames)
        per_message = max(1, options.frames_per_message)
        chunks = [
            mp3[i : i + per_message * FRAME_BYTES]
            for i in range(0, len(mp3), per_message * FRAME_BYTES)
        ]
        sentences = plan.sentences[:-1] if fault == "truncated_boundaries" else plan.sentences
        boundaries: Iterator[PlannedSentence] = iter(sentences)
        pending = next(boundaries, None)
        stop_after = max(1, len(chunks) // 2) if fault == "close_mid_audio" else None
        loop = asyncio.get_running_loop()
        started = loop.time()
        sent_frames = 0
        metadata_sent = 0

        async def send_boundary(sentence: PlannedSentence) -> None:
            nonlocal metadata_sent
            malformed = fault == "malformed_metadata" and metadata_sent == 0
            body = _boundary_body(sentence, malformed=malformed)
            await connection.send(
                _text_frame("audio.metadata", request_id, body, "application/json; charset=utf-8")
            )
            metadata_sent += 1

        for index, chunk in enumerate(chunks):
            chunk_end = (sent_frames + len(chunk) // FRAME_BYTES) * FRAME_SECONDS
            # A sentence's boundary goes out just before the audio where its speech starts.
            while pending is not None and pending.offset / TICKS_PER_SECOND < chunk_end:
                await send_boundary(pending)
                pending = next(boundaries, None)
            await connection.send(_audio_frame(request_id, chunk))
            sent_frames += len(chunk) // FRAME_BYTES
            if index == 0 and fault == "unknown_path":
                await connection.send(
                    _text_frame("audio.viseme", request_id, "{}", "application/json")
                )
            if stop_after is not None and index + 1 >= stop_after:
                await connection.close(1011, "internal error")
                return
            if options.realtime_multiple > 0:
                due = started + sent_frames * FRAME_SECONDS / options.realtime_multiple
                await self._sleep(due - loop.time())
        while pending is not None:  # only when the audio is shorter than the speech
            await send_boundary(pending)
            pending = next(boundaries, None)
        await connection.send(_audio_frame(request_id, b""))
        if fault == "no_turn_end":
            await connection.close(1000)
            return
        await connection.send(_text_frame("turn.end", request_id, "{}", None))


def _parse_ssml(ssml: str) -> tuple[str, str, str, str, str]:
    """(voice name, rate, pitch, volume, unescaped text) from the client's SSML."""
    root = ET.fromstring(ssml)
    voice = root.find(f"{_SYNTHESIS_NS}voice")
    if voice is None:
        voice = root.find("voice")
    if voice is None:
        raise ValueError("SSML without a voice element")
    prosody = voice.find(f"{_SYNTHESIS_NS}prosody")
    if prosody is None:
        prosody = voice.find("prosody")
    if prosody is None:
        return voice.get("name", ""), "+0%", "+0Hz", "+0%", "".join(voice.itertext())
    return (
        voice.get("name", ""),
        prosody.get("rate", "+0%"),
        prosody.get("pitch", "+0Hz"),
        prosody.get("volume", "+0%"),
        "".join(prosody.itertext()),
    )
