"""Frame-level MP3: stripping containers and info frames, refusing foreign formats, silence."""

from __future__ import annotations

import io

import lameenc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mutagen.id3 import ID3, TIT2, Encoding

from newsreader.audio.mp3 import (
    SILENT_FRAME,
    bare_frames,
    duration,
    frame_count,
    parse_header,
    silence,
)
from newsreader.errors import SynthesisError
from newsreader.models import FRAME_BYTES
from tests.audio import (
    SAMPLES_PER_FRAME,
    decode_samples,
    ffmpeg_errors,
    ffmpeg_tone,
    lame_tone,
    pcm_tone,
)

EDGE_HEADER = b"\xff\xf3\x64\xc4"


def id3v2(title: str = "片段") -> bytes:
    tag = ID3()
    tag.add(TIT2(encoding=Encoding.UTF16, text=[title]))
    buffer = io.BytesIO()
    tag.save(buffer, v2_version=3)
    return buffer.getvalue()


def info_frame(tag: bytes = b"Info") -> bytes:
    """A LAME-style header frame in edge's format: zero side information, then the tag."""
    body = bytes(9) + tag + b"\x00\x00\x00\x0f" + bytes(8) + b"LAME3.100"
    return EDGE_HEADER + body + bytes(FRAME_BYTES - 4 - len(body))


def encode(rate: int, kbps: int, channels: int) -> bytes:
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(kbps)
    encoder.set_in_sample_rate(rate)
    encoder.set_out_sample_rate(rate)
    encoder.set_channels(channels)
    encoder.set_quality(2)
    pcm = pcm_tone(200)  # 24 kHz PCM; treated as another rate, which is fine for a format test
    if channels == 2:
        pcm = b"".join(pcm[i : i + 2] * 2 for i in range(0, len(pcm), 2))
    return bytes(encoder.encode(pcm) + encoder.flush())


def test_lameenc_output_is_already_bare_edge_frames() -> None:
    tone = lame_tone(300)
    assert len(tone) % FRAME_BYTES == 0
    assert all(tone[i : i + 4] == EDGE_HEADER for i in range(0, len(tone), FRAME_BYTES))
    assert bare_frames(tone) == tone


def test_ffmpeg_file_loses_its_id3_tag_and_info_frame() -> None:
    piece = ffmpeg_tone(500)
    assert piece.startswith(b"ID3")
    assert b"Info" in piece  # ffmpeg's LAME header frame, 64 kbit/s so 192 bytes long

    bare = bare_frames(piece)

    assert len(bare) % FRAME_BYTES == 0
    assert bare.startswith(EDGE_HEADER)
    assert b"Info" not in bare and b"Lavf" not in bare
    assert piece.endswith(bare)
    assert len(piece) - len(bare) == piece.index(b"\xff\xf3") + 192
    assert ffmpeg_errors(bare) == ""
    assert len(decode_samples(bare)) == frame_count(bare) * SAMPLES_PER_FRAME


def test_id3v2_id3v1_junk_and_info_frames_are_stripped_in_any_position() -> None:
    tone = lame_tone(240)
    id3v1 = b"TAG" + "标题".encode().ljust(125, b"\x00")
    wrapped = id3v2() + b"\x00\x01junk" + info_frame() + tone + info_frame(b"Xing") + tone + id3v1
    assert bare_frames(wrapped) == tone + tone


def test_info_frame_with_crc_is_recognised() -> None:
    # Protection bit 0: a 2-byte CRC follows the header, so the tag sits 2 bytes later.
    frame = b"\xff\xf2\x64\xc4" + bytes(11) + b"Xing" + bytes(FRAME_BYTES - 19)
    assert bare_frames(frame + lame_tone(120)) == lame_tone(120)


def test_lame_text_inside_audio_is_not_an_info_frame() -> None:
    # LAME writes its version string into ancillary data of ordinary frames; they must stay.
    tone = lame_tone(300)
    assert b"LAME" in tone
    assert bare_frames(tone) == tone


