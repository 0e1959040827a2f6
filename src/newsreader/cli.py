"""The command line: parses options, calls the library, maps errors to one line and an exit code.

Start-up is part of every run's time, so this module imports only click and the options: each
command imports what it needs when it runs, and ``feed``, ``serve`` and ``worker`` are loaded
from their modules only when named (or for ``--help``). ``read`` sends its first requests before
anything that is needed only once audio arrives is imported (``newsreader.warmup``).
"""

from __future__ import annotations

import atexit
import gc
import sys
import threading


def _freeze_when_alone() -> None:
    """At exit the interpreter tears its modules down with several full garbage collections over
    every object numpy, scipy and PyAV made: 0.25 to 0.35 s after a reading's file was complete.
    Freezing the objects first skips those passes (all output is written, flushed and renamed
    before the command returns), but only when no other thread is left: freezing while a
    background import still ran crashed the interpreter at exit (1 run in 3). A thread still
    running (a measurement or an import that outlived ``newsreader.warmup``'s wait) gets the
    ordinary, slower teardown."""
    if threading.active_count() == 1:
        gc.freeze()


# Registered before anything else, it runs after every other exit handler, in particular after
# ``newsreader.warmup`` has waited for the module a background import was in.
atexit.register(_freeze_when_alone)

from newsreader import warmup  # noqa: E402

# The event loop shares the GIL with threads that hold it for long stretches (imports in the
# background, decoding and measuring each segment as it streams in). Each time the loop comes back
# from the network it waits for the GIL up to the switch interval, and a run makes thousands of
# such trips: at the default 5 ms, adaptive concurrency's climb to 16 connections took 1.27 to
# 1.43 s instead of 1.2 s against the stand-in; at 0.5 ms, 1.25 to 1.35 s, and `read`'s 1× run
# about 0.1 s less in all (five runs each, side by side).
sys.setswitchinterval(0.0005)

# The online voice's client is the largest import before read's first request (aiohttp and
# edge_tts; their certificate stores load without the GIL): it starts in the background before
# anything else, while click and the options load here and the article is prepared.
warmup.warm(warmup.client_for_command_line(sys.argv), name="newsreader-client")


import contextlib  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any, NoReturn  # noqa: E402

import click  # noqa: E402

from newsreader.cli_common import (  # noqa: E402
    OneLineErrors,
    fallback_option,
    make_settings,
    release_large_buffers,
    user_errors,
    voice_options,
    warn,
)
from newsreader.config import DEFAULT_VOICE  # noqa: E402

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from newsreader.config import Settings
    from newsreader.models import Script
    from newsreader.pipeline import Written
    from newsreader.synth.scheduler import ProgressCallback
    from newsreader.synth.select import EngineChoice
    from newsreader.warmup import Warmup

LAZY_COMMANDS = {
    "feed": "newsreader.podcast.command:feed",
    "serve": "newsreader.service.command:serve",
    "worker": "newsreader.scale.command:worker",
}
"""Commands defined in their own modules, imported when the command line names them."""


@click.group(
    cls=OneLineErrors,
    lazy_commands=LAZY_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="newsreader")
def main() -> None:
    """Read Mandarin news aloud: article in, one MP3 with chapters and subtitles out."""
    release_large_buffers()


