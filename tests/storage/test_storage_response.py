"""A stored object served over HTTP: Range, ETag, 304 and HEAD the same from a folder and from S3.

A tiny FastAPI app serves ``storage_response`` for whatever key it is asked; httpx calls it
through its ASGI transport, and once through a real uvicorn server to see a listener who leaves
early release what the response held.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from newsreader.service.errors import ApiError, error_response
from newsreader.service.stream import storage_response
from newsreader.storage import Storage, open_storage
from newsreader.storage.s3 import PIECE
from tests.s3server import S3Bucket

SIZE = 300_000
DATA = (hashlib.sha256(b"seed").digest() * (SIZE // 32 + 1))[:SIZE]


def make_app(storage: Storage, *, etag: str | None = None) -> FastAPI:
    app = FastAPI()

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, error: ApiError) -> Response:
        return error_response(error)

    @app.api_route("/objects/{key:path}", methods=["GET", "HEAD"])
    async def serve(key: str, request: Request) -> Response:
        return await storage_response(
            request, storage, key, "audio/mpeg", etag=etag, filename="a%20reading.mp3"
        )

    return app


@pytest.fixture(params=["directory", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "directory":
        return open_storage(None, tmp_path / "store")
    bucket: S3Bucket = request.getfixturevalue("s3_bucket")
    return open_storage(f"{bucket.spec}/served", tmp_path)


def call(app: FastAPI, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, path, headers=headers)

    return asyncio.run(go())


def transcript(storage: Storage) -> list[dict[str, object]]:
    """What each of a set of requests gets: status, the headers that matter, and the body."""
    stored = storage.put_bytes("readings/r.mp3", DATA, "audio/mpeg")
    tag = f'"{stored.etag}"'
    app = make_app(storage)
    asked: list[tuple[str, dict[str, str]]] = [
        ("GET", {}),
        ("HEAD", {}),
        ("GET", {"Range": "bytes=0-0"}),
        ("GET", {"Range": "bytes=100-199"}),
        ("HEAD", {"Range": "bytes=100-199"}),
        ("GET", {"Range": "bytes=299990-"}),
        ("GET", {"Range": "bytes=-500"}),
        ("GET", {"Range": "bytes=299000-999999999999999999999999"}),
        ("GET", {"Range": "bytes=300000-"}),
        ("GET", {"Range": "bytes=5-1"}),
        ("GET", {"Range": "bytes=0-1,5-6"}),
        ("GET", {"If-None-Match": tag}),
        ("GET", {"If-None-Match": f'"other", W/{tag}'}),
        ("HEAD", {"If-None-Match": "*"}),
        ("GET", {"If-None-Match": '"other"', "Range": "bytes=10-19"}),
        ("GET", {"Range": "bytes=10-19", "If-Range": '"old"'}),
        ("GET", {"Range": "bytes=10-19", "If-Range": tag}),
    ]
    seen: list[dict[str, object]] = []
    for method, headers in asked:
        response = call(app, method, "/objects/readings/r.mp3", headers)
        seen.append(
            {
                "ask": (method, headers),
                "status": response.status_code,
                "etag": response.headers.get("etag"),
                "length": response.headers.get("content-length"),
                "range": response.headers.get("content-range"),
                "type": response.headers.get("content-type"),
                "ranges": response.headers.get("accept-ranges"),
                "disposition": response.headers.get("content-disposition"),
                "body": response.content,
            }
        )
    return seen


def expected(tag: str) -> list[dict[str, object]]:
    def ok(status: int, start: int, end: int, *, head: bool = False) -> dict[str, object]:
        return {
            "status": status,
            "etag": tag,
            "length": str(end - start),
            "range": f"bytes {start}-{end - 1}/{SIZE}" if status == 206 else None,
            "type": "audio/mpeg",
            "ranges": "bytes",
            "disposition": "inline; filename*=UTF-8''a%20reading.mp3",
            "body": b"" if head else DATA[start:end],
        }

    def refused() -> dict[str, object]:
        return {"status": 416, "range": f"bytes */{SIZE}", "code": "range_not_satisfiable"}

    def not_modified() -> dict[str, object]:
        return {"status": 304, "etag": tag, "body": b""}

    return [
        ok(200, 0, SIZE),
        ok(200, 0, SIZE, head=True),
        ok(206, 0, 1),
        ok(206, 100, 200),
        ok(206, 100, 200, head=True),
        ok(206, 299990, SIZE),
        ok(206, SIZE - 500, SIZE),
        ok(206, 299000, SIZE),
        refused(),
        refused(),
        refused(),
        not_modified(),
        not_modified(),
        not_modified(),
        ok(206, 10, 20),
        ok(200, 0, SIZE),
        ok(206, 10, 20),
    ]


def test_range_etag_304_and_head(storage: Storage) -> None:
    seen = transcript(storage)
    stored = storage.stat("readings/r.mp3")
    assert stored is not None
    for got, want in zip(seen, expected(f'"{stored.etag}"'), strict=True):
        code = want.pop("code", None)
        if code is not None:
            assert httpx.Response(416, content=got["body"]).json()["error"]["code"] == code
            got = {k: got[k] for k in want}
        else:
            got = {k: got[k] for k in [*want, "ask"]}
            want["ask"] = got["ask"]
        assert got == want


def test_both_backends_answer_alike(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    folder = transcript(open_storage(None, tmp_path / "store"))
    bucket = transcript(open_storage(s3_bucket.spec, tmp_path))
    assert len(folder) == len(bucket)
    for a, b in zip(folder, bucket, strict=True):
        # only the tags' values differ: a sha256 prefix and S3's MD5
        if a["etag"] is not None:
            assert a["etag"] != b["etag"] and b["etag"] is not None
        # the asks name each one's own tag
        assert {**a, "etag": None, "ask": None} == {**b, "etag": None, "ask": None}


def test_a_given_tag_is_the_one_sent(storage: Storage) -> None:
    storage.put_bytes("readings/r.mp3", DATA, "audio/mpeg")
    app = make_app(storage, etag="abc123")
    response = call(app, "GET", "/objects/readings/r.mp3")
    assert (response.status_code, response.headers["etag"]) == (200, '"abc123"')
    assert response.content == DATA
    assert (
        call(app, "GET", "/objects/readings/r.mp3", {"If-None-Match": '"abc123"'}).status_code
        == 304
    )


def test_a_missing_object_is_404(storage: Storage) -> None:
    for method in ("GET", "HEAD"):
        response = call(make_app(storage), method, "/objects/readings/none.mp3")
        assert response.status_code == 404
        if method == "GET":
            assert response.json()["error"]["code"] == "audio_missing"


def test_an_unreachable_store_is_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    storage = open_storage("s3://news", tmp_path, endpoint=f"http://127.0.0.1:{port}")
    response = call(make_app(storage), "GET", "/objects/readings/r.mp3")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "storage_unavailable"
    assert "cannot be reached" in error["message"] and "\n" not in error["message"]


def test_a_long_object_crosses_pieces_intact(storage: Storage, tmp_path: Path) -> None:
    size = PIECE + 1_000_000
    source = tmp_path / "long.mp3"
    source.write_bytes(os.urandom(size))
    data = source.read_bytes()
    storage.put_file("readings/long.mp3", source, "audio/mpeg")
    app = make_app(storage)
    whole = call(app, "GET", "/objects/readings/long.mp3")
    assert whole.status_code == 200 and whole.content == data
    around = call(
        app, "GET", "/objects/readings/long.mp3", {"Range": f"bytes={PIECE - 5}-{PIECE + 5}"}
    )
    assert around.status_code == 206 and around.content == data[PIECE - 5 : PIECE + 6]


# --- a real server: a listener who leaves early -----------------------------------------------


class Counting:
    """A storage that counts the readers it handed out and those that were closed."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.opened = 0
        self.closed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        chunks = self.inner.read_range(key, start, end)
        self.opened += 1

        def counted() -> Iterator[bytes]:
            try:
                yield from chunks
            finally:
                chunks.close()  # type: ignore[attr-defined]
                self.closed += 1

        return counted()


@pytest.fixture
def served(s3_bucket: S3Bucket, tmp_path: Path) -> Iterator[tuple[str, Counting]]:
    """A real server of objects in the S3 bucket (a folder's files go through file_response)."""
    counting = Counting(open_storage(s3_bucket.spec, tmp_path))
    config = uvicorn.Config(
        make_app(counting),  # type: ignore[arg-type]
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", counting
        server.should_exit = True
        thread.join(timeout=10)


def test_a_listener_who_leaves_releases_the_reader(served: tuple[str, Counting]) -> None:
    base, counting = served
    counting.inner.put_bytes("readings/r.mp3", DATA * 20, "audio/mpeg")
    with httpx.Client(base_url=base) as client:
        with client.stream("GET", "/objects/readings/r.mp3") as response:
            assert response.status_code == 200
            first = next(response.iter_raw(1000))
            assert first == DATA[: len(first)]
        deadline = time.monotonic() + 10
        while counting.closed < 1:
            assert time.monotonic() < deadline, "the reader was never closed"
            time.sleep(0.02)
        assert counting.opened == 1
        # the server goes on serving
        assert (
            client.get("/objects/readings/r.mp3", headers={"Range": "bytes=0-9"}).content
            == DATA[:10]
        )
