"""What the CLI says: an option mistake in any command is one line and exit 2, and the small
messages (timeouts, binary input, an unknown locale, the feed summary) say the right thing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsreader.cli import main
from tests.podcast.newsroom import STORIES, rss
from tests.standin.server import EdgeStandin


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("newsreader: error: "), lines[0]
    return lines[0].removeprefix("newsreader: error: ")


@pytest.fixture
def article(tmp_path: Path) -> Path:
    path = tmp_path / "a.txt"
    path.write_text("标题\n\n正文第一句。正文第二句。\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["read", "A", "--engine", "foo"], "--engine must be auto, edge or espeak, not 'foo'"),
        (["read", "A", "--fallback", "x"], "--fallback must be none or espeak, not 'x'"),
        (["read", "A", "--concurrency", "many"], "--concurrency: 'many' is not a whole number"),
        (["read", "A", "--timeout", "soon"], "--timeout: 'soon' is not a number"),
        (["read", "A", "--no-such"], "no such option '--no-such'"),
        (["read"], "missing argument 'SOURCE'"),
        (["extract"], "missing argument 'SOURCE'"),
        (["extract", "A", "--spken"], "no such option '--spken'"),
        (["voices", "--bogus"], "no such option '--bogus'"),
        (["feed", "A", "--out", "o", "--base-url", "https://x/", "--limit", "0"], "--limit: 0 is"),
        (["feed"], "missing argument 'SOURCE'"),
        (["feed", "A", "--out", "o", "--base-url", "https://x/", "--engine", "x"], "--engine must"),
        (["serve", "--port", "abc"], "--port: 'abc' is not a whole number"),
        (["serve", "--port", "70000"], "--port: 70000 is not in the range"),
        (["serve", "--engine", "neural"], "--engine must be auto, edge or espeak, not 'neural'"),
        (["nosuch"], "no such command 'nosuch'"),
    ],
)
def test_an_option_mistake_is_one_line_naming_the_option(
    article: Path, args: list[str], expected: str
) -> None:
    args = [str(article) if a == "A" else a for a in args]
    code, out, err = run(*args)
    assert code == 2, err
    line = one_error_line(err)
    assert line.startswith(expected), line
    assert line.endswith(" --help').") and "Usage:" not in err
    assert out == ""


def test_a_real_process_prints_one_line_for_a_bad_choice(article: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "newsreader", "read", str(article), "--engine", "foo"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "newsreader: error: --engine must be auto, edge or espeak, not 'foo' "
        "(see 'newsreader read --help').\n"
    )


def test_help_is_still_help() -> None:
    code, out, _ = run("read", "--help")
    assert code == 0 and out.startswith("Usage:")
    code, out, err = run()
    assert "Commands:" in out + err  # a bare command shows the group's help, not an error


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_timeout_names_the_option(article: Path, value: str) -> None:
    code, _, err = run("read", str(article), "--engine", "espeak", "--timeout", value)
    assert code == 2
    assert one_error_line(err).startswith(f"--timeout {value} is out of range")


def test_binary_input_says_it_is_not_text_and_suggests_no_feed(tmp_path: Path) -> None:
    program = tmp_path / "ls"
    program.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 40)
    code, _, err = run("read", str(program), "--engine", "espeak")
    assert code == 3
    line = one_error_line(err)
    assert "is binary, not text or HTML" in line
    assert "feed" not in line


def test_voices_for_a_locale_only_online_says_so_when_offline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import edge_tts.voices

    monkeypatch.setattr(edge_tts.voices, "VOICE_LIST", "http://127.0.0.1:9/voices?x=1")
    code, out, err = run("voices", "--locale", "zh-TW")
    assert code == 2
    line = one_error_line(err)
    assert "no embedded voice speaks --locale zh-TW" in line
    assert "online voice list cannot be reached" in line
    assert line.endswith("the embedded voices are zh-CN, zh-HK.")
    assert out == ""
    # a locale the embedded voices do speak still lists them (with the warning)
    code, out, err = run("voices", "--locale", "zh_hk")
    assert code == 0
    assert "yue" in out and "online voice list unavailable" in err


def test_voices_for_an_unknown_locale_online(edge_standin: EdgeStandin) -> None:
    code, out, err = run("voices", "--locale", "zh-XX")
    assert code == 2
    assert one_error_line(err).startswith("no voice for --locale zh-XX: zh voices exist for ")
    assert "zh-CN" in err and "zh-TW" in err
    code, out, _ = run("voices", "--locale", "zh-TW")
    assert code == 0 and "zh-TW-HsiaoChenNeural" in out


def test_the_feed_summary_counts_one_episode_in_the_singular(tmp_path: Path) -> None:
    source = tmp_path / "rss.xml"
    source.write_bytes(rss([STORIES[0]], "http://127.0.0.1:9", full=True))
    code, _, err = run(
        "feed", str(source), "--out", str(tmp_path / "pod"), "--base-url", "https://x.cn/p/",
        "--engine", "espeak", "--no-cache",
    )  # fmt: skip
    assert code == 0, err
    assert ": 1 episode (1 new," in err, err
