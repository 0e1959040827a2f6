"""The pipeline end to end: source → Article → Script → audio → one MP3 (+ subtitles).

1. load the source (file, stdin, URL) and decode it
2. extract the article: headline and body only, repaired
3. build the Script: speech-normalized, script-converted, sentence-aligned segments
4. the streaming render (``RenderStream``): synthesize the segments (engine chosen once; cache;
   bounded concurrency; retries) and yield each, in order, as soon as it and all before it are
   ready, placed in the reading (``RenderedSegment``: frames, pause, sentence times, start frame)
5. assemble those same values into frames, chapters and cues (``render`` does 4 and 5 in
   memory; ``render_to`` sends the frames to a sink as they come and keeps only the timeline)
6. write the MP3 (tagged) and the subtitles: both replaced, or neither

Every front door runs step 4 through ``RenderStream``: ``read`` and ``feed`` through
``render_to`` (``write_reading`` for ``read``: steps 4–6 with memory flat in the article's
length, to a file or to standard output), the service directly, relaying each segment to its
listeners as it comes. ``render`` and ``write_outputs`` do the same in memory, for short uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Generic, TypeVar, cast
from urllib.parse import urlsplit

from newsreader import sources
from newsreader.audio.assemble import Assembler, RenderedSegment, place
from newsreader.audio.atomic import atomic_write, temporary_name, written_together
from newsreader.config import Settings
from newsreader.errors import OutputError, SegmentsFailed, UsageError
from newsreader.models import Article, Reading, Script, SegmentAudio, Timeline
from newsreader.synth import registry
from newsreader.synth.cache import SegmentCache
from newsreader.synth.scheduler import (
    Limiter,
    ProgressCallback,
    RunStats,
    Scheduler,
    describe_kinds,
)
from newsreader.synth.select import EngineChoice, choose_engine, fallback_entry
from newsreader.text.extract import extract
from newsreader.text.segment import build_script

# The loudness modules bring numpy and LAME, the writers and the tags mutagen, the fetching stack
# is for a URL only: imported where they are used, so that ``read`` sends its first requests
# without them (``newsreader.warmup``).
if TYPE_CHECKING:
    from newsreader.audio.ahead import AheadLevels
    from newsreader.audio.intro import Clips
    from newsreader.audio.level import Level, LevelMeter, MeasuredSink
    from newsreader.audio.tags import Tags
    from newsreader.audio.writer import AudioSink, PipeWriter
    from newsreader.sources.fetch import UrlGuard
    from newsreader.synth.base import Engine


SinkT = TypeVar("SinkT", bound="AudioSink")


def load_article(
    source: str,
    settings: Settings,
    *,
    stdin: BinaryIO | None = None,
    guard: UrlGuard | None = None,
) -> Article:
    """Steps 1–2: read SOURCE and extract its article."""
    document = sources.load(
        source,
        timeout=settings.fetch_timeout,
        max_bytes=settings.max_input_bytes,
        stdin=stdin,
        guard=guard,
    )
    # A source given to be read is read whole, even a single paragraph (see extract_text).
    return extract(
        document.text,
        source=document.url or document.source,
        read_title=settings.read_title,
        read_whole=True,
    )


def make_script(article: Article, settings: Settings) -> Script:
    """Step 3."""
    return build_script(article, locale=settings.locale, read_title=settings.read_title)


@dataclass(frozen=True, repr=False)
class Rendered:
    reading: Reading
    stats: RunStats
    engine: str
    warnings: tuple[str, ...] = ()
    """Things the listener should know, e.g. that edge failed and the embedded voice read it all."""

    def __repr__(self) -> str:
        # Short on purpose: asyncio.run's clean-up builds the repr of its main task, result
        # included, and a repr of the whole MP3 costs 0.3 s per 15 minutes of audio.
        return (
            f"Rendered(engine={self.engine!r}, duration={self.reading.duration:.3f}, "
            f"segments={len(self.reading.segment_starts)}, requests={self.stats.requests})"
        )


@dataclass(frozen=True)
class Written:
    """A streaming render whose audio went to a sink (a file, a pipe) as it came: where
    everything is in it (``timeline``), and how the run went."""

    timeline: Timeline
    stats: RunStats
    engine: str
    warnings: tuple[str, ...] = ()
    level: Level | None = None
    """What the loudness step did and what the file measures (None: audio sent to a pipe)."""


@dataclass(frozen=True)
class Restarted:
    """An item of the streaming render: what came before is void, the reading starts again from
    its first segment with ``engine`` (the online voice failed partway; ``--fallback``)."""

    engine: str
    warning: str


StreamItem = RenderedSegment | Restarted


class RenderStream:
    """Step 4, streaming: ``async for item in RenderStream(script, settings)``.

    Yields each segment as a ``RenderedSegment`` in script order, as soon as it and all before
    it are ready, with exact frame offsets: segment ``i`` starts where segment ``i - 1`` ends
    (after its pause). ``audio/assemble.Assembler`` turns the same items into the ``Reading``.

    One reading, one voice: if the online voice fails for some segments (``SegmentsFailed``),
    the stream fails, or, with ``settings.fallback`` naming an embedded engine, it yields
    ``Restarted`` and then the whole script again in that voice. The good segments stay in the
    cache for the next run either way.

    ``choice``: the engine to use, owned by the caller (not closed here); without it the engine
    is chosen here (its warning, if any, goes into ``warnings``) and closed at the end, as is a
    fallback engine. ``engine``, ``stats`` and ``warnings`` describe the run so far.
    """

    def __init__(
        self,
        script: Script,
        settings: Settings,
        *,
        choice: EngineChoice | None = None,
        limiter: Limiter | None = None,
        on_ready: ProgressCallback | None = None,
        cache: SegmentCache | None = None,
        on_audio: Callable[[bytes], None] | None = None,
    ) -> None:
        self.script = script
        self.settings = settings
        self.choice = choice
        self.limiter = limiter
        self.on_ready = on_ready
        self.on_audio = on_audio
        """Told each segment's audio as soon as it arrives, in any order (``Scheduler``)."""
        self.engine: str | None = choice.engine.name if choice else None
        """The engine whose segments are coming (None until it is chosen)."""
        self.warnings: list[str] = []
        self._schedulers: list[Scheduler] = []
        self._cache = cache or SegmentCache(settings.cache_dir if settings.use_cache else None)
        """``cache``: another segment cache than ``settings``' folder (e.g. a shared store)."""

    @property
    def stats(self) -> RunStats:
        """Requests, cache hits, retries, ... of every engine the run used, added up."""
        return _merged([scheduler.stats for scheduler in self._schedulers])

    def __aiter__(self) -> AsyncIterator[StreamItem]:
        return self.items()

    async def items(self) -> AsyncGenerator[StreamItem, None]:
        """The items; under ``contextlib.aclosing`` the requests and engines are released as
        soon as the consumer stops, even when it stops early."""
        choice = self.choice
        if choice is None:
            choice = await choose_engine(self.settings, script=self.script)
            if choice.warning:
                self.warnings.append(choice.warning)
        self.engine = choice.engine.name
        try:
            try:
                async with contextlib.aclosing(self._segments(choice.engine)) as first:
                    async for rendered in first:
                        yield rendered
            except SegmentsFailed as failure:
                if not self._falls_back(choice.engine):
                    raise
                entry = fallback_entry(self.settings)
                warning = (
                    f"the online voice failed for {len(failure.failed)} of "
                    f"{len(self.script.segments)} segments "
                    f"({describe_kinds(failure.kinds.values())}); the whole article was read "
                    f"with the {entry.label} instead (--fallback {entry.name})."
                )
                fallback = entry.create()
                try:
                    self.engine = fallback.name
                    self.warnings.append(warning)
                    yield Restarted(fallback.name, warning)
                    async with contextlib.aclosing(self._segments(fallback)) as again:
                        async for rendered in again:
                            yield rendered
                finally:
                    await fallback.close()
        finally:
            if self.choice is None:
                await choice.engine.close()

    def _falls_back(self, engine: Engine) -> bool:
        fallback = self.settings.fallback
        if fallback == registry.NO_FALLBACK or engine.name == fallback:
            return False
        return not any(e.name == engine.name and e.kind == "embedded" for e in registry.entries())

    async def _segments(self, engine: Engine) -> AsyncGenerator[RenderedSegment, None]:
        scheduler = Scheduler(
            engine, self.settings, self._cache, limiter=self.limiter, on_audio=self.on_audio
        )
        self._schedulers.append(scheduler)
        position = 0
        segments = iter(self.script.segments)
        # run() is an async generator (annotated as an iterator): closed at once if we stop.
        run = cast(AsyncGenerator[SegmentAudio, None], scheduler.run(self.script, self.on_ready))
        async with contextlib.aclosing(run) as parts:
            async for audio in parts:
                rendered = place(next(segments), audio, position)
                position = rendered.end
                yield rendered


