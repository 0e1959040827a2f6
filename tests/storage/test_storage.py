"""Every ``Storage`` method on both backends: a folder, and a bucket on a real S3 server."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsreader.errors import StorageError
from newsreader.storage import Storage, StoredObject, open_storage
from newsreader.storage.directory import DirectoryStorage
from newsreader.storage.s3 import PIECE, S3Storage
from tests.s3server import MotoServer, S3Bucket, free_port

BIG = 24 * 1024 * 1024
"""A reading's size class: several multipart chunks, several read pieces."""


@pytest.fixture(params=["directory", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "directory":
        return open_storage(None, tmp_path / "store")
    bucket: S3Bucket = request.getfixturevalue("s3_bucket")
    # the endpoint comes from AWS_ENDPOINT_URL, as on a real machine
    return open_storage(f"{bucket.spec}/news/prod", tmp_path / "unused")


def big_file(path: Path, size: int = BIG) -> str:
    """A file of ``size`` bytes that differ all along (no run of zeros hides a misplaced piece);
    returns its sha256."""
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with path.open("wb") as file:
        for i in range(size // len(block)):
            piece = i.to_bytes(4, "big") + block[4:]
            digest.update(piece)
            file.write(piece)
    return digest.hexdigest()


def all_keys(storage: Storage) -> list[str]:
    """Every object there is, hidden temporary files included (the backend's own view)."""
    if isinstance(storage, DirectoryStorage):
        if not storage.root.exists():
            return []
        return sorted(
            str(p.relative_to(storage.root)) for p in storage.root.rglob("*") if p.is_file()
        )
    assert isinstance(storage, S3Storage)
    listed = storage._client.list_objects_v2(Bucket=storage.bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_check_passes_and_describes_where(storage: Storage, tmp_path: Path) -> None:
    assert isinstance(storage, Storage)
    storage.check()
    if isinstance(storage, DirectoryStorage):
        assert storage.describe() == str(tmp_path / "store")
    else:
        assert storage.describe().startswith("s3://test-")
        assert "/news/prod at http://127.0.0.1:" in storage.describe()
    assert all_keys(storage) == []  # the probe is gone


def test_round_trip(storage: Storage) -> None:
    data = bytes(range(256)) * 40
    put = storage.put_bytes("readings/abc.json", data, "application/json")
    assert isinstance(put, StoredObject)
    assert (put.key, put.size) == ("readings/abc.json", len(data))
    assert put.modified.tzinfo is not None
    assert abs(put.modified.timestamp() - time.time()) < 60
    assert storage.get_bytes("readings/abc.json") == data
    found = storage.stat("readings/abc.json")
    assert found is not None
    assert (found.size, found.etag) == (len(data), put.etag)
    assert b"".join(storage.read_range("readings/abc.json", 0, 0)) == data[:1]
    assert b"".join(storage.read_range("readings/abc.json", 100, 5000)) == data[100:5001]
    assert b"".join(storage.read_range("readings/abc.json", 9000, 99999)) == data[9000:]
    assert list(storage.read_range("readings/abc.json", len(data), len(data) + 9)) == []
    # the same bytes keep their tag, other bytes get another
    again = storage.put_bytes("readings/abc.json", data, "application/json")
    assert again.etag == put.etag
    changed = storage.put_bytes("readings/abc.json", data[::-1], "application/json")
    assert changed.etag != put.etag
    assert storage.stat("readings/abc.json") == changed
    assert storage.get_bytes("readings/abc.json") == data[::-1]
    storage.delete("readings/abc.json")
    assert storage.stat("readings/abc.json") is None
    assert storage.get_bytes("readings/abc.json") is None
    storage.delete("readings/abc.json")  # already gone: no error
    assert all_keys(storage) == []


def test_missing_objects(storage: Storage) -> None:
    assert storage.get_bytes("readings/none.mp3") is None
    assert storage.stat("readings/none.mp3") is None
    assert storage.local_path("readings/none.mp3") is None
    with pytest.raises(StorageError, match=r"readings/none\.mp3 is not in "):
        list(storage.read_range("readings/none.mp3", 0, 10))


def test_put_file_consumes_the_file_and_local_path(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "made.vtt"
    source.write_text("WEBVTT\n\n00:00.000 --> 00:01.000\n你好\n", encoding="utf-8")
    content = source.read_bytes()
    inode = source.stat().st_ino
    put = storage.put_file("readings/r1.vtt", source, "text/vtt")
    assert not source.exists()
    assert put.size == len(content)
    assert storage.get_bytes("readings/r1.vtt") == content
    assert storage.stat("readings/r1.vtt") == put
    local = storage.local_path("readings/r1.vtt")
    if isinstance(storage, DirectoryStorage):
        assert local == storage.root / "readings" / "r1.vtt"
        assert local.read_bytes() == content
        assert local.stat().st_ino == inode  # renamed into place, not copied
        # the service's scheme: the first 32 hex digits of the sha256
        assert put.etag == hashlib.sha256(content).hexdigest()[:32]
    else:
        assert local is None
        assert put.etag == hashlib.md5(content).hexdigest()  # S3's tag of a one-part upload


def test_a_big_file_goes_whole_and_is_read_in_bounded_memory(
    storage: Storage, tmp_path: Path
) -> None:
    source = tmp_path / "big.mp3"
    digest = big_file(source)
    put = storage.put_file("readings/big.mp3", source, "audio/mpeg")
    assert put.size == BIG and not source.exists()
    if isinstance(storage, S3Storage):
        assert put.etag.endswith("-3")  # a multipart upload of three 8 MB parts
    tracemalloc.start()
    try:
        whole = hashlib.sha256()
        largest = 0
        for chunk in storage.read_range("readings/big.mp3", 0, BIG - 1):
            whole.update(chunk)
            largest = max(largest, len(chunk))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert whole.hexdigest() == digest
    assert largest <= 64 * 1024
    assert peak < 4 * 1024 * 1024, f"{peak} bytes held while reading {BIG}"
    # a range across piece boundaries (S3 fetches 8 MB pieces) is exact
    start, end = 8 * 1024 * 1024 - 7, 16 * 1024 * 1024 + 9
    got = b"".join(storage.read_range("readings/big.mp3", start, end))
    assert len(got) == end - start + 1
    assert got[:4] == b"".join(storage.read_range("readings/big.mp3", start, start + 3))
    assert got[7:11] == (8).to_bytes(4, "big")  # the ninth MB starts with its number


def test_the_iterator_can_be_left_early(storage: Storage) -> None:
    storage.put_bytes("segments/ab/x.mp3", os.urandom(300_000), "audio/mpeg")
    chunks = storage.read_range("segments/ab/x.mp3", 0, 299_999)
    assert isinstance(chunks, Iterator)
    first = next(chunks)
    assert len(first) > 0
    chunks.close()  # type: ignore[attr-defined]
    storage.delete("segments/ab/x.mp3")
    assert all_keys(storage) == []


def test_an_object_replaced_while_read_is_never_a_mix(storage: Storage) -> None:
    """A folder's reader keeps the file it opened; S3 refuses the next piece of a replaced
    object (If-Match): either way, never half old and half new bytes."""
    old, new = b"\x01" * (PIECE + 200_000), b"\x02" * (PIECE + 200_000)
    storage.put_bytes("readings/r.mp3", old, "audio/mpeg")
    chunks = storage.read_range("readings/r.mp3", 0, len(old) - 1)
    got = [next(chunks)]
    storage.put_bytes("readings/r.mp3", new, "audio/mpeg")
    if isinstance(storage, DirectoryStorage):
        got.extend(chunks)
        assert b"".join(got) == old
    else:
        with pytest.raises(StorageError, match=r"^readings/r\.mp3 in .* was replaced while"):
            got.extend(chunks)
        assert set(b"".join(got)) == {1}
    assert storage.get_bytes("readings/r.mp3") == new


BAD_KEYS = [
    "",
    "/readings/a.mp3",
    "../a.mp3",
    "readings/../../etc/passwd",
    "readings//a.mp3",
    "readings/",
    "readings/./a.mp3",
    ".hidden",
    "readings/.a.mp3.1234abcd.tmp",
    "readings/a b.mp3",
    "readings/ä.mp3",
    "readings\\a.mp3",
    "readings/a.mp3\x00",
    "readings/" + "a" * 600,
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused_before_anything_is_touched(
    storage: Storage, tmp_path: Path, key: str
) -> None:
    source = tmp_path / "source.mp3"
    source.write_bytes(b"frames")
    calls = [
        lambda: storage.put_bytes(key, b"x", "audio/mpeg"),
        lambda: storage.put_file(key, source, "audio/mpeg"),
        lambda: storage.get_bytes(key),
        lambda: storage.stat(key),
        lambda: storage.read_range(key, 0, 1),
        lambda: storage.delete(key),
        lambda: storage.local_path(key),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"^(storage key|a storage key)"):
            call()
    assert source.read_bytes() == b"frames"
    assert all_keys(storage) == []
    assert not (tmp_path / "etc").exists()


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    storage = open_storage(None, blocker / "store")
    with pytest.raises(StorageError) as caught:
        storage.check()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"the storage folder {blocker / 'store'} is not writable: ")
    assert "--storage" in message
    with pytest.raises(StorageError, match=r"^cannot write .* in the storage folder: "):
        storage.put_bytes("readings/a.json", b"{}", "application/json")
    assert blocker.read_text() == "x"


def test_a_missing_bucket_is_one_line_that_names_it(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    storage = open_storage("s3://no-such-bucket-here/x", tmp_path)
    with pytest.raises(StorageError) as caught:
        storage.check()
    assert str(caught.value) == (
        f"the bucket 'no-such-bucket-here' does not exist at {s3_bucket.endpoint}: create it "
        "(e.g. aws s3 mb s3://no-such-bucket-here) or name another with --storage."
    )
    with pytest.raises(StorageError, match=r"^the bucket 'no-such-bucket-here' does not exist"):
        storage.put_bytes("readings/a.json", b"{}", "application/json")


def no_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_an_endpoint_that_refuses_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_aws_environment(monkeypatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    port = free_port()
    storage = open_storage("s3://news", tmp_path, endpoint=f"http://127.0.0.1:{port}")
    for call in (storage.check, lambda: storage.stat("readings/a.mp3")):
        with pytest.raises(StorageError) as caught:
            call()
        message = str(caught.value)
        assert "\n" not in message
        assert f"the S3 endpoint http://127.0.0.1:{port} cannot be reached" in message


def test_a_silent_endpoint_is_one_line_in_bounded_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_aws_environment(monkeypatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    with socket.socket() as silent:  # takes connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        storage = open_storage("s3://news", tmp_path, endpoint=endpoint)
        assert isinstance(storage, S3Storage)
        started = time.monotonic()
        with pytest.raises(StorageError) as caught:
            storage.check(timeout=0.5)
        took = time.monotonic() - started
    assert str(caught.value) == (
        f"cannot use s3://news at {endpoint}: the S3 endpoint {endpoint} did not answer in "
        "time (check --s3-endpoint / AWS_ENDPOINT_URL and the network)."
    )
    assert took < 10


def test_no_credentials_is_one_line(
    s3_bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_aws_environment(monkeypatch)
    storage = open_storage(s3_bucket.spec, tmp_path, endpoint=s3_bucket.endpoint)
    with pytest.raises(StorageError) as caught:
        storage.check()
    assert str(caught.value) == (
        f"cannot use {s3_bucket.spec} at {s3_bucket.endpoint}: no S3 credentials "
        "(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)."
    )


def test_refused_credentials_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_aws_environment(monkeypatch)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with MotoServer(check_credentials=True) as strict:
        storage = open_storage("s3://news/x", tmp_path, endpoint=strict.endpoint)
        with pytest.raises(StorageError) as caught:
            storage.check()
    assert str(caught.value) == (
        f"cannot use s3://news/x at {strict.endpoint}: the S3 credentials were refused "
        "(InvalidAccessKeyId): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ftp://host/x", r"^--storage 'ftp://host/x': use a folder path or s3://BUCKET/PREFIX"),
        ("s3://Bad_Bucket/x", r"^--storage 's3://Bad_Bucket/x': 'Bad_Bucket' is not a bucket"),
        ("s3://", r"^--storage 's3://': '' is not a bucket name"),
        ("s3://news/a b", r"^--storage 's3://news/a b': the prefix 'a b' may hold only"),
        ("file://relative/x", r"^--storage 'file://relative/x': a file:// URL needs an absolute"),
    ],
)
def test_a_bad_storage_value_is_one_line(tmp_path: Path, spec: str, message: str) -> None:
    with pytest.raises(StorageError, match=message) as caught:
        open_storage(spec, tmp_path)
    assert "\n" not in str(caught.value)


def test_a_path_value_is_a_folder_there(tmp_path: Path) -> None:
    shared = open_storage(str(tmp_path / "shared"), tmp_path / "default")
    assert isinstance(shared, DirectoryStorage) and shared.root == tmp_path / "shared"
    url = open_storage(f"file://{tmp_path}/nfs", tmp_path / "default")
    assert isinstance(url, DirectoryStorage) and url.root == tmp_path / "nfs"
    shared.put_bytes("readings/a.json", b"{}", "application/json")
    assert (tmp_path / "shared" / "readings" / "a.json").read_bytes() == b"{}"
    assert not (tmp_path / "default").exists()


# --- an upload cut off half-way never shows -------------------------------------------------

PUT_IN_A_CHILD = textwrap.dedent(
    """
    import os, resource, signal, sys
    from pathlib import Path
    from newsreader.errors import StorageError
    from newsreader.storage import open_storage

    spec, root, source, limit, on_limit = sys.argv[1:6]
    if int(limit):
        # Files this process writes may not grow past the limit: a disk that fills half-way.
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))
        # Python ignores SIGXFSZ (write() fails with EFBIG); by default it kills the process.
        if on_limit == "killed":
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    storage = open_storage(spec or None, Path(root))
    try:
        storage.put_file("readings/cut.mp3", Path(source), "audio/mpeg")
    except StorageError as error:
        print(error)
        sys.exit(7)
    """
)


def put_in_a_child(
    spec: str, root: Path, source: Path, *, limit: int = 0, on_limit: str = "error"
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PUT_IN_A_CHILD, spec, str(root), str(source), str(limit), on_limit],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def other_file_system(tmp_path: Path) -> Path:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on another file system than the test's folder")
    return shm


@pytest.mark.parametrize("on_limit", ["error", "killed"])
def test_a_copy_cut_off_half_way_leaves_the_old_object(tmp_path: Path, on_limit: str) -> None:
    shm = other_file_system(tmp_path)
    source = shm / f"newsreader-test-{os.getpid()}-{on_limit}.mp3"
    try:
        big_file(source, 12 * 1024 * 1024)
        storage = open_storage(None, tmp_path / "store")
        storage.put_bytes("readings/cut.mp3", b"old audio", "audio/mpeg")
        child = put_in_a_child("", storage.root, source, limit=4 * 1024 * 1024, on_limit=on_limit)
        out, err = child.communicate(timeout=60)
        if on_limit == "error":
            assert child.returncode == 7, err
            assert out.startswith(f"cannot write {storage.root / 'readings' / 'cut.mp3'} in ")
            assert out.count("\n") == 1
            # no temporary file is left behind either
            assert all_keys(storage) == ["readings/cut.mp3"]
        else:
            assert child.returncode == -signal.SIGXFSZ, err
            [temp] = [k for k in all_keys(storage) if k != "readings/cut.mp3"]
            assert Path(temp).name.startswith(".cut.mp3.") and temp.endswith(".tmp")
        assert storage.get_bytes("readings/cut.mp3") == b"old audio"
        assert source.stat().st_size == 12 * 1024 * 1024  # not consumed
    finally:
        source.unlink(missing_ok=True)


def test_a_killed_multipart_upload_never_shows(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    spec = f"{s3_bucket.spec}/p"
    storage = open_storage(spec, tmp_path)
    storage.put_bytes("readings/cut.mp3", b"old audio", "audio/mpeg")
    source = tmp_path / "cut.mp3"
    big_file(source, 64 * 1024 * 1024)
    client = s3_bucket.client()
    child = put_in_a_child(spec, tmp_path, source)
    try:
        deadline = time.monotonic() + 60
        parts: list[object] = []
        while not parts:
            assert child.poll() is None, "the upload ended before it could be cut off"
            assert time.monotonic() < deadline, "no part was ever uploaded"
            for upload in client.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", []):
                parts = client.list_parts(
                    Bucket=s3_bucket.name, Key=upload["Key"], UploadId=upload["UploadId"]
                ).get("Parts", [])
            time.sleep(0.01)
        child.kill()  # a worker that dies half-way through
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    [upload] = client.list_multipart_uploads(Bucket=s3_bucket.name)["Uploads"]
    assert upload["Key"] == "p/readings/cut.mp3"  # started, never completed
    assert storage.get_bytes("readings/cut.mp3") == b"old audio"
    found = storage.stat("readings/cut.mp3")
    assert found is not None and found.size == len(b"old audio")
    assert all_keys(storage) == ["p/readings/cut.mp3"]
    assert source.stat().st_size == 64 * 1024 * 1024  # not consumed
