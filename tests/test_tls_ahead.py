"""TLS contexts made ahead for the client's import: the same contexts the library would make,
handed only to the importing thread's calls that ask for them, once each; everything else is
the standard library's own."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import certifi
import pytest

from newsreader.tls_ahead import CERTIFI, ContextsAhead, certifi_bundle

ROOT = Path(__file__).resolve().parents[1]


def _describe(context: ssl.SSLContext) -> tuple[object, ...]:
    return (
        type(context),
        context.protocol,
        context.verify_mode,
        context.check_hostname,
        context.options,
        context.minimum_version,
        context.verify_flags,
        context.cert_store_stats(),
        sorted(str(c["subject"]) for c in context.get_ca_certs()),
    )


def test_the_contexts_handed_out_are_the_ones_the_library_would_make() -> None:
    ahead = ContextsAhead([None, CERTIFI]).start()
    with ahead.serving():
        system = ssl.create_default_context()
        bundle = ssl.create_default_context(cafile=certifi.where())
    assert ahead.served == 2
    assert _describe(system) == _describe(ssl.create_default_context())
    assert _describe(bundle) == _describe(ssl.create_default_context(cafile=certifi.where()))
    assert system.cert_store_stats() != bundle.cert_store_stats()  # two different stores
    assert certifi_bundle() is not None
    assert os.path.samefile(certifi_bundle() or "", certifi.where())


def test_only_the_importing_threads_calls_for_a_wanted_context_get_one() -> None:
    ahead = ContextsAhead([CERTIFI]).start()
    elsewhere: list[ssl.SSLContext] = []
    with ahead.serving():
        thread = threading.Thread(
            target=lambda: elsewhere.append(ssl.create_default_context(cafile=certifi.where()))
        )
        thread.start()
        thread.join()
        assert ahead.served == 0  # another thread: its own context
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=certifi.where())
        ssl.create_default_context()  # not wanted
        assert ahead.served == 0
        first = ssl.create_default_context(cafile=certifi.where())
        second = ssl.create_default_context(cafile=certifi.where())  # one was made: now its own
    assert ahead.served == 1
    assert first is not second and first is not elsewhere[0]


def test_the_standard_function_is_back_after_the_import_even_when_it_fails() -> None:
    original = ssl.create_default_context
    ahead = ContextsAhead([None]).start()
    with pytest.raises(RuntimeError), ahead.serving():
        assert ssl.create_default_context is not original
        raise RuntimeError("the import failed")
    assert ssl.create_default_context is original


def test_blocks_in_two_threads_serve_each_their_own_and_close_in_any_order() -> None:
    original = ssl.create_default_context
    first, second = ContextsAhead([CERTIFI]).start(), ContextsAhead([CERTIFI]).start()
    opened, close_first, first_closed = threading.Event(), threading.Event(), threading.Event()

    def other() -> None:
        with first.serving():
            opened.set()
            close_first.wait(10)
            ssl.create_default_context(cafile=certifi.where())
        first_closed.set()

    thread = threading.Thread(target=other)
    thread.start()
    assert opened.wait(10)
    with second.serving():  # opened after the other thread's, closed after it
        close_first.set()
        assert first_closed.wait(10)
        assert ssl.create_default_context is not original  # still open here
        ssl.create_default_context(cafile=certifi.where())
    thread.join()
    assert (first.served, second.served) == (1, 1)
    assert ssl.create_default_context is original


def test_a_context_that_cannot_be_made_ahead_is_made_by_the_caller(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.pem")
    ahead = ContextsAhead([missing]).start()
    with ahead.serving(), pytest.raises(FileNotFoundError):
        ssl.create_default_context(cafile=missing)  # the caller sees the error it would have
    assert ahead.served == 0


def test_importing_the_client_takes_every_context_made_ahead() -> None:
    """The table of what the installed aiohttp and edge_tts make at import is right: all three
    made ahead are taken, and the library holds them (a fresh interpreter: the test process
    has imported the client already)."""
    code = (
        "import ssl\n"
        "from newsreader.warmup import TLS_AT_IMPORT\n"
        "from newsreader.tls_ahead import ContextsAhead\n"
        "ahead = ContextsAhead(TLS_AT_IMPORT['edge_tts']).start()\n"
        "with ahead.serving():\n"
        "    import edge_tts\n"
        "import aiohttp.connector, edge_tts.communicate, edge_tts.voices\n"
        "import newsreader.tls_ahead as made\n"
        "assert ssl.create_default_context is made._ORIGINAL\n"
        "held = {id(aiohttp.connector._SSL_CONTEXT_VERIFIED), id(edge_tts.communicate._SSL_CTX),"
        " id(edge_tts.voices._SSL_CTX)}\n"
        "print(ahead.served, len(held))\n"
    )
    assert _fresh_interpreter(code) == ["3", "3"]


def test_a_warmup_that_imports_the_client_has_its_contexts_made_ahead() -> None:
    code = (
        "import ssl, threading\n"
        "import newsreader.tls_ahead as made\n"
        "calls = []\n"
        "original = made._ORIGINAL\n"
        "def recorded(*args, **kwargs):\n"
        "    calls.append(threading.current_thread().name)\n"
        "    return original(*args, **kwargs)\n"
        "made._ORIGINAL = recorded\n"
        "ssl.create_default_context = recorded  # what the hand-over falls back to\n"
        "from newsreader.warmup import Warmup\n"
        "warmup = Warmup(['edge_tts'], name='client').start()\n"
        "assert warmup.join(60) and not warmup.failed\n"
        "print(' '.join(calls))\n"
    )
    assert _fresh_interpreter(code) == ["tls-ahead"] * 3  # none made again by the importer


def _fresh_interpreter(code: str) -> list[str]:
    """What ``code`` prints, run in a new interpreter (words), which must succeed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()
