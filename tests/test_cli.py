"""The CLI: every user mistake is one line and a non-zero exit, and never a partial file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsreader.cli import main
from tests.standin.server import EdgeStandin
from tests.webserver import LocalWeb, Route

ARTICLE = (
    "城市书房开到家门口\n\n今年全市新建书房12家。读者反映很好。\n\n"
    "夜间读者\n\n晚上7点以后读者最多。\n"
)


def run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def article(tmp_path: Path) -> Path:
    path = tmp_path / "article.txt"
    path.write_text(ARTICLE, encoding="utf-8")
    return path


def assert_one_line_error(code: int, stderr: str, pattern: str) -> None:
    assert code not in (0, 1), f"exit code {code}: {stderr}"
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("newsreader: error: ")
    assert pattern in lines[0], lines[0]
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--rate", "fast"], "--rate 'fast' is not valid"),
        (["--rate", "+500%"], "out of range"),
        (["--pitch", "+5%"], "--pitch '+5%' is not valid"),
        (["--volume", "10"], "--volume '10' is not valid"),
        (["--voice", "Xiaoxiao"], "is not a voice name"),
        (["--concurrency", "0"], "--concurrency 0 is out of range"),
        (["-o", "out.wav"], "must end in .mp3"),
        (["--subtitles", "x.txt"], "must end in .vtt or .srt"),
    ],
)
def test_bad_options(article: Path, tmp_path: Path, args: list[str], pattern: str) -> None:
    code, _, err = run("read", str(article), "--engine", "espeak", *args)
    assert_one_line_error(code, err, pattern)
    assert not list(tmp_path.glob("*.mp3"))


def test_bad_sources(tmp_path: Path, web: LocalWeb) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"  \n")
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(bytes(range(256)) * 10)
    big = tmp_path / "big.txt"
    big.write_bytes("字".encode() * 2_000_000)
    web.routes["/gone"] = Route(b"", 404)
    cases = [
        (str(tmp_path / "missing.txt"), "no such file"),
        (str(empty), "empty"),
        (str(binary), "binary"),
        (str(big), "limit"),
        (str(tmp_path), "is a directory"),
        ("ftp://example.com/a.txt", "unsupported URL scheme"),
        (web.url("/gone"), "HTTP 404"),
        ("http://127.0.0.1:9/x", "could not fetch"),
    ]
    for source, pattern in cases:
        code, _, err = run("read", source, "-o", str(tmp_path / "o.mp3"), "--engine", "espeak")
        assert_one_line_error(code, err, pattern)
        assert not (tmp_path / "o.mp3").exists()


def test_page_without_an_article(tmp_path: Path) -> None:
    page = tmp_path / "nav.html"
    page.write_text(
        "<html><body>"
        + "".join(f'<a href="/{i}">栏目{i}</a>' for i in range(30))
        + "</body></html>",
        encoding="utf-8",
    )
    code, _, err = run("read", str(page), "--engine", "espeak")
    assert_one_line_error(code, err, "no article text")


def test_stdin_and_default_output_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(
        "read", "-", "--engine", "espeak", "--no-cache", stdin=ARTICLE.encode("gb18030")
    )
    assert code == 0, err
    out = tmp_path / "audio" / "城市书房开到家门口.mp3"
    assert out.is_file() and out.stat().st_size > 1000
    assert f"wrote {Path('audio') / out.name}" in err
    assert list(tmp_path.rglob("*.tmp")) == []


def test_existing_output_survives_a_failed_run(article: Path, tmp_path: Path) -> None:
    out = tmp_path / "keep.mp3"
    out.write_bytes(b"previous")
    code, _, _ = run("read", str(article), "-o", str(out), "--rate", "bad")
    assert code != 0
    assert out.read_bytes() == b"previous"


def test_unknown_voice_is_refused_when_the_voice_list_is_reachable(
    edge_standin: EdgeStandin, article: Path, tmp_path: Path
) -> None:
    code, _, err = run("read", str(article), "--voice", "zh-CN-NobodyNeural", "--engine", "edge")
    assert_one_line_error(code, err, "unknown voice")
    assert edge_standin.requests == []


def test_edge_unreachable_is_one_line(article: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_tts.communicate

    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", "ws://127.0.0.1:9/edge/v1?x=1")
    code, _, err = run("read", str(article), "--engine", "edge")
    assert_one_line_error(code, err, "online voice service is unreachable")


def test_auto_falls_back_to_the_embedded_voice_with_a_warning(
    article: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edge_tts.communicate

    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", "ws://127.0.0.1:9/edge/v1?x=1")
    out = tmp_path / "auto.mp3"
    code, _, err = run("read", str(article), "-o", str(out), "--no-cache")
    assert code == 0, err
    assert "warning: online voice unreachable" in err
    assert "engine espeak" in err
    assert out.is_file()


def test_extract_plain_json_and_spoken(article: Path) -> None:
    code, out, _ = run("extract", str(article))
    assert code == 0
    assert out.splitlines()[0] == "# 城市书房开到家门口"
    assert "## 夜间读者" in out
    code, out, _ = run("extract", str(article), "--spoken")
    assert code == 0
    assert "今年全市新建书房十二家。" in out
    code, out, _ = run("extract", str(article), "--spoken", "--json")
    data = json.loads(out)
    assert data["title"] == "城市书房开到家门口"
    assert [b["kind"] for b in data["blocks"]] == ["paragraph", "heading", "paragraph"]
    assert [s["kind"] for s in data["segments"]] == ["title", "body", "heading", "body"]
    assert data["segments"][1]["sentences"] == ["今年全市新建书房十二家。", "读者反映很好。"]


def test_voices_online_and_offline(
    edge_standin: EdgeStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run("voices", "--locale", "zh-CN")
    assert code == 0
    assert "zh-CN-XiaoxiaoNeural" in out and "cmn" in out
    assert "en-US" not in out
    import edge_tts.voices

    monkeypatch.setattr(edge_tts.voices, "VOICE_LIST", "http://127.0.0.1:9/voices?x=1")
    code, out, err = run("voices")
    assert code == 0
    assert "online voice list unavailable" in err
    assert "Neural" not in out and "cmn" in out


def test_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "newsreader", "read", str(tmp_path / "nope.txt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 3
    assert proc.stderr.strip().count("\n") == 0
    assert "no such file" in proc.stderr