@pytest.mark.parametrize(
    ("rate", "kbps", "channels", "named"),
    [
        (44100, 128, 2, "MPEG-1 Layer III, 44.1 kHz, 128 kbit/s"),
        (24000, 64, 1, "MPEG-2 Layer III, 24 kHz, 64 kbit/s, mono"),
        (22050, 48, 1, "22.05 kHz"),
        (24000, 48, 2, "48 kbit/s, joint stereo"),
    ],
)
def test_wrong_format_is_refused_with_what_it_is(
    rate: int, kbps: int, channels: int, named: str
) -> None:
    with pytest.raises(SynthesisError) as caught:
        bare_frames(encode(rate, kbps, channels))
    message = str(caught.value)
    assert message.startswith("engine returned MP3 in an unexpected format: ")
    assert named in message
    assert "expected MPEG-2 Layer III, 24 kHz, 48 kbit/s, mono" in message


def test_one_foreign_frame_in_the_middle_is_refused() -> None:
    tone = lame_tone(240)
    foreign = encode(24000, 64, 1)[:192]
    with pytest.raises(SynthesisError, match=rf"64 kbit/s.* at byte {len(tone)}"):
        bare_frames(tone + foreign + tone)


def test_padded_frame_is_refused() -> None:
    padded = b"\xff\xf3\x66\xc4" + bytes(FRAME_BYTES - 3)  # 145 bytes: padding bit set
    header = parse_header(padded, 0)
    assert header is not None and header.length == FRAME_BYTES + 1
    with pytest.raises(SynthesisError, match="padded"):
        bare_frames(padded + lame_tone(120))


def test_data_must_end_on_a_frame_boundary() -> None:
    tone = lame_tone(240)
    with pytest.raises(SynthesisError, match="frame boundary"):
        bare_frames(tone[:-10])
    with pytest.raises(SynthesisError, match="frame boundary"):
        bare_frames(tone + b"\xff\xf3")


def test_lost_sync_is_refused() -> None:
    tone = lame_tone(240)
    with pytest.raises(SynthesisError, match="lost frame sync"):
        bare_frames(tone + b"\x00" * 10 + tone)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(200), "WAV"),
        (b"OggS" + bytes(200), "Ogg"),
        (b'{"error": "quota"}', "no MPEG audio frame"),
    ],
)
def test_not_mp3_at_all_is_refused(data: bytes, named: str) -> None:
    with pytest.raises(SynthesisError, match=named):
        bare_frames(data)


def test_empty_and_tag_only_inputs_give_no_frames() -> None:
    assert bare_frames(b"") == b""
    assert bare_frames(id3v2()) == b""


def test_id3v2_tag_larger_than_the_data_is_refused() -> None:
    tag = id3v2()
    with pytest.raises(SynthesisError, match="ID3v2 tag claims"):
        bare_frames(tag[:-5])


@settings(max_examples=40, deadline=None)
@given(
    frames=st.integers(min_value=1, max_value=30),
    # Junk that is neither a frame sync nor another container's signature (those are refused).
    junk=st.binary(max_size=40).filter(
        lambda b: b"\xff" not in b and not b.startswith((b"ID3", b"RIFF", b"OggS", b"fLaC"))
    ),
    tagged=st.booleans(),
    info=st.booleans(),
    trailer=st.booleans(),
)
def test_wrapped_frames_come_back_exactly(
    frames: int, junk: bytes, tagged: bool, info: bool, trailer: bool
) -> None:
    tone = lame_tone(720)[: frames * FRAME_BYTES]
    data = (
        (id3v2() if tagged else b"")
        + junk
        + (info_frame() if info else b"")
        + tone
        + (b"TAG" + bytes(125) if trailer else b"")
    )
    assert bare_frames(data) == tone


def test_an_hour_of_frames_passes_through_unchanged() -> None:
    tone = lame_tone(240)
    hour = (tone * (150_000 // frame_count(tone) + 1))[: 150_000 * FRAME_BYTES]  # 3,600 s
    assert bare_frames(hour) == hour
    assert duration(hour) == pytest.approx(3600.0)


def test_silent_frame_decodes_to_digital_silence() -> None:
    assert bytes(140) == SILENT_FRAME[4:] and SILENT_FRAME.startswith(EDGE_HEADER)
    pause = silence(25)
    assert len(pause) == 25 * FRAME_BYTES
    assert bare_frames(pause) == pause
    assert ffmpeg_errors(pause) == ""
    samples = decode_samples(pause)
    assert len(samples) == 25 * SAMPLES_PER_FRAME
    assert not any(samples)


def test_counts_and_durations() -> None:
    assert silence(0) == b""
    assert frame_count(silence(7)) == 7
    assert duration(silence(125)) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="whole number"):
        frame_count(silence(2)[:-1])
    with pytest.raises(ValueError):
        silence(-1)
