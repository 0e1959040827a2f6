"""PCM → bare MP3 frames in edge's format, so espeak's audio joins edge's frame by frame.

The format: MPEG-2 Layer III, 24 kHz, mono, 48 kbit/s CBR; every frame is 144 bytes (576 samples,
24 ms) with the header ``FF F3 64 C4``. LAME (through lameenc) does the resampling itself: its
windowed-sinc resampler keeps a 22,050 Hz sine at 70-80 dB SNR up to 9 kHz, where ``audioop``'s
linear interpolation falls to 7 dB, so no separate resampling step is needed.
"""

from __future__ import annotations

import lameenc

from newsreader.errors import SynthesisError
from newsreader.models import FRAME_BYTES

OUTPUT_RATE = 24_000
BIT_RATE_KBPS = 48
QUALITY = 2
"""LAME's algorithm quality (0 best, 9 fastest); 2 is LAME's recommended "near-best"."""

ENCODER_DELAY = 1105 / OUTPUT_RATE
"""Where input sample 0 lands in the decoded audio, in seconds (0.0460417 s).

Measured: a one-sample click encoded at a known position and decoded with ffmpeg (which trims
nothing, as these streams carry no LAME/Info header) peaks exactly 1105 samples at 24 kHz later,
for 22,050 Hz and 24,000 Hz input alike: LAME's 576-sample encoder padding plus the 529-sample
delay of the MP3 synthesis filterbank. ``tests/audio/test_encode.py`` re-measures it.
"""

# Frame header bytes 0-2: sync, MPEG-2, Layer III, no CRC; 48 kbit/s, 24 kHz, no padding bit.
# Byte 3 must say mono (channel mode bits 11); its other bits (copyright, original) don't matter.
_HEADER = b"\xff\xf3\x64"
_MONO = 0xC0
# A Xing/Info tag sits right after the side information: 4 + 9 bytes into an MPEG-2 mono frame.
_XING_AT = 13
_VBRI_AT = 36


def encode_pcm(pcm: bytes, sample_rate: int) -> bytes:
    """Encode 16-bit little-endian mono PCM at ``sample_rate`` into bare MP3 frames.

    The result starts with ``ENCODER_DELAY`` of silence and ends on LAME's padding; its length is
    a multiple of 144 bytes. No ID3 tag, no Xing/Info frame.
    """
    if len(pcm) % 2:
        raise ValueError("16-bit PCM needs an even number of bytes")
    if not 8_000 <= sample_rate <= 48_000:
        raise ValueError(f"unsupported input sample rate {sample_rate} Hz")
    encoder = lameenc.Encoder()
    encoder.set_in_sample_rate(sample_rate)
    encoder.set_out_sample_rate(OUTPUT_RATE)
    encoder.set_bit_rate(BIT_RATE_KBPS)
    encoder.set_channels(1)
    encoder.set_quality(QUALITY)
    stream = bytes(encoder.encode(pcm)) + bytes(encoder.flush())
    return audio_frames(stream)


def audio_frames(stream: bytes) -> bytes:
    """The audio frames of an MP3 stream in edge's format, without ID3v2 tags or header frames.

    Raises ``SynthesisError`` when the stream holds anything else: a frame of another size or
    format would break the exact frames × 24 ms arithmetic the assembler relies on.
    """
    frames = bytearray()
    at = 0
    while at < len(stream):
        if stream.startswith(b"ID3", at) and len(stream) >= at + 10:
            at += 10 + _syncsafe(stream[at + 6 : at + 10])
            continue
        frame = stream[at : at + FRAME_BYTES]
        if len(frame) < FRAME_BYTES or not frame.startswith(_HEADER) or frame[3] & _MONO != _MONO:
            raise SynthesisError(
                f"the MP3 encoder produced an unexpected frame at byte {at} "
                f"(header {frame[:4].hex(' ')}); expected 144-byte MPEG-2 24 kHz mono frames."
            )
        if frame[_XING_AT : _XING_AT + 4] not in (b"Xing", b"Info") and not frame.startswith(
            b"VBRI", _VBRI_AT
        ):
            frames += frame
        at += FRAME_BYTES
    return bytes(frames)


def _syncsafe(size: bytes) -> int:
    """An ID3v2 tag size: four bytes of seven bits each."""
    value = 0
    for byte in size:
        value = (value << 7) | (byte & 0x7F)
    return value
