"""The embedded offline voice: espeak-ng through its C API, on one worker thread.

The library and its data (with the Mandarin ``cmn`` and Cantonese ``yue`` dictionaries) come from
the ``espeakng-loader`` wheel; no system package is needed. espeak-ng keeps process-global state
and is not thread-safe, so every C call runs on ``_WORKER``, a single thread, and ``synthesize``
awaits it. It renders at 22,050 Hz; the PCM of a segment is encoded once into edge's MP3 format.

Each segment is rendered by a freshly loaded instance of the library, unloaded afterwards. The
wave generator keeps counters in C statics that neither ``espeak_Terminate`` nor
``espeak_Initialize`` reset (the pitch-flutter index, the glottal-cycle count behind the
"roughness" modulation), so the same text would otherwise sound a few samples different depending
on what was rendered before. Reloading costs about 6 ms and makes a segment's audio a function of
its text and settings alone: repeatable, cacheable, independent of the order of requests.

Loudness (``Settings.loudness``): espeak's level hardly depends on the text (news articles measure
-18.9 ± 0.2 LUFS at volume 100, with true peaks at 0 dBTP), so one gain per voice and settings,
found once per process by levelling a fixed calibration passage (``audio.normalize``), brings
every segment near the target; the segment is then scaled by it, its true peak limited, and
encoded. A segment's frames stay a function of its text and settings (the target is part of
``voice_id``, so of the cache key), the article's PCM is never held, and no segment is louder
or quieter than the others by more than what it says. The writer's finishing step then gives
the reading as a whole one lossless correction, as for edge's frames (``audio.level``).
"""

from __future__ import annotations

import _ctypes
import asyncio
import ctypes
import math
import re
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from newsreader.audio.encode import ENCODER_DELAY, encode_pcm
from newsreader.config import Settings
from newsreader.errors import EngineUnavailable, SynthesisError
from newsreader.models import Segment, SegmentAudio, SentenceTiming
from newsreader.synth.base import Voice

SAMPLE_RATE = 22_050
"""espeak-ng's output rate (16-bit mono)."""

NORMAL_RATE = 175
"""espeak's default speed, words per minute; ``+0%`` maps here."""
MIN_RATE, MAX_RATE = 80, 450
REFERENCE_PITCH_HZ = 100.0
"""Roughly the speaking pitch of espeak's default (male) voices; ``+NHz`` is taken against it."""

# From espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report a data error instead of calling exit()
_CHARS_UTF8 = 0x1
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH = 1, 2, 3
_BUFFER_MS = 1000  # audio handed to the callback per call: fewer Python round trips

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)

_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak-ng")
"""The one thread that ever calls into libespeak-ng."""

VOICES = (
    Voice("cmn", "zh-CN", "Male", "espeak", "Mandarin, offline (espeak-ng)"),
    Voice("cmn-latn-pinyin", "zh-CN", "Male", "espeak", "Mandarin, Latin text read as pinyin"),
    Voice("yue", "zh-HK", "Male", "espeak", "Cantonese, offline (espeak-ng)"),
)

# espeak-ng 1.52's cmn dictionary spells erhua words (一点儿, 这儿, 玩儿, 一会儿, ...) and the lone
# 兒 in pinyin with tone digits, which its "Latin as English" rules then read as English:
# 一点儿 comes out as "yi two dian three r five" (2.2 s instead of 0.7 s). A zero-width space
# before 儿 stops those entries from matching; 儿 is then read as its own syllable, er.
_ERHUA = re.compile(r"(?<=[\u3400-\u9fff\uf900-\ufaff])[儿兒]")


@dataclass(frozen=True)
class Prosody:
    """espeak's own parameter values: words per minute, pitch 0-100, volume 0-200."""

    rate: int = NORMAL_RATE
    pitch: int = 50
    volume: int = 100

    @classmethod
    def from_settings(cls, settings: Settings) -> Prosody:
        """Map edge-style ``+N%`` / ``+NHz`` settings onto espeak's scales."""
        rate_percent = int(settings.rate[:-1])
        rate = round(NORMAL_RATE * (100 + rate_percent) / 100)
        # espeak's pitch multiplies the voice's base pitch by 2 ** ((p - 50) / 50): 50 is the
        # voice's own pitch and each 50 steps is an octave, so a hertz shift becomes a ratio.
        hertz = int(settings.pitch[:-2])
        ratio = max(REFERENCE_PITCH_HZ + hertz, REFERENCE_PITCH_HZ / 2) / REFERENCE_PITCH_HZ
        pitch = round(50 + 50 * math.log2(ratio))
        volume = 100 + int(settings.volume[:-1])
        return cls(
            rate=min(max(rate, MIN_RATE), MAX_RATE),
            pitch=min(max(pitch, 0), 100),
            volume=min(max(volume, 0), 200),
        )


