"""Intro and outro clips: files made with ffmpeg at test time, judged by ffmpeg's ebur128."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from mutagen.id3 import ID3

from newsreader.audio import intro
from newsreader.audio.ffmpeg import ffmpeg_exe
from newsreader.audio.intro import clip_cache_path, clip_key, load_clip
from newsreader.audio.mp3 import SILENT_FRAME, bare_frames
from newsreader.audio.replaygain import ReplayGain, replaygain_frames
from newsreader.audio.tags import Tags, write_mp3
from newsreader.errors import UsageError
from newsreader.models import FRAME_SECONDS, Reading
from tests.audio import ffmpeg_errors
from tests.audio.meter import ebur128

# A jingle-like sound: two tones with a tremolo, quiet and far from the target level.
JINGLE = "aevalsrc='0.05*(sin(2*PI*523*t)+sin(2*PI*784*t))*(0.6+0.4*sin(2*PI*3*t))':d=3"


def make_file(folder: Path, name: str, *codec: str) -> Path:
    path = folder / name
    run = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", JINGLE, *codec, str(path)],
        capture_output=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode()
    return path


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("intro.wav", ("-ar", "44100", "-ac", "2")),
        ("intro.m4a", ("-ar", "48000", "-ac", "2", "-c:a", "aac", "-b:a", "96k")),
        ("outro.mp3", ("-ar", "32000", "-c:a", "libmp3lame")),
    ],
)
def test_a_clip_comes_out_in_edge_format_at_the_target(
    tmp_path: Path, name: str, codec: tuple[str, ...]
) -> None:
    source = make_file(tmp_path, name, *codec)
    assert ebur128(source)[0] < -25  # the premise: far from the target
    clip = load_clip(source, -16.0, tmp_path / "cache")
    assert bare_frames(clip.mp3) == clip.mp3
    assert all(clip.mp3[i : i + 4] == b"\xff\xf3\x64\xc4" for i in range(0, len(clip.mp3), 144))
    assert clip.seconds == clip.frames * FRAME_SECONDS
    assert 3.0 <= clip.seconds <= 3.0 + 0.1  # the sound, the encoder's delay and padding
    loudness, peak = ebur128(clip.mp3)
    assert loudness == pytest.approx(-16.0, abs=1.0)
    assert peak <= -1.0
    assert ffmpeg_errors(clip.mp3) == ""


def test_a_clip_is_made_once_and_then_read_from_the_cache(tmp_path: Path) -> None:
    source = make_file(tmp_path, "intro.wav")
    cache = tmp_path / "cache"
    first = load_clip(source, -16.0, cache)
    entry = clip_cache_path(cache, clip_key(source.read_bytes(), -16.0))
    assert entry.read_bytes() == first.mp3
    entry.write_bytes(SILENT_FRAME * 7)  # the cache is what is read now, not the file
    assert load_clip(source, -16.0, cache).mp3 == SILENT_FRAME * 7
    assert load_clip(source, -18.0, cache).mp3 != SILENT_FRAME * 7  # another level, another key
    entry.write_bytes(b"damaged")
    assert load_clip(source, -16.0, cache).mp3 == first.mp3  # a damaged entry is a miss
    assert load_clip(source, -16.0, None).mp3 == first.mp3


def test_without_a_target_the_clip_keeps_its_level(tmp_path: Path) -> None:
    source = make_file(tmp_path, "intro.wav")
    clip = load_clip(source, None, None)
    assert ebur128(clip.mp3)[0] == pytest.approx(ebur128(source)[0], abs=0.5)


def test_a_cache_that_cannot_be_written_is_no_error(tmp_path: Path) -> None:
    source = make_file(tmp_path, "intro.wav")
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    assert load_clip(source, -16.0, blocked).frames > 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"^cannot read intro .*missing\.wav: No such file or directory$"),
        (b"", r"^intro .*missing\.wav is empty; give an audio file"),
        (b"<html>not audio</html>" * 10, r"^cannot read intro .*missing\.wav as audio \(.*\); "),
    ],
)
def test_a_bad_file_is_one_line_naming_it(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "missing.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError, match=message) as caught:
        load_clip(path, -16.0, None)
    assert "\n" not in str(caught.value)


def test_a_folder_and_a_silent_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a file"):
        load_clip(tmp_path, -16.0, None, role="outro")
    empty_wav = tmp_path / "empty.wav"
    run = subprocess.run(
        [
            *(ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=24000:cl=mono"),
            *("-t", "0", str(empty_wav)),
        ],
        capture_output=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode()
    with pytest.raises(UsageError, match="holds no audio"):
        load_clip(empty_wav, -16.0, None, role="outro")


def test_a_clip_too_long_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intro, "MAX_SECONDS", 2.0)
    with pytest.raises(UsageError, match="longer than"):
        load_clip(make_file(tmp_path, "intro.wav"), -16.0, None)


def test_replaygain_tags_read_back(tmp_path: Path) -> None:
    path = tmp_path / "a.mp3"
    reading = Reading(mp3=SILENT_FRAME * 50, chapters=(), cues=())
    write_mp3(path, reading, Tags(title="标题", replaygain=ReplayGain(-16.04, -1.26)))
    tag = ID3(path)
    assert tag["TXXX:REPLAYGAIN_TRACK_GAIN"].text == ["-1.96 dB"]
    assert tag["TXXX:REPLAYGAIN_TRACK_PEAK"].text == ["0.864968"]  # 10 ** (-1.26 / 20)
    assert ffmpeg_errors(path) == ""
    assert replaygain_frames(ReplayGain(float("-inf"), float("-inf"))) == []
