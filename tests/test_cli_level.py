"""``read`` brings its output to the loudness target, with an intro and an outro around it.

The judge is ffmpeg's ebur128 filter (``tests/audio/meter``); the edge voice is the stand-in.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from mutagen.id3 import ID3

from newsreader import pipeline
from newsreader.audio.gain import apply_gain, global_gains
from newsreader.audio.intro import load_clip
from newsreader.audio.mp3 import bare_frames, read_info_frame
from newsreader.cli import main
from newsreader.config import Settings
from newsreader.models import FRAME_BYTES, FRAME_SECONDS
from tests.audio import ffmpeg_errors
from tests.audio.meter import ebur128
from tests.audio.test_intro import make_file
from tests.standin.server import EdgeStandin
from tests.test_cli_stream import tag_size

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "城市书房.txt"
SHORT = "城市书房开到家门口\n\n今年全市新建书房十二家，读者反映很好，晚上七点以后读者最多。\n"


def run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stderr


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One segment cache for the module: the embedded voice calibrates its level once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def short(tmp_path: Path) -> Path:
    path = tmp_path / "short.txt"
    path.write_text(SHORT, encoding="utf-8")
    return path


def test_the_example_comes_out_at_the_target_with_replaygain(tmp_path: Path, cache: Path) -> None:
    out = tmp_path / "a.mp3"
    code, err = run("read", EXAMPLE, "-o", out, "--engine", "espeak", "--cache-dir", cache)
    assert code == 0, err
    assert ffmpeg_errors(out) == ""
    loudness, peak = ebur128(out)
    assert loudness == pytest.approx(-16.0, abs=1.0)
    assert peak <= -1.0
    tag = ID3(out)
    gain = tag["TXXX:REPLAYGAIN_TRACK_GAIN"].text[0]
    assert re.fullmatch(r"[+-]?\d+\.\d\d dB", gain)
    assert float(tag["TXXX:REPLAYGAIN_TRACK_PEAK"].text[0]) <= 10 ** (-1.0 / 20)
    # The summary names what the file measures, within what ffmpeg finds.
    said = re.search(r"(-?\d+\.\d) LUFS, true peak (-?\d+\.\d) dBTP", err)
    assert said, err
    assert float(said[1]) == pytest.approx(loudness, abs=0.5)


def test_edge_is_gained_in_global_gain_alone_to_the_target(
    edge_standin: EdgeStandin, short: Path, tmp_path: Path
) -> None:
    off, on = tmp_path / "off.mp3", tmp_path / "on.mp3"
    common = ("--engine", "edge", "--cache-dir", tmp_path / "cache")
    code, err = run("read", short, "-o", off, "--loudness", "off", *common)
    assert code == 0, err
    code, err = run("read", short, "-o", on, "--loudness", "-16", *common)
    assert code == 0, err
    plain, gained = bare_frames(off.read_bytes()), bare_frames(on.read_bytes())
    assert len(plain) == len(gained)
    steps = {b - a for a, b in zip(global_gains(plain), global_gains(gained), strict=True)}
    steps.discard(0)  # the silent frames of the pauses are left as they are
    assert len(steps) == 1, steps  # one gain for the whole reading
    (step,) = steps
    assert step != 0
    # Speech frames adjusted by that one step, every other bit as it was.
    frames = [plain[i : i + FRAME_BYTES] for i in range(0, len(plain), FRAME_BYTES)]
    redone = b"".join(
        f if f == gained[i * FRAME_BYTES : (i + 1) * FRAME_BYTES] else apply_gain(f, step).mp3
        for i, f in enumerate(frames)
    )
    assert redone == gained
    assert ebur128(on)[0] == pytest.approx(-16.0, abs=1.0)
    assert ebur128(off)[0] != pytest.approx(-16.0, abs=1.0)  # the premise: it was elsewhere
    assert "TXXX:REPLAYGAIN_TRACK_GAIN" in ID3(on)
    assert ffmpeg_errors(on) == ""


def test_intro_and_outro_frame_the_reading_and_shift_every_time(
    short: Path, tmp_path: Path, cache: Path
) -> None:
    intro = make_file(tmp_path, "x.wav", "-ar", "44100", "-ac", "2")
    outro = make_file(tmp_path, "y.m4a", "-ar", "48000", "-c:a", "aac", "-b:a", "96k")
    plain, framed = tmp_path / "plain", tmp_path / "framed"
    for folder, extra in ((plain, ()), (framed, ("--intro", intro, "--outro", outro))):
        code, err = run(
            *("read", short, "-o", folder / "a.mp3", "--subtitles", folder / "a.vtt"),
            *("--chapters", folder / "a.json", "--engine", "espeak", "--cache-dir", cache),
            *extra,
        )
        assert code == 0, err
    first = load_clip(intro, -16.0, cache, "intro")
    last = load_clip(outro, -16.0, cache, "outro")
    reading = bare_frames((plain / "a.mp3").read_bytes())
    whole = bare_frames((framed / "a.mp3").read_bytes())
    count = len(whole) // FRAME_BYTES
    assert count == first.frames + len(reading) // FRAME_BYTES + last.frames
    raw = (framed / "a.mp3").read_bytes()
    info = read_info_frame(raw[tag_size(raw) :])
    assert info is not None and info[0] == count
    assert ffmpeg_errors(framed / "a.mp3") == ""
    assert whole[: len(first.mp3)] == first.mp3
    assert whole[len(whole) - len(last.mp3) :] == last.mp3

    shift = first.frames * FRAME_SECONDS
    before = json.loads((plain / "a.json").read_text(encoding="utf-8"))["chapters"]
    after = json.loads((framed / "a.json").read_text(encoding="utf-8"))["chapters"]
    assert len(after) == len(before) >= 1
    for old, new in zip(before, after, strict=True):
        assert new["startTime"] == pytest.approx(old["startTime"] + shift, abs=1e-3)
        if "endTime" in old:
            assert new["endTime"] == pytest.approx(old["endTime"] + shift, abs=1e-3)
    cues_before, cues_after = _cue_times(plain / "a.vtt"), _cue_times(framed / "a.vtt")
    assert len(cues_after) == len(cues_before) >= 2
    for (start, end), (new_start, new_end) in zip(cues_before, cues_after, strict=True):
        assert new_start == pytest.approx(start + shift, abs=1e-3)
        assert new_end == pytest.approx(end + shift, abs=1e-3)
    assert ebur128(framed / "a.mp3")[0] == pytest.approx(-16.0, abs=1.0)


def _cue_times(path: Path) -> list[tuple[float, float]]:
    found = re.findall(
        r"(\d+):(\d\d):(\d\d)\.(\d{3}) --> (\d+):(\d\d):(\d\d)\.(\d{3})", path.read_text()
    )

    def seconds(h: str, m: str, s: str, ms: str) -> float:
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    return [(seconds(*t[:4]), seconds(*t[4:])) for t in found]


def test_a_bad_intro_is_one_line_before_any_synthesis(
    edge_standin: EdgeStandin, short: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "intro.wav"
    bad.write_text("not audio at all\n", encoding="utf-8")
    out = tmp_path / "a.mp3"
    code, err = run("read", short, "-o", out, "--engine", "edge", "--intro", bad)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("newsreader: error: cannot read intro") and str(bad) in lines[0]
    assert edge_standin.requests == []
    assert not out.exists()


def test_a_bad_loudness_is_one_line(short: Path) -> None:
    code, err = run("read", short, "--loudness", "loud")
    assert code == 2
    assert err.strip().splitlines() == [
        "newsreader: error: --loudness 'loud' is not valid: give LUFS such as -16, or off."
    ]


def test_a_stream_to_a_pipe_carries_the_clips_and_is_not_normalized(
    short: Path, tmp_path: Path, cache: Path
) -> None:
    intro = make_file(tmp_path, "x.wav")
    outro = make_file(tmp_path, "y.wav")
    settings = Settings(engine="espeak", cache_dir=cache, intro=intro, outro=outro)
    article = pipeline.load_article(str(short), settings)
    script = pipeline.make_script(article, settings)
    clips = pipeline.load_clips(settings)
    assert clips.intro is not None and clips.outro is not None
    pipe, chapters = io.BytesIO(), tmp_path / "c.json"
    written = asyncio.run(
        pipeline.write_reading(
            article, script, settings, pipeline.STDOUT, chapters=chapters, stdout=pipe
        )
    )
    assert written.level is None  # audio already sent is not reworked
    frames = bare_frames(pipe.getvalue())
    assert frames.startswith(clips.intro.mp3) and frames.endswith(clips.outro.mp3)
    assert written.timeline.frames == len(frames) // FRAME_BYTES
    first = json.loads(chapters.read_text(encoding="utf-8"))["chapters"][0]
    assert first["startTime"] == pytest.approx(clips.intro.seconds, abs=1e-3)
    assert ffmpeg_errors(pipe.getvalue()) == ""
