"""Plain text is the user's own words: a single paragraph is read, every word once."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from newsreader.cli import main
from tests.audio import ffmpeg_errors

PARAGRAPH = "今年全市新建城市书房十二家，读者反映很好。晚上七点以后读者最多！书房由街道管理。"
FIRST = "今年全市新建城市书房十二家，读者反映很好。"


def run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def spoken(text: str, *extra: str) -> dict[str, Any]:
    code, out, err = run("extract", "-", "--spoken", "--json", *extra, stdin=text.encode())
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def said(data: dict[str, Any]) -> str:
    return "".join(sentence for s in data["segments"] for sentence in s["sentences"])


def test_a_single_paragraph_is_read_with_its_first_sentence_as_the_title() -> None:
    data = spoken(PARAGRAPH + "\n")
    assert data["title"] == FIRST
    assert [s["kind"] for s in data["segments"]] == ["title", "body"]
    assert said(data) == PARAGRAPH  # each sentence once, in order


def test_a_single_paragraph_without_title_reads_it_all_as_the_body() -> None:
    data = spoken(PARAGRAPH, "--no-title")
    assert {s["kind"] for s in data["segments"]} == {"body"}
    assert said(data) == PARAGRAPH


@pytest.mark.parametrize("read_title", [True, False])
def test_a_single_sentence_or_a_bare_line_is_read(read_title: bool) -> None:
    for text in ("市图书馆明天闭馆一天。", "只有一行没有标点"):
        data = spoken(text, *([] if read_title else ["--no-title"]))
        assert said(data) == text


def test_a_paragraph_opening_with_its_date_keeps_the_story_and_the_date() -> None:
    text = "城市书房开到家门口\n\n发布时间：2024-07-02。" + PARAGRAPH + "\n"
    data = spoken(text)
    assert data["title"] == "城市书房开到家门口"
    assert data["published"] == "2024-07-02T00:00:00+08:00"
    assert [b["text"] for b in data["blocks"]] == [PARAGRAPH]
    # the same paragraph alone: its first sentence after the date becomes the title
    data = spoken("发布时间：2024-07-02。" + PARAGRAPH)
    assert data["title"] == FIRST and data["published"] == "2024-07-02T00:00:00+08:00"
    assert said(data) == PARAGRAPH


def test_a_date_line_that_is_only_a_date_line_is_still_not_read() -> None:
    text = "城市书房开到家门口\n\n时间：2024-07-02，来源：本报，作者：张三\n\n" + PARAGRAPH
    data = spoken(text)
    assert data["published"] == "2024-07-02T00:00:00+08:00"
    assert said(data) == "城市书房开到家门口" + PARAGRAPH


def test_reading_one_paragraph_makes_an_mp3(tmp_path: Path) -> None:
    source = tmp_path / "one.txt"
    source.write_text(PARAGRAPH + "\n", encoding="utf-8")
    out, vtt = tmp_path / "one.mp3", tmp_path / "one.vtt"
    code, _, err = run(
        "read", str(source), "-o", str(out), "--subtitles", str(vtt),
        "--engine", "espeak", "--no-cache",
    )  # fmt: skip
    assert code == 0, err
    assert ffmpeg_errors(out) == ""
    cues = [
        line for line in vtt.read_text(encoding="utf-8").splitlines() if re.search("[一-龥]", line)
    ]
    assert "".join(cues) == PARAGRAPH
