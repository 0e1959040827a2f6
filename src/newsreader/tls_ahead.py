"""TLS contexts made ahead, on the core that the start-up leaves idle, for a client's import.

Importing the online voice's client makes three TLS contexts as module-level code: aiohttp's
connector one with the system's certificate authorities, edge_tts's ``communicate`` and
``voices`` one each with certifi's bundle. Loading a bundle is about 30 ms of CPU, without the
GIL, and it came last in the import: ``read`` waited for it with nothing else to do (its first
request went out 50 to 60 ms later than it could).

``ContextsAhead`` makes the same contexts in a thread of its own as soon as the import starts
(``start``), while the interpreter is busy importing on the other core, and hands them out
while the import runs (``serving``): during it, ``ssl.create_default_context`` called *from the
importing thread* with the arguments of a context made ahead returns that context (each one
once), waiting for it if it is not ready yet. Any other call, from any other thread, or after the
import, is the standard library's own. The contexts handed out are made by the same function
with the same arguments, only earlier, so nothing about them differs (a test compares them).

What the libraries make is a fact about their versions (aiohttp 3.x's connector, edge_tts 7.x's
``communicate`` and ``voices``). If a version makes fewer, a context made ahead goes unused; if
it makes more, or other ones, those are made as before: never a difference in behaviour, at
worst no gain.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import ssl
import threading
from collections.abc import Iterator, Sequence
from typing import Any

CERTIFI = "certifi"
"""Stands for certifi's bundle among the wanted contexts (its path is found without importing
certifi: this runs while other threads import)."""

WAIT = 5.0
"""Seconds a call waits at most for a context under way (it takes about 30 ms) before making
its own."""

_PATCH_LOCK = threading.Lock()


def certifi_bundle() -> str | None:
    """The path ``certifi.where()`` gives, for certifi installed as files; None otherwise."""
    try:
        spec = importlib.util.find_spec(CERTIFI)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "cacert.pem")
    return path if os.path.isfile(path) else None


class ContextsAhead:
    """``ssl.create_default_context(cafile=…)`` for each of ``wanted`` (None: the system's
    authorities, ``CERTIFI``: certifi's bundle, else a file), made in a daemon thread."""

    def __init__(self, wanted: Sequence[str | None]) -> None:
        bundle = certifi_bundle() if CERTIFI in wanted else None
        self.wanted: list[str | None] = [
            _key(bundle if cafile == CERTIFI else cafile)
            for cafile in wanted
            if cafile != CERTIFI or bundle is not None
        ]
        self.served = 0
        """Contexts handed out from those made ahead."""
        self._made: dict[str | None, list[ssl.SSLContext]] = {}
        self._taken: dict[str | None, int] = {}
        self._ready = threading.Condition()
        self._done = False
        self._thread: threading.Thread | None = None

    def start(self) -> ContextsAhead:
        if self._thread is None and self.wanted:
            self._thread = threading.Thread(target=self._make, name="tls-ahead", daemon=True)
            self._thread.start()
        return self

    def _make(self) -> None:
        make = _ORIGINAL
        try:
            for cafile in self.wanted:
                try:
                    context = make(cafile=cafile)
                except Exception:  # the caller makes its own, and sees the error
                    continue
                with self._ready:
                    self._made.setdefault(cafile, []).append(context)
                    self._ready.notify_all()
        finally:
            with self._ready:
                self._done = True
                self._ready.notify_all()

    def take(self, cafile: str | None) -> ssl.SSLContext | None:
        """A context made ahead for ``cafile`` (waited for, if one is under way), or None."""
        key = _key(cafile)
        with self._ready:
            taken = self._taken.get(key, 0)
            if taken >= self.wanted.count(key):
                return None  # none (more) made for it
            self._taken[key] = taken + 1
            self._ready.wait_for(lambda: self._made.get(key) or self._done, WAIT)
            made = self._made.get(key)
            if not made:
                return None  # failed to make: the caller makes its own
            self.served += 1
            return made.pop(0)

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """While in the block, this thread's ``ssl.create_default_context`` calls for a
        server's authentication with a wanted ``cafile`` (and nothing else) get the contexts
        made ahead. Blocks in several threads at once each serve their own thread; the function
        in ``ssl`` is swapped while any is open and put back when the last one closes."""
        if not self.wanted:
            yield
            return
        me = threading.get_ident()
        with _PATCH_LOCK:
            outer = _serving.get(me)
            _serving[me] = self
            if _installed["before"] is None:
                _installed["before"] = ssl.create_default_context
                ssl.create_default_context = _dispatch
        try:
            yield
        finally:
            with _PATCH_LOCK:
                if outer is None:
                    _serving.pop(me, None)
                else:
                    _serving[me] = outer
                before = _installed["before"]
                if not _serving and before is not None:
                    if ssl.create_default_context is _dispatch:
                        ssl.create_default_context = before
                    _installed["before"] = None


_serving: dict[int, ContextsAhead] = {}
"""The contexts made ahead for each thread in a ``serving`` block."""
_installed: dict[str, Any] = {"before": None}
"""What ``ssl.create_default_context`` was before ``_dispatch`` took its place (None: not in
place)."""


def _dispatch(
    purpose: Any = ssl.Purpose.SERVER_AUTH,
    *,
    cafile: Any = None,
    capath: Any = None,
    cadata: Any = None,
) -> ssl.SSLContext:
    """``ssl.create_default_context`` while a ``serving`` block is open: a context made ahead
    for a thread in one, if it is one of those made; else the function it took the place of."""
    ahead = _serving.get(threading.get_ident())
    plain = purpose == ssl.Purpose.SERVER_AUTH and capath is None and cadata is None
    if ahead is not None and plain and (cafile is None or isinstance(cafile, str)):
        context = ahead.take(cafile)
        if context is not None:
            return context
    before = _installed["before"] or _ORIGINAL
    made: ssl.SSLContext = before(purpose, cafile=cafile, capath=capath, cadata=cadata)
    return made


_ORIGINAL = ssl.create_default_context


def _key(cafile: str | None) -> str | None:
    return None if cafile is None else os.path.realpath(cafile)
