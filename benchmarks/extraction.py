"""Extraction quality next to the peers: ``python -m benchmarks extraction [--pages a,b]``.

Every page with a gold reading script (``tests/corpus/gold/SITE-N.gold``) is read from
``../shared/corpus/news-pages/`` and scored with ``newsreader.text.score`` (character recall and
precision, punctuation and whitespace dropped) for three readers:

- **newsreader**: ``extract(html)``: the headline and every block it would read;
- **trafilatura**: ``trafilatura.extract(html, include_comments=False)``, plain text, with the
  title its own metadata extraction finds put first (the gold starts with the headline, and a
  reader reads one, so the peer gets its best one);
- **GNE**: ``GeneralNewsExtractor().extract(html)``: its ``title`` then its ``content``.

Then the synthetic sets (``tests/corpus/synthetic/{dev,heldout}``): pages written per kind of
text a listener must or must not hear, in the shapes of real CMS templates, scored the same way;
the rules were developed on ``dev`` only, ``heldout`` was written before them and is only
scored. The peers run with their defaults otherwise. GNE is the ``bench`` extra (``pip install -e
.[bench]``); without it its columns are left out. Prints a Markdown table per page, then the means
and the worst page.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from collections.abc import Callable
from pathlib import Path

import trafilatura
from trafilatura.metadata import extract_metadata

from newsreader.text.extract import extract
from newsreader.text.score import Score, article_text, load_gold, mean_score, score

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "tests" / "corpus" / "gold"
CORPUS = ROOT.parent / "shared" / "corpus" / "news-pages"
SYNTHETIC = {
    "development": ROOT / "tests" / "corpus" / "synthetic" / "dev",
    "held out": ROOT / "tests" / "corpus" / "synthetic" / "heldout",
}
"""Pages written per kind in the shape of CMS templates: the rules were developed on the first
set; the second was written before them and is only scored."""

Reader = Callable[[str], str]


def read_newsreader(html: str) -> str:
    return article_text(extract(html))


def read_trafilatura(html: str) -> str:
    text = trafilatura.extract(html, include_comments=False) or ""
    title = extract_metadata(html, extensive=False).title or ""
    return f"{title}\n{text}"


def _gne() -> Reader | None:
    try:
        from gne import GeneralNewsExtractor  # type: ignore[import-untyped]
    except ImportError:
        return None
    extractor = GeneralNewsExtractor()

    def read_gne(html: str) -> str:
        with contextlib.redirect_stdout(io.StringIO()):  # GNE prints its own diagnostics
            result = extractor.extract(html)
        return f"{result.get('title', '')}\n{result.get('content', '')}"

    return read_gne


def _safely(reader: Reader, html: str) -> str:
    """What the reader reads; nothing when it gives up on the page (scored as reading nothing)."""
    try:
        return reader(html)
    except Exception:  # a peer's failure on one page is its score there, not a crash
        return ""


def _cell(s: Score) -> str:
    return f"{s.recall:.3f} / {s.precision:.3f}"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks extraction")
    parser.add_argument("--pages", help="comma-separated page names (default: every gold page)")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--gold", type=Path, default=GOLD)
    args = parser.parse_args(argv)
    golds = sorted(args.gold.glob("*.gold"))
    if args.pages:
        wanted = set(args.pages.split(","))
        golds = [g for g in golds if g.stem in wanted]
    readers: dict[str, Reader] = {
        "newsreader": read_newsreader,
        "trafilatura": read_trafilatura,
    }
    gne = _gne()
    if gne is not None:
        readers["GNE"] = gne
    scores: dict[str, list[Score]] = {name: [] for name in readers}
    seconds: dict[str, float] = dict.fromkeys(readers, 0.0)
    print("| page | " + " | ".join(f"{n} R / P" for n in readers) + " |")
    print("| --- |" + " --- |" * len(readers))
    for path in golds:
        html = (args.corpus / f"{path.stem}.html").read_text(encoding="utf-8")
        gold = load_gold(path).text(html)
        cells = []
        for name, reader in readers.items():
            started = time.perf_counter()
            read = _safely(reader, html)
            seconds[name] += time.perf_counter() - started
            result = score(gold, read)
            scores[name].append(result)
            cells.append(_cell(result))
        print(f"| {path.stem} | " + " | ".join(cells) + " |")
    means = [mean_score(scores[n]) for n in readers]
    print("| **mean** | " + " | ".join(f"**{r:.3f} / {p:.3f}**" for r, p in means) + " |")
    worst = [
        f"{min(s.recall for s in scores[n]):.3f} / {min(s.precision for s in scores[n]):.3f}"
        for n in readers
    ]
    print("| lowest | " + " | ".join(worst) + " |")
    print()
    print(
        f"{len(golds)} pages; R = character recall, P = character precision. Time per page: "
        + ", ".join(f"{n} {seconds[n] / max(1, len(golds)):.2f} s" for n in readers)
    )
    if args.pages:
        return
    print()
    print("Synthetic pages (written for this project, not real pages):")
    print()
    print("| set | pages | " + " | ".join(f"{n} R / P" for n in readers) + " |")
    print("| --- | ---: |" + " --- |" * len(readers))
    for name, folder in SYNTHETIC.items():
        pages = sorted(folder.glob("*.gold"))
        found: dict[str, list[Score]] = {n: [] for n in readers}
        for path in pages:
            html = path.with_suffix(".html").read_text(encoding="utf-8")
            gold = load_gold(path).text(html)
            for reader_name, reader in readers.items():
                found[reader_name].append(score(gold, _safely(reader, html)))
        cells = [_mean_cell(found[n]) for n in readers]
        print(f"| {name} | {len(pages)} | " + " | ".join(cells) + " |")


def _mean_cell(scores: list[Score]) -> str:
    recall, precision = mean_score(scores)
    worst = f"{min(s.recall for s in scores):.3f} / {min(s.precision for s in scores):.3f}"
    return f"{recall:.3f} / {precision:.3f} (lowest {worst})"