def _minutes(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


@main.command()
@click.argument("source")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, allow_dash=True),
    help="MP3 path, or - to stream the MP3 to standard output [default: audio/<title>.mp3].",
)
@click.option(
    "--subtitles",
    type=click.Path(path_type=Path),
    help="Also write synchronized subtitles (.vtt or .srt).",
)
@click.option(
    "--chapters",
    type=click.Path(path_type=Path),
    help="Also write the chapters as Podcasting 2.0 JSON (.json).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
@fallback_option(
    "If the online voice fails partway: fail naming the paragraphs (none), or read the "
    "whole article with the embedded voice (espeak)."
)
@click.option(
    "--retries", type=int, default=4, show_default=True, help="Retries for a failed segment."
)
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Deadline for one synthesis request, seconds.",
)
@voice_options
def read(
    source: str,
    output: Path | None,
    subtitles: Path | None,
    chapters: Path | None,
    quiet: bool,
    fallback: str,
    retries: int,
    timeout: float,
    **voice: Any,
) -> None:
    """Read SOURCE (a file, an http(s) URL, or - for stdin) aloud into one MP3."""
    from dataclasses import replace

    with user_errors():
        # The online voice's client (aiohttp, edge_tts: the largest import before the first
        # request; its certificate stores load without the GIL) is imported in the background
        # while the settings, the article and the script are made here.
        client = warmup.warm(warmup.client_modules(voice["engine"]), name="newsreader-client")
        settings = replace(
            make_settings(**voice),
            fallback=fallback,
            retries=retries,
            request_timeout=timeout,
        )
        import asyncio

        from newsreader import pipeline

        # The intro and outro are made (or taken from the cache) before anything else is spent.
        clips = pipeline.load_clips(settings)
        to_stdout = output == pipeline.STDOUT
        # Every output path is proved writable before the fetch and the synthesis are spent.
        pipeline.check_output_paths(
            output, subtitles, chapters=chapters, source=source, fallback=fallback
        )
        article = pipeline.load_article(source, settings)
        for note in article.notes:
            warn(note)
        script = pipeline.make_script(article, settings)
        target = output or pipeline.default_output(script)
        if output is None:
            pipeline.check_output_paths(target, source=source)
        later = warmup.Warmup(
            warmup.reading_modules(
                to_file=not to_stdout,
                chapters=chapters is not None,
                summary=not quiet,
                progress_bar=not quiet and _may_be_terminal(),
            )
        )
        try:
            written = asyncio.run(
                _render_with_progress(
                    script,
                    settings,
                    quiet,
                    lambda choice, on_ready: pipeline.write_reading(
                        article,
                        script,
                        settings,
                        target,
                        subtitles=subtitles,
                        chapters=chapters,
                        choice=choice,
                        on_ready=on_ready,
                        clips=clips,
                    ),
                    later,
                )
            )
        except Exception as error:
            from newsreader.audio.writer import PipeClosed

            if isinstance(error, PipeClosed):
                _listener_gone()
            raise
        finally:
            client.stop()
            later.stop()
        for note in written.warnings:
            warn(note)
        if not quiet:
            stats = written.stats
            where = "streamed to standard output" if to_stdout else f"wrote {target}"
            _stderr().print(
                f"{where}: {_minutes(written.timeline.duration)}, "
                f"{len(script.segments)} segments ({stats.cache_hits} from cache, "
                f"{stats.requests} requests), engine {written.engine}"
                + (f", {stats.concurrency_note()}" if stats.concurrency_note() else "")
                + (f", {written.level.describe()}" if written.level else "")
                + (f", subtitles {subtitles}" if subtitles else "")
                + (f", chapters {chapters}" if chapters else ""),
                markup=False,
            )


def _listener_gone() -> NoReturn:
    """The player reading ``-o -`` quit: stop at once, quietly, as a Unix filter does.

    Nothing more is written anywhere (no subtitles, no chapters: the reading is incomplete), and
    the exit status is 141, what a shell reports for a process ended by SIGPIPE. Standard output
    is pointed at /dev/null so that Python's final flush cannot complain about the pipe.
    """
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(128 + signal.SIGPIPE)


Run = Callable[["EngineChoice", "ProgressCallback | None"], Awaitable["Written"]]


async def _render_with_progress(
    script: Script, settings: Settings, quiet: bool, run: Run, later: Warmup | None = None
) -> Written:
    """Chooses the engine and runs ``run`` with it; once the first requests are out, ``later``
    (what the reading needs when audio arrives) is imported in the background."""
    from newsreader.synth.select import choose_engine

    choice = await choose_engine(settings, script=script)
    try:
        if choice.warning:
            warn(choice.warning)
        return await _render_choice(script, choice, quiet, run, later)
    finally:
        await choice.engine.close()  # the engine chosen here is closed here


async def _render_choice(
    script: Script, choice: EngineChoice, quiet: bool, run: Run, later: Warmup | None
) -> Written:
    import asyncio

    from newsreader.warmup import once_requests_are_out

    bar = None if quiet else _Bar(len(script.segments))

    def requests_out() -> None:
        if later is not None:
            later.start()
        if bar is not None and _may_be_terminal() and _stderr().is_terminal:
            bar.start()

    watcher = asyncio.create_task(once_requests_are_out(requests_out))
    try:
        return await run(choice, bar.update if bar is not None else None)
    finally:
        watcher.cancel()
        if bar is not None:
            bar.stop()


