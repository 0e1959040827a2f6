"""``newsreader serve``: the read-aloud service on uvicorn (thin: options in, the app out)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from newsreader.cli_common import engine_option, fallback_option, level_options
from newsreader.errors import NewsreaderError, StorageError


class _StorageUnusable(click.ClickException):
    """The storage cannot be used (folder not writable, bucket missing): one line, exit 7."""

    exit_code = StorageError.exit_code


F = TypeVar("F", bound=Callable[..., Any])


def _apply(options: list[Callable[[F], F]], func: F) -> F:
    for option in reversed(options):
        func = option(func)
    return func


def reading_options(func: F) -> F:
    """What readings are made of and how they sound, shared by ``serve`` and ``worker``:
    ``--allow-address``, ``--engine``, ``--fallback``, ``--loudness``, ``--intro``, ``--outro``."""
    allow = click.option(
        "--allow-address",
        "allow_addresses",
        multiple=True,
        help="A non-public address or network URL sources may point to (an intranet; tests).",
    )
    engine = engine_option("Voice engine for every reading.")
    fallback = fallback_option(
        "If the online voice fails partway through a reading: fail it (none), or read the whole "
        "article again with the embedded voice (espeak), with a warning in its status."
    )
    return _apply([allow, engine, fallback, level_options], func)


def storage_options(func: F) -> F:
    """``--storage`` and ``--s3-endpoint``, shared by ``serve`` and ``worker``."""
    storage = click.option(
        "--storage",
        default=None,
        help="Where finished readings and the segment cache live: a folder (shared by every "
        "node) or s3://BUCKET/PREFIX [default: the --data folder].",
    )
    endpoint = click.option(
        "--s3-endpoint",
        envvar="AWS_ENDPOINT_URL",
        default=None,
        help="The S3 service's address, e.g. http://127.0.0.1:9000 [default: AWS; or set "
        "AWS_ENDPOINT_URL]. Credentials come from the usual AWS variables.",
    )
    return _apply([storage, endpoint], func)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("newsreader-data"),
    show_default=True,
    help="Job store (SQLite), finished audio and the segment cache.",
)
@click.option(
    "--token",
    envvar="NEWSREADER_TOKEN",
    default=None,
    help="Require 'Authorization: Bearer TOKEN' on POST (or set NEWSREADER_TOKEN).",
)
@click.option(
    "--allow-origin",
    "allow_origins",
    multiple=True,
    help="An origin whose pages may use the API and widget, e.g. https://news.example.cn.",
)
@reading_options
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Segment cache [default: DATA/cache].",
)
@click.option(
    "--voice-connections",
    default=8,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Concurrent requests to the voice service, all readings together.",
)
@click.option(
    "--rate-limit",
    default=30,
    show_default=True,
    type=click.IntRange(0),
    help="Readings a client may request per minute (0: no limit).",
)
@click.option(
    "--public-url",
    default=None,
    help="Where readers reach the service, for the feed's links [default: http://HOST:PORT].",
)
@click.option(
    "--max-chars",
    default=20_000,
    show_default=True,
    type=click.IntRange(1),
    help="Characters one reading may have once extracted (about 80 minutes at the default).",
)
@click.option(
    "--max-segments",
    default=1_000,
    show_default=True,
    type=click.IntRange(1),
    help="Paragraphs and long-sentence parts one reading may have.",
)
@click.option(
    "--jobs-per-client",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Readings one client may have made at once; its others wait their turn.",
)
@click.option(
    "--max-connections",
    default=512,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Open client connections at most (kept below the open-files limit).",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    help="Seconds a client may take to send a request's head.",
)
@click.option(
    "--body-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    help="Seconds a client may take to send a request's body.",
)
@click.option(
    "--forwarded-allow-ips",
    "forwarded_allow_ips",
    default="",
    help="Comma-separated proxy addresses whose X-Forwarded-For is believed [default: none].",
)
@click.option(
    "--redis",
    "redis_url",
    envvar="NEWSREADER_REDIS_URL",
    default=None,
    help="Scale-out: run as a stateless API node on this Redis, e.g. redis://HOST:6379/0 "
    "(workers synthesize: newsreader worker) [or set NEWSREADER_REDIS_URL].",
)
@storage_options
def serve(
    host: str,
    port: int,
    data_dir: Path,
    token: str | None,
    allow_origins: tuple[str, ...],
    allow_addresses: tuple[str, ...],
    engine: str,
    fallback: str,
    loudness: float | None,
    intro: Path | None,
    outro: Path | None,
    cache_dir: Path | None,
    voice_connections: int,
    rate_limit: int,
    public_url: str | None,
    max_chars: int,
    max_segments: int,
    jobs_per_client: int,
    max_connections: int,
    header_timeout: float,
    body_timeout: float,
    forwarded_allow_ips: str,
    redis_url: str | None,
    storage: str | None,
    s3_endpoint: str | None,
) -> None:
    """Run the read-aloud service: page at /, widget at /widget.js, API docs at /docs."""
    import uvicorn

    from newsreader.service.app import create_app
    from newsreader.service.config import ServiceConfig, default_public_url, parse_networks
    from newsreader.service.connections import ensure_descriptors, server_config

    try:
        config = ServiceConfig(
            data_dir=data_dir,
            cache_dir=cache_dir,
            engine=engine,
            fallback=fallback,
            loudness=loudness,
            intro=intro,
            outro=outro,
            token=token,
            allow_origins=allow_origins,
            allow_addresses=parse_networks(allow_addresses),
            voice_connections=voice_connections,
            rate_limit=rate_limit,
            public_url=public_url or default_public_url(host, port),
            max_chars=max_chars,
            max_segments=max_segments,
            jobs_per_client=jobs_per_client,
            max_connections=max_connections,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            forwarded_allow_ips=tuple(
                p.strip() for p in forwarded_allow_ips.split(",") if p.strip()
            ),
            redis_url=redis_url or None,
            storage=storage or None,
            s3_endpoint=s3_endpoint or None,
        )
        if config.redis_url is None:
            ensure_descriptors(max_connections)
        else:
            from newsreader.service.cluster import REDIS_DESCRIPTORS, preflight

            ensure_descriptors(max_connections, REDIS_DESCRIPTORS)  # Redis: bounded pools

            # Redis answers, audio options given agree with the workers', storage can be used
            asyncio.run(preflight(config, _workers_options_given()))
        app = create_app(config)
    except StorageError as error:
        raise _StorageUnusable(error.message) from None
    except NewsreaderError as error:
        raise click.UsageError(error.message) from None
    except OSError as error:
        raise click.ClickException(f"cannot use --data {data_dir}: {error}") from None
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    where = f"data in {data_dir}" if config.redis_url is None else "an API node on Redis"
    click.echo(f"newsreader: serving on http://{host}:{port}/ ({where})", err=True)
    if public_url is None and host in ("0.0.0.0", "::", ""):
        click.echo(
            f"newsreader: feed links point to {config.public_url}: "
            "give --public-url with the address readers use.",
            err=True,
        )
    ignored = _workers_options_given() if config.redis_url is not None else []
    if ignored:
        click.echo(
            f"newsreader: {', '.join(ignored)}: the workers' settings in scale-out mode, not "
            "used by an API node; give them to newsreader worker.",
            err=True,
        )
    uvicorn.Server(server_config(app, config, host, port)).run()


_WORKERS_OPTIONS = {
    "engine": "--engine",
    "fallback": "--fallback",
    "loudness": "--loudness",
    "intro": "--intro",
    "outro": "--outro",
    "cache_dir": "--cache-dir",
    "voice_connections": "--voice-connections",
    "jobs_per_client": "--jobs-per-client",
}
"""What only the process that synthesizes uses: on an API node, a worker's business.
(``--jobs-per-client`` cannot be kept by a node: see ``service.cluster``.)"""


def _workers_options_given() -> list[str]:
    """The workers' options given on the command line or from the environment."""
    context = click.get_current_context()
    given = []
    for name, option in _WORKERS_OPTIONS.items():
        source = context.get_parameter_source(name)
        if source is not None and source not in (
            click.core.ParameterSource.DEFAULT,
            click.core.ParameterSource.DEFAULT_MAP,
        ):
            given.append(option)
    return given
