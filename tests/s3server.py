"""A real S3-protocol server for tests and benchmarks: moto's server on a free loopback port.

    with MotoServer() as s3:                 # started, answers HTTP
        s3.endpoint                          # "http://127.0.0.1:PORT"
        s3.create_bucket("news")             # a new, empty bucket
        s3.stop()                            # now unreachable (connection refused)

As a pytest plugin (``tests.conftest`` lists it in ``pytest_plugins``) it gives the fixtures
``s3_server`` (the session's one server, killed at the end) and ``s3_bucket`` (function scope: a
fresh bucket on that server, the AWS environment variables set to test credentials and the
endpoint, and the bucket emptied and removed afterwards).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

STARTUP_TIMEOUT = 30.0
"""Seconds a fresh server gets to answer."""
ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"
REGION = "us-east-1"

__all__ = ["MotoServer", "S3Bucket", "free_port", "s3_bucket", "s3_client", "s3_server"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client for the test server (test credentials, path-style addressing)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


_RUN = """
import os, sys, threading
def orphaned():
    sys.stdin.buffer.read()
    os._exit(0)
threading.Thread(target=orphaned, daemon=True).start()
from moto.server import main
main(sys.argv[1:])
"""
"""moto's server, which exits when its standard input closes: a test run that is killed does
not leave it behind."""


class MotoServer:
    """One ``python -m moto.server`` process bound to 127.0.0.1."""

    def __init__(
        self, *, startup_timeout: float = STARTUP_TIMEOUT, check_credentials: bool = False
    ) -> None:
        """``check_credentials``: refuse unknown access keys (moto's IAM checks from the first
        request on), as AWS does; by default any key is taken."""
        self.startup_timeout = startup_timeout
        self.check_credentials = check_credentials
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None
        self._client: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server and wait until it answers HTTP."""
        if self.process is not None and self.process.poll() is None:
            return
        self.port = free_port()
        handle, name = tempfile.mkstemp(prefix="moto-", suffix=".log")
        self._log = Path(name)
        env = {**os.environ, "MOTO_CALL_RESET_API": "true"}
        if self.check_credentials:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
        with os.fdopen(handle, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _RUN, "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE,  # closed when this process ends, however it ends
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto's server exited at start:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"moto's server did not answer within {self.startup_timeout}s"
                    ) from None
                time.sleep(0.1)

    def log(self) -> str:
        if self._log is None or not self._log.exists():
            return ""
        return self._log.read_text(encoding="utf-8", errors="replace")[-4000:]

    def stop(self) -> None:
        """Kill the server and wait for it."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(timeout=10)
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process = None
        self._client = None
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    def client(self) -> Any:
        """A client for this server (made once)."""
        if self._client is None:
            self._client = s3_client(self.endpoint)
        return self._client

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def remove_bucket(self, name: str) -> None:
        """Remove the bucket with every object and unfinished upload in it."""
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=item["Key"])
        uploads = client.list_multipart_uploads(Bucket=name).get("Uploads", [])
        for upload in uploads:
            client.abort_multipart_upload(
                Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        client.delete_bucket(Bucket=name)

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class S3Bucket:
    """A fresh bucket on the test server; the AWS environment points at it while it lives."""

    server: MotoServer
    name: str

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    @property
    def spec(self) -> str:
        """The ``--storage`` value for this bucket (no prefix)."""
        return f"s3://{self.name}"

    def client(self) -> Any:
        return self.server.client()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Bucket]:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    # No shared config or credentials file of the machine's user leaks in.
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    name = f"test-{secrets.token_hex(6)}"
    s3_server.create_bucket(name)
    yield S3Bucket(s3_server, name)
    s3_server.remove_bucket(name)
