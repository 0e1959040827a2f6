"""Shared fixtures. The edge stand-in server's fixtures live in tests/standin/fixtures.py, the
Redis server's (``redis_server``, ``redis_url``, ``own_redis_server``) in tests/redisserver.py,
the S3 server's (``s3_server``, ``s3_bucket``) in tests/s3server.py."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.standin.fixtures",
    "tests.webserver",
    "tests.redisserver",
    "tests.s3server",
]

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SEED = SHARED / "seed" / "000_3d354300c6d8990c.txt"
CORPUS = SHARED / "corpus" / "news-pages"


@pytest.fixture
def seed_text() -> str:
    return SEED.read_text(encoding="utf-8")
