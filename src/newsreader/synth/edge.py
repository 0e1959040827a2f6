"""The online voice: Microsoft Edge's read-aloud service through the ``edge_tts`` client.

One ``synthesize`` call is one websocket request (the scheduler owns retries and concurrency).
The client has three silent failure modes this module guards against (edge-tts.md):

- a stalled server makes it wait forever → every request runs under ``request_timeout``, the
  last resort; before that, each message of the answer is reported to the request's
  ``Progress`` (``newsreader.synth.base``), so the scheduler can hang up on a silent request
  long before its deadline while it never cuts off an answer that is still flowing;
- a connection closed after some audio returns that partial audio without an error → the audio
  is checked for completeness (``turn.end`` seen, boundaries cover the text, audio long enough);
- its errors are its own and aiohttp's → mapped to ``TransientError(kind=…)`` here.

The service refuses a connection for load at the websocket handshake (HTTP 429 on the upgrade),
so a handshake it accepts (HTTP 101) says it took the connection, half a second or more before
the first audio. The client has no hook for that moment; the connector it accepts
(``Communicate(connector=…)``) gives one: ``_Watching`` reports each accepted handshake to the
request's ``Progress`` (``accept()``), and the scheduler's adaptive concurrency proves a probe by
it.

The client (with aiohttp, about 0.4 s of imports) is imported on first use, not with this module:
a run whose segments all come from the cache never needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from newsreader.audio.mp3 import bare_frames
from newsreader.config import Settings
from newsreader.errors import (
    EngineUnavailable,
    SynthesisError,
    TransientError,
    UsageError,
)
from newsreader.models import FRAME_BYTES, FRAME_SECONDS, Segment, SegmentAudio, SentenceTiming
from newsreader.synth.base import REQUEST_PROGRESS, Progress, Voice

if TYPE_CHECKING:
    import aiohttp
    import edge_tts

TICKS_PER_SECOND = 10_000_000
"""Edge's offsets and durations are in 100 ns ticks."""
TAIL_CHARS = 4
"""How many final speakable characters the boundaries must end with to cover a segment."""


@dataclass(frozen=True)
class Boundary:
    """One SentenceBoundary event from edge, in seconds from the start of the request's audio."""

    start: float
    end: float
    text: str


