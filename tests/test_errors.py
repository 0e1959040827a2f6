"""Exit codes and service error codes come from the error classes, and only from them."""

from __future__ import annotations

import pytest

from newsreader import errors
from newsreader.errors import NewsreaderError, SynthesisError
from newsreader.service.inputs import TooLong
from newsreader.service.runner import error_code
from newsreader.service.security import AddressRefused


@pytest.mark.parametrize(
    ("error", "exit_code", "code"),
    [
        (errors.UsageError("x"), 2, "bad_settings"),
        (errors.SourceError("x"), 3, "source_unreadable"),
        (AddressRefused("x"), 3, "url_not_allowed"),
        (errors.ExtractionError("x"), 4, "no_article"),
        (errors.SynthesisError("x"), 5, "synthesis_failed"),
        (errors.SegmentsFailed("x", (1,)), 5, "synthesis_failed"),
        (errors.EngineUnavailable("x"), 5, "synthesis_failed"),
        (errors.OutputError("x"), 6, "output_failed"),
        (errors.ConfigError("x"), 2, "bad_configuration"),
        (errors.RedisUnavailable("x"), 2, "redis_unavailable"),
        (errors.StorageError("x"), 7, "storage_unavailable"),
        (TooLong("x"), 1, "too_long"),
        (NewsreaderError("x"), 1, "internal_error"),
    ],
)
def test_each_error_class_carries_its_exit_code_and_service_code(
    error: NewsreaderError, exit_code: int, code: str
) -> None:
    assert error.exit_code == exit_code
    assert error.code == code
    assert error_code(error) == code


def test_a_new_error_class_brings_its_own_code_to_the_service() -> None:
    class VoiceRetired(SynthesisError):
        code = "voice_retired"

    assert error_code(VoiceRetired("the voice is gone")) == "voice_retired"
    assert VoiceRetired("x").exit_code == 5


def test_an_unexpected_exception_is_an_internal_error() -> None:
    assert error_code(RuntimeError("boom")) == "internal_error"
    assert error_code(KeyError("k")) == "internal_error"
