#!/usr/bin/env python3
"""Set-up and chores with nothing but Python >= 3.11: a venv in .venv, the project installed in it.

    python3 tasks.py example   # install if needed, then read the bundled example into audio/
    python3 tasks.py test      # install if needed, then ruff, mypy and the test suite
    python3 tasks.py bench     # the benchmarks behind the README's Performance table

Installation is repeated only when pyproject.toml changes (a stamp in .venv records its hash).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".newsreader-stamp"
EXAMPLE = ROOT / "examples" / "城市书房.txt"


def run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    result = subprocess.run([str(a) for a in args], cwd=ROOT, check=False)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_installed() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted and PY.exists():
        return
    if not PY.exists():
        print(f"+ creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PY, "-m", "pip", "install", "--quiet", "-e", ".[test,bench]")
    STAMP.write_text(wanted)


def example() -> None:
    ensure_installed()
    run(
        BIN / "newsreader",
        "read",
        EXAMPLE,
        "-o",
        "audio/example.mp3",
        "--subtitles",
        "audio/example.vtt",
    )


def test() -> None:
    ensure_installed()
    # The service's browser tests drive Debian's chromium through Playwright, which cannot
    # download a browser of its own here; a CJK font makes their screenshots legible.
    if not Path("/usr/bin/chromium").exists() and os.name == "posix" and os.geteuid() == 0:
        os.environ.setdefault("DEBIAN_FRONTEND", "noninteractive")
        run("apt-get", "update")
        run("apt-get", "install", "-y", "chromium", "fonts-wqy-microhei")
    run(BIN / "ruff", "check", "src", "tests", "benchmarks", "tasks.py")
    run(BIN / "ruff", "format", "--check", "src", "tests", "benchmarks", "tasks.py")
    run(BIN / "mypy")
    run(PY, "-m", "pytest", "-q", *sys.argv[2:])


def bench() -> None:
    ensure_installed()
    run(PY, "-m", "benchmarks", *sys.argv[2:])


COMMANDS = {"example": example, "test": test, "bench": bench}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(COMMANDS)}}} [args]")
    COMMANDS[sys.argv[1]]()
