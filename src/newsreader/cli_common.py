"""What every command shares: the voice options, Settings from them, and one-line errors.

The ``--engine`` and ``--fallback`` choices are read from the engine registry whenever click
looks at them, so every command offers every registered engine.
"""

from __future__ import annotations

import functools
import importlib
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from newsreader.config import (
    DEFAULT_LOUDNESS,
    DEFAULT_VOICE,
    Settings,
    default_cache_dir,
    parse_loudness,
)
from newsreader.errors import NewsreaderError, UsageError
from newsreader.synth import registry

if TYPE_CHECKING:
    from rich.console import Console

    stderr: Console
    """The console for messages and the progress bar (made on first use: rich costs start-up)."""

F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def _console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def __getattr__(name: str) -> Any:
    if name == "stderr":
        return _console()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def fail(error: NewsreaderError) -> None:
    _console().print(f"newsreader: error: {error.message}", markup=False)
    sys.exit(error.exit_code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Every NewsreaderError becomes one line on stderr and its exit code; ^C exits 130."""
    try:
        yield
    except NewsreaderError as error:
        fail(error)
    except KeyboardInterrupt:
        _console().print("newsreader: interrupted; nothing was written.")
        sys.exit(130)


class OneLineErrors(click.Group):
    """The command group: a mistake in the options of any command is one line on stderr, exit 2.

    Click would print the usage, a hint and the error (four lines); here the error names the
    option and what it accepts, and points at ``--help``.

    ``lazy_commands`` maps a command's name to ``"module:attribute"``: the module is imported
    only when that command is named (or listed, for ``--help``), so a command's start-up does
    not pay for the others' imports.
    """

    def __init__(
        self, *args: Any, lazy_commands: Mapping[str, str] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        commands = LazyCommands(lazy_commands or {})
        commands.update(self.commands)
        self.commands: LazyCommands = commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.commands.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        try:
            return self.commands[cmd_name]
        except KeyError:
            return None

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            raise _one_line(error) from None

    def invoke(self, ctx: click.Context) -> Any:
        # The sub-command's options are parsed, and its callback run, inside the group's invoke.
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            raise _one_line(error) from None


class LazyCommands(dict[str, click.Command]):
    """A group's commands, those of ``lazy`` (name → ``"module:attribute"``) imported when first
    looked up by name."""

    def __init__(self, lazy: Mapping[str, str]) -> None:
        super().__init__()
        self.lazy = dict(lazy)

    def __missing__(self, name: str) -> click.Command:
        if name not in self.lazy:
            raise KeyError(name)
        module, _, attribute = self.lazy[name].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy[name]} is not a click command")
        self[name] = command
        return command


class OneLineUsageError(click.ClickException):
    """A usage mistake shown as ``newsreader: error: …`` alone."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"newsreader: error: {self.format_message()}", file=file, err=file is None)


# Click ≥ 8.2 shows a group's help through this UsageError; it is not a mistake to reword.
_HELP_SHOWN: tuple[type[click.UsageError], ...] = tuple(
    kind for kind in [getattr(click.exceptions, "NoArgsIsHelpError", None)] if kind is not None
)


def _one_line(error: click.UsageError) -> click.ClickException:
    if isinstance(error, _HELP_SHOWN):
        return error
    return OneLineUsageError(usage_line(error))


def usage_line(error: click.UsageError) -> str:
    """``--engine must be auto, edge or espeak, not 'foo' (see 'newsreader read --help').``"""
    message = error.format_message()
    if isinstance(error, click.BadParameter) and not isinstance(error, click.MissingParameter):
        name = _parameter_name(error)
        if name and error.param is not None and isinstance(error.param.type, click.Choice):
            given = re.match(r"^(.+?) is not (?:one of )?", error.message)
            choices = [str(c) for c in error.param.type.choices]
            message = f"{name} must be {_alternatives(choices)}" + (
                f", not {given[1]}" if given else ""
            )
        elif name:
            message = f"{name}: {_plain_numbers(error.message)}"
    message = message.rstrip(".")
    if message[:1].isupper() and message[1:2].islower():
        message = message[0].lower() + message[1:]
    if error.ctx is not None:
        message += f" (see '{error.ctx.command_path} --help')"
    return message + "."


def _parameter_name(error: click.BadParameter) -> str | None:
    if isinstance(error.param_hint, str):
        return error.param_hint
    if error.param_hint:
        return " / ".join(error.param_hint)
    if isinstance(error.param, click.Option):
        return max(error.param.opts, key=len)
    if error.param is not None:
        return error.param.human_readable_name
    return None


def _alternatives(choices: list[str]) -> str:
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])} or {choices[-1]}"


