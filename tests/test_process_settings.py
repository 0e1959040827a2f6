"""The CLI's process settings: a short GIL switch interval, and no garbage collection at exit.

Tearing down numpy, scipy and PyAV collected every object they made several times over: a quarter
to a third of a second after a reading's file was complete (the throughput benchmark's wall time
counts it). ``newsreader.cli`` registers ``gc.freeze`` as an exit handler; this runs a real
``read`` in its own process and looks, from an exit handler registered before the CLI was
imported (so it runs after the CLI's), at whether the objects were frozen by then, and checks
that the reading is complete and the exit status kept. The same handler reports the switch
interval the run had (``newsreader.cli`` says why it is 0.5 ms).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from newsreader.audio.ffmpeg import ffmpeg_exe

ROOT = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent(
    """
    import atexit, gc, sys
    atexit.register(lambda: sys.stderr.write(f"frozen at exit: {gc.get_freeze_count()}\\n"))
    atexit.register(lambda: sys.stderr.write(f"switch interval: {sys.getswitchinterval()}\\n"))
    sys.argv[0] = "newsreader"
    from newsreader.cli import main
    main()
    """
)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def _frozen(stderr: str) -> int:
    line = next(line for line in stderr.splitlines() if line.startswith("frozen at exit: "))
    return int(line.rpartition(" ")[2])


def test_a_reading_freezes_its_objects_before_the_interpreter_tears_down(tmp_path: Path) -> None:
    article = tmp_path / "article.txt"
    article.write_text("城市书房开到家门口\n\n社区书房开到家门口，居民们在书房里读书。", "utf-8")
    out = tmp_path / "out.mp3"
    done = _run("read", str(article), "--engine", "espeak", "-o", str(out), "--no-cache", "-q")
    assert done.returncode == 0, done.stderr
    assert _frozen(done.stderr) > 10_000  # numpy, scipy, PyAV and the rest were imported
    # the event loop gets the GIL back from the measuring threads within 0.5 ms, not 5 ms
    assert "switch interval: 0.0005" in done.stderr
    assert out.stat().st_size > 1000
    check = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(out), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0 and not check.stderr.strip(), check.stderr


def test_a_usage_error_keeps_its_exit_status(tmp_path: Path) -> None:
    done = _run("read", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "x.mp3"))
    assert done.returncode != 0
    assert _frozen(done.stderr) > 0
    assert not (tmp_path / "x.mp3").exists()


def test_a_usage_error_while_the_client_is_imported_exits_cleanly(tmp_path: Path) -> None:
    """``read`` starts importing the edge client in a background thread from its first line; a
    usage error found before that import ends made the process exit while it ran. With the
    objects frozen at exit that crashed the interpreter (SIGSEGV) in about 1 run in 3; now the
    exit waits for the import and freezes only when no other thread is left."""
    article = tmp_path / "article.txt"
    article.write_text("城市书房开到家门口\n\n社区书房开到家门口，居民们在书房里读书。", "utf-8")
    command = [sys.executable, "-m", "newsreader", "read", str(article), "-o", "-"]
    for _ in range(12):
        done = subprocess.run(
            [*command, "--fallback", "espeak"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("newsreader: error: --fallback espeak cannot be used")
        assert done.stdout == ""
