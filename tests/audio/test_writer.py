"""The streaming MP3 writer: frames to a body file as they come, the tag in front at the end."""

from __future__ import annotations

import asyncio
import io
import os
from dataclasses import replace
from pathlib import Path

import pytest
from mutagen.id3 import ID3

from newsreader.audio.assemble import Assembler, placed
from newsreader.audio.atomic import written_together
from newsreader.audio.mp3 import bare_frames, read_info_frame, silence
from newsreader.audio.replaygain import ReplayGain
from newsreader.audio.tags import Tags, mp3_bytes_with_tags
from newsreader.audio.writer import Body, Mp3Writer, PipeClosed, PipeWriter
from newsreader.errors import OutputError
from newsreader.models import FRAME_BYTES, Pause, Script, SegmentAudio, SentenceTiming
from tests.audio import ffmpeg_errors, lame_tone, make_script, make_segment

TAGS = Tags(title="城市书房开到家门口", artist="新华网", comment="Read aloud by newsreader")


def script_and_parts() -> tuple[Script, list[SegmentAudio]]:
    segments = (
        make_segment(0, ("标题。",), chapter=0, pause=Pause.HEADING),
        make_segment(1, ("第一段。",), chapter=1, pause=Pause.PARAGRAPH),
        make_segment(2, ("第二段。",), chapter=2, pause=Pause.END),
    )
    parts = [
        SegmentAudio(lame_tone(480), (SentenceTiming("", 0.0, 0.4),)),
        SegmentAudio(lame_tone(720), (SentenceTiming("", 0.0, 0.7),)),
        SegmentAudio(lame_tone(240), (SentenceTiming("", 0.0, 0.2),)),
    ]
    return make_script(segments, ("标题", "一、背景", "二、措施")), parts


def test_the_streamed_file_is_byte_for_byte_the_file_written_from_memory(tmp_path: Path) -> None:
    script, parts = script_and_parts()
    in_memory = Assembler(script)
    path = tmp_path / "a.mp3"
    with Mp3Writer(path) as writer:
        streamed = Assembler(script, sink=writer.write)
        for rendered in placed(script, parts):
            in_memory.add(rendered)
            streamed.add(rendered)
            # the body beside the output holds every frame so far, the output does not exist yet
            assert writer.body.parent == tmp_path and writer.body.name.startswith(".a.mp3.")
            assert not path.exists()
        timeline = streamed.timeline()
        size = writer.finish(timeline.chapters, TAGS)
    reading = in_memory.finish()
    assert timeline == reading.timeline
    raw = path.read_bytes()
    assert raw == mp3_bytes_with_tags(reading, TAGS)
    assert size == len(raw)
    assert os.listdir(tmp_path) == ["a.mp3"]  # the body is gone
    assert ffmpeg_errors(path) == ""
    chapters = [frame.element_id for frame in ID3(path).getall("CHAP")]
    assert chapters == ["chp0", "chp1", "chp2"]


def test_the_finishing_step_sees_the_whole_body_and_may_rewrite_it_and_the_tags(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.mp3"
    seen: list[tuple[int, bytes]] = []

    def finisher(body: Body, tags: Tags) -> Tags:
        data = body.path.read_bytes()
        seen.append((body.frames, data))
        # rewrite in place, same size: the first frame becomes a silent one
        with body.path.open("r+b") as file:
            file.write(silence(1))
        return replace(tags, replaygain=ReplayGain(-20.0, -3.0))

    tone = bare_frames(lame_tone(480))
    with Mp3Writer(path) as writer:
        writer.write(tone)
        writer.write(silence(5))
        writer.finish((), TAGS, finisher)
    frames = len(tone) // FRAME_BYTES + 5
    assert seen == [(frames, tone + silence(5))]
    raw = path.read_bytes()
    tag = ID3(path)
    assert [frame.desc for frame in tag.getall("TXXX")] == [
        "REPLAYGAIN_TRACK_GAIN",
        "REPLAYGAIN_TRACK_PEAK",
    ]
    assert bare_frames(raw) == silence(1) + tone[FRAME_BYTES:] + silence(5)
    info = read_info_frame(raw[raw.index(b"\xff\xf3") :])
    assert info is not None and info[0] == frames


def test_a_finishing_step_that_changes_the_size_fails_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.mp3"
    path.write_bytes(b"old")

    def grows(body: Body, tags: Tags) -> Tags:
        with body.path.open("ab") as file:
            file.write(silence(1))
        return tags

    with pytest.raises(ValueError, match="changed the audio's size"), Mp3Writer(path) as writer:
        writer.write(silence(3))
        writer.finish((), TAGS, grows)
    assert os.listdir(tmp_path) == ["a.mp3"] and path.read_bytes() == b"old"


def test_a_failure_midway_leaves_no_body_and_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "a.mp3"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), Mp3Writer(path) as writer:
        writer.write(silence(10))
        raise RuntimeError("synthesis failed")
    assert os.listdir(tmp_path) == ["a.mp3"] and path.read_bytes() == b"old"


def test_a_restart_forgets_the_first_take(tmp_path: Path) -> None:
    path = tmp_path / "a.mp3"
    with Mp3Writer(path) as writer:
        writer.write(bare_frames(lame_tone(480)))
        writer.restart()
        writer.write(silence(7))
        assert writer.frames == 7
        writer.finish((), TAGS)
    assert bare_frames(path.read_bytes()) == silence(7)


def test_inside_written_together_the_mp3_lands_with_the_others_or_not_at_all(
    tmp_path: Path,
) -> None:
    path, other = tmp_path / "a.mp3", tmp_path / "a.vtt"
    with pytest.raises(RuntimeError), written_together(), Mp3Writer(path) as writer:
        writer.write(silence(4))
        writer.finish((), TAGS)
        assert not path.exists()  # complete, under its temporary name
        raise RuntimeError("the subtitles failed")
    assert os.listdir(tmp_path) == []
    with written_together(), Mp3Writer(path) as writer:
        writer.write(silence(4))
        writer.finish((), TAGS)
        other.write_text("WEBVTT\n")
    assert sorted(os.listdir(tmp_path)) == ["a.mp3", "a.vtt"]


def test_a_folder_that_cannot_take_the_body_is_one_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"^cannot write .*missing.*a\.mp3"):
        Mp3Writer(tmp_path / "missing" / "a.mp3")


def test_the_pipe_gets_a_title_tag_then_each_segment_when_drained() -> None:
    stream = io.BytesIO()
    pipe = PipeWriter(stream, "城市书房")
    pipe.write(silence(3))
    assert stream.getvalue() == b""  # nothing until the segment is complete
    asyncio.run(pipe.drain())
    sent = stream.getvalue()
    tag = ID3(io.BytesIO(sent))
    assert str(tag["TIT2"]) == "城市书房" and not tag.getall("CHAP")
    assert sent.endswith(silence(3)) and bare_frames(sent) == silence(3)
    pipe.write(silence(2))
    asyncio.run(pipe.drain())
    assert stream.getvalue() == sent + silence(2) and pipe.frames == 5
    with pytest.raises(ValueError, match="cannot be taken back"):
        pipe.restart()


def test_a_closed_pipe_is_pipe_closed() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "wb", buffering=0) as stream:
        pipe = PipeWriter(stream)
        pipe.write(silence(1))
        with pytest.raises(PipeClosed):
            asyncio.run(pipe.drain())
