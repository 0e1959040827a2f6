"""Point the real ``edge_tts`` client at a stand-in, without pytest (benchmarks, subprocesses).

``point_edge_tts_at`` patches ``edge_tts.communicate.WSS_URL`` and ``edge_tts.voices.VOICE_LIST``
process-wide, zeroes the client's process-global clock skew and bypasses proxies for the loopback
address; it returns a function that undoes all of it. ``point_edge_tts_at_on_import`` does the
same the moment something imports ``edge_tts``, so that a process that never needs the client
(newsreader reading from its cache) does not pay for importing it (see
``benchmarks/synthesis.py``).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from tests.standin.server import EdgeStandin

PROXY_VARIABLES = ("WS_PROXY", "WSS_PROXY", "ws_proxy", "wss_proxy")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def targets(target: str | EdgeStandin) -> tuple[str, str]:
    """(WSS_URL, VOICE_LIST) for a stand-in or a ``host:port`` / URL naming one."""
    if not isinstance(target, str):
        return target.wss_url, target.voice_list_url
    netloc = urlsplit(target).netloc if "//" in target else target
    if not netloc:
        raise ValueError(f"cannot find host:port in {target!r}")
    return (
        f"ws://{netloc}/edge/v1?TrustedClientToken=standin",
        f"http://{netloc}/voices/list?trustedclienttoken=standin",
    )


def no_proxy_value(current: str | None) -> str:
    entries = [e.strip() for e in (current or "").split(",") if e.strip()]
    entries += [host for host in _LOOPBACK if host not in entries]
    return ",".join(entries)


def point_edge_tts_at(target: str | EdgeStandin) -> Callable[[], None]:
    """Point the ``edge_tts`` client at a stand-in, process-wide; returns a function that undoes it.

    ``target`` is an ``EdgeStandin`` or a ``host:port`` (or any URL naming one).
    """
    import edge_tts.communicate
    import edge_tts.drm
    import edge_tts.voices

    wss_url, voice_list = targets(target)
    saved_urls = (edge_tts.communicate.WSS_URL, edge_tts.voices.VOICE_LIST)
    saved_skew = edge_tts.drm.DRM.clock_skew_seconds
    saved_env = {name: os.environ.get(name) for name in (*PROXY_VARIABLES, "NO_PROXY", "no_proxy")}

    edge_tts.communicate.WSS_URL = wss_url
    edge_tts.voices.VOICE_LIST = voice_list
    edge_tts.drm.DRM.clock_skew_seconds = 0.0
    for name in PROXY_VARIABLES:
        os.environ.pop(name, None)
    for name in ("NO_PROXY", "no_proxy"):
        os.environ[name] = no_proxy_value(os.environ.get(name))

    def undo() -> None:
        edge_tts.communicate.WSS_URL, edge_tts.voices.VOICE_LIST = saved_urls
        edge_tts.drm.DRM.clock_skew_seconds = saved_skew
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    return undo


class _PointOnImport(importlib.abc.MetaPathFinder):
    def __init__(self, target: str) -> None:
        self.target = target

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "edge_tts":
            return None
        sys.meta_path.remove(self)  # once, and not for the look-up below
        spec = importlib.util.find_spec(fullname)
        loader = spec.loader if spec is not None else None
        if loader is None:
            return spec
        load = loader.exec_module
        where = self.target

        def exec_module(module: ModuleType) -> None:
            load(module)  # edge_tts/__init__ imports communicate, voices and drm
            point_edge_tts_at(where)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def point_edge_tts_at_on_import(target: str) -> None:
    """``point_edge_tts_at(target)`` as soon as ``edge_tts`` is imported (now, if it already is)."""
    if "edge_tts" in sys.modules:
        point_edge_tts_at(target)
    else:
        sys.meta_path.insert(0, _PointOnImport(target))
