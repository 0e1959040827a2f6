"""newsreader: read Mandarin news aloud.

The library behind the CLI, in pipeline order::

    settings = Settings(engine="espeak")
    article = load_article("https://…/a.html", settings)    # source → Article
    script = make_script(article, settings)                  # → Script(segments)
    rendered = asyncio.run(render(script, settings))         # → Reading (MP3, chapters, cues)
    write_outputs(rendered, article, script, Path("a.mp3"), Path("a.vtt"))
"""

from __future__ import annotations

from newsreader._version import __version__
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
