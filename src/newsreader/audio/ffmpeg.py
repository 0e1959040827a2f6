"""Where ffmpeg comes from: the system's if installed, else the one imageio-ffmpeg ships."""

from __future__ import annotations

import functools
import shutil
import warnings


@functools.cache
def ffmpeg_exe() -> str:
    system = shutil.which("ffmpeg")
    if system:
        return system
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def configure_pydub() -> None:
    """Import pydub quietly and point it at our ffmpeg (imageio-ffmpeg ships no ffprobe)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        from pydub import AudioSegment
    AudioSegment.converter = ffmpeg_exe()
