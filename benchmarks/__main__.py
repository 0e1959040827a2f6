"""Run a benchmark: ``python -m benchmarks NAME [args]``; with no NAME, list them.

Each ``benchmarks/NAME.py`` has ``main(argv: list[str]) -> None`` that prints a Markdown table. The
benchmarks are reproducible performance runs, not pass/fail tests.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    folder = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(folder)]) if not m.name.startswith("_"))


def run(argv: list[str]) -> None:
    names = available()
    if not argv or argv[0] not in names:
        sys.exit(f"usage: python -m benchmarks {{{'|'.join(names)}}} [args]")
    module = importlib.import_module(f"benchmarks.{argv[0]}")
    module.main(argv[1:])


if __name__ == "__main__":
    run(sys.argv[1:])
