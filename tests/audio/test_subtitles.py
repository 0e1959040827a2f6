"""WebVTT and SRT output: exact formatting, checked against ffmpeg's own subtitle parsers."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from newsreader.audio.ffmpeg import ffmpeg_exe
from newsreader.audio.subtitles import to_srt, to_vtt, write_subtitles
from newsreader.errors import OutputError, UsageError
from newsreader.models import Cue

CUES = (
    Cue(0.0, 1.5, "第一句。"),
    Cue(1.5, 2.25, "一行\n\n两行"),
    Cue(3661.25, 3662.0, "A & B <c> -->"),
)


def test_vtt_format() -> None:
    assert to_vtt(CUES) == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:01.500\n"
        "第一句。\n"
        "\n"
        "00:00:01.500 --> 00:00:02.250\n"
        "一行\n"
        "两行\n"
        "\n"
        "01:01:01.250 --> 01:01:02.000\n"
        "A &amp; B &lt;c&gt; --&gt;\n"
    )


def test_srt_format() -> None:
    assert to_srt(CUES) == (
        "1\n"
        "00:00:00,000 --> 00:00:01,500\n"
        "第一句。\n"
        "\n"
        "2\n"
        "00:00:01,500 --> 00:00:02,250\n"
        "一行\n"
        "两行\n"
        "\n"
        "3\n"
        "01:01:01,250 --> 01:01:02,000\n"
        "A & B <c> -->\n"
    )


def test_times_round_to_milliseconds_and_hours_can_exceed_a_day() -> None:
    cues = (Cue(0.0004, 0.0996, "甲"), Cue(90000.0, 90000.001, "乙"))
    assert "00:00:00.000 --> 00:00:00.100\n" in to_vtt(cues)
    assert "25:00:00,000 --> 25:00:00,001\n" in to_srt(cues)


def test_no_cues() -> None:
    assert to_vtt(()) == "WEBVTT\n"
    assert to_srt(()) == ""


def test_negative_time_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        to_vtt((Cue(-0.5, 1.0, "甲"),))


def test_ffmpeg_reads_our_vtt_as_our_srt(tmp_path: Path) -> None:
    # ffmpeg parses the WebVTT (entities decoded) and writes SRT: it must be ours, cue for cue.
    path = tmp_path / "reading.vtt"
    write_subtitles(path, CUES)
    run = subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path), "-f", "srt", "-"],
        capture_output=True,
        check=False,
    )
    assert run.returncode == 0 and run.stderr == b""
    assert run.stdout.decode("utf-8").rstrip("\n") == to_srt(CUES).rstrip("\n")


@pytest.mark.parametrize(("name", "render"), [("a.vtt", to_vtt), ("a.SRT", to_srt)])
def test_write_chooses_the_format_by_suffix(
    tmp_path: Path, name: str, render: Callable[[Sequence[Cue]], str]
) -> None:
    path = tmp_path / name
    write_subtitles(path, CUES)
    assert path.read_bytes() == render(CUES).encode("utf-8")
    assert os.listdir(tmp_path) == [name]


def test_other_suffix_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"subtitles must end in \.vtt or \.srt"):
        write_subtitles(tmp_path / "a.txt", CUES)
    assert os.listdir(tmp_path) == []


def test_missing_folder_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        write_subtitles(tmp_path / "nope" / "a.vtt", CUES)
    assert os.listdir(tmp_path) == []


def test_rewrite_replaces_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "a.srt"
    path.write_text("old", encoding="utf-8")
    write_subtitles(path, CUES[:1])
    assert path.read_text(encoding="utf-8") == to_srt(CUES[:1])
    assert os.listdir(tmp_path) == ["a.srt"]