def espeak_voice(settings: Settings) -> str:
    """The espeak voice for these settings: an embedded voice by name, else by locale."""
    if settings.voice in ("cmn", "cmn-latn-pinyin", "yue"):
        return settings.voice
    return "yue" if settings.locale == "zh-HK" else "cmn"


class EspeakEngine:
    """The offline engine: espeak-ng's Mandarin (or Cantonese) voice, encoded to edge's format."""

    name = "espeak"

    def __init__(self, library: str | None = None, data: str | None = None) -> None:
        """``library`` and ``data`` default to what the ``espeakng-loader`` wheel ships."""
        self._library = library
        self._data = data

    def voice_id(self, settings: Settings) -> str:
        version = _version(self._library)
        prosody = Prosody.from_settings(settings)
        voice = espeak_voice(settings)
        level = "" if settings.loudness is None else f":{settings.loudness:g}LUFS.{LEVEL_VERSION}"
        return f"espeak-ng {version}:{voice}:{prosody.rate}:{prosody.pitch}:{prosody.volume}{level}"

    async def synthesize(self, segment: Segment, settings: Settings) -> SegmentAudio:
        voice, prosody = espeak_voice(settings), Prosody.from_settings(settings)
        gain = None
        if settings.loudness is not None:
            gain = await self.level_gain(voice, prosody, settings.loudness)
        pieces = await render_pcm(
            segment.sentences, voice, prosody, library=self._library, data=self._data
        )
        pcm, timings = _place(segment.sentences, pieces)
        # LAME (and most of numpy) releases the GIL: this overlaps rendering the next segment.
        mp3 = await asyncio.to_thread(_encode, pcm, gain)
        return SegmentAudio(mp3=mp3, sentences=timings)

    async def level_gain(self, voice: str, prosody: Prosody, target: float) -> float:
        """dB that bring this voice's speech to ``target`` LUFS once limited and encoded: the
        gain that levels ``CALIBRATION``, found once per process for each voice and settings."""
        key = (self._library, self._data, voice, prosody, round(target, 3))
        if key not in _GAINS:
            await asyncio.to_thread(self._calibrate, key, target)
        return _GAINS[key]

    def _calibrate(self, key: _GainKey, target: float) -> None:
        """Find the gain for ``key``, in a worker thread; the segments that ask at the same
        time wait for the first to find it (not each levelling the passage, all at once)."""
        with _CALIBRATING:
            if key in _GAINS:
                return
            from newsreader.audio.normalize import normalize_pieces

            _, _, voice, prosody, _ = key
            pieces = _WORKER.submit(
                _render_sentences, CALIBRATION, voice, prosody, self._library, self._data
            ).result()
            _, _GAINS[key] = normalize_pieces(pieces, SAMPLE_RATE, target, PEAK_CEILING)

    async def voices(self) -> list[Voice]:
        return list(VOICES)

    async def close(self) -> None:
        pass


LEVEL_VERSION = 2
"""Changes whenever the levelling (calibration passage, limiter) changes a segment's frames."""

CALIBRATION = (
    "国务院近日印发通知，部署进一步优化营商环境，推动经济持续回升向好。",
    "通知要求各地区各部门加强协调配合，确保各项措施在今年年底前落实到位。",
    "记者从市科技局了解到，院地合作联席会议制度已经建立，首批十二个项目正式签约。",
    "今年以来，全市新开城市书房二十三家，市民借阅量同比增长百分之四十。",
    "据气象部门预报，未来三天我省大部地区将有一次明显降雨过程，局地伴有雷电和短时大风。",
    "专家提醒，公众出行前应关注天气变化，注意防范强降雨可能引发的山洪和地质灾害。",
    "截至六月底，全省新能源汽车保有量达到八十六万辆，充电桩数量比去年同期翻了一番。",
    "这位七十八岁的老人说：“我在这条街上住了一辈子，没想到老房子还能修得这么漂亮。”",
)
"""What espeak's level is measured on: news sentences of the kinds articles are made of."""

