"""Output paths: checked before any work, and the MP3 and its subtitles land together or not at all.

Failures here are real ones: a file where a folder should be, a folder where a file should be,
/proc (where nothing can be created), a temporary file that vanishes before the rename.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsreader import pipeline
from newsreader.audio.atomic import atomic_write, written_together
from newsreader.cli import main
from newsreader.config import Settings
from newsreader.errors import OutputError
from newsreader.models import Article, Script
from newsreader.text.extract import extract
from tests.audio import ffmpeg_errors
from tests.webserver import LocalWeb

Rendered = tuple[pipeline.Rendered, Article, Script]
ARTICLE = "城市书房开到家门口\n\n今年全市新建书房12家。读者反映很好。\n"
HAS_PROC = Path("/proc/self").is_dir() and sys.platform.startswith("linux")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stderr


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("newsreader: error: "), lines[0]
    assert "Traceback" not in stderr
    return lines[0]


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture
def article(tmp_path: Path) -> Path:
    path = tmp_path / "article.txt"
    path.write_text(ARTICLE, encoding="utf-8")
    return path


@pytest.mark.parametrize("unwritable", ["file-as-folder", "proc"])
def test_subtitles_that_cannot_be_written_leave_the_existing_mp3_alone(
    article: Path, tmp_path: Path, unwritable: str
) -> None:
    if unwritable == "proc" and not HAS_PROC:
        pytest.skip("needs Linux /proc")
    keep = tmp_path / "keep.mp3"
    keep.write_bytes(b"OLD\n")
    subtitles = "/proc/y.vtt" if unwritable == "proc" else str(article / "y.vtt")
    code, err = run(
        "read", str(article), "-o", str(keep), "--subtitles", subtitles,
        "--engine", "espeak", "--no-cache",
    )  # fmt: skip
    assert code == 6, err
    assert f"cannot write {subtitles}" in one_error_line(err)
    assert keep.read_bytes() == b"OLD\n"
    assert files_in(tmp_path) == {"keep.mp3", "article.txt"}


def bad_outputs(tmp_path: Path, article: Path) -> list[tuple[list[str], str]]:
    (tmp_path / "folder.mp3").mkdir()
    cases = [
        (["-o", str(article / "x.mp3")], f"{article} is a file, not a folder"),
        (["-o", str(article / "sub" / "x.mp3")], f"{article} is a file, not a folder"),
        (["--subtitles", str(article / "x.vtt")], f"{article} is a file, not a folder"),
        (["-o", str(tmp_path / "folder.mp3")], "it is a folder"),
        (["-o", str(tmp_path / ("长" * 90 + ".mp3"))], "longer than the 255 bytes"),
    ]
    if HAS_PROC:
        cases += [
            (["-o", "/proc/x.mp3"], "a file cannot be created in /proc"),
            (["-o", "/proc/sub/x.mp3"], "a file cannot be created in /proc"),
            (["--subtitles", "/proc/sub/x.srt"], "a file cannot be created in /proc"),
        ]
    return cases


def test_every_output_path_is_checked_before_the_page_is_fetched(
    web: LocalWeb, tmp_path: Path, article: Path
) -> None:
    url = web.page("/a.html", f"<html><body><h1>标题</h1><p>{'正文句子。' * 20}</p></body></html>")
    for args, pattern in bad_outputs(tmp_path, article):
        code, err = run("read", url, "--engine", "espeak", "--no-cache", *args)
        assert code == 6, (args, err)
        assert pattern in one_error_line(err), args
        assert web.requests == [], args  # nothing fetched, so nothing synthesized
    assert files_in(tmp_path) == {"article.txt", "folder.mp3"}  # the probes left nothing
    assert article.read_text(encoding="utf-8") == ARTICLE


def test_the_default_output_folder_is_checked_before_the_fetch(
    web: LocalWeb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("audio").write_text("a file where the default output folder should be")
    url = web.page("/a.html", f"<html><body><h1>标题</h1><p>{'正文句子。' * 20}</p></body></html>")
    code, err = run("read", url, "--engine", "espeak", "--no-cache")
    assert code == 6, err
    assert "audio is a file, not a folder" in one_error_line(err)
    assert web.requests == []


def test_a_real_process_reports_an_unwritable_output_in_one_line(
    article: Path, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "newsreader", "read", str(article), "--engine", "espeak",
         "-o", str(article / "x.mp3")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 6, proc.stderr
    one_error_line(proc.stderr)


def test_writing_over_the_input_is_refused(tmp_path: Path) -> None:
    # A text file may be called anything; writing the MP3 over it would destroy the article.
    source = tmp_path / "article.mp3"
    source.write_text(ARTICLE, encoding="utf-8")
    os.symlink(source, tmp_path / "same.vtt")
    for args in (["-o", str(source)], ["--subtitles", str(tmp_path / "same.vtt")]):
        code, err = run("read", str(source), "--engine", "espeak", "--no-cache", *args)
        assert code == 2, err
        assert "is the input file" in one_error_line(err)
        assert source.read_text(encoding="utf-8") == ARTICLE
    assert files_in(tmp_path) == {"article.mp3", "same.vtt"}


def test_missing_folders_are_made_and_both_files_written(article: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "a.mp3"
    vtt = tmp_path / "other" / "a.vtt"
    code, err = run(
        "read", str(article), "-o", str(out), "--subtitles", str(vtt),
        "--engine", "espeak", "--no-cache",
    )  # fmt: skip
    assert code == 0, err
    assert ffmpeg_errors(out) == ""
    assert vtt.read_text(encoding="utf-8").startswith("WEBVTT")
    assert files_in(out.parent) == {"a.mp3"} and files_in(vtt.parent) == {"a.vtt"}


# ── the paired write itself ────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    settings = Settings(engine="espeak", use_cache=False)
    article = extract(ARTICLE, source="a.txt")
    script = pipeline.make_script(article, settings)
    return asyncio.run(pipeline.render(script, settings)), article, script


def test_subtitles_that_fail_at_the_rename_leave_the_old_mp3(
    tmp_path: Path, rendered: Rendered
) -> None:
    # A folder at the subtitles path: both temporary files are written, the renames never start.
    out, vtt = tmp_path / "a.mp3", tmp_path / "a.vtt"
    out.write_bytes(b"old mp3")
    vtt.mkdir()
    (vtt / "inside").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write .*a\.vtt: it is a directory"):
        pipeline.write_outputs(*rendered, out, vtt)
    assert out.read_bytes() == b"old mp3"
    assert files_in(tmp_path) == {"a.mp3", "a.vtt"}
    # and with no old MP3, none appears
    out.unlink()
    with pytest.raises(OutputError):
        pipeline.write_outputs(*rendered, out, vtt)
    assert files_in(tmp_path) == {"a.vtt"}


def _vanish(temp_of: Path) -> None:
    """Remove the temporary file waiting to become ``temp_of``: its rename will fail."""
    (temp,) = [p for p in temp_of.parent.iterdir() if p.name.startswith(f".{temp_of.name}.")]
    temp.unlink()


@pytest.mark.parametrize("had_old_files", [True, False])
def test_a_second_rename_that_fails_puts_the_first_file_back(
    tmp_path: Path, had_old_files: bool
) -> None:
    first, second = tmp_path / "a.mp3", tmp_path / "sub" / "a.vtt"
    second.parent.mkdir()
    if had_old_files:
        first.write_bytes(b"old audio")
        second.write_bytes(b"old subtitles")
    with pytest.raises(OutputError, match=r"cannot write .*a\.vtt"), written_together():
        atomic_write(first, (b"new ", b"audio"))
        atomic_write(second, b"new subtitles")
        assert not had_old_files or first.read_bytes() == b"old audio"  # nothing in place yet
        _vanish(second)
    if had_old_files:
        assert first.read_bytes() == b"old audio"
        assert second.read_bytes() == b"old subtitles"
        assert files_in(tmp_path) == {"a.mp3", "sub"} and files_in(second.parent) == {"a.vtt"}
    else:
        assert files_in(tmp_path) == {"sub"} and files_in(second.parent) == set()


def test_files_written_together_land_together(tmp_path: Path) -> None:
    first, second = tmp_path / "a.mp3", tmp_path / "a.srt"
    first.write_bytes(b"old audio")
    os.symlink(first, tmp_path / "link.mp3")
    with written_together():
        atomic_write(first, b"new audio")
        atomic_write(second, b"new subtitles")
        assert first.read_bytes() == b"old audio" and not second.exists()
    assert first.read_bytes() == b"new audio" and second.read_bytes() == b"new subtitles"
    assert files_in(tmp_path) == {"a.mp3", "a.srt", "link.mp3"}


def test_an_error_inside_the_block_changes_nothing(tmp_path: Path) -> None:
    first = tmp_path / "a.mp3"
    first.write_bytes(b"old audio")
    with pytest.raises(RuntimeError), written_together():
        atomic_write(first, b"new audio")
        raise RuntimeError("synthesis failed after the first file")
    assert first.read_bytes() == b"old audio"
    assert files_in(tmp_path) == {"a.mp3"}