def speakable(text: str) -> str:
    """The characters a voice speaks: letters and digits, NFKC-folded and case-folded.

    Punctuation, symbols and spaces are dropped so that edge's boundary texts and our sentences
    can be compared and aligned character by character.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] in "LN")


class EdgeEngine:
    """The ``edge`` engine (see ``newsreader.synth.base.Engine``)."""

    name = "edge"

    def __init__(self, *, voices_timeout: float = 10.0) -> None:
        self._voices_timeout = voices_timeout
        self._voice_entries: list[tuple[str, str, str, str]] | None = None

    def voice_id(self, settings: Settings) -> str:
        return f"edge:{settings.voice}:{settings.rate}:{settings.pitch}:{settings.volume}"

    # -- synthesis ----------------------------------------------------------------------------

    async def synthesize(self, segment: Segment, settings: Settings) -> SegmentAudio:
        if not speakable(segment.text):
            # Nothing to say (edge would answer NoAudioReceived on every retry): no audio at all.
            return SegmentAudio(b"", tuple(SentenceTiming(s, 0.0, 0.0) for s in segment.sentences))
        import aiohttp
        import edge_tts
        from edge_tts.exceptions import (
            NoAudioReceived,
            SkewAdjustmentError,
            UnexpectedResponse,
            UnknownResponse,
            WebSocketError,
        )

        progress = REQUEST_PROGRESS.get()
        # Watched by the scheduler: a connector that reports the accepted handshake.
        connector = _watching_connector() if progress is not None else None
        try:
            communicate = edge_tts.Communicate(
                segment.text,
                settings.voice,
                rate=settings.rate,
                pitch=settings.pitch,
                volume=settings.volume,
                boundary="SentenceBoundary",
                connector=connector,
            )
        except ValueError as exc:
            if connector is not None:
                await _finish(connector)
            raise UsageError(f"--voice {settings.voice!r} is not an edge voice ({exc})") from None
        if progress is not None:
            progress.begin()
        try:
            raw, boundaries = await asyncio.wait_for(
                _exchange(communicate, progress), settings.request_timeout
            )
        except TimeoutError:
            raise TransientError(
                f"edge did not finish within {settings.request_timeout:g} s",
                kind="timeout",
            ) from None
        except aiohttp.ClientResponseError as exc:  # handshake refused (403: after the skew retry)
            raise _refused(exc) from None
        except SkewAdjustmentError as exc:
            raise TransientError(f"edge refused the connection: {exc}", kind="network") from None
        except NoAudioReceived:
            raise TransientError(
                "edge closed the connection without audio", kind="no_audio"
            ) from None
        except (UnknownResponse, UnexpectedResponse, WebSocketError) as exc:
            raise _changed(exc) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise TransientError(
                f"network failure talking to edge: {_describe(exc)}", kind="network"
            ) from None
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            # Raised inside the client while it parses the service's messages (our own code in
            # _exchange only reads the chunks the client built).
            raise _changed(exc) from None
        finally:
            if connector is not None:
                await _finish(connector)

        turn_bytes = communicate.state.get("cumulative_audio_bytes")
        if isinstance(turn_bytes, int) and turn_bytes != len(raw):
            # The client counts a turn's bytes only when turn.end arrives: the connection closed
            # before the end of the turn and the client returned what it had.
            raise TransientError(
                f"edge closed the connection before the end of the turn "
                f"({len(raw) - turn_bytes} bytes of audio arrived unconfirmed)",
                kind="truncated",
            )
        try:
            mp3 = bare_frames(raw)
        except SynthesisError as exc:
            raise TransientError(str(exc), kind="service_changed") from None
        duration = len(mp3) // FRAME_BYTES * FRAME_SECONDS
        _check_complete(segment.text, boundaries, duration)
        return SegmentAudio(mp3, sentence_timings(segment.sentences, boundaries, duration))

    # -- voices and reachability ----------------------------------------------------------------

    async def voices(self) -> list[Voice]:
        return [
            Voice(
                short_name=short, locale=locale, gender=gender, engine=self.name, description=desc
            )
            for short, locale, gender, desc in await self._entries()
        ]

    async def check_voice(self, voice: str) -> None:
        """Raise ``UsageError`` if edge's voice list is reachable and lacks ``voice``."""
        try:
            entries = await self._entries()
        except EngineUnavailable:
            return  # cannot tell; a request with an unknown voice fails as no_audio anyway
        if voice not in {short for short, _, _, _ in entries}:
            raise UsageError(f"unknown voice {voice}: see `newsreader voices`")

    async def probe(self, timeout: float = 3.0) -> str | None:
        """None if edge's host accepts a TCP connection, else a short reason.

        Reads ``edge_tts.communicate.WSS_URL`` at call time (tests point it at a stand-in).
        """
        import edge_tts.communicate

        # The client reads its module-level WSS_URL per request; so do we (it is not re-exported).
        url = urlsplit(str(vars(edge_tts.communicate)["WSS_URL"]))
        host = url.hostname or ""
        port = url.port or (443 if url.scheme in ("wss", "https") else 80)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except socket.gaierror:
            return f"no network: name resolution failed for {host}"
        except TimeoutError:
            return f"no network: {host}:{port} did not answer within {timeout:g} s"
        except ConnectionRefusedError:
            return f"{host}:{port} refused the connection"
        except OSError as exc:
            return f"no network: {exc.strerror or exc}"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None

    async def close(self) -> None:
        self._voice_entries = None

    async def _entries(self) -> list[tuple[str, str, str, str]]:
        """(short name, locale, gender, description) per voice, fetched once per engine."""
        if self._voice_entries is None:
            import aiohttp
            import edge_tts
            from edge_tts.exceptions import EdgeTTSException

            try:
                listed = await asyncio.wait_for(edge_tts.list_voices(), self._voices_timeout)
                entries: list[tuple[str, str, str, str]] = []
                for voice in listed:
                    tags = voice.get("VoiceTag", {})
                    traits = [
                        *tags.get("ContentCategories", []),
                        *tags.get("VoicePersonalities", []),
                    ]
                    description = ", ".join(t.strip() for t in traits) or voice.get(
                        "FriendlyName", ""
                    )
                    entries.append(
                        (voice["ShortName"], voice["Locale"], voice["Gender"], description)
                    )
            except TimeoutError:
                raise EngineUnavailable(
                    f"no answer from the voice list within {self._voices_timeout:g} s"
                ) from None
            except aiohttp.ClientResponseError as exc:
                raise EngineUnavailable(f"the voice list answered HTTP {exc.status}") from None
            except (aiohttp.ClientError, OSError) as exc:
                raise EngineUnavailable(_describe(exc)) from None
            except (EdgeTTSException, KeyError, TypeError, ValueError) as exc:
                raise EngineUnavailable(f"the voice list is not understood ({exc!r})") from None
            self._voice_entries = entries
        return self._voice_entries