async def render(
    script: Script,
    settings: Settings,
    *,
    choice: EngineChoice | None = None,
    limiter: Limiter | None = None,
    on_ready: ProgressCallback | None = None,
) -> Rendered:
    """Steps 4–5: the streaming render, assembled into one reading (see ``RenderStream``).

    ``choice``'s engine stays open (its owner closes it); an engine chosen here is closed.
    """
    stream = RenderStream(script, settings, choice=choice, limiter=limiter, on_ready=on_ready)
    assembler = Assembler(script)
    async with contextlib.aclosing(stream.items()) as items:
        async for item in items:
            if isinstance(item, Restarted):
                assembler = Assembler(script)
            else:
                assembler.add(item)
    assert stream.engine is not None
    return Rendered(assembler.finish(), stream.stats, stream.engine, tuple(stream.warnings))


async def render_to(
    script: Script,
    settings: Settings,
    sink: AudioSink,
    *,
    choice: EngineChoice | None = None,
    limiter: Limiter | None = None,
    on_ready: ProgressCallback | None = None,
    on_audio: Callable[[bytes], None] | None = None,
) -> Written:
    """Steps 4–5, streaming: each segment's frames and pause go to ``sink`` as soon as it and
    all before it are ready; only the timeline (chapters, cues, counts) is kept, so memory does
    not grow with the audio. A ``--fallback`` restart calls ``sink.restart()``. ``on_audio``
    is told each segment's audio as soon as it arrives (see ``RenderStream``).

    ``choice``'s engine stays open (its owner closes it); an engine chosen here is closed.
    """
    stream = RenderStream(
        script, settings, choice=choice, limiter=limiter, on_ready=on_ready, on_audio=on_audio
    )
    assembler = Assembler(script, sink=sink.write)
    async with contextlib.aclosing(stream.items()) as items:
        async for item in items:
            if isinstance(item, Restarted):
                sink.restart()
                assembler = Assembler(script, sink=sink.write)
            else:
                assembler.add(item)
                await sink.drain()
    assert stream.engine is not None
    return Written(assembler.timeline(), stream.stats, stream.engine, tuple(stream.warnings))


