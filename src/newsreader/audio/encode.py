"""PCM → bare MP3 frames in edge's format, so espeak's audio joins edge's frame by frame.

The format: MPEG-2 Layer III, 24 kHz, mono, 48 kbit/s CBR; every frame is 144 bytes (576 samples,
24 ms) with the header ``FF F3 64 C4``. LAME (through lameenc) does the resampling itself: its
windowed-sinc resampler keeps a 22,050 Hz sine at 70-80 dB SNR up to 9 kHz, where ``audioop``'s
linear interpolation falls to 7 dB, so no separate resampling step is needed.
"""

from __future__ import annotations

from newsreader.audio.mp3 import bare_frames

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


def encode_pcm(pcm: bytes, sample_rate: int) -> bytes:
    """Encode 16-bit little-endian mono PCM at ``sample_rate`` into bare MP3 frames.

    The result starts with ``ENCODER_DELAY`` of silence and ends on LAME's padding; its length is
    a multiple of 144 bytes. No ID3 tag, no Xing/Info frame.
    """
    if len(pcm) % 2:
        raise ValueError("16-bit PCM needs an even number of bytes")
    if not 8_000 <= sample_rate <= 48_000:
        raise ValueError(f"unsupported input sample rate {sample_rate} Hz")
    import lameenc  # here: the CLI starts without LAME when it makes no audio

    encoder = lameenc.Encoder()
    encoder.set_in_sample_rate(sample_rate)
    encoder.set_out_sample_rate(OUTPUT_RATE)
    encoder.set_bit_rate(BIT_RATE_KBPS)
    encoder.set_channels(1)
    encoder.set_quality(QUALITY)
    stream = bytes(encoder.encode(pcm)) + bytes(encoder.flush())
    # lameenc writes bare frames; bare_frames still checks every header, so a foreign frame
    # can never break the exact frames × 24 ms arithmetic the assembler relies on.
    return bare_frames(stream)
