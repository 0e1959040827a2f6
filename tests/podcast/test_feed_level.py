"""``feed`` brings each episode (a digest too: one script, one gain) to the loudness target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mutagen.id3 import ID3

from newsreader.audio.intro import load_clip
from newsreader.audio.mp3 import read_info_frame
from newsreader.models import FRAME_SECONDS
from tests.audio import ffmpeg_errors
from tests.audio.meter import ebur128
from tests.audio.test_intro import make_file
from tests.podcast.helpers import decoded_ms, read_our_feed, run_feed
from tests.podcast.newsroom import Newsroom
from tests.standin.verify import strip_id3v2
from tests.webserver import LocalWeb


def test_a_digest_with_an_outro_carries_replaygain_at_the_target(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    source = Newsroom(web).publish()
    out = tmp_path / "podcast"
    intro = make_file(tmp_path, "intro.wav", "-ar", "44100")
    result = run_feed(source, out, "--digest", "--intro", str(intro), cache=segment_cache)
    assert result.exit_code == 0, result.output
    _, items = read_our_feed(out)
    (digest,) = items
    assert ffmpeg_errors(digest.audio) == ""
    loudness, peak = ebur128(digest.audio)
    assert loudness == pytest.approx(-16.0, abs=1.0)
    assert peak <= -1.0
    tag = ID3(digest.audio)
    assert tag["TXXX:REPLAYGAIN_TRACK_GAIN"].text[0].endswith(" dB")
    assert "TXXX:REPLAYGAIN_TRACK_PEAK" in tag
    # The chapters start behind the intro; the duration counts every frame, the intro's too.
    clip = load_clip(intro, -16.0, segment_cache)
    chapters = json.loads(digest.chapters.read_text(encoding="utf-8"))["chapters"]
    assert chapters[0]["startTime"] == pytest.approx(clip.frames * FRAME_SECONDS, abs=1e-3)
    info = read_info_frame(strip_id3v2(digest.audio.read_bytes()))
    assert info is not None
    assert decoded_ms(digest.audio) == info[0] * 24
    assert digest.duration == str((info[0] * 24 + 500) // 1000)


def test_a_bad_outro_stops_the_feed_before_anything_is_read(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    source = Newsroom(web).publish()
    out = tmp_path / "podcast"
    bad = tmp_path / "outro.m4a"
    bad.write_bytes(b"\0" * 1000)
    result = run_feed(source, out, "--outro", str(bad), cache=segment_cache)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "outro" in lines[0] and str(bad) in lines[0], result.stderr
    assert not (out / "feed.xml").exists()