def _watching_connector() -> aiohttp.TCPConnector:
    """A connector that tells the request's ``Progress`` when the service accepts a websocket
    handshake. Close it with ``_finish`` when the request is over."""
    return _watching_type()()


async def _finish(connector: aiohttp.TCPConnector) -> None:
    import aiohttp

    await aiohttp.TCPConnector.close(connector)  # the close ``_Watching`` leaves out


@functools.cache
def _watching_type() -> type[aiohttp.TCPConnector]:
    """The connector class (made on first use: aiohttp is imported late).

    It marks each request's response as ``_Accepting``, which calls ``Progress.accept()`` once
    the status line says 101. The client's session closes the connector it was given when the
    session ends, and one ``Communicate`` may open a session per chunk of a long text and again
    after a 403: so ``_Watching`` ignores that close, and ``_finish`` closes it.
    """
    import aiohttp
    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.connector import Connection
    from aiohttp.tracing import Trace

    class _Accepting(aiohttp.ClientResponse):
        async def start(self, connection: Connection) -> aiohttp.ClientResponse:
            response = await super().start(connection)
            progress = REQUEST_PROGRESS.get()
            if response.status == 101 and progress is not None:
                progress.accept()
            return response

    class _Watching(aiohttp.TCPConnector):
        async def connect(
            self, req: ClientRequest, traces: list[Trace], timeout: aiohttp.ClientTimeout
        ) -> Connection:
            req.response_class = _Accepting
            return await super().connect(req, traces, timeout)

        async def close(self, *, abort_ssl: bool = False) -> None:
            """Left open for the request's next session (``_finish`` closes it)."""

    return _Watching


async def _exchange(
    communicate: edge_tts.Communicate, progress: Progress | None = None
) -> tuple[bytes, list[Boundary]]:
    """Run one request to the end: the audio bytes and the sentence boundaries, as received
    (each message reported to ``progress``, and each audio message's bytes)."""
    audio = bytearray()
    boundaries: list[Boundary] = []
    async for chunk in communicate.stream():
        if progress is not None:
            progress.heard()
        if chunk["type"] == "audio":
            audio += chunk["data"]
            if progress is not None:
                progress.audio(chunk["data"])
        elif chunk["type"] == "SentenceBoundary":
            start = chunk["offset"] / TICKS_PER_SECOND
            end = start + chunk["duration"] / TICKS_PER_SECOND
            boundaries.append(Boundary(start, end, chunk["text"]))
    return bytes(audio), boundaries


# -- error mapping ------------------------------------------------------------------------------