STDOUT = Path("-")
"""The output ``-``: the MP3 goes to standard output as it is made."""


def load_clips(settings: Settings) -> Clips:
    """The intro and outro of ``settings`` at its loudness target, made (or taken from the
    cache) once, before any synthesis: ``UsageError`` naming a file that cannot be used."""
    from newsreader.audio.intro import load_clips as load

    root = settings.cache_dir if settings.use_cache else None
    return load(settings.intro, settings.outro, settings.loudness, root)


def ahead_levels(settings: Settings) -> AheadLevels:
    """The measurements of one reading, cached beside the segment cache."""
    from newsreader.audio.ahead import AheadLevels

    return AheadLevels(settings.cache_dir if settings.use_cache else None)


def level_meter(settings: Settings, levels: AheadLevels | None = None) -> LevelMeter:
    """A meter for one reading, on ``levels`` (else new ones, ``ahead_levels``)."""
    from newsreader.audio.level import LevelMeter

    return LevelMeter(levels if levels is not None else ahead_levels(settings))


def measured(
    writer: AudioSink, settings: Settings, clips: Clips, levels: AheadLevels | None = None
) -> MeasuredSink:
    """``writer`` with a level meter on the way in and the intro in front of the reading."""
    from newsreader.audio.level import MeasuredSink

    return MeasuredSink(writer, level_meter(settings, levels), intro=clips.intro_mp3)


