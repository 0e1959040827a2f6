"""``newsreader worker``: bad configuration is one line and a non-zero exit, before any work."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsreader.cli import main
from tests.redisserver import free_port
from tests.s3server import S3Bucket

ROOT = Path(__file__).resolve().parents[2]


def worker(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["worker", *args], env=env)
    return result.exit_code, result.output


@pytest.fixture(autouse=True)
def no_redis_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSREADER_REDIS_URL", raising=False)


def one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_without_redis_it_says_what_is_missing(tmp_path: Path) -> None:
    code, output = worker("--data", str(tmp_path))
    assert code == 2
    assert "--redis" in one_line(output)


def test_a_url_of_another_scheme_is_refused(tmp_path: Path) -> None:
    code, output = worker("--redis", "http://127.0.0.1:6379", "--data", str(tmp_path))
    assert code == 2
    assert one_line(output).startswith("newsreader: error: --redis")


def test_an_unreachable_redis_is_one_line(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    code, output = worker("--data", str(tmp_path), env={"NEWSREADER_REDIS_URL": url})
    assert code == 2
    line = one_line(output)
    assert f"127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}" in line


def test_a_missing_bucket_is_one_line(tmp_path: Path, redis_url: str, s3_bucket: S3Bucket) -> None:
    code, output = worker(
        *("--redis", redis_url, "--data", str(tmp_path)),
        *("--storage", "s3://no-such-bucket-here/readings", "--s3-endpoint", s3_bucket.endpoint),
    )
    assert code == 7
    assert "no-such-bucket-here" in one_line(output)


def test_a_metrics_port_in_use_is_one_line(tmp_path: Path, redis_url: str) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = worker(
            "--redis", redis_url, "--data", str(tmp_path), "--metrics-port", str(port)
        )
    assert code == 2
    assert f"{port}" in one_line(output)


def test_an_idle_worker_stops_at_once_on_sigterm(tmp_path: Path, redis_url: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "newsreader", "worker", "--redis", redis_url],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 20
        for line in process.stderr:  # wait until it is taking jobs
            if "Worker starting" in line or "voice connections" in line:
                break
            assert time.monotonic() < deadline
        start = time.monotonic()
        process.terminate()
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - start < 5  # no grace to wait out: nothing is running
        assert (tmp_path / "newsreader-data").is_dir()
    finally:
        process.kill()
        process.wait()
        if process.stderr is not None:
            process.stderr.close()
