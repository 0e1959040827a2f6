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
import time
import venv
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".newsreader-stamp"
EXAMPLE = ROOT / "examples" / "城市书房.txt"

# What the tests need from Debian, each with a file that shows it is installed. The font is
# checked on its own: a machine may have chromium without any CJK font (screenshots show boxes).
BROWSER_PACKAGES = {
    "chromium": Path("/usr/bin/chromium"),
    "fonts-wqy-microhei": Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
}
# The scale-out tests start a real Redis server of their own (one per test session).
SERVER_PACKAGES = {
    "redis-server": Path("/usr/bin/redis-server"),
}
# Another apt or dpkg process (unattended-upgrades on a new machine) holds the lock for a while;
# wait for it rather than fail, but not for ever.
APT_LOCK_WAIT = 600.0
APT_LOCK_MESSAGES = ("Could not get lock", "Unable to acquire the dpkg frontend lock")


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


def missing_packages(wanted: dict[str, Path]) -> list[str]:
    return [name for name, marker in wanted.items() if not marker.exists()]


def apt_get(
    *args: str,
    command: Sequence[str] = ("apt-get",),
    wait: float = APT_LOCK_WAIT,
    poll: float = 5.0,
) -> None:
    """Run apt-get, waiting (at most ``wait`` seconds) while another process holds apt's lock."""
    argv = [*command, "-o", f"DPkg::Lock::Timeout={int(wait)}", *args]
    print("+", " ".join(argv), flush=True)
    deadline = time.monotonic() + wait
    while True:
        result = subprocess.run(argv, cwd=ROOT, check=False, capture_output=True, text=True)
        sys.stdout.write(result.stdout)
        locked = any(message in result.stderr for message in APT_LOCK_MESSAGES)
        if result.returncode == 0 or not locked or time.monotonic() >= deadline:
            sys.stderr.write(result.stderr)
            break
        print(f"+ apt is busy in another process; trying again in {poll:g} s", flush=True)
        time.sleep(poll)
    if result.returncode:
        why = " (another apt process kept its lock)" if locked else ""
        sys.exit(f"apt-get {' '.join(args)} failed with exit code {result.returncode}{why}")


def test() -> None:
    ensure_installed()
    # The service's browser tests drive Debian's chromium through Playwright, which cannot
    # download a browser of its own here; a CJK font makes their screenshots legible. The
    # scale-out tests start Debian's redis-server themselves.
    missing = missing_packages(BROWSER_PACKAGES | SERVER_PACKAGES)
    if missing and os.name == "posix" and os.geteuid() == 0:
        os.environ.setdefault("DEBIAN_FRONTEND", "noninteractive")
        apt_get("update")
        apt_get("install", "-y", *missing)
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