class MadeOnFirstUse(Generic[SinkT]):
    """A sink made when something is first written to it (or ``sink`` is asked for).

    ``read`` sends its first requests before the level meter (numpy) and the tags (mutagen) are
    imported: the sink is made when the first audio is written, by which time the imports have
    been made in the background (``newsreader.warmup``). What the sink writes first (a title
    tag, the intro) still goes first.
    """

    def __init__(self, make: Callable[[], SinkT]) -> None:
        self._make = make
        self._sink: SinkT | None = None

    @property
    def sink(self) -> SinkT:
        if self._sink is None:
            self._sink = self._make()
        return self._sink

    def write(self, data: bytes) -> None:
        self.sink.write(data)

    async def drain(self) -> None:
        await self.sink.drain()

    def restart(self) -> None:
        self.sink.restart()


async def close_reading(sink: MeasuredSink, timeline: Timeline, clips: Clips) -> Timeline:
    """The outro goes behind the reading and what is left is measured (in a worker thread,
    and before ``written_together()``: the level cache's files are no part of the output);
    the reading's timeline moves behind the intro."""
    sink.write_clip(clips.outro_mp3)
    await asyncio.to_thread(sink.meter.measure_pending)
    return timeline.shifted(clips.intro_frames, clips.outro_frames)


async def write_reading(
    article: Article,
    script: Script,
    settings: Settings,
    output: Path,
    *,
    subtitles: Path | None = None,
    chapters: Path | None = None,
    choice: EngineChoice | None = None,
    on_ready: ProgressCallback | None = None,
    clips: Clips | None = None,
    stdout: BinaryIO | None = None,
) -> Written:
    """Steps 4–6, streaming, in memory flat in the article's length: what ``read`` does.

    To a file: the intro (``clips``, else loaded from ``settings``), then the frames go to a
    temporary body beside ``output`` as they come, each piece noted by a level meter, then the
    outro; at the end one gain brings the reading to ``settings.loudness`` (``LevelMeter``:
    global_gain rewritten in place, ReplayGain in the tag), and the tagged MP3 (tag, Info frame,
    body), the subtitles and the Podcasting 2.0 chapters file (times behind the intro) are
    renamed into place together, or none is (``written_together``). The segment cache is
    written as segments come, outside that block, so a run that fails keeps what it synthesized.

    To ``STDOUT`` (``stdout``, else the process's): a title-only tag, then the intro and each
    segment's frames as soon as it is ready (``PipeWriter``; ``PipeClosed`` when the listener
    goes away), then the outro; the subtitles and chapters files are written at the end. Audio
    already sent cannot be reworked, so the stream is *not* brought to the loudness target
    (the embedded voice and the clips are at it already; edge's level is its own). A pipe
    cannot take audio back either, so a ``--fallback`` restart there is a ``UsageError``
    raised before anything is synthesized.

    Missing folders are made (and removed again if the run fails). Raises ``OutputError``.
    """
    to_stdout = output == STDOUT
    if to_stdout:
        _refuse_restart_on_pipe(settings.fallback)
    if clips is None:
        clips = load_clips(settings)
    made: list[Path] = []
    try:
        for path in (None if to_stdout else output, subtitles, chapters):
            if path is not None:
                made += _make_folder(path)
        if to_stdout:
            later_pipe = MadeOnFirstUse(functools.partial(_open_pipe, stdout, script, clips))
            written = await render_to(
                script, settings, later_pipe, choice=choice, on_ready=on_ready
            )
            pipe = later_pipe.sink
            pipe.write(clips.outro_mp3)
            await pipe.drain()
            timeline = written.timeline.shifted(clips.intro_frames, clips.outro_frames)
            with written_together():
                _write_sidecars(timeline, subtitles, chapters)
            return dataclasses.replace(written, timeline=timeline)
        from newsreader.audio.writer import Mp3Writer

        # each segment is measured as its audio streams in, while other requests are still out
        with Mp3Writer(output) as writer, ahead_levels(settings) as levels:
            # the meter is made when the first audio is written (after the first requests)
            later = MadeOnFirstUse(lambda: measured(writer, settings, clips, levels))
            written = await render_to(
                script, settings, later, choice=choice, on_ready=on_ready, on_audio=levels
            )
            sink = later.sink
            timeline = await close_reading(sink, written.timeline, clips)
            finisher = sink.meter.finisher(settings.loudness)
            with written_together():
                writer.finish(timeline.chapters, tags_for(article, script), finisher)
                _write_sidecars(timeline, subtitles, chapters)
        return dataclasses.replace(written, timeline=timeline, level=sink.meter.level)
    except BaseException:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _open_pipe(stdout: BinaryIO | None, script: Script, clips: Clips) -> PipeWriter:
    """Standard output (``stdout``, else the process's) with the title tag and the intro."""
    from newsreader.audio.writer import PipeWriter

    pipe = PipeWriter(stdout or sys.stdout.buffer, script.title)
    pipe.write(clips.intro_mp3)
    return pipe


