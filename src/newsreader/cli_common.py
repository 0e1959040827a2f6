"""What every command shares: the voice options, Settings from them, and one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from newsreader.config import DEFAULT_VOICE, Settings, default_cache_dir
from newsreader.errors import NewsreaderError

F = TypeVar("F", bound=Callable[..., Any])

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(error: NewsreaderError) -> None:
    stderr.print(f"newsreader: error: {error.message}", markup=False)
    sys.exit(error.exit_code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Every NewsreaderError becomes one line on stderr and its exit code; ^C exits 130."""
    try:
        yield
    except NewsreaderError as error:
        fail(error)
    except KeyboardInterrupt:
        stderr.print("newsreader: interrupted; nothing was written.")
        sys.exit(130)


def warn(message: str) -> None:
    stderr.print(f"newsreader: warning: {message}", markup=False)


def voice_options(func: F) -> F:
    options = [
        click.option("--voice", default=DEFAULT_VOICE, show_default=True, help="Voice ShortName."),
        click.option("--rate", default="+0%", show_default=True, help="Speed, e.g. +10% or -20%."),
        click.option("--pitch", default="+0Hz", show_default=True, help="Pitch, e.g. +5Hz."),
        click.option("--volume", default="+0%", show_default=True, help="Volume, e.g. -10%."),
        click.option(
            "--engine",
            type=click.Choice(["auto", "edge", "espeak"]),
            default="auto",
            show_default=True,
            help="edge (online neural voices), espeak (embedded, offline) or auto.",
        ),
        click.option(
            "--concurrency", type=int, default=4, show_default=True, help="Parallel requests."
        ),
        click.option(
            "--cache-dir",
            type=click.Path(path_type=Path, file_okay=False),
            default=None,
            help=f"Segment cache folder [default: {default_cache_dir()}].",
        ),
        click.option("--no-cache", is_flag=True, help="Neither read nor write the segment cache."),
        click.option("--no-title", is_flag=True, help="Do not read the headline first."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def make_settings(
    voice: str,
    rate: str,
    pitch: str,
    volume: str,
    engine: str,
    concurrency: int,
    cache_dir: Path | None,
    no_cache: bool,
    no_title: bool,
) -> Settings:
    return Settings(
        voice=voice,
        rate=rate,
        pitch=pitch,
        volume=volume,
        engine=engine,  # type: ignore[arg-type]  # click.Choice has checked it
        concurrency=concurrency,
        cache_dir=cache_dir or default_cache_dir(),
        use_cache=not no_cache,
        read_title=not no_title,
    )