PEAK_CEILING = -1.5
"""dBTP the limiter aims under (less ``ENCODING_MARGIN``): half a dB below the -1 dBTP an output
must meet, because coding a segment on its own moved a peak by up to 0.65 dB in our articles,
and a reading over -1 dBTP would be turned down a whole 1.5 dB step by the finishing step."""

_GainKey = tuple[str | None, str | None, str, Prosody, float]
_GAINS: dict[_GainKey, float] = {}
_CALIBRATING = threading.Lock()


def level_pcm(pcm: bytes, gain_db: float) -> bytes:
    """espeak's PCM scaled by ``gain_db``, its true peak held under the ceiling: every sample
    gets the same gain, but for those the limiter turns down around a peak."""
    from newsreader.audio.loudness import pcm_samples
    from newsreader.audio.normalize import ENCODING_MARGIN, limit_in_place, to_pcm

    scaled = pcm_samples(pcm)
    scaled *= 10 ** (gain_db / 20)  # in place, as the limiter works: one array of the segment
    return to_pcm(limit_in_place(scaled, SAMPLE_RATE, PEAK_CEILING - ENCODING_MARGIN))


def _encode(pcm: bytes, gain_db: float | None) -> bytes:
    """Level (unless ``gain_db`` is None: as it is) and encode."""
    return encode_pcm(pcm if gain_db is None else level_pcm(pcm, gain_db), SAMPLE_RATE)


