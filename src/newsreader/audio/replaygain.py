"""ReplayGain 2.0 track tags (ID3v2 TXXX frames) from a measured integrated loudness and peak.

Players that honour ReplayGain play the track at ``REFERENCE`` LUFS: the gain is the reference
minus the measured loudness; the peak is the true peak, linear (1.0 = full scale).
"""

# mutagen's frame classes have no annotations.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import math
from dataclasses import dataclass

from mutagen.id3 import TXXX, Encoding, Frame

REFERENCE = -18.0
"""LUFS that ReplayGain 2.0 plays at."""


@dataclass(frozen=True)
class ReplayGain:
    loudness: float
    """Integrated loudness of the finished audio, LUFS."""
    true_peak: float
    """True peak of the finished audio, dBTP."""

    @property
    def gain(self) -> str:
        return f"{REFERENCE - self.loudness:+.2f} dB"

    @property
    def peak(self) -> str:
        return f"{10 ** (self.true_peak / 20):.6f}"


def replaygain_frames(replaygain: ReplayGain) -> list[Frame]:
    """``TXXX:REPLAYGAIN_TRACK_GAIN`` and ``TXXX:REPLAYGAIN_TRACK_PEAK``; none for silence."""
    if not (math.isfinite(replaygain.loudness) and math.isfinite(replaygain.true_peak)):
        return []
    return [
        TXXX(encoding=Encoding.LATIN1, desc="REPLAYGAIN_TRACK_GAIN", text=[replaygain.gain]),
        TXXX(encoding=Encoding.LATIN1, desc="REPLAYGAIN_TRACK_PEAK", text=[replaygain.peak]),
    ]
