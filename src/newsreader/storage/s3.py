"""The S3 backend of ``Storage``: objects in a bucket, under a prefix.

Works with AWS and with S3-protocol stores (MinIO, Ceph, moto, ...) given an endpoint URL; with
an endpoint, path-style addressing is used. Credentials and region come from the usual AWS
environment variables and files; the region defaults to ``us-east-1``.

An S3 object only exists once its upload is complete: ``put_object`` is atomic, and a multipart
upload (``put_file`` of a big file, through boto3's transfer manager) becomes visible only when
it is completed; a failed one is aborted, a killed one stays invisible (a bucket lifecycle rule
removes such leftovers). ``read_range`` fetches the range in pieces of ``PIECE`` bytes, each a
ranged GET streamed in chunks, the later pieces with ``If-Match`` on the first's ETag: a slow
reader holds no connection for long, memory holds one chunk, and an object replaced mid-read is
an error rather than a mix of two versions.

``boto3`` is imported when an ``S3Storage`` is made, not before.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from newsreader.errors import StorageError
from newsreader.storage import StoredObject, check_key

CHUNK = 455 * 144
"""About 64 KB, whole 144-byte frames (the service's streaming chunk)."""
PIECE = 8 * 1024 * 1024
"""Bytes fetched by one ranged GET in ``read_range``."""
MULTIPART_THRESHOLD = 16 * 1024 * 1024
"""``put_file`` of a larger file goes as a multipart upload."""
MULTIPART_CHUNK = 8 * 1024 * 1024
CHECK_TIMEOUT = 5.0
"""Seconds each request of ``check()`` may take."""

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_MISSING = {"404", "NoSuchKey", "NotFound"}
_NO_BUCKET = {"NoSuchBucket"}
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "InvalidClientTokenId",
    "AuthorizationHeaderMalformed",
}
_DENIED = {"403", "AccessDenied", "AllAccessDisabled"}

_LOADER: Any = None
"""botocore's loader of service descriptions, shared: S3's is read from disk once."""
_LOADER_LOCK = threading.Lock()


def parse_s3_spec(spec: str) -> tuple[str, str]:
    """``(bucket, prefix)`` from ``s3://BUCKET`` or ``s3://BUCKET/PREFIX``; the prefix has no
    leading or trailing ``/``. A bad bucket name or prefix is ``StorageError``, one line."""
    rest = spec.strip().partition("://")[2]
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise StorageError(
            f"--storage {spec[:80]!r}: {bucket[:64]!r} is not a bucket name (3-63 characters: "
            "a-z, 0-9, '.', '-'); use s3://BUCKET/PREFIX."
        )
    if prefix:
        try:
            check_key(prefix)
        except ValueError:
            raise StorageError(
                f"--storage {spec[:80]!r}: the prefix {prefix[:60]!r} may hold only A-Z a-z 0-9 "
                ". _ - and / between parts."
            ) from None
    return bucket, prefix


