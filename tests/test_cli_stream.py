"""``read`` writes as it goes: a long reading to a file, ``-o -`` to a pipe, ``--chapters``."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from mutagen.id3 import ID3

from newsreader.audio.ffmpeg import ffmpeg_exe
from newsreader.audio.mp3 import bare_frames, read_info_frame
from newsreader.cli import main
from newsreader.models import FRAME_BYTES, FRAME_SECONDS
from tests.audio import ffmpeg_errors
from tests.standin.server import EdgeStandin

ROOT = Path(__file__).resolve().parents[1]
SAMPLES_PER_FRAME = 576
PARAGRAPHS = (
    "社区书房开到家门口，居民们在书房里读书看报，孩子们也在周末来参加阅读活动。",
    "书房由街道和图书馆共同建设，提供借阅、讲座和展览等服务，志愿者轮流值守。",
    "据介绍，今年全市还将新建二十个城市书房，让更多居民在十五分钟内找到读书的地方。",
)
# A process that runs the CLI with edge_tts pointed at the stand-in (argv[1]).
POINTED = (
    "import sys; from tests.standin.client import point_edge_tts_at_on_import; "
    "point_edge_tts_at_on_import(sys.argv.pop(1)); "
    "sys.argv[0] = 'newsreader'; from newsreader.cli import main; main()"
)


def long_article(folder: Path, copies: int) -> Path:
    """A headline, then the paragraphs ``copies`` times, each numbered (no two alike)."""
    lines = ["城市书房开到家门口 夜读人群持续增长"]
    for copy in range(1, copies + 1):
        lines += [f"第{copy}部分第{n}段。{text}" for n, text in enumerate(PARAGRAPHS, 1)]
    path = folder / "article.txt"
    path.write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    return path


def decoded_samples(path: Path) -> int:
    """How many samples ffmpeg decodes from the file (24 kHz mono 16-bit)."""
    done = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-"],
        capture_output=True,
        check=True,
    )
    return len(done.stdout) // 2


def tag_size(raw: bytes) -> int:
    return 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(raw[6:10]))


def test_a_long_reading_written_as_it_comes_decodes_exactly(tmp_path: Path) -> None:
    source = long_article(tmp_path, 4)  # 13 segments, about 2.5 minutes of audio
    out, vtt, chapters = tmp_path / "new" / "a.mp3", tmp_path / "a.vtt", tmp_path / "a.json"
    result = CliRunner().invoke(
        main,
        [
            *("read", str(source), "-o", str(out), "--subtitles", str(vtt)),
            *("--chapters", str(chapters), "--engine", "espeak"),
            *("--cache-dir", str(tmp_path / "cache")),
        ],
    )
    assert result.exit_code == 0, result.output
    assert ffmpeg_errors(out) == ""

    raw = out.read_bytes()
    frames = bare_frames(raw)
    count = len(frames) // FRAME_BYTES
    head = tag_size(raw)
    info = read_info_frame(raw[head:])
    # the tag, the Info frame (the exact count, the Info frame itself not counted), the frames
    assert info is not None and info[0] == count and info[1] == (count + 1) * FRAME_BYTES
    assert len(raw) == head + FRAME_BYTES + len(frames)
    # every frame decodes to its 576 samples: the duration is exact
    assert decoded_samples(out) == count * SAMPLES_PER_FRAME
    assert sorted(p.name for p in out.parent.iterdir()) == ["a.mp3"]  # no body left

    # the chapters: in the tag and in the JSON file, the same times
    document = json.loads(chapters.read_text(encoding="utf-8"))
    assert document["version"] == "1.2.0"
    marks = document["chapters"]
    assert marks[0]["startTime"] == 0
    assert marks[-1]["endTime"] == round(count * FRAME_SECONDS, 3)
    assert all(a["endTime"] == b["startTime"] for a, b in itertools.pairwise(marks))
    in_tag = sorted(ID3(out).getall("CHAP"), key=lambda chap: chap.start_time)
    assert [(c.start_time, c.end_time) for c in in_tag] == [
        (round(m["startTime"] * 1000), round(m["endTime"] * 1000)) for m in marks
    ]
    assert [str(c.sub_frames["TIT2"]) for c in in_tag] == [m["title"] for m in marks]
    assert vtt.read_text(encoding="utf-8").startswith("WEBVTT")


def pointed_read(standin: EdgeStandin, *args: str | Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", POINTED, f"127.0.0.1:{standin.port}", "read"]
    return subprocess.Popen(
        [*command, *map(str, args)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_dash_o_streams_the_first_segment_while_the_rest_is_still_coming(
    edge_standin: EdgeStandin, tmp_path: Path
) -> None:
    # The headline's audio comes in well under a second; each paragraph takes about 4 s.
    edge_standin.configure(realtime_multiple=4.0)
    source = long_article(tmp_path, 1)
    chapters, vtt = tmp_path / "c.json", tmp_path / "c.vtt"
    with pointed_read(
        edge_standin,
        *(source, "-o", "-", "--engine", "edge", "--chapters", chapters, "--subtitles", vtt),
        *("--cache-dir", tmp_path / "cache"),
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        first = os.read(process.stdout.fileno(), 1 << 16)
        still_running = process.poll() is None
        rest = process.stdout.read()
        error = process.stderr.read().decode()
    assert process.returncode == 0, error
    assert still_running, "the first audio came only when the process had ended"
    assert first.startswith(b"ID3") and len(first) > tag_size(first)  # a tag, then audio
    stream = first + rest
    assert str(ID3(io.BytesIO(stream))["TIT2"]) == "城市书房开到家门口 夜读人群持续增长"
    assert read_info_frame(stream[tag_size(stream) :]) is None  # no count was known
    assert ffmpeg_errors(stream) == ""
    frames = len(bare_frames(stream)) // FRAME_BYTES
    assert len(stream) == tag_size(stream) + frames * FRAME_BYTES
    # the chapters file and subtitles are written at the end, for the same audio
    marks = json.loads(chapters.read_text(encoding="utf-8"))["chapters"]
    assert marks[-1]["endTime"] == round(frames * FRAME_SECONDS, 3)
    assert vtt.read_text(encoding="utf-8").startswith("WEBVTT")
    # nothing but the MP3 went to standard output; the summary went to stderr
    assert error.startswith("streamed to standard output: ")


def test_a_player_that_quits_ends_the_run_quietly_with_141_and_nothing_written(
    edge_standin: EdgeStandin, tmp_path: Path
) -> None:
    edge_standin.configure(realtime_multiple=2.0)
    source = long_article(tmp_path, 2)
    chapters = tmp_path / "c.json"
    with pointed_read(
        edge_standin,
        *(source, "-o", "-", "--engine", "edge", "--chapters", chapters),
        *("--cache-dir", tmp_path / "cache"),
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        assert os.read(process.stdout.fileno(), 1 << 16).startswith(b"ID3")
        started = time.monotonic()
        process.stdout.close()  # the player quits
        assert process.wait(timeout=30) == 141
        assert time.monotonic() - started < 15
        assert process.stderr.read() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["article.txt", "cache"]


def test_a_failure_midway_leaves_no_temporary_file_and_no_output(
    edge_standin: EdgeStandin, tmp_path: Path
) -> None:
    """The last paragraph always fails: the segments before it were written to the body, which
    goes, as does the folder made for the output."""
    edge_standin.set_faults(
        chooser=lambda _n, text: "close_before_audio" if text and "第三段" in text else None
    )
    source = long_article(tmp_path, 1)
    out = tmp_path / "new" / "deeper" / "a.mp3"
    result = CliRunner().invoke(
        main,
        [
            *("read", str(source), "-o", str(out), "--engine", "edge", "--retries", "0"),
            *("--chapters", str(tmp_path / "a.json"), "--subtitles", str(tmp_path / "a.vtt")),
            *("--cache-dir", str(tmp_path / "cache"), "--concurrency", "1"),
        ],
    )
    assert result.exit_code == 5, result.output
    assert len(edge_standin.requests) == 4  # three segments synthesized, one failed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["article.txt", "cache"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-o", "-", "--fallback", "espeak"],
            "--fallback espeak cannot be used with -o -: audio already played cannot be read "
            "again in another voice; write to a file instead.",
        ),
        (["--chapters", "a.txt"], "chapters a.txt must end in .json."),
    ],
)
def test_stream_and_chapters_mistakes_are_one_line_before_any_work(
    tmp_path: Path, args: list[str], message: str
) -> None:
    source = long_article(tmp_path, 1)
    done = subprocess.run(
        [sys.executable, "-m", "newsreader", "read", str(source), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == f"newsreader: error: {message}\n"
    assert done.stdout == ""
