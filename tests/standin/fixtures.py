"""Pytest fixtures that point the real ``edge_tts`` client at the local stand-in.

``edge_standin`` (function scope) hands a test the session's one server, reset, with
``edge_tts.communicate.WSS_URL`` and ``edge_tts.voices.VOICE_LIST`` patched to it, the client's
process-global clock skew at zero and proxies bypassed for the loopback address.
``point_edge_tts_at`` does the same without pytest (benchmarks) and returns an undo function.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import edge_tts.communicate
import edge_tts.drm
import edge_tts.voices
import pytest

from tests.standin.server import EdgeStandin

_PROXY_VARIABLES = ("WS_PROXY", "WSS_PROXY", "ws_proxy", "wss_proxy")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _targets(target: str | EdgeStandin) -> tuple[str, str]:
    """(WSS_URL, VOICE_LIST) for a stand-in or a ``host:port`` / URL naming one."""
    if isinstance(target, EdgeStandin):
        return target.wss_url, target.voice_list_url
    netloc = urlsplit(target).netloc if "//" in target else target
    if not netloc:
        raise ValueError(f"cannot find host:port in {target!r}")
    return (
        f"ws://{netloc}/edge/v1?TrustedClientToken=standin",
        f"http://{netloc}/voices/list?trustedclienttoken=standin",
    )


def _no_proxy_value(current: str | None) -> str:
    entries = [e.strip() for e in (current or "").split(",") if e.strip()]
    entries += [host for host in _LOOPBACK if host not in entries]
    return ",".join(entries)


def point_edge_tts_at(target: str | EdgeStandin) -> Callable[[], None]:
    """Point the ``edge_tts`` client at a stand-in, process-wide; returns a function that undoes it.

    ``target`` is an ``EdgeStandin`` or a ``host:port`` (or any URL naming one).
    """
    wss_url, voice_list = _targets(target)
    saved_urls = (edge_tts.communicate.WSS_URL, edge_tts.voices.VOICE_LIST)
    saved_skew = edge_tts.drm.DRM.clock_skew_seconds
    saved_env = {name: os.environ.get(name) for name in (*_PROXY_VARIABLES, "NO_PROXY", "no_proxy")}

    edge_tts.communicate.WSS_URL = wss_url
    edge_tts.voices.VOICE_LIST = voice_list
    edge_tts.drm.DRM.clock_skew_seconds = 0.0
    for name in _PROXY_VARIABLES:
        os.environ.pop(name, None)
    for name in ("NO_PROXY", "no_proxy"):
        os.environ[name] = _no_proxy_value(os.environ.get(name))

    def undo() -> None:
        edge_tts.communicate.WSS_URL, edge_tts.voices.VOICE_LIST = saved_urls
        edge_tts.drm.DRM.clock_skew_seconds = saved_skew
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    return undo


@pytest.fixture(scope="session")
def edge_standin_server() -> Iterator[EdgeStandin]:
    """The session's one stand-in server (not reset, not patched in: use ``edge_standin``)."""
    with EdgeStandin() as server:
        yield server


@pytest.fixture
def edge_standin(
    edge_standin_server: EdgeStandin, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EdgeStandin]:
    """The stand-in, reset, with the ``edge_tts`` client pointed at it for this test."""
    server = edge_standin_server
    server.reset()
    wss_url, voice_list = _targets(server)
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", wss_url)
    monkeypatch.setattr(edge_tts.voices, "VOICE_LIST", voice_list)
    monkeypatch.setattr(edge_tts.drm.DRM, "clock_skew_seconds", 0.0)
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, _no_proxy_value(os.environ.get(name)))
    yield server
    server.set_faults()  # no scripted fault leaks into a later test's stray request