def _code(error: Exception) -> str:
    response: dict[str, Any] = getattr(error, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    if not code:
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(status or "")
    return code


def _etag(value: str) -> str:
    return value.strip().removeprefix("W/").strip('"')


class S3Storage:
    """Objects in ``bucket`` under ``prefix/`` (no prefix: at the bucket's top)."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint: str | None = None) -> None:
        import boto3
        import botocore.session
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint = endpoint
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        self._config = Config(
            region_name=region or "us-east-1",
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=64,
            s3={"addressing_style": "path"} if endpoint else {},
            # S3-protocol stores other than AWS do not all know the newer default checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        global _LOADER
        with _LOADER_LOCK:
            core = botocore.session.get_session()
            if _LOADER is None:
                _LOADER = core.get_component("data_loader")
            core.register_component("data_loader", _LOADER)
        # A session of its own (credentials are looked up afresh), the service model loaded once.
        self._session = boto3.session.Session(botocore_session=core)
        self._client: Any = self._client_with(None)

    def _client_with(self, changes: Any) -> Any:
        """A client of this storage's session; ``changes`` (a botocore ``Config``) override."""
        config = self._config if changes is None else self._config.merge(changes)
        return self._session.client("s3", endpoint_url=self.endpoint, config=config)

    def __repr__(self) -> str:
        return f"S3Storage({self.describe()!r})"

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint}" if self.endpoint else where

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _where(self) -> str:
        return self.endpoint or "AWS"

    def _fail(self, what: str, error: Exception) -> StorageError:
        """One line for an error of the client, the network or the server."""
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
            ResponseStreamingError,
        )
        from botocore.exceptions import ConnectionError as CannotConnect

        bucket = f"s3://{self.bucket}"
        if isinstance(error, ReadTimeoutError | ConnectTimeoutError):
            return StorageError(
                f"cannot {what}: the S3 endpoint {self._where()} did not answer in time (check "
                "--s3-endpoint / AWS_ENDPOINT_URL and the network)."
            )
        if isinstance(error, CannotConnect):
            return StorageError(
                f"cannot {what}: the S3 endpoint {self._where()} cannot be reached (check "
                "--s3-endpoint / AWS_ENDPOINT_URL and that the server is up)."
            )
        if isinstance(error, ConnectionClosedError | ResponseStreamingError):
            return StorageError(
                f"cannot {what}: the S3 endpoint {self._where()} closed the connection."
            )
        if isinstance(error, NoCredentialsError | PartialCredentialsError):
            return StorageError(
                f"cannot {what}: no S3 credentials (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY)."
            )
        code = _code(error)
        if code in _NO_BUCKET:
            return StorageError(
                f"the bucket {self.bucket!r} does not exist at {self._where()}: create it "
                f"(e.g. aws s3 mb {bucket}) or name another with --storage."
            )
        if code in _BAD_CREDENTIALS:
            return StorageError(
                f"cannot {what}: the S3 credentials were refused ({code}): check "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
            )
        if code in _DENIED:
            return StorageError(
                f"cannot {what}: access to {bucket} denied: give these credentials read and "
                "write access to the bucket."
            )
        if isinstance(error, ClientError):
            message = str(error.response.get("Error", {}).get("Message", "")).rstrip(".")
            return StorageError(
                f"cannot {what}: the S3 server answered {code or 'an error'}"
                + (f" ({message[:120]})." if message else ".")
            )
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        return StorageError(f"cannot {what} in {bucket}: {reason.rstrip('.')}.")

    def check(self, *, timeout: float = CHECK_TIMEOUT) -> None:
        """List the prefix, then write and remove a small probe object; each request gets
        ``timeout`` seconds and one retry (a start-up check should not hang on a silent host)."""
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()[:40]) or "host"
        probe = self._name(f"check-{host}-{secrets.token_hex(4)}")
        quick = self._client_with(
            Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": 2, "mode": "standard"},
            )
        )
        try:
            quick.list_objects_v2(
                Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else "", MaxKeys=1
            )
            quick.put_object(Bucket=self.bucket, Key=probe, Body=b"ok")
            quick.delete_object(Bucket=self.bucket, Key=probe)
        except (ClientError, BotoCoreError) as error:
            raise self._fail(f"use {self.describe()}", error) from None

    def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        name = self._name(key)
        source = Path(path)
        if not source.is_file():
            raise StorageError(f"cannot store {source} as {key}: it is not a file.")
        config = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=MULTIPART_CHUNK,
            max_concurrency=4,
        )
        try:
            self._client.upload_file(
                str(source),
                self.bucket,
                name,
                ExtraArgs={"ContentType": content_type},
                Config=config,
            )
        except (ClientError, BotoCoreError) as error:
            raise self._fail(f"store {key} in {self.describe()}", error) from None
        except OSError as error:
            raise StorageError(
                f"cannot read {source} to store it as {key}: "
                f"{(error.strerror or str(error)).rstrip('.').lower()}."
            ) from None
        except Exception as error:  # s3transfer's S3UploadFailedError wraps the cause as text
            raise self._fail(f"store {key} in {self.describe()}", error) from None
        stored = self.stat(key)
        if stored is None:
            raise StorageError(f"{key} was uploaded to {self.describe()} but is not there.")
        source.unlink(missing_ok=True)
        return stored

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        from botocore.exceptions import BotoCoreError, ClientError

        name = self._name(key)
        try:
            answer = self._client.put_object(
                Bucket=self.bucket, Key=name, Body=data, ContentType=content_type
            )
        except (ClientError, BotoCoreError) as error:
            raise self._fail(f"store {key} in {self.describe()}", error) from None
        headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        try:
            modified = parsedate_to_datetime(headers["date"]).astimezone(UTC)
        except (KeyError, TypeError, ValueError):
            modified = datetime.now(UTC)
        return StoredObject(key, len(data), _etag(answer["ETag"]), modified)

    def get_bytes(self, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        name = self._name(key)
        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=name)
            body = answer["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()
        except (ClientError, BotoCoreError) as error:
            if _code(error) in _MISSING:
                return None
            raise self._fail(f"read {key} from {self.describe()}", error) from None

    def stat(self, key: str) -> StoredObject | None:
        from botocore.exceptions import BotoCoreError, ClientError

        name = self._name(key)
        try:
            answer = self._client.head_object(Bucket=self.bucket, Key=name)
        except (ClientError, BotoCoreError) as error:
            if _code(error) in _MISSING:
                return None
            raise self._fail(f"look up {key} in {self.describe()}", error) from None
        modified = answer["LastModified"]
        return StoredObject(
            key, int(answer["ContentLength"]), _etag(answer["ETag"]), modified.astimezone(UTC)
        )

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        name = self._name(key)
        if start < 0 or end < start - 1:
            raise ValueError(f"bad byte range {start}-{end}")
        return self._pieces(key, name, start, end)

    def _pieces(self, key: str, name: str, start: int, end: int) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError, ClientError

        etag: str | None = None
        position = start
        while position <= end:
            last = min(end, position + PIECE - 1)
            arguments: dict[str, Any] = {
                "Bucket": self.bucket,
                "Key": name,
                "Range": f"bytes={position}-{last}",
            }
            if etag is not None:
                arguments["IfMatch"] = f'"{etag}"'
            try:
                answer = self._client.get_object(**arguments)
            except (ClientError, BotoCoreError) as error:
                code = _code(error)
                if code in _MISSING:
                    raise StorageError(f"{key} is not in {self.describe()}.") from None
                if code in {"412", "PreconditionFailed"}:
                    raise StorageError(
                        f"{key} in {self.describe()} was replaced while it was read."
                    ) from None
                if code in {"416", "InvalidRange"}:
                    return  # the object ends before the range starts
                raise self._fail(f"read {key} from {self.describe()}", error) from None
            etag = _etag(answer["ETag"]) if etag is None else etag
            body = answer["Body"]
            received = 0
            try:
                for chunk in body.iter_chunks(CHUNK):
                    received += len(chunk)
                    yield chunk
            except (ClientError, BotoCoreError) as error:
                raise self._fail(f"read {key} from {self.describe()}", error) from None
            finally:
                body.close()
            if received < last - position + 1:
                return  # the object is shorter than the range asked for
            position = last + 1

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        name = self._name(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=name)
        except (ClientError, BotoCoreError) as error:
            if _code(error) in _MISSING:
                return
            raise self._fail(f"remove {key} from {self.describe()}", error) from None

    def local_path(self, key: str) -> Path | None:
        self._name(key)
        return None
