"""The episode check itself: it passes a complete episode and catches every way to spoil one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from newsreader.audio.assemble import assemble
from newsreader.audio.subtitles import to_vtt
from newsreader.audio.tags import Tags, mp3_bytes_with_tags
from newsreader.config import Settings
from newsreader.models import FRAME_BYTES, Script, SegmentAudio
from newsreader.synth.edge import EdgeEngine
from newsreader.text.extract import extract
from newsreader.text.segment import build_script
from tests.standin.server import EdgeStandin
from tests.standin.verify import episode_problems, parse_vtt, strip_id3v2

ARTICLE = (
    "城市书房开到家门口\n\n今年全市新建书房。读者反映很好！\n\n"
    "书房晚上开放到十点。周末还有讲座和展览。\n\n志愿者每天轮流在书房值班。\n"
)
SETTINGS = Settings(engine="edge", voice="zh-CN-XiaoxiaoNeural", request_timeout=5)


@pytest.fixture
def episode(edge_standin: EdgeStandin) -> tuple[Script, list[SegmentAudio]]:
    script = build_script(extract(ARTICLE, source="a.txt"), locale="zh-CN")

    async def each() -> list[SegmentAudio]:
        engine = EdgeEngine()
        return [await engine.synthesize(segment, SETTINGS) for segment in script.segments]

    return script, asyncio.run(each())


def problems(
    script: Script, parts: list[SegmentAudio], edge: EdgeStandin, cues_from: Script | None = None
) -> list[str]:
    reading = assemble(cues_from or script, parts)
    mp3 = mp3_bytes_with_tags(reading, Tags(title=script.title, artist="a", album="a"))
    return episode_problems(mp3, script.segments, edge.plan, to_vtt(reading.cues))


def test_a_complete_episode_passes(
    edge_standin: EdgeStandin, episode: tuple[Script, list[SegmentAudio]]
) -> None:
    script, parts = episode
    assert len(script.segments) == 4
    assert len({p.frames for p in parts}) == 4  # different lengths, so order shows in frames
    assert problems(script, parts, edge_standin) == []


def _cut(parts: list[SegmentAudio]) -> list[SegmentAudio]:
    cut = parts[2]
    return [*parts[:2], SegmentAudio(cut.mp3[:-FRAME_BYTES], cut.sentences), *parts[3:]]


def _swap(parts: list[SegmentAudio]) -> list[SegmentAudio]:
    return [parts[0], parts[2], parts[1], parts[3]]


def _repeat(parts: list[SegmentAudio]) -> list[SegmentAudio]:
    return [parts[0], parts[1], parts[1], parts[3]]


def _silent(parts: list[SegmentAudio]) -> list[SegmentAudio]:
    return [parts[0], SegmentAudio(b"", parts[1].sentences), *parts[2:]]


def _doubled(parts: list[SegmentAudio]) -> list[SegmentAudio]:
    # The first half of one answer twice: about as many frames, but not one complete answer.
    twice = parts[3].mp3[: parts[3].frames // 2 * FRAME_BYTES] * 2
    return [*parts[:3], SegmentAudio(twice, parts[3].sentences)]


@pytest.mark.parametrize("spoil", [_cut, _swap, _repeat, _silent, _doubled])
def test_a_spoiled_episode_is_caught(
    edge_standin: EdgeStandin,
    episode: tuple[Script, list[SegmentAudio]],
    spoil: Callable[[list[SegmentAudio]], list[SegmentAudio]],
) -> None:
    script, parts = episode
    assert problems(script, spoil(parts), edge_standin) != []


def test_cues_out_of_step_are_caught(
    edge_standin: EdgeStandin, episode: tuple[Script, list[SegmentAudio]]
) -> None:
    script, parts = episode
    late = parts[1]
    shifted = tuple(type(t)(t.text, t.start + 0.1, t.end + 0.1) for t in late.sentences)
    spoiled = [parts[0], SegmentAudio(late.mp3, shifted), *parts[2:]]
    found = problems(script, spoiled, edge_standin)
    assert found and all(p.startswith("cue ") for p in found)


def test_helpers() -> None:
    assert strip_id3v2(b"ID3\x03\x00\x00\x00\x00\x00\x02ab" + b"rest") == b"rest"
    assert strip_id3v2(b"rest") == b"rest"
    (cue,) = parse_vtt("WEBVTT\n\n00:00:01.500 --> 00:01:02.250\n你好。\n")
    assert (cue.start, cue.end, cue.text) == (1.5, 62.25, "你好。")
