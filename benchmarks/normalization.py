"""Speech-normalization accuracy next to cn2an: ``python -m benchmarks normalization``.

Every row of ``tests/text/normalization_cases.tsv`` is said by two normalizers and compared with
the row's expected text, exactly (a case is right only when the whole line is):

- **newsreader**: ``normalize_for_speech(text)`` (zh-CN);
- **cn2an**: ``cn2an.transform(text, "an2cn")``, the converter newsreader uses for plain integers,
  run on the whole line as its own normalizer.

Prints one Markdown table, category × split, then the speed of ``normalize_for_speech`` in ms per
1,000 sentences (all cases, best of ``--rounds``, the number cache emptied before each pass).
``--failures dev|heldout`` also lists the cases newsreader gets wrong in that split.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the case table lives in ``tests/``, not in the package
    sys.path.insert(0, str(ROOT))

from tests.text.normalization_table import SPLITS, Case, Tally, load_cases, tally  # noqa: E402

from newsreader.text.normalize import normalize_for_speech  # noqa: E402
from newsreader.text.numbers import integer  # noqa: E402


def _cn2an(text: str) -> str:
    import cn2an

    with warnings.catch_warnings():  # it warns on numbers over 16 digits and goes on
        warnings.simplefilter("ignore")
        result: str = cn2an.transform(text, "an2cn")
    return result


def _speed(cases: list[Case], rounds: int) -> float:
    """Milliseconds per 1,000 sentences, the best of ``rounds`` passes over every case, each
    pass with the number cache emptied (a new article's numbers are new)."""
    texts = [case.text for case in cases]
    normalize_for_speech(texts[0])  # imports and OpenCC set-up are not per sentence
    best = float("inf")
    for _ in range(rounds):
        integer.cache_clear()
        start = time.perf_counter()
        for text in texts:
            normalize_for_speech(text)
        best = min(best, time.perf_counter() - start)
    return 1000 * best * 1000 / len(texts)


def _cell(counts: dict[tuple[str, str], Tally], split: str, category: str) -> str:
    found = counts.get((split, category))
    return f"{100 * found.accuracy:.1f} %" if found else "–"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks normalization")
    parser.add_argument("--failures", choices=SPLITS, help="list newsreader's wrong cases")
    parser.add_argument("--rounds", type=int, default=5, help="speed passes (best is kept)")
    args = parser.parse_args(argv)

    cases = load_cases()
    ours, wrong = tally(cases, normalize_for_speech)
    peer, _ = tally(cases, _cn2an)
    categories = sorted({case.category for case in cases})

    print("| category | dev cases | newsreader | cn2an | held-out cases | newsreader | cn2an |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for category in [*categories, "all"]:
        cells = []
        for split in SPLITS:
            found = ours.get((split, category))
            cells += [
                str(found.total if found else 0),
                _cell(ours, split, category),
                _cell(peer, split, category),
            ]
        name = "**all**" if category == "all" else category
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    for split in SPLITS:
        print(f"- {split}: newsreader {ours[(split, 'all')]}, cn2an {peer[(split, 'all')]}")
    print(f"- speed: {_speed(cases, args.rounds):.0f} ms per 1,000 sentences (newsreader)")

    if args.failures:
        print(f"\nnewsreader's wrong {args.failures} cases:\n")
        for case, spoken in wrong:
            if case.split == args.failures:
                print(f"- [{case.category}] {case.text} → {spoken} (want {case.expected})")


if __name__ == "__main__":
    main(sys.argv[1:])
