"""The streaming render: one value per segment, in order, with exact frame offsets; assembling
the stream is the reading that is written; engines are closed by whoever made them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from newsreader import pipeline
from newsreader.audio.assemble import Assembler, RenderedSegment, assemble_segments
from newsreader.audio.mp3 import bare_frames
from newsreader.audio.subtitles import write_subtitles
from newsreader.config import Settings
from newsreader.errors import SegmentsFailed
from newsreader.models import FRAME_SECONDS, Script
from newsreader.synth.select import EngineChoice
from tests.standin.server import EdgeStandin
from tests.standin.verify import frame_runs
from tests.toneengine import ToneEngine, tone_registered

ARTICLE = (
    "城市书房今天开放\n\n"
    "本市第一家二十四小时城市书房今天正式开放。市民可以免费借阅图书，还能参加读书会！\n\n"
    "服务升级\n\n"
    "书房位于市中心广场东侧，面积约三百平方米。馆内藏书一万余册，设有阅读区和儿童区。\n\n"
    "工作人员介绍，书房将定期举办讲座和展览。欢迎市民前来阅读。"
)


def load(tmp_path: Path, settings: Settings) -> tuple[Path, Script]:
    source = tmp_path / "article.txt"
    source.write_text(ARTICLE, encoding="utf-8")
    article = pipeline.load_article(str(source), settings)
    return source, pipeline.make_script(article, settings)


async def collect(stream: pipeline.RenderStream) -> list[pipeline.StreamItem]:
    async with contextlib.aclosing(stream.items()) as items:
        return [item async for item in items]


def segments_of(items: list[pipeline.StreamItem]) -> list[RenderedSegment]:
    return [item for item in items if isinstance(item, RenderedSegment)]


def test_the_stream_yields_every_segment_in_order_at_exact_frame_offsets(tmp_path: Path) -> None:
    settings = Settings(engine="espeak", cache_dir=tmp_path / "cache")
    _, script = load(tmp_path, settings)
    stream = pipeline.RenderStream(script, settings)
    items = asyncio.run(collect(stream))

    rendered = segments_of(items)
    assert rendered == items  # no restart
    assert [r.index for r in rendered] == list(range(len(script.segments)))
    assert stream.engine == "espeak" and stream.warnings == []
    assert stream.stats.requests == len(script.segments)
    position = 0
    for item, segment in zip(rendered, script.segments, strict=True):
        assert item.segment == segment
        assert item.start == position  # each begins where the one before ended, pause included
        assert item.pause_frames == int(segment.pause)
        assert item.frame_count > 0 and len(item.audio()) == (item.end - item.start) * 144
        assert [s.text for s in item.sentences] == list(segment.display)
        low, high = item.start * 24, (item.start + item.frame_count) * 24
        for sentence in item.sentences:
            assert low <= sentence.start_ms <= sentence.end_ms <= high
        position = item.end

    reading = assemble_segments(script, rendered)
    assert reading.mp3 == b"".join(item.audio() for item in rendered)
    assert reading.segment_starts == tuple(item.start * FRAME_SECONDS for item in rendered)
    assert reading.duration == pytest.approx(position * FRAME_SECONDS)
    # one chapter for the headline and lead, one for the subheading, each at its segment
    heading = next(item for item in rendered if item.segment.chapter == 1)
    assert [c.start for c in reading.chapters] == [0.0, heading.start * FRAME_SECONDS]


def test_assembling_the_stream_is_the_file_that_is_written(tmp_path: Path) -> None:
    settings = Settings(engine="espeak", cache_dir=tmp_path / "cache")
    source, script = load(tmp_path, settings)
    rendered = segments_of(asyncio.run(collect(pipeline.RenderStream(script, settings))))

    # what `read` writes, made again (from the cache) by the same streaming render
    made = asyncio.run(pipeline.render(script, settings))
    assert made.stats.cache_hits == len(script.segments)
    out, vtt = tmp_path / "out.mp3", tmp_path / "out.vtt"
    pipeline.write_outputs(made, script.article, script, out, vtt)
    assert bare_frames(out.read_bytes()) == b"".join(item.audio() for item in rendered)
    streamed = assemble_segments(script, rendered)
    assert made.reading == streamed
    expected = tmp_path / "expected.vtt"
    write_subtitles(expected, streamed.cues)
    assert vtt.read_text(encoding="utf-8") == expected.read_text(encoding="utf-8")
    assert str(source)  # the article file itself is untouched
    assert source.read_text(encoding="utf-8") == ARTICLE


def test_the_assembler_refuses_segments_out_of_place(tmp_path: Path) -> None:
    settings = Settings(engine="espeak", cache_dir=tmp_path / "cache")
    _, script = load(tmp_path, settings)
    rendered = segments_of(asyncio.run(collect(pipeline.RenderStream(script, settings))))
    assembler = Assembler(script)
    with pytest.raises(ValueError, match="came where segment 0 at frame 0 belongs"):
        assembler.add(rendered[1])
    assembler.add(rendered[0])
    with pytest.raises(ValueError, match="audio parts for"):
        assembler.finish()


def test_edge_failing_partway_restarts_the_stream_in_the_fallback_voice(
    edge_standin: EdgeStandin, tmp_path: Path
) -> None:
    settings = Settings(engine="edge", fallback="espeak", retries=0, cache_dir=tmp_path / "cache")
    _, script = load(tmp_path, settings)
    failing = {seg.text for seg in script.segments if seg.block == 3}
    edge_standin.set_faults(chooser=lambda _n, text: "close_mid_audio" if text in failing else None)
    stream = pipeline.RenderStream(script, settings)
    items = asyncio.run(collect(stream))

    [restart] = [n for n, item in enumerate(items) if isinstance(item, pipeline.Restarted)]
    before, after = segments_of(items[:restart]), segments_of(items[restart + 1 :])
    # the online voice's segments came out in order until the failure, then it starts again
    assert [item.index for item in before] == list(range(len(before)))
    assert [item.index for item in after] == list(range(len(script.segments)))
    assert after[0].start == 0
    restarted = items[restart]
    assert isinstance(restarted, pipeline.Restarted) and restarted.engine == "espeak"
    assert restarted.warning.startswith("the online voice failed for 1 of ")
    assert stream.engine == "espeak" and stream.warnings == [restarted.warning]
    reading = assemble_segments(script, after)
    assert [kind for kind, _ in frame_runs(reading.mp3)].count("tone") == 0


def test_without_a_fallback_the_stream_fails_naming_the_paragraph(
    edge_standin: EdgeStandin, tmp_path: Path
) -> None:
    settings = Settings(engine="edge", retries=0, cache_dir=tmp_path / "cache")
    _, script = load(tmp_path, settings)
    failing = {seg.text for seg in script.segments if seg.block == 3}
    edge_standin.set_faults(chooser=lambda _n, text: "close_mid_audio" if text in failing else None)
    with pytest.raises(SegmentsFailed, match="paragraph"):
        asyncio.run(collect(pipeline.RenderStream(script, settings)))


def test_render_closes_the_engines_it_made_and_leaves_the_callers_open(tmp_path: Path) -> None:
    with tone_registered():
        settings = Settings(engine="tone", voice="tone-a", use_cache=False)
        _, script = load(tmp_path, settings)

        made = asyncio.run(pipeline.render(script, settings))
        [own] = ToneEngine.made
        assert made.engine == "tone" and own.closed == 1

        mine = ToneEngine()
        choice = EngineChoice(mine)
        for _ in range(2):  # e.g. one engine for every episode of a feed run
            again = asyncio.run(pipeline.render(script, settings, choice=choice))
            assert again.reading == made.reading
        assert mine.closed == 0 and mine.requests == 2 * len(script.segments)


def test_a_consumer_that_stops_early_releases_the_engine(tmp_path: Path) -> None:
    async def first_only(stream: pipeline.RenderStream) -> pipeline.StreamItem:
        items: AsyncIterator[pipeline.StreamItem]
        async with contextlib.aclosing(stream.items()) as items:
            async for item in items:
                return item
        raise AssertionError("no item")

    with tone_registered():
        settings = Settings(engine="tone", voice="tone-a", use_cache=False)
        _, script = load(tmp_path, settings)
        first = asyncio.run(first_only(pipeline.RenderStream(script, settings)))
        assert isinstance(first, RenderedSegment) and first.index == 0
        [engine] = ToneEngine.made
        assert engine.closed == 1
