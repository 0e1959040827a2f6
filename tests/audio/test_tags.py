"""The final MP3: ID3v2.3 metadata and chapters read back with mutagen, atomic writes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from mutagen.id3 import ID3, CTOCFlags, PictureType
from mutagen.mp3 import MP3, BitrateMode

from newsreader.audio.assemble import assemble
from newsreader.audio.atomic import atomic_write
from newsreader.audio.ffmpeg import ffmpeg_exe
from newsreader.audio.mp3 import bare_frames, read_info_frame, silence
from newsreader.audio.tags import Tags, id3_tag, mp3_bytes_with_tags, write_mp3
from newsreader.errors import OutputError
from newsreader.models import (
    FRAME_BYTES,
    Chapter,
    Pause,
    Reading,
    SegmentAudio,
    SegmentKind,
    SentenceTiming,
)
from newsreader.podcast.cover import cover_png
from tests.audio import (
    SAMPLES_PER_FRAME,
    decode_samples,
    ffmpeg_errors,
    lame_tone,
    make_script,
    make_segment,
)

CHINA = timezone(timedelta(hours=8))
FULL_TAGS = Tags(
    title="市科技局构建科技服务体系",
    artist="新华网",
    album="新华网 · 科技",
    date=datetime(2024, 5, 6, 7, 8, 9, tzinfo=CHINA),
    url="https://www.news.cn/tech/20240506/新闻.html?来源=首页",
    comment="Read aloud by newsreader",
)


def reading_with_chapters() -> Reading:
    segments = (
        make_segment(0, ("标题。",), chapter=0, pause=Pause.HEADING, kind=SegmentKind.TITLE),
        make_segment(1, ("第一段。",), chapter=1, pause=Pause.PARAGRAPH),
        make_segment(2, ("第二段。",), chapter=2, pause=Pause.END),
    )
    parts = [
        SegmentAudio(lame_tone(480), (SentenceTiming("", 0.0, 0.4),)),
        SegmentAudio(lame_tone(720), (SentenceTiming("", 0.0, 0.7),)),
        SegmentAudio(lame_tone(240), (SentenceTiming("", 0.0, 0.2),)),
    ]
    return assemble(make_script(segments, ("标题", "一、背景", "二、措施")), parts)


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name not in keep)


def test_file_is_an_id3v23_tag_followed_by_the_frames(tmp_path: Path) -> None:
    reading = reading_with_chapters()
    path = tmp_path / "out.mp3"
    write_mp3(path, reading, FULL_TAGS)

    raw = path.read_bytes()
    assert raw[:5] == b"ID3\x03\x00"
    size = 10 + sum(b << (7 * (3 - i)) for i, b in enumerate(raw[6:10]))
    # then one Info frame (metadata, not audio), then the audio frames unchanged
    assert raw[size + 13 : size + 17] == b"Info"
    assert raw[size + FRAME_BYTES :] == reading.mp3
    assert raw == mp3_bytes_with_tags(reading, FULL_TAGS)
    # Only v2.3 frames: the date is TYER/TDAT/TIME, never v2.4's TDRC.
    assert b"TYER" in raw and b"TDAT" in raw and b"TIME" in raw and b"TDRC" not in raw
    assert ffmpeg_errors(path) == ""

    info = MP3(path).info
    assert (info.sample_rate, info.bitrate, info.channels) == (24000, 48000, 1)
    assert info.length == reading.duration


def test_metadata_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "out.mp3"
    write_mp3(path, reading_with_chapters(), FULL_TAGS)

    tag = ID3(path)
    assert tag.version == (2, 3, 0)
    assert tag["TIT2"].text == ["市科技局构建科技服务体系"]
    assert tag["TPE1"].text == ["新华网"]
    assert tag["TALB"].text == ["新华网 · 科技"]
    assert str(tag["TDRC"].text[0]) == "2024-05-06 07:08:00"  # from TYER+TDAT+TIME
    assert tag["TLAN"].text == ["chi"]
    # URL frames are Latin-1: the non-ASCII path and query are percent-escaped.
    assert tag["WOAS"].url == (
        "https://www.news.cn/tech/20240506/%E6%96%B0%E9%97%BB.html?%E6%9D%A5%E6%BA%90=%E9%A6%96%E9%A1%B5"
    )
    comments = tag.getall("COMM")
    assert [(c.lang, c.text) for c in comments] == [("chi", ["Read aloud by newsreader"])]


def test_only_given_fields_are_written() -> None:
    raw = id3_tag(Reading(mp3=b"", chapters=(), cues=()), Tags(title="标题"))
    for frame in (b"TPE1", b"TALB", b"TYER", b"WOAS", b"COMM", b"CHAP", b"CTOC"):
        assert frame not in raw
    assert b"TIT2" in raw and b"TLAN" in raw
    # A date at midnight is a date only: no TIME frame.
    midnight = Tags(title="标题", date=datetime(2024, 5, 6))
    raw = id3_tag(Reading(mp3=b"", chapters=(), cues=()), midnight)
    assert b"TYER" in raw and b"TDAT" in raw and b"TIME" not in raw


def test_chapters_and_table_of_contents(tmp_path: Path) -> None:
    reading = reading_with_chapters()
    path = tmp_path / "out.mp3"
    write_mp3(path, reading, FULL_TAGS)

    tag = ID3(path)
    chaps = {frame.element_id: frame for frame in tag.getall("CHAP")}
    assert sorted(chaps) == ["chp0", "chp1", "chp2"]
    for n, chapter in enumerate(reading.chapters):
        frame = chaps[f"chp{n}"]
        assert frame.start_time == round(chapter.start * 1000)
        assert frame.end_time == round(chapter.end * 1000)
        assert (frame.start_offset, frame.end_offset) == (0xFFFFFFFF, 0xFFFFFFFF)
        assert frame.sub_frames["TIT2"].text == [chapter.title]
    assert [chaps[f"chp{n}"].sub_frames["TIT2"].text[0] for n in range(3)] == [
        "标题",
        "一、背景",
        "二、措施",
    ]
    assert chaps["chp2"].end_time == round(reading.duration * 1000)

    (toc,) = tag.getall("CTOC")
    assert toc.element_id == "toc"
    assert toc.flags == CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED
    assert toc.child_element_ids == ["chp0", "chp1", "chp2"]
    assert toc.sub_frames["TIT2"].text == [FULL_TAGS.title]

    # CHAP frames appear in the tag in time order (some players list them in tag order):
    # each frame is "CHAP", 4 size bytes, 2 flag bytes, then the NUL-terminated element id.
    raw = path.read_bytes()
    ids, at = [], raw.find(b"CHAP")
    while at >= 0:
        ids.append(raw[at + 10 : raw.index(b"\x00", at + 10)].decode())
        at = raw.find(b"CHAP", at + 4)
    assert ids == ["chp0", "chp1", "chp2"]


def test_chapters_out_of_order_are_written_in_time_order() -> None:
    reading = Reading(
        mp3=b"",
        chapters=(Chapter("后", 2.0, 3.0), Chapter("前", 0.0, 2.0)),
        cues=(),
    )
    raw = id3_tag(reading, Tags(title="标题"))
    assert raw.index("前".encode("utf-16-le")) < raw.index("后".encode("utf-16-le"))


def _ffmpeg_log(path: Path, *args: str) -> str:
    run = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-v", "warning", "-i", str(path), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return run.stderr


def test_the_info_frame_gives_every_player_the_exact_length(tmp_path: Path) -> None:
    reading = reading_with_chapters()
    frames = len(reading.mp3) // FRAME_BYTES
    path = tmp_path / "out.mp3"
    write_mp3(path, reading, FULL_TAGS)
    raw = path.read_bytes()
    stream = raw[len(id3_tag(reading, FULL_TAGS)) :]

    # frame count = the audio frames (the Info frame not counted), bytes = the whole stream
    info = read_info_frame(stream)
    assert info is not None
    assert info[:2] == (frames, len(stream)) == (frames, (frames + 1) * FRAME_BYTES)
    # ffmpeg takes the length from the header instead of guessing it from the bitrate, and
    # decodes exactly the audio frames: the Info frame is skipped, not heard as 24 ms
    assert _ffmpeg_log(path, "-f", "null", "-") == ""
    assert len(decode_samples(path)) == frames * SAMPLES_PER_FRAME
    # mutagen reads the exact length and knows the file is constant bitrate
    mp3 = MP3(path).info
    assert mp3.length == frames * SAMPLES_PER_FRAME / 24000 == reading.duration
    assert mp3.bitrate_mode == BitrateMode.CBR
    # and the file's audio joins again losslessly: the Info frame is metadata to bare_frames too
    assert bare_frames(raw) == reading.mp3


def test_the_seek_table_points_at_each_percent_of_the_audio(tmp_path: Path) -> None:
    for frames in (1, 7, 100, 257, 150_000):
        path = tmp_path / "out.mp3"
        write_mp3(path, Reading(silence(frames), (), ()), Tags(title="标题"))
        raw = path.read_bytes()
        info = read_info_frame(raw[len(id3_tag(Reading(b"", (), ()), Tags(title="标题"))) :])
        assert info is not None
        toc = info[2]
        assert len(toc) == 100 and toc[0] == 0 and list(toc) == sorted(toc)
        audio_bytes = frames * FRAME_BYTES
        for percent, entry in enumerate(toc):
            # entry/256 of the audio is where the frame playing at percent % of the time starts
            at = percent * frames // 100 * FRAME_BYTES
            assert entry * audio_bytes <= at * 256 < (entry + 1) * audio_bytes, (frames, percent)


def test_a_reading_without_audio_gets_no_info_frame(tmp_path: Path) -> None:
    path = tmp_path / "out.mp3"
    write_mp3(path, Reading(b"", (), ()), Tags(title="标题"))
    assert path.read_bytes() == id3_tag(Reading(b"", (), ()), Tags(title="标题"))


def test_a_long_title_chapter_is_still_listed_first(tmp_path: Path) -> None:
    # mutagen sorts the frames it saves by size: a long headline made the first chapter the
    # last frame, and ffmpeg (like some players) lists chapters in tag order
    reading = Reading(
        silence(200),
        (
            Chapter("城市书房正式向市民开放，每天开放十二小时，市民可以免费借阅图书", 0.0, 2.4),
            Chapter("一、背景", 2.4, 3.6),
            Chapter("二、措施", 3.6, 4.8),
        ),
        (),
    )
    path = tmp_path / "out.mp3"
    write_mp3(path, reading, FULL_TAGS)
    run = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "ffmetadata", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    starts = [int(line[6:]) for line in run.stdout.splitlines() if line.startswith("START=")]
    titles = [line[6:] for line in run.stdout.splitlines() if line.startswith("title=")][1:]
    assert starts == [0, 2400, 3600]
    assert titles == [chapter.title for chapter in reading.chapters]
    raw = path.read_bytes()
    order = [raw.index(f"chp{n}".encode()) for n in range(3)]
    assert order == sorted(order)
    assert ID3(path).getall("CTOC")[0].child_element_ids == ["chp0", "chp1", "chp2"]


def test_cover_art_and_genre_are_embedded(tmp_path: Path) -> None:
    cover = cover_png()
    path = tmp_path / "out.mp3"
    write_mp3(path, reading_with_chapters(), Tags(title="标题", genre="Podcast", cover=cover))
    tag = ID3(path)
    (picture,) = tag.getall("APIC")
    assert (picture.mime, picture.type, picture.data) == (
        "image/png",
        PictureType.COVER_FRONT,
        cover,
    )
    assert tag["TCON"].text == ["Podcast"]
    assert ffmpeg_errors(path) == ""
    frames = len(reading_with_chapters().mp3) // FRAME_BYTES
    assert len(decode_samples(path)) == frames * SAMPLES_PER_FRAME
    with pytest.raises(ValueError, match="PNG or JPEG"):
        Tags(title="标题", cover=b"GIF89a")


def test_overwrite_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "out.mp3"
    path.write_bytes(b"old")
    reading = reading_with_chapters()
    write_mp3(path, reading, FULL_TAGS)
    assert path.read_bytes().endswith(reading.mp3)
    assert leftovers(tmp_path, {"out.mp3"}) == []
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_missing_folder_is_an_output_error(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "out.mp3"
    with pytest.raises(OutputError, match="does not exist") as caught:
        write_mp3(path, reading_with_chapters(), FULL_TAGS)
    assert "\n" not in str(caught.value)
    assert leftovers(tmp_path, set()) == []


def test_directory_in_the_way_is_an_output_error(tmp_path: Path) -> None:
    path = tmp_path / "out.mp3"
    path.mkdir()
    with pytest.raises(OutputError, match="is a directory"):
        write_mp3(path, reading_with_chapters(), FULL_TAGS)
    assert leftovers(tmp_path, {"out.mp3"}) == []
    assert path.is_dir()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_unwritable_folder_is_an_output_error_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "out.mp3"
    path.write_bytes(b"previous")
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            write_mp3(path, reading_with_chapters(), FULL_TAGS)
    finally:
        tmp_path.chmod(0o700)
    assert path.read_bytes() == b"previous"
    assert leftovers(tmp_path, {"out.mp3"}) == []


FAIL_MID_WRITE = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from newsreader.audio.mp3 import silence
    from newsreader.audio.tags import Tags, write_mp3
    from newsreader.errors import OutputError
    from newsreader.models import Reading

    # Files may not grow past 4 KiB: the write fails with EFBIG after the temp file exists.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    try:
        write_mp3(Path(sys.argv[1]), Reading(silence(100), (), ()), Tags(title="标题"))
    except OutputError as error:
        print(f"OutputError: {error}")
    """
)


def test_failure_mid_write_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    # A real failure after the temporary file was created (works as root, unlike chmod).
    path = tmp_path / "out.mp3"
    path.write_bytes(b"previous")
    run = subprocess.run(
        [sys.executable, "-c", FAIL_MID_WRITE, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"OutputError: cannot write {path}: ")
    assert run.stdout.count("\n") == 1
    assert path.read_bytes() == b"previous"
    assert leftovers(tmp_path, {"out.mp3"}) == []


def test_atomic_write_creates_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    atomic_write(path, b"one")
    atomic_write(path, b"two")
    assert path.read_bytes() == b"two"
    assert leftovers(tmp_path, {"x.bin"}) == []
