"""The synthetic pages: one page per CMS shape with the kinds of text a listener must or must not
hear (comment sections, captions the markup marks, promotions, boxes inside the story, block
quotes, in-body titles). ``dev`` pages are the ones rules are developed on, and the gate holds
for them; ``heldout`` pages were written before the rules and are only scored (``python -m
benchmarks extraction``), so here only their gold is checked."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from newsreader.text import clean
from newsreader.text.extract import extract
from newsreader.text.score import Score, article_text, load_gold, mean_score, reading_chars, score

SYNTHETIC = Path(__file__).parent / "synthetic"
DEV = sorted((SYNTHETIC / "dev").glob("*.gold"))
HELD_OUT = sorted((SYNTHETIC / "heldout").glob("*.gold"))
MEAN_RECALL = MEAN_PRECISION = 0.99


@functools.cache
def _html(gold: Path) -> str:
    return gold.with_suffix(".html").read_text(encoding="utf-8")


def test_both_sets_have_pages_of_several_shapes() -> None:
    for pages in (DEV, HELD_OUT):
        assert len(pages) >= 5
        assert len({p.stem.split("-")[0] for p in pages}) >= 4
    assert not {p.stem for p in DEV} & {p.stem for p in HELD_OUT}


@pytest.mark.parametrize(
    "gold", DEV + HELD_OUT, ids=[f"{g.parent.name}/{g.stem}" for g in DEV + HELD_OUT]
)
def test_gold_is_a_reading_script(gold: Path) -> None:
    blocks = load_gold(gold).rebuild(_html(gold))
    kinds = [kind for kind, _ in blocks]
    assert kinds[0] == "title" and kinds.count("title") == 1 and "para" in kinds
    assert len(reading_chars("".join(text for _, text in blocks))) >= 100
    for _, text in blocks:
        assert not clean.is_editorial(text), text[:20]
        assert not clean.is_notice(text), text[:20]
        assert not clean.is_caption(text), text[:20]


def _score(gold: Path) -> Score:
    html = _html(gold)
    return score(load_gold(gold).text(html), article_text(extract(html, source=gold.name)))


def test_the_development_pages_are_read_as_their_gold() -> None:
    recall, precision = mean_score(_score(g) for g in DEV)
    assert recall >= MEAN_RECALL, f"mean recall {recall:.3f}"
    assert precision >= MEAN_PRECISION, f"mean precision {precision:.3f}"
