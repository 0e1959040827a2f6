"""Assembly: frames and pauses joined losslessly, exact chapters, shifted and split cues."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsreader.audio.assemble import MAX_CUE_CHARS, assemble, split_sentence
from newsreader.audio.mp3 import bare_frames, frame_count
from newsreader.audio.tags import Tags, write_mp3
from newsreader.errors import SynthesisError
from newsreader.models import (
    FRAME_BYTES,
    FRAME_SECONDS,
    Chapter,
    Cue,
    Pause,
    Reading,
    SegmentAudio,
    SegmentKind,
    SentenceTiming,
)
from tests.audio import (
    SAMPLES_PER_FRAME,
    decode_samples,
    ffmpeg_errors,
    ffmpeg_tone,
    lame_tone,
    make_script,
    make_segment,
    rms,
)

LONG = (
    "国家统计局今天发布数据显示，一季度国内生产总值同比增长百分之五点三，"
    "比上年四季度加快零点一个百分点。"
)
CHAPTERS = ("新闻标题", "第一部分", "没有内容的章节", "第二部分")


def audio(mp3: bytes, *spans: tuple[float, float], texts: tuple[str, ...] = ()) -> SegmentAudio:
    names = texts or tuple(f"句{n}" for n in range(len(spans)))
    return SegmentAudio(
        mp3=mp3,
        sentences=tuple(
            SentenceTiming(name, start, end)
            for name, (start, end) in zip(names, spans, strict=True)
        ),
    )


def sample_reading() -> tuple[Reading, list[SegmentAudio]]:
    """Four segments in three used chapters; one part is a whole ffmpeg file (ID3 + Info frame)."""
    segments = (
        make_segment(0, ("新闻标题。",), chapter=0, pause=Pause.HEADING, kind=SegmentKind.TITLE),
        make_segment(
            1,
            ("增长5.3%。", "好于预期。"),
            sentences=("增长百分之五点三。", "好于预期。"),
            chapter=1,
            pause=Pause.PARAGRAPH,
        ),
        make_segment(2, (LONG,), chapter=1, pause=Pause.SENTENCE),
        make_segment(3, ("完。",), chapter=3, pause=Pause.END),
    )
    parts = [
        audio(lame_tone(480), (0.0, 0.46)),
        audio(lame_tone(720, 330.0), (0.02, 0.31), (0.31, 0.7)),
        audio(ffmpeg_tone(1000), (0.1, 0.9)),
        audio(lame_tone(240, 550.0), (0.0, 0.2)),
    ]
    return assemble(make_script(segments, CHAPTERS), parts), parts


def test_joined_file_decodes_cleanly_to_the_sum_of_parts_and_pauses(tmp_path: Path) -> None:
    reading, parts = sample_reading()
    part_frames = [frame_count(bare_frames(part.mp3)) for part in parts]
    pauses = [Pause.HEADING, Pause.PARAGRAPH, Pause.SENTENCE, Pause.END]
    total = sum(part_frames) + sum(pauses)

    assert len(reading.mp3) == total * FRAME_BYTES
    assert reading.duration == total * FRAME_SECONDS
    assert reading.mp3.count(b"Info") == 0 and b"ID3" not in reading.mp3

    path = tmp_path / "reading.mp3"
    write_mp3(path, reading, Tags(title="新闻标题"))
    assert ffmpeg_errors(path) == ""
    samples = decode_samples(path)
    # The brief allows one frame of slack per part; in practice the count is exact.
    assert abs(len(samples) - total * SAMPLES_PER_FRAME) <= len(parts) * SAMPLES_PER_FRAME

    # Tone where each part is, digital silence in each pause (after the decoder's tail of
    # two frames: MDCT overlap plus synthesis filter history).
    position = 0
    for frames, pause in zip(part_frames, pauses, strict=True):
        middle = samples[
            (position + 3) * SAMPLES_PER_FRAME : (position + frames - 2) * SAMPLES_PER_FRAME
        ]
        assert rms(middle) > 1000
        position += frames
        quiet = samples[(position + 2) * SAMPLES_PER_FRAME : (position + pause) * SAMPLES_PER_FRAME]
        assert not any(quiet)
        position += pause


def test_segment_starts_are_exact_frame_times() -> None:
    reading, parts = sample_reading()
    frames = [frame_count(bare_frames(part.mp3)) for part in parts]
    pauses = [Pause.HEADING, Pause.PARAGRAPH, Pause.SENTENCE, Pause.END]
    expected, position = [], 0
    for count, pause in zip(frames, pauses, strict=True):
        expected.append(position * FRAME_SECONDS)
        position += count + pause
    assert reading.segment_starts == tuple(expected)
    # Each part lands byte-for-byte at its start.
    for start, part in zip(reading.segment_starts, parts, strict=True):
        offset = round(start / FRAME_SECONDS) * FRAME_BYTES
        bare = bare_frames(part.mp3)
        assert reading.mp3[offset : offset + len(bare)] == bare


def test_chapters_follow_segments_and_skip_empty_ones() -> None:
    reading, _ = sample_reading()
    starts = reading.segment_starts
    assert reading.chapters == (
        Chapter("新闻标题", 0.0, starts[1]),
        Chapter("第一部分", starts[1], starts[3]),
        Chapter("第二部分", starts[3], reading.duration),
    )


def test_cues_are_shifted_use_display_text_and_split_long_sentences() -> None:
    reading, _ = sample_reading()
    starts = reading.segment_starts
    cues = reading.cues

    assert cues[0] == Cue(0.0, 0.46, "新闻标题。")
    # Display text (what a reader sees), not the normalized spoken text.
    assert cues[1] == Cue(round(starts[1] + 0.02, 3), round(starts[1] + 0.31, 3), "增长5.3%。")
    assert cues[2] == Cue(round(starts[1] + 0.31, 3), round(starts[1] + 0.7, 3), "好于预期。")

    long_cues = [cue for cue in cues if cue.start >= starts[2] and cue.end <= starts[3]]
    assert [cue.text for cue in long_cues] == [
        "国家统计局今天发布数据显示，",
        "一季度国内生产总值同比增长百分之五点三，",
        "比上年四季度加快零点一个百分点。",
    ]
    assert long_cues[0].start == pytest.approx(starts[2] + 0.1)
    assert long_cues[-1].end == pytest.approx(starts[2] + 0.9)
    # Time shared by character count: 14, 20 and 16 characters of 50 over 0.8 s.
    durations = [cue.end - cue.start for cue in long_cues]
    assert durations == pytest.approx([0.224, 0.32, 0.256], abs=0.0011)
    assert cues[-1] == Cue(round(starts[3], 3), round(starts[3] + 0.2, 3), "完。")
    assert len(cues) == 7


def test_parts_must_match_segments() -> None:
    segment = make_segment(0, ("一句。",))
    script = make_script((segment,), ("标题",))
    with pytest.raises(ValueError, match="2 audio parts for 1 segments"):
        assemble(script, [audio(lame_tone(240), (0, 0.2))] * 2)
    with pytest.raises(ValueError, match="1 sentences but its audio has 2 timings"):
        assemble(script, [audio(lame_tone(240), (0, 0.1), (0.1, 0.2))])
    with pytest.raises(ValueError, match="names chapter 1"):
        assemble(
            make_script((make_segment(0, ("一句。",), chapter=1),), ("标题",)),
            [audio(lame_tone(240), (0, 0.2))],
        )


def test_a_part_in_the_wrong_format_is_refused() -> None:
    segment = make_segment(0, ("一句。",))
    wrong = SegmentAudio(
        mp3=b"\xff\xfb\x90\x64" + bytes(413), sentences=(SentenceTiming("", 0, 1),)
    )
    with pytest.raises(SynthesisError, match="unexpected format"):
        assemble(make_script((segment,), ("标题",)), [wrong])


def test_nothing_to_assemble_gives_an_empty_reading() -> None:
    reading = assemble(make_script((), ("标题",)), [])
    assert reading == Reading(mp3=b"", chapters=(), cues=(), segment_starts=())


def check_cues(cues: tuple[Cue, ...], duration: float) -> None:
    for cue in cues:
        assert 0 <= cue.start < cue.end <= duration
        assert cue.text and cue.text == cue.text.strip()
    for before, after in itertools.pairwise(cues):
        assert before.end <= after.start
        assert before.start < after.start


spans = st.tuples(
    st.floats(min_value=-0.5, max_value=1.5, allow_nan=False),
    st.floats(min_value=-0.5, max_value=1.5, allow_nan=False),
)
sentences = st.sampled_from(
    ["短句。", LONG, "他说：“好，”然后走了。", "  ", "1,000人。", "Hello world."]
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(sentences, spans), min_size=1, max_size=4), max_size=4))
def test_cues_stay_ordered_inside_the_audio_and_keep_all_text(
    layout: list[list[tuple[str, tuple[float, float]]]],
) -> None:
    # Engines' timings may overlap, run backwards or past the audio; cues must still be sane.
    segments = tuple(
        make_segment(i, tuple(text for text, _ in part), pause=Pause.SENTENCE)
        for i, part in enumerate(layout)
    )
    parts = [audio(lame_tone(480), *(span for _, span in part)) for part in layout]
    reading = assemble(make_script(segments, ("标题",)), parts)

    check_cues(reading.cues, reading.duration)
    shown = "".join(text.strip() for part in layout for text, _ in part)
    spoken = "".join(cue.text for cue in reading.cues).replace(" ", "")
    # Text is only lost when no sentence at all had time of its own.
    assert spoken == shown.replace(" ", "") or not reading.cues


def test_split_sentence_cuts_only_at_clause_marks_and_evenly() -> None:
    assert split_sentence("短句。") == ["短句。"]
    assert split_sentence("  ") == []
    pieces = split_sentence(LONG)
    assert "".join(pieces) == LONG
    assert all(len(piece) <= MAX_CUE_CHARS for piece in pieces)
    # Closing quotes stay with their clause; numbers are not cut at their commas or colons.
    quoted = (
        "他说：“今年的经济增长目标是百分之五左右，这个目标是积极稳妥的，”"
        "并表示将继续努力推动高质量发展。"
    )
    assert split_sentence(quoted) == [
        "他说：“今年的经济增长目标是百分之五左右，",
        "这个目标是积极稳妥的，”",
        "并表示将继续努力推动高质量发展。",
    ]
    numbers = "共有1,000名代表于10:30出席了会议并听取报告，会议讨论了很多很多的问题。"
    assert split_sentence(numbers) == [
        "共有1,000名代表于10:30出席了会议并听取报告，",
        "会议讨论了很多很多的问题。",
    ]
    # Evenly: pieces of 14 and 12 characters rather than 24 and a tail of 2.
    listing = "甲、乙、丙、丁、戊、己、庚、辛、壬、癸、子、丑、寅。"
    assert [len(p) for p in split_sentence(listing)] == [14, 12]
