"""Intro and outro clips: any file ffmpeg reads, made into edge-format frames once and cached.

The file is decoded and resampled by ffmpeg straight to 24 kHz mono 16-bit PCM (ffmpeg's own
resampler; ffmpeg finds the format itself), brought to the reading's loudness target with the
same one-gain-plus-limiter as the embedded voice, and encoded once by LAME into edge's format; the
frames then join the reading like any segment, and chapters and cues shift by ``Clip.seconds``
(frames x 24 ms, exact). pydub is not used here: without ffprobe (imageio-ffmpeg ships none) it
cannot tell what a file holds unless told the codec, and its resampler is linear interpolation.

Cache key: sha256 of the file's bytes, the target and ``FORMAT_VERSION``; an entry is a bare
frame file written atomically, so a damaged or partial entry is never used.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

from newsreader.audio.atomic import atomic_write
from newsreader.audio.encode import OUTPUT_RATE, encode_pcm
from newsreader.audio.ffmpeg import ffmpeg_exe
from newsreader.audio.mp3 import bare_frames
from newsreader.errors import OutputError, SynthesisError, UsageError
from newsreader.models import FRAME_BYTES, FRAME_SECONDS

FORMAT_VERSION = 1
MAX_SECONDS = 600.0
"""An intro or outro longer than ten minutes is a mistake (the wrong file), not a jingle."""
MAX_FILE_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Clip:
    """An intro or outro as bare edge-format frames."""

    mp3: bytes

    @property
    def frames(self) -> int:
        return len(self.mp3) // FRAME_BYTES

    @property
    def seconds(self) -> float:
        """Exact length: what every chapter and cue after it shifts by."""
        return self.frames * FRAME_SECONDS


def check_clip_file(path: Path, role: str = "intro") -> None:
    """Refuse a clip file that cannot be used, before any synthesis starts (``UsageError``)."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise UsageError(f"{role} {path} is not a file; give an audio file (WAV, M4A, MP3, …)")
        with path.open("rb"):
            pass
    except OSError as error:
        raise UsageError(f"cannot read {role} {path}: {error.strerror or error}") from None
    if size == 0:
        raise UsageError(f"{role} {path} is empty; give an audio file (WAV, M4A, MP3, …)")
    if size > MAX_FILE_BYTES:
        raise UsageError(f"{role} {path} is {size:,} bytes; an intro or outro must be under 512 MB")


def decode_clip(path: Path, role: str = "intro") -> bytes:
    """The file's audio as 24 kHz mono 16-bit PCM (``UsageError`` when ffmpeg cannot read it)."""
    check_clip_file(path, role)
    run = subprocess.run(
        [
            *(ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error", "-i", str(path), "-vn"),
            *("-t", f"{MAX_SECONDS + 1:g}", "-ac", "1", "-ar", str(OUTPUT_RATE)),
            *("-f", "s16le", "-acodec", "pcm_s16le", "pipe:1"),
        ],
        capture_output=True,
        check=False,
    )
    if run.returncode:
        lines = run.stderr.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else f"ffmpeg exit status {run.returncode}"
        raise UsageError(f"cannot read {role} {path} as audio ({reason}); give WAV, M4A or MP3")
    pcm = run.stdout
    seconds = len(pcm) / 2 / OUTPUT_RATE
    if seconds < FRAME_SECONDS:
        raise UsageError(f"{role} {path} holds no audio; give WAV, M4A or MP3 with sound in it")
    if seconds > MAX_SECONDS:
        raise UsageError(f"{role} {path} is longer than {MAX_SECONDS / 60:g} minutes; trim it")
    return pcm[: len(pcm) // 2 * 2]


def clip_key(data: bytes, target: float | None) -> str:
    level = "off" if target is None else f"{target:.2f}"
    payload = f"clip:{FORMAT_VERSION}:{level}:".encode() + hashlib.sha256(data).digest()
    return hashlib.sha256(payload).hexdigest()


def clip_cache_path(cache_root: Path, key: str) -> Path:
    """Where a clip is kept: beside the segment cache, ``<root>/clips/ab/<key>.mp3``."""
    return cache_root / "clips" / key[:2] / f"{key}.mp3"


def make_clip(pcm: bytes, target: float | None) -> Clip:
    """Normalize 24 kHz mono PCM to ``target`` LUFS (``None``: as it is) and encode it."""
    if target is not None:
        from newsreader.audio.normalize import normalize_pcm  # numpy: only when a clip is made

        pcm = normalize_pcm(pcm, OUTPUT_RATE, target)
    return Clip(encode_pcm(pcm, OUTPUT_RATE))


def load_clip(
    path: Path, target: float | None, cache_root: Path | None, role: str = "intro"
) -> Clip:
    """The clip for ``path`` at ``target`` LUFS, from the cache when it was made before.

    ``cache_root=None`` disables the cache. A cache that cannot be written is no error.
    """
    check_clip_file(path, role)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {role} {path}: {error.strerror or error}") from None
    key = clip_key(data, target)
    cached = clip_cache_path(cache_root, key) if cache_root is not None else None
    if cached is not None:
        try:
            mp3 = bare_frames(cached.read_bytes())
            if mp3:
                return Clip(mp3)
        except (OSError, SynthesisError):
            pass  # a missing or damaged entry is a miss
    clip = make_clip(decode_clip(path, role), target)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(cached, clip.mp3)
        except (OSError, OutputError):
            pass
    return clip


@dataclass(frozen=True)
class Clips:
    """A reading's intro and outro (either may be absent), loaded once before synthesis."""

    intro: Clip | None = None
    outro: Clip | None = None

    @property
    def intro_mp3(self) -> bytes:
        return self.intro.mp3 if self.intro else b""

    @property
    def outro_mp3(self) -> bytes:
        return self.outro.mp3 if self.outro else b""

    @property
    def intro_frames(self) -> int:
        return self.intro.frames if self.intro else 0

    @property
    def outro_frames(self) -> int:
        return self.outro.frames if self.outro else 0


def load_clips(
    intro: Path | None, outro: Path | None, target: float | None, cache_root: Path | None
) -> Clips:
    """Both clips (``load_clip``); ``UsageError`` naming the file that cannot be used."""
    return Clips(
        load_clip(intro, target, cache_root, "intro") if intro else None,
        load_clip(outro, target, cache_root, "outro") if outro else None,
    )
