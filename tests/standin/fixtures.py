"""Pytest fixtures that point the real ``edge_tts`` client at the local stand-in.

``edge_standin`` (function scope) hands a test the session's one server, reset, with
``edge_tts.communicate.WSS_URL`` and ``edge_tts.voices.VOICE_LIST`` patched to it, the client's
process-global clock skew at zero and proxies bypassed for the loopback address.
``point_edge_tts_at`` (from ``tests.standin.client``, which needs no pytest) does the same for
benchmarks and returns an undo function.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import edge_tts.communicate
import edge_tts.drm
import edge_tts.voices
import pytest

from tests.standin.client import PROXY_VARIABLES, no_proxy_value, point_edge_tts_at, targets
from tests.standin.server import EdgeStandin

__all__ = ["edge_standin", "edge_standin_server", "point_edge_tts_at"]


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
    wss_url, voice_list = targets(server)
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", wss_url)
    monkeypatch.setattr(edge_tts.voices, "VOICE_LIST", voice_list)
    monkeypatch.setattr(edge_tts.drm.DRM, "clock_skew_seconds", 0.0)
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, no_proxy_value(os.environ.get(name)))
    yield server
    server.set_faults()  # no scripted fault leaks into a later test's stray request