def _write_sidecars(timeline: Timeline, subtitles: Path | None, chapters: Path | None) -> None:
    from newsreader.audio.subtitles import write_subtitles

    if subtitles is not None:
        write_subtitles(subtitles, timeline.cues)
    if chapters is not None:
        from newsreader.podcast.chapters import chapters_json

        atomic_write(chapters, chapters_json(timeline.chapters))


def _merged(runs: list[RunStats]) -> RunStats:
    """One ``RunStats`` for several runs (an engine and its fallback): counts added up; the
    most requests open at once is the most of any run, and where concurrency settled (and its
    ceiling) is the last run's."""
    total = RunStats()
    for run in runs:
        for field in dataclasses.fields(RunStats):
            mine, theirs = getattr(total, field.name), getattr(run, field.name)
            if field.name in ("level", "adaptive_limit"):
                setattr(total, field.name, theirs)
            elif field.name == "peak":
                setattr(total, field.name, max(mine, theirs))
            elif isinstance(mine, Counter):
                mine.update(theirs)
            elif isinstance(mine, int | float) and not isinstance(mine, bool):
                setattr(total, field.name, mine + theirs)
    return total


def tags_for(article: Article, script: Script) -> Tags:
    from newsreader.audio.tags import Tags

    host = urlsplit(article.source).hostname if "://" in article.source else None
    artist = article.site or host or "newsreader"
    return Tags(
        title=script.title,
        artist=artist,
        album=article.site or host or "newsreader",
        date=article.published,
        url=article.source if "://" in article.source else None,
        comment="Read aloud by newsreader",
    )


_UNSAFE = re.compile(r"[^\w\u3400-\u9fff\uf900-\ufaff-]+")


def slugify(title: str, *, limit: int = 60) -> str:
    """A file-name-safe slug that keeps Chinese characters: ``科技局 构建`` → ``科技局-构建``."""
    text = unicodedata.normalize("NFKC", title).strip().lower()
    slug = _UNSAFE.sub("-", text).strip("-_")
    slug = re.sub(r"-{2,}", "-", slug)[:limit].strip("-_")
    return slug or "article"


DEFAULT_FOLDER = Path("audio")
"""Where ``read`` writes when no ``-o`` is given: relative to the current folder."""


def default_output(script: Script, folder: Path = DEFAULT_FOLDER) -> Path:
    return folder / f"{slugify(script.title)}.mp3"


def check_output_paths(
    output: Path | None,
    subtitles: Path | None = None,
    *,
    chapters: Path | None = None,
    source: str | None = None,
    fallback: str | None = None,
) -> None:
    """Refuse bad output paths before any fetch or synthesis work is spent.

    ``output`` None stands for the default output, whose name is known only after extraction:
    its folder is checked; ``STDOUT`` is standard output, which must not be a terminal. Each
    path must have the right suffix, must not be an existing folder or the input file
    (``source``), and a file must be creatable where it goes (proved by creating and removing
    one). A ``fallback`` engine cannot go with ``STDOUT`` (see ``write_reading``). Raises
    ``UsageError`` or ``OutputError``; creates nothing.
    """
    to_stdout = output == STDOUT
    if to_stdout and fallback is not None:
        _refuse_restart_on_pipe(fallback)
    if output is not None and not to_stdout and output.suffix.lower() != ".mp3":
        raise UsageError(f"output {output} must end in .mp3 (or be - for standard output).")
    if subtitles is not None and subtitles.suffix.lower() not in (".vtt", ".srt"):
        raise UsageError(f"subtitles {subtitles} must end in .vtt or .srt.")
    if chapters is not None and chapters.suffix.lower() != ".json":
        raise UsageError(f"chapters {chapters} must end in .json.")
    if to_stdout and sys.stdout.isatty():
        raise UsageError(
            "-o - writes MP3 audio to standard output, which is a terminal here: "
            "pipe it to a player (… -o - | mpv -) or give a file name."
        )
    if output is None:
        _check_folder(DEFAULT_FOLDER, f"{DEFAULT_FOLDER}{os.sep} (the default output folder)")
    for path in (output, subtitles, chapters):
        if path is not None and path != STDOUT:
            _refuse_input(path, source)
            check_writable(path)


