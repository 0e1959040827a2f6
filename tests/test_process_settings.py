"""At exit the CLI's process skips the interpreter's garbage collections over what it imported.

Tearing down numpy, scipy and PyAV collected every object they made several times over: a quarter
to a third of a second after a reading's file was complete (the throughput benchmark's wall time
counts it). ``newsreader.cli`` registers ``gc.freeze`` as an exit handler; this runs a real
``read`` in its own process and looks, from an exit handler registered before the CLI was
imported (so it runs after the CLI's), at whether the objects were frozen by then, and checks
that the reading is complete and the exit status kept.
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
