"""newsreader: read Mandarin news aloud.

The library behind the CLI, in pipeline order::

    settings = Settings(engine="espeak")
    article = load_article("https://…/a.html", settings)    # source → Article
    script = make_script(article, settings)                  # → Script(segments)
    rendered = asyncio.run(render(script, settings))         # → Reading (MP3, chapters, cues)
    write_outputs(rendered, article, script, Path("a.mp3"), Path("a.vtt"))
"""

from __future__ import annotations

import importlib
import typing

from newsreader._version import __version__

if typing.TYPE_CHECKING:
    from newsreader.config import Settings
    from newsreader.errors import (
        EngineUnavailable,
        ExtractionError,
        NewsreaderError,
        OutputError,
        RateLimited,
        SegmentsFailed,
        ServiceChanged,
        SourceError,
        SynthesisError,
        TransientError,
        UsageError,
    )
    from newsreader.models import (
        Article,
        Block,
        BlockKind,
        Chapter,
        Cue,
        Reading,
        Script,
        Segment,
        SegmentAudio,
        SentenceTiming,
    )
    from newsreader.pipeline import Rendered, load_article, make_script, render, write_outputs

# Each public name is imported from its module when first asked for (PEP 562), so that importing
# any part of the package (the command line, one module) does not load the whole pipeline.
_HOMES = {
    "Settings": "config",
    **dict.fromkeys(
        (
            "EngineUnavailable",
            "ExtractionError",
            "NewsreaderError",
            "OutputError",
            "RateLimited",
            "SegmentsFailed",
            "ServiceChanged",
            "SourceError",
            "SynthesisError",
            "TransientError",
            "UsageError",
        ),
        "errors",
    ),
    **dict.fromkeys(
        (
            "Article",
            "Block",
            "BlockKind",
            "Chapter",
            "Cue",
            "Reading",
            "Script",
            "Segment",
            "SegmentAudio",
            "SentenceTiming",
        ),
        "models",
    ),
    **dict.fromkeys(
        ("Rendered", "load_article", "make_script", "render", "write_outputs"), "pipeline"
    ),
}


def __getattr__(name: str) -> typing.Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'newsreader' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"newsreader.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Article",
    "Block",
    "BlockKind",
    "Chapter",
    "Cue",
    "EngineUnavailable",
    "ExtractionError",
    "NewsreaderError",
    "OutputError",
    "RateLimited",
    "Reading",
    "Rendered",
    "Script",
    "Segment",
    "SegmentAudio",
    "SegmentsFailed",
    "SentenceTiming",
    "ServiceChanged",
    "Settings",
    "SourceError",
    "SynthesisError",
    "TransientError",
    "UsageError",
    "__version__",
    "load_article",
    "make_script",
    "render",
    "write_outputs",
]
