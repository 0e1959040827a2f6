"""Fixtures for the podcast tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def segment_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One segment cache for the podcast tests: the same short stories are read in many tests,
    and the cache (a feature under test elsewhere) keeps each one's synthesis to the first."""
    return tmp_path_factory.mktemp("segment-cache")