class _Bar:
    """The progress bar on a terminal: made once the first requests are out (``rich.progress``
    is not needed before), showing the segments ready so far."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.completed = 0
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def start(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        if self._progress is not None:
            return
        self._progress = Progress(
            TextColumn("[bold]synthesizing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_stderr(),
            transient=True,
        )
        self._task = self._progress.add_task("segments", total=self.total, completed=self.completed)
        self._progress.start()

    def update(self, index: int, _cached: bool) -> None:
        # Segments come in script order; a --fallback re-render starts the bar again.
        self.completed = index + 1
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=self.completed)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _stderr() -> Console:
    from newsreader.cli_common import stderr

    return stderr


def _may_be_terminal() -> bool:
    """False when rich would not take standard error for a terminal either (it is no tty and
    no variable says otherwise): then rich, and its console, need not be imported to ask."""
    return _isatty(sys.stderr) or any(v in os.environ for v in ("FORCE_COLOR", "TTY_COMPATIBLE"))


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no stream, or a closed one
        return False


@main.command()
@click.argument("source")
@click.option("--spoken", is_flag=True, help="Show the segments exactly as sent to the voice.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--voice", default=DEFAULT_VOICE, show_default=True, help="Voice (sets 简/繁).")
@click.option("--no-title", is_flag=True, help="Leave the headline out of the spoken segments.")
def extract(source: str, spoken: bool, as_json: bool, voice: str, no_title: bool) -> None:
    """Print exactly what will be read from SOURCE."""
    import json
    from dataclasses import asdict

    from newsreader import pipeline
    from newsreader.config import Settings

    with user_errors():
        settings = Settings(voice=voice, read_title=not no_title, engine="espeak")
        article = pipeline.load_article(source, settings)
        for note in article.notes:
            warn(note)
        script = pipeline.make_script(article, settings) if spoken else None
        if as_json:
            payload: dict[str, Any] = {
                "title": article.title,
                "source": article.source,
                "site": article.site,
                "published": article.published.isoformat() if article.published else None,
                "blocks": [{"kind": b.kind.value, "text": b.text} for b in article.blocks],
                "notes": list(article.notes),
            }
            if script is not None:
                payload["chapters"] = list(script.chapters)
                payload["segments"] = [
                    {
                        **{k: v for k, v in asdict(seg).items() if k not in ("kind", "pause")},
                        "kind": seg.kind.value,
                        "pause": seg.pause.name.lower(),
                    }
                    for seg in script.segments
                ]
            click.echo(json.dumps(payload, ensure_ascii=False, indent=2))
            return
        if script is not None:
            for seg in script.segments:
                click.echo(f"[{seg.index:03d} {seg.kind.value:<7} pause={seg.pause.name.lower()}]")
                click.echo(f"  {seg.text}")
            return
        click.echo(f"# {article.title}")
        meta = [x for x in (article.site, article.published and article.published.isoformat()) if x]
        if meta:
            click.echo(f"({' · '.join(str(m) for m in meta)})")
        for block in article.blocks:
            click.echo("")
            click.echo(f"## {block.text}" if block.kind.value == "heading" else block.text)


@main.command()
@click.option("--locale", default=None, help="Only voices of this locale, e.g. zh-CN.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def voices(locale: str | None, as_json: bool) -> None:
    """List the voices: edge's online voices, else the embedded ones."""
    import asyncio
    import json
    from dataclasses import asdict

    from newsreader.synth.voices import list_voices

    with user_errors():
        listing = asyncio.run(list_voices(locale))
        if listing.unavailable:
            warn(listing.unavailable)
        if as_json:
            click.echo(
                json.dumps([asdict(v) for v in listing.voices], ensure_ascii=False, indent=2)
            )
            return
        click.echo(f"{'Locale':<8} {'Gender':<7} {'Engine':<7} ShortName")
        for v in listing.voices:
            click.echo(f"{v.locale:<8} {v.gender:<7} {v.engine:<7} {v.short_name}")


if __name__ == "__main__":  # pragma: no cover
    main()
