"""The service's finished readings are brought to the loudness target, behind an intro."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner
from mutagen.id3 import ID3

from newsreader.audio.intro import load_clip
from newsreader.audio.mp3 import read_info_frame
from newsreader.cli import main
from newsreader.models import FRAME_SECONDS
from tests.audio import ffmpeg_errors
from tests.audio.meter import ebur128
from tests.audio.test_intro import make_file
from tests.service.conftest import ARTICLE, in_process, make_config, wait_for
from tests.standin.verify import strip_id3v2


def test_a_finished_reading_carries_replaygain_at_the_target(tmp_path: Path) -> None:
    intro = make_file(tmp_path, "intro.wav", "-ar", "44100")
    config = make_config(tmp_path / "data", engine="espeak", intro=intro)
    audio = tmp_path / "reading.mp3"

    async def scenario() -> dict[str, object]:
        async with in_process(config) as (_app, client):
            posted = await client.post("/api/readings", json={"text": ARTICLE})
            assert posted.status_code == 202, posted.text
            reading = await wait_for(client, posted.json()["id"])
            assert reading["status"] == "done", reading
            audio.write_bytes((await client.get(reading["links"]["audio"])).content)
            chapters = await client.get(f"/api/readings/{posted.json()['id']}/chapters.json")
            reading["chapter_file"] = chapters.json()["chapters"]
            return reading

    reading = asyncio.run(scenario())
    assert ffmpeg_errors(audio) == ""
    loudness, peak = ebur128(audio)
    assert loudness == pytest.approx(-16.0, abs=1.0)
    assert peak <= -1.0
    tag = ID3(audio)
    assert tag["TXXX:REPLAYGAIN_TRACK_GAIN"].text[0].endswith(" dB")
    assert "TXXX:REPLAYGAIN_TRACK_PEAK" in tag
    # Chapters and sentences are the file's: behind the intro; the duration is every frame's.
    shift = load_clip(intro, -16.0, config.segment_cache).frames * FRAME_SECONDS
    chapters = reading["chapter_file"]
    assert isinstance(chapters, list)
    assert chapters[0]["startTime"] == pytest.approx(shift, abs=1e-3)
    sentences = reading["sentences"]
    assert isinstance(sentences, list)
    assert sentences[0]["start"] >= shift - 1e-3
    info = read_info_frame(strip_id3v2(audio.read_bytes()))
    assert info is not None
    assert reading["duration"] == pytest.approx(info[0] * FRAME_SECONDS, abs=1e-3)


def test_serve_refuses_a_bad_intro_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "intro.wav"
    bad.write_text("not audio\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["serve", "--data", str(tmp_path / "d"), "--intro", str(bad)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "intro" in lines[0] and str(bad) in lines[0], result.stderr