def _plain_numbers(message: str) -> str:
    """Click calls a whole number an "integer range"; say what the option wants."""
    message = re.sub(r"is not a valid integer(?: range)?", "is not a whole number", message)
    return re.sub(r"is not a valid float(?: range)?", "is not a number", message)


class RegistryChoice(click.Choice[str]):
    """A choice among names the engine registry gives, asked afresh each time click checks."""

    def __init__(self, names: Callable[[], tuple[str, ...]]) -> None:
        self._names = names
        super().__init__(names())

    @property
    def choices(self) -> tuple[str, ...]:
        return self._names()

    @choices.setter
    def choices(self, _given: Any) -> None:
        """click.Choice stores its choices on construction; they are the registry's instead."""


def engine_option(help: str | None = None) -> Callable[[F], F]:
    """``--engine``: auto or any registered engine."""
    described = ", ".join(f"{e.name} ({e.help})" for e in registry.entries())
    return click.option(
        "--engine",
        type=RegistryChoice(registry.engine_choices),
        default=registry.AUTO,
        show_default=True,
        help=help or f"{described} or auto.",
    )


def fallback_option(help: str) -> Callable[[F], F]:
    """``--fallback``: none, or an embedded engine that reads the whole article instead."""
    return click.option(
        "--fallback",
        type=RegistryChoice(registry.fallback_choices),
        default=registry.NO_FALLBACK,
        show_default=True,
        help=help,
    )


_M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number for the size from which a block gets its own mapping."""


def release_large_buffers(threshold: int = 128 * 1024) -> bool:
    """Give blocks of ``threshold`` bytes and more (a segment's PCM, its frames, the level
    meter's arrays) their own memory mapping, returned to the system when freed.

    glibc starts at this threshold but raises it to the size of each large block freed (up to
    32 MB): after that, a long reading's transient buffers come from the heaps of the threads
    that made them, and the freed holes keep the process's resident memory growing with the
    reading's length. A fixed threshold keeps it flat. Only on glibc; True when it was set.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


def warn(message: str) -> None:
    _console().print(f"newsreader: warning: {message}", markup=False)


def _loudness(_ctx: click.Context, _param: click.Parameter, value: str) -> float | None:
    try:
        return parse_loudness(value)
    except UsageError as error:
        raise OneLineUsageError(error.message) from None


def level_options(func: F) -> F:
    """``--loudness``, ``--intro``, ``--outro``: how loud every output is, and what frames it."""
    options = [
        click.option(
            "--loudness",
            default=f"{DEFAULT_LOUDNESS:g}",
            show_default=True,
            callback=_loudness,
            help="Integrated loudness of the output, LUFS (true peak at most -1 dBTP), "
            "or off for the voice's own level.",
        ),
        click.option(
            "--intro",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="Audio file (WAV, M4A, MP3, …) played before each reading, at the same loudness.",
        ),
        click.option(
            "--outro",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="Audio file played after each reading, at the same loudness.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def voice_options(func: F) -> F:
    options = [
        click.option("--voice", default=DEFAULT_VOICE, show_default=True, help="Voice ShortName."),
        click.option("--rate", default="+0%", show_default=True, help="Speed, e.g. +10% or -20%."),
        click.option("--pitch", default="+0Hz", show_default=True, help="Pitch, e.g. +5Hz."),
        click.option("--volume", default="+0%", show_default=True, help="Volume, e.g. -10%."),
        engine_option(),
        click.option(
            "--concurrency",
            type=int,
            default=None,
            help="Parallel requests, pinned [default: adaptive, from 4 up to --max-concurrency].",
        ),
        click.option(
            "--max-concurrency",
            type=int,
            default=16,
            show_default=True,
            help="The most parallel requests adaptive concurrency opens.",
        ),
        click.option(
            "--cache-dir",
            type=click.Path(path_type=Path, file_okay=False),
            default=None,
            help=f"Segment cache folder [default: {default_cache_dir()}].",
        ),
        click.option("--no-cache", is_flag=True, help="Neither read nor write the segment cache."),
        click.option("--no-title", is_flag=True, help="Do not read the headline first."),
        level_options,
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
    concurrency: int | None,
    max_concurrency: int,
    cache_dir: Path | None,
    no_cache: bool,
    no_title: bool,
    loudness: float | None,
    intro: Path | None,
    outro: Path | None,
) -> Settings:
    return Settings(
        voice=voice,
        rate=rate,
        pitch=pitch,
        volume=volume,
        engine=engine,
        concurrency=concurrency,
        max_concurrency=max_concurrency,
        cache_dir=cache_dir or default_cache_dir(),
        use_cache=not no_cache,
        read_title=not no_title,
        loudness=loudness,
        intro=intro,
        outro=outro,
    )
