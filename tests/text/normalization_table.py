"""The speech-normalization case table (``normalization_cases.tsv``) and its scoring.

One row per line of news text: its category, the input, what the voice must be given, the split
(``dev``: the rules are developed on it; ``heldout``: only ever scored) and a note. A dev row whose
note starts with ``known-failing:`` may fail; the note says why.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

TABLE = Path(__file__).with_name("normalization_cases.tsv")
SPLITS = ("dev", "heldout")
KNOWN_FAILING = "known-failing:"


@dataclass(frozen=True)
class Case:
    category: str
    text: str
    expected: str
    split: str
    note: str
    line: int

    @property
    def known_failing(self) -> bool:
        return self.note.startswith(KNOWN_FAILING)


def load_cases(path: Path = TABLE) -> list[Case]:
    """Every row of the table; a malformed row raises ``ValueError`` naming its line."""
    lines = [
        (number, line)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if line.strip() and not line.startswith("#")
    ]
    header, *rows = lines
    if header[1].split("\t") != ["category", "input", "expected", "split", "note"]:
        raise ValueError(f"{path.name}:{header[0]}: unexpected header {header[1]!r}")
    cases = []
    for number, line in rows:
        fields = next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE))
        if len(fields) != 5 or fields[3] not in SPLITS or not all(fields[:3]):
            raise ValueError(f"{path.name}:{number}: want 5 tab-separated fields, got {fields!r}")
        category, text, expected, split, note = fields
        cases.append(Case(category, text, expected, split, note, number))
    return cases


@dataclass(frozen=True)
class Tally:
    right: int = 0
    total: int = 0

    def add(self, ok: bool) -> Tally:
        return Tally(self.right + ok, self.total + 1)

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.right}/{self.total} ({100 * self.accuracy:.1f} %)"


def tally(
    cases: Iterable[Case], say: Callable[[str], str]
) -> tuple[dict[tuple[str, str], Tally], list[tuple[Case, str]]]:
    """Per (split, category) and (split, "all") counts, and every case ``say`` got wrong."""
    counts: dict[tuple[str, str], Tally] = defaultdict(Tally)
    wrong = []
    for case in cases:
        try:
            spoken = say(case.text)
        except Exception as error:  # a peer that crashes on a line is wrong on it
            spoken = f"<{type(error).__name__}>"
        ok = spoken == case.expected
        for key in ((case.split, case.category), (case.split, "all")):
            counts[key] = counts[key].add(ok)
        if not ok:
            wrong.append((case, spoken))
    return dict(counts), wrong
