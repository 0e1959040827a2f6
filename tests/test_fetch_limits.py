"""Fetching from hostile sites, over real sockets on loopback: the fetch ends by itself at its
deadline, bad addresses are one-line errors, and each connection goes to the address that was
checked (no second lookup for DNS rebinding to answer)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from newsreader.errors import SourceError
from newsreader.service.config import parse_networks
from newsreader.service.security import AddressPolicy, AddressRefused
from newsreader.sources.fetch import Fetched, check_url, fetch
from tests.slowweb import slow_web
from tests.webserver import LocalWeb


def fetch_in_thread(call: Callable[[], Fetched], wait: float) -> tuple[bool, BaseException | None]:
    """Run ``call`` in a thread; (whether it ended within ``wait`` s, what it raised)."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:  # handed to the test
            raised.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(wait)
    return not thread.is_alive(), raised[0] if raised else None


@pytest.mark.parametrize("drip_head", [False, True], ids=["body", "head"])
def test_a_page_that_drips_a_byte_at_a_time_is_cut_off_at_the_deadline(drip_head: bool) -> None:
    # Each byte arrives well within the 1 s read timeout, so only an overall deadline stops it.
    with slow_web(interval=0.1, lifetime=12, drip_head=drip_head) as server:
        start = time.monotonic()
        ended, error = fetch_in_thread(lambda: fetch(server.url("/drip"), timeout=1.0), wait=6)
        took = time.monotonic() - start
        assert ended, "the fetch was still running 6 s after it started"
        assert isinstance(error, SourceError)
        assert "took longer than 3 s in all" in str(error)
        assert 2.9 <= took <= 4.0
        deadline = time.monotonic() + 2
        while server.open_connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.open_connections == 0  # the fetch hung up; nothing goes on reading


def test_an_explicit_total_deadline_bounds_the_whole_fetch() -> None:
    with slow_web(interval=0.1, lifetime=10) as server:
        start = time.monotonic()
        with pytest.raises(SourceError, match=r"took longer than 1\.5 s in all"):
            fetch(server.url("/drip"), timeout=5.0, total=1.5)
        assert time.monotonic() - start < 2.2


BAD_URLS = [
    "http://[127.0.0.1]/",
    "http://[::1/",
    "http://]/",
    "http://exa\x7fmple.com/",
    "http://example.com:99999/",
    "http://example.com:port/",
    "http://xn--/",
    "http://exa mple.com/",
    "http://%00/",
    "http://\u3002/",
    "http://a\nb.com/",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_urls_the_fetch_cannot_parse_are_one_line_source_errors(url: str) -> None:
    with pytest.raises(SourceError) as info:
        check_url(url)
    message = str(info.value)
    assert "\n" not in message and "\x7f" not in message
    assert "not a valid address" in message or "invalid host name" in message
    with pytest.raises(SourceError):
        fetch(url, timeout=1)


@pytest.mark.parametrize(
    "location",
    ["http:\\\\127.0.0.1/", "http://[::1/", "http://]/", "http://a\x7fb/", "http://xn--/"],
)
def test_a_redirect_to_an_invalid_address_is_a_clear_error(web: LocalWeb, location: str) -> None:
    start = web.redirect("/go", location)
    with pytest.raises(SourceError, match="redirected to an invalid address") as info:
        fetch(start, timeout=2)
    assert "\n" not in str(info.value) and "\x7f" not in str(info.value)
    assert web.requests == ["/go"]


# -- DNS rebinding: one lookup per connection, and the connection goes to what it returned --------


class Recorder(BaseHTTPRequestHandler):
    """Answers every GET with a page naming the server, and records the Host header."""

    def do_GET(self) -> None:
        self.server.hits.append((self.path, self.headers.get("Host", "")))  # type: ignore[attr-defined]
        host = self.server.server_address[0]  # type: ignore[index]
        body = f"<p>served by {host!s}</p>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Pair:
    """A "public" server on 127.0.0.2 and a "private" one on 127.0.0.1, on the same port.

    The system resolver says ``localhost`` is 127.0.0.1 (the private one); the policy allows
    only 127.0.0.2.
    """

    def __init__(self) -> None:
        self.private = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        self.port = self.private.server_address[1]
        self.public = ThreadingHTTPServer(("127.0.0.2", self.port), Recorder)
        for server in (self.private, self.public):
            server.hits = []  # type: ignore[attr-defined]
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def hits(self, server: ThreadingHTTPServer) -> list[tuple[str, str]]:
        return list(server.hits)  # type: ignore[attr-defined]

    def close(self) -> None:
        for server in (self.private, self.public):
            server.shutdown()
            server.server_close()


@pytest.fixture
def pair() -> Iterator[Pair]:
    made = Pair()
    yield made
    made.close()


def counting(answers: dict[str, list[list[str]]]) -> tuple[Callable[..., Sequence[str]], list[str]]:
    """A resolver that gives each name its answers in turn (the last one from then on)."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        given = answers[host]
        return given.pop(0) if len(given) > 1 else given[0]

    return resolve, asked


def test_the_connection_goes_to_the_checked_address_not_a_second_lookup(pair: Pair) -> None:
    # The DNS seam answers 127.0.0.2 (allowed); the system's own lookup would say 127.0.0.1.
    # A fetch that looked the name up again to connect would reach the private server.
    resolve, asked = counting({"localhost": [["127.0.0.2"], ["127.0.0.1"]]})
    policy = AddressPolicy(parse_networks(["127.0.0.2"]), resolve)
    fetched = fetch(f"http://localhost:{pair.port}/article", timeout=3, guard=policy.guard())
    assert fetched.content == b"<p>served by 127.0.0.2</p>"
    assert pair.hits(pair.public) == [("/article", f"localhost:{pair.port}")]  # original Host
    assert pair.hits(pair.private) == []
    assert asked == ["localhost"]  # one lookup for one connection


def test_a_name_that_rebinds_on_the_next_connection_is_refused_there(pair: Pair) -> None:
    # First connection: public. A redirect to another name opens a second connection, whose
    # one lookup answers the private address: refused before connecting.
    resolve, asked = counting(
        {"localhost": [["127.0.0.2"]], "rebind.example.test": [["127.0.0.1"]]}
    )
    policy = AddressPolicy(parse_networks(["127.0.0.2"]), resolve)
    web = ThreadingHTTPServer(("127.0.0.2", 0), Recorder)
    target = f"http://rebind.example.test:{pair.port}/secret"

    class Redirect(Recorder):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

    web.RequestHandlerClass = Redirect
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        with pytest.raises(AddressRefused, match="public addresses"):
            fetch(f"http://localhost:{web.server_address[1]}/go", timeout=3, guard=policy.guard())
    finally:
        web.shutdown()
        web.server_close()
    assert asked == ["localhost", "rebind.example.test"]
    assert pair.hits(pair.private) == [] and pair.hits(pair.public) == []


def test_without_a_guard_names_resolve_through_the_system(pair: Pair) -> None:
    fetched = fetch(f"http://localhost:{pair.port}/plain", timeout=3)
    assert fetched.content == b"<p>served by 127.0.0.1</p>"
    seam, asked = counting({"localhost": [["127.0.0.2"]]})
    fetched = fetch(f"http://localhost:{pair.port}/seam", timeout=3, resolve=seam)
    assert fetched.content == b"<p>served by 127.0.0.2</p>"
    assert asked == ["localhost"]
