"""``newsreader feed``: a news feed in, a podcast feed out (thin: parse, call, report)."""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from newsreader.cli_common import make_settings, stderr, user_errors, voice_options, warn
from newsreader.errors import UsageError
from newsreader.podcast.entries import CHINA_TIME
from newsreader.podcast.updater import (
    DEFAULT_MAX_FEED_BYTES,
    FeedReport,
    FeedRequest,
    update_feed,
)

_GRACE = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_MAX_GRACE = timedelta(days=366)


def parse_since(value: str) -> datetime:
    """``2024-07-02`` or an ISO 8601 date-time; without a zone it means Beijing time."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(
            f"--since {value!r} is not a date: use YYYY-MM-DD or an ISO 8601 date-time."
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=CHINA_TIME)


def parse_grace(value: str) -> timedelta:
    """``1d``, ``12h``, ``30m``, ``90s`` or ``0``: how long replaced files stay published."""
    text = value.strip().lower()
    if text == "0":
        return timedelta(0)
    match = _GRACE.fullmatch(text)
    if match is None:
        raise UsageError(
            f"--grace {value!r} is not a duration: use a number with d, h, m or s (1d, 12h), or 0."
        )
    grace = timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    if grace > _MAX_GRACE:
        raise UsageError(f"--grace {value} is over a year: give 366d or less.")
    return grace


@click.command("feed")
@click.argument("source")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Output folder to publish: feed.xml, cover, episodes/.",
)
@click.option(
    "--state",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="State folder, outside --out [default: <out>.newsreader-state beside it].",
)
@click.option(
    "--base-url", required=True, help="Where --out is published (feed.xml is <URL>/feed.xml)."
)
@click.option("--title", default=None, help="Podcast title [default: the source feed's].")
@click.option("--author", default=None, help="Podcast author [default: the source feed's].")
@click.option(
    "--image",
    default=None,
    help="Artwork, 1400–3000 px square: a URL, or a PNG/JPEG file (published and embedded) "
    "[default: a plain cover].",
)
@click.option("--owner-email", default=None, help="itunes:owner e-mail (name: --author).")
@click.option(
    "--locked", is_flag=True, help="podcast:locked yes: other hosts may not import the feed."
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Only the newest N source entries."
)
@click.option("--since", default=None, help="Only entries dated on or after DATE (YYYY-MM-DD).")
@click.option("--digest", is_flag=True, help="One episode per run holding all new articles.")
@click.option(
    "--keep", type=click.IntRange(min=1), default=None, help="Keep only the newest N episodes."
)
@click.option(
    "--grace",
    default="1d",
    show_default=True,
    help="How long replaced or removed audio stays published (e.g. 12h, 2d, 0).",
)
@click.option(
    "--max-feed-bytes",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_FEED_BYTES,
    show_default=True,
    help="Refuse a source feed larger than this.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress and no summary.")
@voice_options
def feed_command(
    source: str,
    out: Path,
    state: Path | None,
    base_url: str,
    title: str | None,
    author: str | None,
    image: str | None,
    owner_email: str | None,
    locked: bool,
    limit: int | None,
    since: str | None,
    digest: bool,
    keep: int | None,
    grace: str,
    max_feed_bytes: int,
    quiet: bool,
    **voice: Any,
) -> None:
    """Turn the news feed SOURCE (URL or file) into a podcast feed in --out.

    Incremental: only new articles and articles whose text changed are read aloud. Safe to
    interrupt at any moment: the next run finishes the work.
    """
    with user_errors():
        settings = make_settings(**voice)
        request = FeedRequest(
            source=source,
            out=out,
            base_url=base_url,
            title=title,
            author=author,
            image=image,
            limit=limit,
            since=parse_since(since) if since is not None else None,
            digest=digest,
            keep=keep,
            state=state,
            grace=parse_grace(grace),
            owner_email=owner_email,
            locked=locked,
            max_feed_bytes=max_feed_bytes,
        )
        notify = (lambda _message: None) if quiet else _progress
        try:
            report = asyncio.run(update_feed(request, settings, notify=notify, announce=_announce))
        except KeyboardInterrupt:
            stderr.print(
                "newsreader: interrupted; feed.xml lists only finished episodes, and the next "
                "run finishes the rest.",
                markup=False,
            )
            sys.exit(130)
        for problem in [*report.warnings, *report.problems]:
            warn(problem)
        if not quiet:
            _summary(report)
        if report.failed:
            stderr.print(
                f"newsreader: error: {len(report.failed)} entr"
                f"{'y' if len(report.failed) == 1 else 'ies'} failed and will be tried again on "
                "the next run.",
                markup=False,
            )
            sys.exit(report.failed[0].exit_code)


# Declared for type checkers: cli.py and this module import each other.
feed: click.Command = feed_command


def _progress(message: str) -> None:
    stderr.print(message, markup=False)


def _announce(message: str) -> None:
    stderr.print(f"newsreader: note: {message}", markup=False)


def _summary(report: FeedReport) -> None:
    for note in report.repaired:
        stderr.print(f"repaired: {note}", markup=False)
    for entry in report.skipped:
        stderr.print(f"skipped {entry.label}: {entry.reason}", markup=False)
    for failure in report.failed:
        stderr.print(f"failed {failure.label}: {failure.reason}", markup=False)
    for title in report.removed:
        stderr.print(f"removed {title} (--keep)", markup=False)
    counts = (
        f"{len(report.made)} new, {len(report.updated)} updated, {report.unchanged} unchanged, "
        f"{len(report.skipped)} skipped, {len(report.failed)} failed"
    )
    engine = (
        f"; engine {report.engine}, {report.requests} requests, {report.cache_hits} from cache"
        if report.engine
        else ""
    )
    verb = "wrote" if report.written else "no change to"
    stderr.print(
        f"{verb} {report.feed}: {report.episodes} episode{'' if report.episodes == 1 else 's'} "
        f"({counts}){engine}",
        markup=False,
    )