def _refuse_restart_on_pipe(fallback: str) -> None:
    if fallback != registry.NO_FALLBACK:
        raise UsageError(
            f"--fallback {fallback} cannot be used with -o -: audio already played cannot be "
            "read again in another voice; write to a file instead."
        )


def check_writable(path: Path) -> None:
    """Prove that a file can be written at ``path``; ``OutputError`` saying why if not.

    A missing folder is fine when it can be made (``write_outputs`` makes it). Nothing is left
    behind: the proof is a temporary file, created and removed at once.
    """
    _check_name_length(path)
    try:
        is_folder = path.is_dir()
    except OSError as error:  # e.g. a path longer than the system allows
        raise OutputError(f"cannot write {path}: {error.strerror or error}.") from None
    if is_folder:
        raise OutputError(f"cannot write {path}: it is a folder (give a file name).")
    _check_folder(path.parent, str(path))


def _check_folder(folder: Path, target: str) -> None:
    """``folder`` exists, or can be made, and a file can be created in it (``target`` is what
    the message calls the output)."""
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(
            f"cannot write {target}: {existing} is a file, not a folder (choose another path)."
        )
    probe = temporary_name(existing / "probe")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise OutputError(
            f"cannot write {target}: a file cannot be created in {existing} ({reason}); "
            "choose a folder you can write to."
        ) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        probe.unlink()


def _check_name_length(path: Path) -> None:
    """A name too long for its file system fails only at the final rename: refuse it now."""
    existing = path.parent
    while not os.path.isdir(existing) and existing != existing.parent:
        existing = existing.parent
    try:
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for part in path.parts:
        if len(os.fsencode(part)) > limit:
            raise OutputError(
                f"cannot write {path}: the name {part[:20]}… is longer than the {limit} bytes "
                "the file system allows."
            )


def _refuse_input(path: Path, source: str | None) -> None:
    if not source or source == "-" or "://" in source:
        return
    try:
        same = os.path.samefile(path, source)
    except OSError:  # one of them does not exist (or cannot be looked at): not the same file
        return
    if same:
        raise UsageError(
            f"{path} is the input file, and writing it would destroy the article: "
            "choose another output name."
        )


def write_outputs(
    rendered: Rendered,
    article: Article,
    script: Script,
    output: Path,
    subtitles: Path | None = None,
) -> None:
    """Step 6: the tagged MP3 and the subtitles, as one output.

    Both files are written completely under temporary names, then renamed into place together:
    if either cannot be written, neither existing file changes (``written_together``). Missing
    folders are made. Raises ``OutputError``.
    """
    from newsreader.audio.subtitles import write_subtitles
    from newsreader.audio.tags import write_mp3

    for path in (output, subtitles):
        if path is not None:
            _make_folder(path)
    with written_together():
        write_mp3(output, rendered.reading, tags_for(article, script))
        if subtitles is not None:
            write_subtitles(subtitles, rendered.reading.cues)


def _make_folder(path: Path) -> list[Path]:
    """Make ``path``'s folder if missing; the folders made, outermost first."""
    missing: list[Path] = []
    folder = path.parent
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.insert(0, folder)
        folder = folder.parent
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise OutputError(
            f"cannot write {path}: its folder {path.parent} cannot be made ({reason})."
        ) from None
    return missing
