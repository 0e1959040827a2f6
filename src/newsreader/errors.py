"""The one exception tree of newsreader.

Every error a user can cause or meet is a ``NewsreaderError``; the CLI prints its message as one
line and exits with its ``exit_code``; the service records its ``code`` (a reading that failed)
or answers with it (a JSON error). Both live on the classes, nowhere else. Messages say what is
wrong and what to do.

    NewsreaderError
    ├── UsageError            bad option value (rate, voice, concurrency, ...)
    │   └── ConfigError           the configuration names a place that is wrong or unreachable
    │       └── RedisUnavailable      the --redis server cannot be reached (or refuses us)
    ├── SourceError           the input cannot be read: missing file, bad scheme, HTTP error,
    │                         timeout, oversize or binary input
    ├── ExtractionError       the input was read but holds no readable article
    ├── SynthesisError        the voice engine failed (after retries)
    │   ├── EngineUnavailable     the engine cannot be reached or loaded at all
    │   ├── RateLimited           the service keeps answering 429
    │   ├── ServiceChanged        the service answered with something the client does not understand
    │   ├── SegmentsFailed        some segments failed after all retries (names them)
    │   └── TransientError        one attempt failed in a way a retry may fix (``kind`` says how)
    ├── OutputError           the result cannot be written
    └── StorageError          the shared storage (folder or S3 bucket) cannot be used: folder not
                              writable, bucket missing, endpoint unreachable, bad credentials
"""

from __future__ import annotations

from typing import ClassVar, Literal


class NewsreaderError(Exception):
    """Base of every error newsreader raises on purpose."""

    exit_code: ClassVar[int] = 1
    """The CLI's exit status for this error."""
    code: ClassVar[str] = "internal_error"
    """The service's error code for this error (``{"error": {"code": …}}``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(NewsreaderError):
    exit_code = 2
    code = "bad_settings"


class ConfigError(UsageError):
    """A setting names something that is malformed or cannot be reached (a Redis URL, a bucket):
    the node cannot start until the operator fixes it."""

    code = "bad_configuration"


class RedisUnavailable(ConfigError):
    """The Redis server of ``--redis`` refused, did not answer or did not accept the password."""

    code = "redis_unavailable"


class SourceError(NewsreaderError):
    exit_code = 3
    code = "source_unreadable"


class ExtractionError(NewsreaderError):
    exit_code = 4
    code = "no_article"


class SynthesisError(NewsreaderError):
    exit_code = 5
    code = "synthesis_failed"


class EngineUnavailable(SynthesisError):
    pass


class RateLimited(SynthesisError):
    pass


class ServiceChanged(SynthesisError):
    pass


TransientKind = Literal[
    "network", "timeout", "rate_limit", "service_changed", "truncated", "no_audio"
]


class TransientError(SynthesisError):
    """One synthesis attempt failed in a way that a retry may fix.

    ``kind`` lets the final message tell a rate limit, a network failure and a service change apart;
    ``retry_after`` carries a server's ``Retry-After`` (seconds) when it sent one.
    """

    def __init__(
        self, message: str, *, kind: TransientKind, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.kind: TransientKind = kind
        self.retry_after = retry_after


class SegmentsFailed(SynthesisError):
    """Some segments could not be synthesized; ``failed`` holds their indexes.

    ``kinds`` maps each failed index to the ``TransientError.kind`` of its last attempt (rate
    limit, network, timeout, service change, ...), e.g. for the service to pick a status code.
    """

    def __init__(
        self,
        message: str,
        failed: tuple[int, ...],
        kinds: dict[int, TransientKind] | None = None,
    ) -> None:
        super().__init__(message)
        self.failed = failed
        self.kinds: dict[int, TransientKind] = dict(kinds or {})


class OutputError(NewsreaderError):
    exit_code = 6
    code = "output_failed"


class StorageError(NewsreaderError):
    """The storage of finished readings and cached segments cannot be used (see ``storage``)."""

    exit_code = 7
    code = "storage_unavailable"