def _refused(exc: aiohttp.ClientResponseError) -> TransientError:
    """The kind of a refused handshake: a rate limit, an outage, or a service that changed."""
    status = exc.status
    retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
    if status == 429:
        return TransientError(
            "edge is rate limiting (HTTP 429)", kind="rate_limit", retry_after=retry_after
        )
    if status >= 500:
        return TransientError(
            f"edge is unavailable (HTTP {status})", kind="network", retry_after=retry_after
        )
    if status in (401, 403):
        # The client already corrected its clock from the 403's Date and tried again: what is
        # left is a changed access check (the Sec-MS-GEC token), which only a newer client fixes.
        return TransientError(
            f"edge refused the client (HTTP {status}): its access check may have changed",
            kind="service_changed",
        )
    return TransientError(
        f"edge answered the connection with HTTP {status}: its address may have changed",
        kind="service_changed",
    )


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), if it has one."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    return max(0.0, seconds)


def _changed(exc: BaseException) -> TransientError:
    return TransientError(
        f"edge answered in a way the client does not understand ({type(exc).__name__}: {exc})",
        kind="service_changed",
    )


def _describe(exc: BaseException) -> str:
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc.os_error})"
    return str(exc) or type(exc).__name__


# -- completeness and timings -------------------------------------------------------------------


def _check_complete(text: str, boundaries: Sequence[Boundary], duration: float) -> None:
    """Raise ``TransientError(kind="truncated")`` unless the audio says all of ``text``."""
    expected = speakable(text)
    covered = "".join(speakable(b.text) for b in boundaries)
    if covered != expected:
        tail = expected[-TAIL_CHARS:]
        if expected.startswith(covered) or not covered.endswith(tail):
            raise TransientError(
                f"edge's sentence boundaries cover {len(covered)} of the segment's "
                f"{len(expected)} characters",
                kind="truncated",
            )
        # Same ending, different middle: edge spelled something its own way; the end is there.
    last_end = max(b.end for b in boundaries)
    if duration + FRAME_SECONDS < last_end:
        raise TransientError(
            f"edge's audio stops at {duration:.2f} s "
            f"but its last sentence ends at {last_end:.2f} s",
            kind="truncated",
        )


def sentence_timings(
    sentences: Sequence[str], boundaries: Sequence[Boundary], duration: float
) -> tuple[SentenceTiming, ...]:
    """One timing per sentence, from edge's boundaries, matched by speakable character counts.

    Edge usually sends one boundary per sentence but may split or merge differently; a sentence
    that starts or ends inside a boundary is placed by linear interpolation over its characters.
    """
    spans: list[tuple[int, int, float, float]] = []  # chars [c0, c1) spoken over [t0, t1]
    position = 0
    for boundary in boundaries:
        count = len(speakable(boundary.text))
        if count:
            spans.append((position, position + count, boundary.start, boundary.end))
            position += count
    lengths = [len(speakable(s)) for s in sentences]
    total = sum(lengths)
    if not spans or not total:
        return tuple(SentenceTiming(s, 0.0, 0.0) for s in sentences)
    scale = position / total  # when edge counts characters differently, stretch evenly

    def time_at(char: float, *, starting: bool) -> float:
        for c0, c1, t0, t1 in spans:
            if (c0 <= char < c1) if starting else (c0 < char <= c1):
                return t0 + (char - c0) / (c1 - c0) * (t1 - t0)
        return spans[-1][3] if char > 0 else spans[0][2]

    timings: list[SentenceTiming] = []
    cursor = 0
    previous_end = 0.0
    for sentence, length in zip(sentences, lengths, strict=True):
        if length == 0:
            start = end = previous_end
        else:
            start = time_at(cursor * scale, starting=True)
            end = time_at((cursor + length) * scale, starting=False)
        start = min(max(start, previous_end), duration)
        end = min(max(end, start), duration)
        timings.append(SentenceTiming(sentence, start, end))
        previous_end = end
        cursor += length
    return tuple(timings)
