"""``newsreader worker``: a scale-out worker (thin: options in, ``scale.worker.run_worker``)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from newsreader.cli_common import user_errors
from newsreader.service.command import reading_options, storage_options


@click.command()
@click.option(
    "--redis",
    "redis_url",
    envvar="NEWSREADER_REDIS_URL",
    required=True,
    help="The cluster's Redis, e.g. redis://HOST:6379/0 (or set NEWSREADER_REDIS_URL).",
)
@click.option(
    "--concurrency",
    default=4,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Readings this worker makes at the same time.",
)
@click.option(
    "--voice-connections",
    default=8,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Concurrent requests to the voice service, all of this worker's readings together.",
)
@click.option(
    "--metrics-port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Serve Prometheus /metrics on this port (0: off).",
)
@click.option(
    "--shutdown-grace",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0, 86400),
    help="Seconds running readings may take to finish after SIGTERM; then they go back to the "
    "queue for another worker.",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("newsreader-data"),
    show_default=True,
    help="Working folder: files being made, the segment cache, and without --storage the "
    "finished readings (then shared with the API nodes).",
)
@storage_options
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Segment cache when there is no --storage [default: DATA/cache].",
)
@reading_options
@click.option(
    "--max-chars",
    default=20_000,
    show_default=True,
    type=click.IntRange(1),
    help="Characters one reading may have once extracted (the API nodes' value).",
)
@click.option(
    "--max-segments",
    default=1_000,
    show_default=True,
    type=click.IntRange(1),
    help="Paragraphs and long-sentence parts one reading may have (the API nodes' value).",
)
def worker(
    redis_url: str,
    concurrency: int,
    voice_connections: int,
    metrics_port: int,
    shutdown_grace: float,
    data_dir: Path,
    storage: str | None,
    s3_endpoint: str | None,
    cache_dir: Path | None,
    allow_addresses: tuple[str, ...],
    engine: str,
    fallback: str,
    loudness: float | None,
    intro: Path | None,
    outro: Path | None,
    max_chars: int,
    max_segments: int,
) -> None:
    """Make readings for the API nodes of a cluster (newsreader serve --redis URL).

    Takes readings from the queue in Redis, synthesizes them, streams their audio live through
    Redis and puts the finished files in the storage. Stops on SIGTERM: running readings get
    --shutdown-grace seconds, then go back to the queue.
    """
    from newsreader.scale.worker import run_worker
    from newsreader.service.config import ServiceConfig, parse_networks

    with user_errors():
        config = ServiceConfig(
            data_dir=data_dir,
            cache_dir=cache_dir,
            engine=engine,
            fallback=fallback,
            loudness=loudness,
            intro=intro,
            outro=outro,
            allow_addresses=parse_networks(allow_addresses),
            voice_connections=voice_connections,
            max_chars=max_chars,
            max_segments=max_segments,
            redis_url=redis_url,
            storage=storage or None,
            s3_endpoint=s3_endpoint or None,
        )
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        try:
            asyncio.run(
                run_worker(
                    config,
                    concurrency=concurrency,
                    metrics_port=metrics_port,
                    shutdown_grace=shutdown_grace,
                )
            )
        except OSError as error:
            raise click.ClickException(f"cannot use --data {data_dir}: {error}") from None
