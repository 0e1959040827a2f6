"""``read`` sends its first request before it imports what it needs only once audio arrives.

A real ``read`` runs in its own process against the edge stand-in. An audit hook in that process
(no function of ours is replaced) notes every first import with its thread, and takes a snapshot
of ``sys.modules`` when the edge client connects for its first synthesis request (a
``socket.connect`` to the stand-in with edge_tts' request on the stack).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from newsreader.warmup import EXIT_WAIT, Warmup
from tests.standin.server import EdgeStandin, StandinOptions

ROOT = Path(__file__).resolve().parents[1]

ARTICLE = "\n\n".join(
    (
        "城市书房开到家门口 夜读人群持续增长",
        "社区书房开到家门口，居民们在书房里读书看报，孩子们也在周末来参加阅读活动。",
        "书房由街道和图书馆共同建设，提供借阅、讲座和展览等服务，志愿者轮流值守。",
        "据介绍，今年全市还将新建二十个城市书房，让更多居民在十五分钟内找到读书的地方。",
    )
)

# What a reading needs only once audio arrives, and what a file source never needs.
LATER = (
    "numpy", "scipy", "av", "mutagen", "rich", "pydub", "lameenc",
    "newsreader.audio.level", "newsreader.audio.loudness", "newsreader.audio.decode",
    "newsreader.audio.tags",
)  # fmt: skip
NEVER = (
    "newsreader.podcast", "newsreader.service", "newsreader.scale", "newsreader.sources.fetch",
    "newsreader.sources.web", "lxml", "feedparser", "fastapi", "redis",
)  # fmt: skip

# argv: stand-in address, where to write the record, then newsreader's arguments.
PROBE = textwrap.dedent(
    """
    import atexit, json, sys, threading, time
    _port = int(sys.argv[1].rsplit(":", 1)[1])
    _out = sys.argv.pop(2)
    _record = {"first_request": None, "imports": []}

    def _synthesis_request():
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_filename.endswith("edge_tts/communicate.py"):
                return True
            frame = frame.f_back
        return False

    def _hook(event, args):
        if event == "import" and args[0] not in sys.modules:
            _record["imports"].append(
                [args[0], threading.current_thread().name, time.monotonic()]
            )
        elif (
            event == "socket.connect"
            and _record["first_request"] is None
            and isinstance(args[1], tuple)
            and args[1][1] == _port
            and _synthesis_request()
        ):
            _record["first_request"] = {"at": time.monotonic(), "modules": sorted(sys.modules)}

    sys.addaudithook(_hook)

    @atexit.register
    def _dump():
        with open(_out, "w", encoding="utf-8") as f:
            json.dump(_record, f)

    from tests.standin.client import point_edge_tts_at_on_import
    point_edge_tts_at_on_import(sys.argv.pop(1))
    sys.argv[0] = "newsreader"
    from newsreader.cli import main
    main()
    """
)


def _loaded(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.fixture(scope="module")
def standin() -> Any:
    # First audio half a second after the request, as from the service: the background imports
    # have that long.
    options = StandinOptions(handshake_latency=0.05, first_audio_latency=0.5)
    with EdgeStandin(options) as server:
        yield server


def _read(
    standin: EdgeStandin,
    tmp_path: Path,
    output: str,
    *cache: str,
    env: dict[str, str] | None = None,
    stderr: list[str] | None = None,
) -> tuple[dict[str, Any], bytes]:
    standin.reset()
    article = tmp_path / "article.txt"
    article.write_text(ARTICLE, encoding="utf-8")
    record = tmp_path / "record.json"
    done = subprocess.run(
        [
            sys.executable, "-c", PROBE, f"127.0.0.1:{standin.port}", str(record),
            "read", str(article), "--engine", "edge", *(cache or ["--no-cache"]), "-o", output,
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    if stderr is not None:
        stderr.append(done.stderr.decode())
    return json.loads(record.read_text(encoding="utf-8")), done.stdout


@pytest.mark.parametrize("to", ["file", "stdout"])
def test_the_first_request_goes_out_before_the_audio_stack_is_imported(
    standin: EdgeStandin, tmp_path: Path, to: str
) -> None:
    output = str(tmp_path / "out.mp3") if to == "file" else "-"
    record, stdout = _read(standin, tmp_path, output)
    first = record["first_request"]
    assert first is not None, "no synthesis request was seen"
    at_first = first["modules"]
    # The snapshot is the one of the first request: the client and the script are there.
    assert {"edge_tts", "aiohttp", "newsreader.text.segment"} <= set(at_first)
    assert _loaded(at_first, LATER) == []
    assert _loaded(at_first, NEVER) == []
    # The reading was made, and what it needed once audio arrived was imported meanwhile in
    # the background: the event loop's thread imported none of it after the first request.
    mp3 = (tmp_path / "out.mp3").read_bytes() if to == "file" else stdout
    assert mp3.startswith(b"ID3") and len(mp3) > 10_000
    later = [(name, thread) for name, thread, at in record["imports"] if at > first["at"]]
    on_loop = [name for name, thread in later if thread == "MainThread"]
    # (rich imports parts of itself when the summary is printed, after the event loop is done)
    assert _loaded(on_loop, tuple(m for m in LATER if m != "rich")) == []
    # (the audit event is raised by import statements: the warm-up's own importlib calls go
    # unseen, what they import in turn is seen)
    warmed = sorted(name for name, thread in later if thread == "newsreader-warmup")
    assert _loaded(warmed, ("mutagen",))
    if to == "file":
        assert _loaded(warmed, ("numpy",))
        assert _loaded(warmed, ("av",))


def test_the_progress_bar_is_made_once_the_requests_are_out(
    standin: EdgeStandin, tmp_path: Path
) -> None:
    # rich takes standard error for a terminal when FORCE_COLOR is set
    stderr: list[str] = []
    env = {**os.environ, "FORCE_COLOR": "1"}
    record, _ = _read(standin, tmp_path, str(tmp_path / "out.mp3"), env=env, stderr=stderr)
    assert "synthesizing" in stderr[0] and "4/4" in stderr[0]
    assert "wrote " in stderr[0]
    assert _loaded(record["first_request"]["modules"], ("rich",)) == []


def test_a_reading_from_the_cache_imports_nothing_in_the_background(
    standin: EdgeStandin, tmp_path: Path
) -> None:
    cache = ("--cache-dir", str(tmp_path / "cache"))
    _read(standin, tmp_path, str(tmp_path / "first.mp3"), *cache)
    record, _ = _read(standin, tmp_path, str(tmp_path / "again.mp3"), *cache)
    assert record["first_request"] is None  # every segment came from the cache
    # No request waits on the network, so nothing is imported beside the reading's own work:
    # what it needs, the event loop imports itself (and scipy, for measuring, not at all).
    assert [name for name, thread, _ in record["imports"] if thread == "newsreader-warmup"] == []
    assert _loaded([name for name, _, _ in record["imports"]], ("scipy",)) == []


def _modules_after(*args: str) -> set[str]:
    code = (
        "import sys, json; sys.argv[0] = 'newsreader'; from newsreader.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "import threading\n"
        "print(json.dumps([sorted(sys.modules), [t.name for t in threading.enumerate()]]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    modules, threads = json.loads(done.stdout.splitlines()[-1])
    assert not [t for t in threads if t.startswith("newsreader-")]
    return set(modules)


def test_commands_that_do_not_synthesize_start_no_warm_up(tmp_path: Path) -> None:
    article = tmp_path / "article.txt"
    article.write_text(ARTICLE, encoding="utf-8")
    extracted = _modules_after("extract", str(article))
    assert _loaded(sorted(extracted), ("edge_tts", "aiohttp", *LATER)) == []
    # --help loads every command's module for its line, but starts nothing
    helped = _modules_after("--help")
    assert _loaded(sorted(helped), ("edge_tts", "aiohttp", "numpy", "scipy", "av")) == []


def test_help_lists_every_command_with_its_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "newsreader", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    listed = done.stdout.split("Commands:")[1].split()
    for name in ("extract", "feed", "read", "serve", "voices", "worker"):
        assert name in listed
    assert "Turn the news feed SOURCE" in done.stdout
    assert "Make readings for the API nodes" in done.stdout


def test_a_warm_up_passes_over_a_module_that_fails_and_its_user_still_sees_the_error() -> None:
    warmup = Warmup(["newsreader_no_such_module", "json"]).start()
    assert warmup.join(timeout=10)
    assert warmup.failed == ["newsreader_no_such_module"]
    assert "json" in sys.modules
    with pytest.raises(ModuleNotFoundError, match="newsreader_no_such_module"):
        __import__("newsreader_no_such_module")


def test_a_warm_up_holds_the_exit_up_only_within_its_bound(tmp_path: Path) -> None:
    """The exit waits for the module being imported (no thread may import while the interpreter
    shuts down), but at most ``EXIT_WAIT``, and starts no module after it."""
    (tmp_path / "slow_to_import.py").write_text("import time\ntime.sleep(30)\n")
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "from newsreader.warmup import warm\n"
        "w = warm(['slow_to_import', 'json'])\n"
        "import time; time.sleep(0.2)\n"
        "print('done')\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=20
    )
    took = time.monotonic() - started
    assert done.returncode == 0
    assert done.stdout == "done\n"
    assert done.stderr == ""
    assert took < EXIT_WAIT + 5  # the module sleeps for 30 s: the exit did not wait for it


def test_a_fully_cached_reading_with_numbers_does_not_import_cn2an(tmp_path: Path) -> None:
    """Quantities are spelled by our own code (``text.numbers.integer``): cn2an, 0.15-0.25 s of
    a cached reading's start-up, is a test dependency only."""
    article = tmp_path / "article.txt"
    text = "第1部分第3段\n\n全市新建20个城市书房，共有1,234.5万册书。"
    article.write_text(text, encoding="utf-8")
    code = (
        "import sys, json; sys.argv[0] = 'newsreader'; from newsreader.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    runs = []
    for name in ("first", "again"):
        done = subprocess.run(
            [
                sys.executable, "-c", code, "read", str(article), "--engine", "espeak",
                "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / f"{name}.mp3"),
            ],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        runs.append((set(json.loads(done.stdout.splitlines()[-1])), done.stderr))
    (first, _), (again, summary) = runs
    assert "2 segments (2 from cache, 0 requests)" in summary  # every segment from the cache
    assert "newsreader.text.numbers" in again
    assert _loaded(sorted(first | again), ("cn2an", "proces")) == []
    assert (tmp_path / "again.mp3").read_bytes() == (tmp_path / "first.mp3").read_bytes()
