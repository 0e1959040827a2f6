"""The test Redis server starts, answers, stops for real and comes back on the same port."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis

from tests.redisserver import RedisServer, RedisServerMissing


def test_redis_url_is_a_flushed_live_server(redis_server: RedisServer, redis_url: str) -> None:
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.command("SET", "newsreader:probe", "1") == b"+OK"
    assert redis_server.command("DBSIZE") == b":1"


def test_the_next_test_sees_an_empty_database(redis_server: RedisServer, redis_url: str) -> None:
    assert redis_server.command("DBSIZE") == b":0"


def test_nothing_is_saved_to_disk(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind") == {"bind": "127.0.0.1"}


def test_stop_refuses_connections_and_start_comes_back(own_redis_server: RedisServer) -> None:
    port = own_redis_server.port
    own_redis_server.command("SET", "k", "v")
    own_redis_server.stop()
    assert not own_redis_server.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    own_redis_server.start()
    assert own_redis_server.port == port
    assert own_redis_server.command("PING") == b"+PONG"
    assert own_redis_server.command("EXISTS", "k") == b":0"  # nothing survived on disk


def test_close_kills_the_process_and_removes_its_directory() -> None:
    server = RedisServer()
    with server:
        process = server.process
        directory = server._dir
        assert process is not None and directory is not None and directory.is_dir()
    assert process.poll() is not None
    assert not directory.exists()


def test_a_missing_redis_server_says_how_to_install_it(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis-server")
    with pytest.raises(RedisServerMissing, match=r"python3 tasks\.py test. installs Debian's"):
        server.start()
