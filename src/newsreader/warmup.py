"""Modules imported ahead of their first use, in a background thread.

``read`` imports only what its first requests need before it sends them; what a reading needs
later (the voice's client while the article is being prepared; the MP3 writer, the level meter
with numpy, the progress bar once the requests are out) is imported meanwhile in one
background thread, so that no first import blocks the event loop when the audio arrives.
Imports hold the GIL only in bursts (loading a certificate store, reading files does not), and
the loop gets it back within the interpreter's switch interval.

A warm-up never gets in the user's way:

- a module that fails to import is passed over: its error is raised where the module is really
  imported, as it would have been without the warm-up;
- the thread is a daemon and stops between two modules once ``stop()`` is called or the
  interpreter exits: it never holds the process up;
- nothing it does is required: a module it has not reached yet is imported by its user.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence

from newsreader.errors import UsageError

CLIENTS = {"edge": ("edge_tts",)}
"""The client library each online engine imports when it makes its first request (its own
module imports it late, so that a reading from the cache never pays for it)."""

TLS_AT_IMPORT: dict[str, tuple[str | None, ...]] = {"edge_tts": (None, "certifi", "certifi")}
"""The TLS contexts a client library makes as it is imported (``cafile``: None for the system's
authorities, ``"certifi"`` for certifi's bundle), in order: aiohttp's connector, then
edge_tts's ``communicate`` and ``voices``. A warm-up that imports the library has them made
ahead, in a thread of their own (``newsreader.tls_ahead``)."""

EXIT_WAIT = 5.0
"""Seconds the exit waits at most for the module a warm-up is importing (typically under 0.3)."""

_running: set[Warmup] = set()
_lock = threading.Lock()


class Warmup:
    """Imports ``modules`` in order in a daemon thread (``start``), each at most once."""

    def __init__(self, modules: Iterable[str], *, name: str = "newsreader-warmup") -> None:
        self.modules = tuple(dict.fromkeys(modules))
        self.name = name
        self.failed: list[str] = []
        """Modules whose import raised (their users raise the error themselves)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Warmup:
        """Starts the thread (once), unless every module is imported already."""
        if self._thread is None and any(m not in sys.modules for m in self.modules):
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            with _lock:
                _running.add(self)
            self._thread.start()
        return self

    def stop(self) -> None:
        """No module after the one being imported now (never waits for it)."""
        self._stop.set()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def join(self, timeout: float | None = None) -> bool:
        """Waits for the thread (tests, benchmarks); True when it has finished."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            with self._contexts_ahead():
                for name in self.modules:
                    if self._stop.is_set():
                        return
                    if name in sys.modules:
                        continue
                    try:
                        importlib.import_module(name)
                    except BaseException:  # raised again where the module is used
                        self.failed.append(name)
        finally:
            with _lock:
                _running.discard(self)

    def _contexts_ahead(self) -> contextlib.AbstractContextManager[None]:
        """The TLS contexts the modules to import will make, made ahead (``TLS_AT_IMPORT``)."""
        wanted = [
            cafile
            for name in self.modules
            if name not in sys.modules
            for cafile in TLS_AT_IMPORT.get(name, ())
        ]
        if not wanted:
            return contextlib.nullcontext()
        from newsreader.tls_ahead import ContextsAhead

        return ContextsAhead(wanted).start().serving()


def warm(modules: Iterable[str], *, name: str = "newsreader-warmup") -> Warmup:
    """A started ``Warmup`` of ``modules``."""
    return Warmup(modules, name=name).start()


@atexit.register
def _stop_all() -> None:
    """At exit a warm-up stops after its current module, and the exit waits for that module
    (``EXIT_WAIT`` at most): no thread may still be importing while the interpreter shuts
    down. One that was crashed it (a segmentation fault in about 1 run in 3 of a ``read`` that
    stops at a usage error while the client is being imported)."""
    with _lock:
        running = list(_running)
    for warmup in running:
        with contextlib.suppress(Exception):
            warmup.stop()
    deadline = time.monotonic() + EXIT_WAIT
    for warmup in running:
        with contextlib.suppress(Exception):
            warmup.join(max(0.0, deadline - time.monotonic()))


def client_modules(engine: str) -> tuple[str, ...]:
    """What ``--engine ENGINE`` imports for its first request when it is an online engine (or
    ``auto``, which tries the online one first): its module and its client library; nothing
    for an embedded engine or a name the registry does not know."""
    from newsreader.synth import registry

    try:
        entry = registry.first("online") if engine == registry.AUTO else registry.entry(engine)
    except UsageError:
        return ()
    if entry.kind != "online":
        return ()
    return (entry.module, *CLIENTS.get(entry.name, ()))


def client_for_command_line(argv: Sequence[str]) -> tuple[str, ...]:
    """``client_modules`` for ``newsreader read …`` as typed, before click has parsed it, so
    that the client's import starts before the command line's own (``()`` for any other
    command, or for help). Only a head start: ``read`` asks again with its parsed options."""
    args = list(argv[1:])
    if not args or args[0] != "read" or "-h" in args or "--help" in args:
        return ()
    engine = "auto"
    for i, arg in enumerate(args):
        if arg == "--engine" and i + 1 < len(args):
            engine = args[i + 1]
        elif arg.startswith("--engine="):
            engine = arg.partition("=")[2]
    return client_modules(engine)


def reading_modules(
    *,
    to_file: bool,
    chapters: bool = False,
    summary: bool = True,
    progress_bar: bool = False,
) -> tuple[str, ...]:
    """What ``read`` imports once audio arrives: the console first (the progress bar is made as
    soon as the requests are out), then what places and writes each segment, then, for a file,
    the level meter (numpy) and what measures in its worker threads (PyAV)."""
    modules: list[str] = []
    if summary or progress_bar:
        modules.append("rich.console")
    if progress_bar:
        modules.append("rich.progress")
    modules += [
        "newsreader.audio.writer",
        "newsreader.audio.tags",  # mutagen: the title tag of -o -, the file's tag at the end
        "newsreader.audio.subtitles",
    ]
    if chapters:
        modules.append("newsreader.podcast.chapters")
    if to_file:
        modules += [
            "numpy",
            "newsreader.audio.level",
            "newsreader.audio.loudness",
            "av",  # decodes each segment's frames for the measuring
        ]
    return tuple(modules)


async def once_requests_are_out(
    then: Callable[[], None],
    *,
    quiet: float = 0.003,
    busy: float = 0.3,
    tick: float = 0.0005,
    patience: float = 0.15,
) -> bool:
    """Calls ``then`` once the requests the event loop was given are out; True if it did.

    That is once the whole process has been idle for ``quiet`` seconds, using less than
    ``busy`` of a core (``time.process_time``, all threads): the loop has made its requests and
    every task waits on the network. While requests are being made the loop is busy, and while
    it waits for a worker thread (a reading from the cache, measuring, writing) that thread is.
    A process that is not idle within ``patience`` seconds is left alone (``then`` is not
    called): nothing would be waiting for the network while the imports ran.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    started = loop.time()
    marks: deque[tuple[float, float]] = deque([(started, time.process_time())])
    while True:
        await asyncio.sleep(tick)
        now, cpu = loop.time(), time.process_time()
        marks.append((now, cpu))
        while len(marks) > 2 and now - marks[1][0] >= quiet:
            marks.popleft()  # the oldest mark kept is the last one at least ``quiet`` ago
        since, cpu_since = marks[0]
        if now - since >= quiet and cpu - cpu_since <= busy * (now - since):
            then()
            return True
        if now - started >= patience:
            return False