async def render_pcm(
    sentences: tuple[str, ...],
    voice: str = "cmn",
    prosody: Prosody | None = None,
    *,
    library: str | None = None,
    data: str | None = None,
) -> list[bytes]:
    """Render each sentence to 22,050 Hz 16-bit mono PCM, on the espeak worker thread.

    Every sentence but the last ends with espeak's sentence pause, as if the segment had been
    rendered in one piece; the pause after the segment is the assembler's.
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        _WORKER, _render_sentences, sentences, voice, prosody or Prosody(), library, data
    )


def _render_sentences(
    sentences: tuple[str, ...],
    voice: str,
    prosody: Prosody,
    library: str | None,
    data: str | None,
) -> list[bytes]:
    if not sentences:
        return []
    last = len(sentences) - 1
    with _loaded(library, data) as espeak:
        espeak.use(voice, prosody)
        return [
            espeak.render(_speakable(text, voice), end_pause=index < last)
            for index, text in enumerate(sentences)
        ]


def _speakable(text: str, voice: str) -> str:
    """The text as handed to espeak: without NULs, with the cmn erhua work-around."""
    text = text.replace("\0", "")
    if voice.startswith("cmn"):
        text = _ERHUA.sub("\u200b儿", text).replace("兒", "儿")
    return text


def _place(
    sentences: tuple[str, ...], pieces: list[bytes]
) -> tuple[bytes, tuple[SentenceTiming, ...]]:
    """Join the sentences' PCM and time each from its first to its last audible sample.

    espeak's pauses are exact digital zeros, so the audible span is what stripping zero bytes
    leaves. A sentence with no audible sample adds no audio and gets a zero-length timing.
    """
    pcm = bytearray()
    timings: list[SentenceTiming] = []
    for text, piece in zip(sentences, pieces, strict=True):
        offset = len(pcm) // 2
        first_byte = len(piece) - len(piece.lstrip(b"\0"))
        if first_byte == len(piece):
            at = _seconds(offset)
            timings.append(SentenceTiming(text, at, at))
            continue
        end_byte = len(piece.rstrip(b"\0"))
        start = _seconds(offset + first_byte // 2)
        end = _seconds(offset + (end_byte + 1) // 2)
        timings.append(SentenceTiming(text, start, end))
        pcm += piece
    return bytes(pcm), tuple(timings)


def _seconds(samples: int) -> float:
    """A sample position in the PCM as a time in the decoded MP3."""
    return ENCODER_DELAY + samples / SAMPLE_RATE


def _library_path(library: str | None) -> str:
    if library is not None:
        return library
    return str(_loader().get_library_path())


def _data_path(data: str | None) -> str:
    if data is not None:
        return data
    try:
        return str(_loader().get_data_path())
    except RuntimeError as exc:  # the wheel is there but its data folder is not
        raise EngineUnavailable(
            f"espeak-ng's data is missing ({exc}); reinstall the espeakng-loader package "
            "or use --engine edge."
        ) from exc


def _loader() -> Any:
    try:
        import espeakng_loader
    except ImportError as exc:
        raise EngineUnavailable(
            "the offline voice is not installed: install the espeakng-loader package "
            "or use --engine edge."
        ) from exc
    return espeakng_loader


def _open_library(path: str) -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise EngineUnavailable(
            f"cannot load espeak-ng from {path} ({exc}); reinstall the espeakng-loader package "
            "or use --engine edge."
        ) from exc
    try:
        _declare(lib)
    except AttributeError as exc:  # loadable, but not espeak-ng's C API
        _unload(lib)
        raise EngineUnavailable(
            f"{path} is not an espeak-ng library ({exc}); reinstall the espeakng-loader package "
            "or use --engine edge."
        ) from exc
    return lib


def _declare(lib: ctypes.CDLL) -> None:
    """The C signatures of the functions used, so ctypes converts arguments exactly."""
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,  # text
        ctypes.c_size_t,  # its size in bytes, terminating NUL included
        ctypes.c_uint,  # start position
        ctypes.c_int,  # position type
        ctypes.c_uint,  # end position (0: none)
        ctypes.c_uint,  # flags
        ctypes.c_void_p,  # unique identifier out-parameter (unused)
        ctypes.c_void_p,  # user data (unused)
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Terminate.argtypes = []
    lib.espeak_Terminate.restype = ctypes.c_int


def _unload(lib: ctypes.CDLL) -> None:
    """Drop the library from the process, so the next load starts from pristine C statics."""
    if sys.platform == "win32":
        _ctypes.FreeLibrary(lib._handle)
    else:
        _ctypes.dlclose(lib._handle)


_VERSIONS: dict[str | None, str] = {}


def _version(library: str | None) -> str:
    """espeak-ng's version string, asked of the library once, on the worker thread.

    The first call waits for the worker (a millisecond when idle); later calls are a lookup.
    """
    if library not in _VERSIONS:
        _VERSIONS[library] = _WORKER.submit(_read_version, library).result()
    return _VERSIONS[library]


def _read_version(library: str | None) -> str:
    lib = _open_library(_library_path(library))
    try:
        version: bytes = lib.espeak_Info(None)
        return version.decode("ascii", "replace")
    finally:
        _unload(lib)


class _Espeak:
    """One loaded, initialized instance of libespeak-ng; used on the worker thread only."""

    def __init__(self, library: str | None, data: str | None) -> None:
        data_path = _data_path(data)
        self._lib = _open_library(_library_path(library))
        self._chunks: list[bytes] = []
        # Kept on the instance: the C side holds a bare pointer to this thunk.
        self._callback = _SynthCallback(self._collect)
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data_path.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate != SAMPLE_RATE:
            _unload(self._lib)  # not initialized: nothing to terminate
            raise EngineUnavailable(
                f"espeak-ng could not load its data from {data_path}; reinstall the "
                "espeakng-loader package or use --engine edge."
            )
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wave: int | None, samples: int, _events: int | None) -> int:
        if wave and samples > 0:
            self._chunks.append(ctypes.string_at(wave, samples * 2))
        return 0  # 0: carry on

    def use(self, voice: str, prosody: Prosody) -> None:
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EngineUnavailable(f"espeak-ng has no voice {voice!r} in its data.")
        for parameter, value in (
            (_PARAM_RATE, prosody.rate),
            (_PARAM_PITCH, prosody.pitch),
            (_PARAM_VOLUME, prosody.volume),
        ):
            if self._lib.espeak_SetParameter(parameter, value, 0) != 0:
                raise SynthesisError(f"espeak-ng rejected parameter {parameter} = {value}.")

    def render(self, text: str, *, end_pause: bool) -> bytes:
        self._chunks.clear()
        encoded = text.encode("utf-8") + b"\0"
        flags = _CHARS_UTF8 | (_ENDPAUSE if end_pause else 0)
        status = self._lib.espeak_Synth(
            encoded, len(encoded), 0, _POS_CHARACTER, 0, flags, None, None
        )
        if status != 0:
            raise SynthesisError(f"espeak-ng failed on {text[:30]!r} (error {status}).")
        pcm = b"".join(self._chunks)
        self._chunks.clear()  # the pieces go now, not when the instance is collected
        return pcm

    def close(self) -> None:
        self._lib.espeak_Terminate()
        _unload(self._lib)
        # The thunk refers back to this instance: without it, the instance (and what it holds)
        # goes as soon as it is let go, not at the garbage collector's next cycle.
        del self._callback


@contextmanager
def _loaded(library: str | None, data: str | None) -> Iterator[_Espeak]:
    espeak = _Espeak(library, data)
    try:
        yield espeak
    finally:
        espeak.close()
