"""End to end: a news page served over HTTP → one MP3, checked by decoding it with ffmpeg."""

from __future__ import annotations

import asyncio
import itertools
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from mutagen.id3 import ID3

from newsreader import pipeline
from newsreader.cli import main
from newsreader.config import Settings
from newsreader.errors import SegmentsFailed
from newsreader.models import FRAME_SECONDS, SegmentAudio
from newsreader.synth.espeak import EspeakEngine
from newsreader.synth.select import EngineChoice
from tests.audio import decode_samples, ffmpeg_errors
from tests.pages import seed_page
from tests.standin.server import EdgeStandin
from tests.webserver import LocalWeb

SAMPLE_RATE = 24_000
SEED_TITLE_SIMPLIFIED = "市科技局落实院地合作联席会议制度 构建产学研合作新模式"
CUE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})$", re.M)


def _seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def _cues(vtt: str) -> list[tuple[float, float]]:
    return [(_seconds(*m.groups()[:4]), _seconds(*m.groups()[4:])) for m in CUE.finditer(vtt)]


@pytest.fixture
def seed_url(web: LocalWeb, seed_text: str) -> str:
    return web.page("/2024/0702/seed.html", seed_page(seed_text))


def test_seed_page_to_mp3_with_the_embedded_voice(
    seed_url: str, tmp_path: Path, seed_text: str
) -> None:
    out, vtt = tmp_path / "out" / "seed.mp3", tmp_path / "seed.vtt"
    result = CliRunner().invoke(
        main,
        [
            "read",
            seed_url,
            "-o",
            str(out),
            "--subtitles",
            str(vtt),
            "--engine",
            "espeak",
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "engine espeak" in result.output

    # ffmpeg decodes it with zero errors
    assert ffmpeg_errors(out) == ""

    # its duration equals the sum of its segments and pauses, ±1 frame each: render every segment
    # again on its own and add up
    settings = Settings(engine="espeak", use_cache=False)
    article = pipeline.load_article(seed_url, settings)
    script = pipeline.make_script(article, settings)
    engine = EspeakEngine()

    async def each() -> list[SegmentAudio]:
        return [await engine.synthesize(seg, settings) for seg in script.segments]

    parts = asyncio.run(each())
    pairs = zip(parts, script.segments, strict=True)
    expected = sum(p.duration + seg.pause * FRAME_SECONDS for p, seg in pairs)
    decoded = len(decode_samples(out)) / SAMPLE_RATE
    assert abs(decoded - expected) <= FRAME_SECONDS * len(parts)

    # chapters: the title's, then one per subheading, in Simplified like the voice
    tag = ID3(out)
    assert tag.version == (2, 3, 0)
    assert str(tag["TIT2"]) == SEED_TITLE_SIMPLIFIED
    chapters = sorted(tag.getall("CHAP"), key=lambda c: c.start_time)
    titles = [str(c.sub_frames["TIT2"]) for c in chapters]
    assert titles[0] == SEED_TITLE_SIMPLIFIED
    assert [t.split("，")[0] for t in titles[1:]] == ["共治共享", "同心协力", "和衷共济"]
    assert chapters[0].start_time == 0
    assert abs(chapters[-1].end_time / 1000 - decoded) < 0.05
    assert str(tag["TDRC"]).startswith("2024-07-02")
    assert tag["WOAS"].url == seed_url

    # one cue per sentence (long ones split at commas), in order, within the audio, no junk
    text = vtt.read_text(encoding="utf-8")
    cues = _cues(text)
    sentences = sum(len(seg.sentences) for seg in script.segments)
    assert len(cues) >= sentences
    assert all(a < b for a, b in cues)
    assert all(b1 <= a2 for (_, b1), (a2, _) in itertools.pairwise(cues))
    assert cues[-1][1] <= decoded + 0.001
    for junk in ("責任編輯", "责任编辑", "智能朗", "jī", "wǎng", "?"):
        assert junk not in text


def test_cue_times_agree_with_the_audio(tmp_path: Path) -> None:
    """Each cue starts where its sentence's sound starts (within 50 ms) and pauses are silent."""
    article_file = tmp_path / "a.txt"
    article_file.write_text(
        "测试标题\n\n第一句话很短。第二句话稍微长一些，但是也不算太长。\n\n最后一段只有一句。\n",
        encoding="utf-8",
    )
    out, vtt = tmp_path / "a.mp3", tmp_path / "a.vtt"
    result = CliRunner().invoke(
        main,
        [
            "read",
            str(article_file),
            "-o",
            str(out),
            "--subtitles",
            str(vtt),
            "--engine",
            "espeak",
            "--no-cache",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    samples = decode_samples(out)
    cues = _cues(vtt.read_text(encoding="utf-8"))
    assert len(cues) == 4
    window = int(0.01 * SAMPLE_RATE)

    def loud(t: float) -> bool:
        i = int(t * SAMPLE_RATE)
        return any(abs(s) > 200 for s in samples[max(0, i - window) : i + window])

    for start, end in cues:
        assert loud(start + 0.05), f"no sound just after cue start {start}"
        assert not loud(start - 0.06) or start < 0.1, f"sound before cue start {start}"
        assert end > start


def test_edge_second_run_makes_no_requests(
    edge_standin: EdgeStandin, seed_url: str, tmp_path: Path
) -> None:
    args = ["read", seed_url, "-o", str(tmp_path / "e.mp3"), "--cache-dir", str(tmp_path / "c")]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "engine edge" in first.output
    made = len(edge_standin.requests)
    assert made > 5
    assert {r.voice for r in edge_standin.requests} == {"zh-CN-YunyangNeural"}
    assert ffmpeg_errors(tmp_path / "e.mp3") == ""

    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0, second.output
    assert len(edge_standin.requests) == made, "the second run must come from the cache"
    assert "0 requests" in second.output


def test_edited_article_resynthesizes_only_changed_segments(
    edge_standin: EdgeStandin, web: LocalWeb, seed_text: str, tmp_path: Path
) -> None:
    page = seed_page(seed_text)
    url = web.page("/a.html", page)
    args = ["read", url, "-o", str(tmp_path / "e.mp3"), "--cache-dir", str(tmp_path / "c")]
    assert CliRunner().invoke(main, args).exit_code == 0
    before = len(edge_standin.requests)
    web.page("/a.html", page.replace("接下來", "此外，接下來"))
    assert CliRunner().invoke(main, args).exit_code == 0
    changed = edge_standin.requests[before:]
    assert len(changed) == 1
    assert changed[0].text.startswith("此外")


def test_traditional_voice_gets_traditional_text(edge_standin: EdgeStandin, tmp_path: Path) -> None:
    source = tmp_path / "s.txt"
    source.write_text("兰州日报讯\n\n记者从市科技局了解到，这项制度已经建立。\n", encoding="utf-8")
    result = CliRunner().invoke(
        main,
        [
            "read",
            str(source),
            "-o",
            str(tmp_path / "t.mp3"),
            "--voice",
            "zh-TW-HsiaoChenNeural",
            "--no-cache",
        ],
    )
    assert result.exit_code == 0, result.output
    spoken = "".join(r.text for r in edge_standin.requests)
    assert "記者從市科技局" in spoken
    assert "记者" not in spoken


def test_failed_segments_leave_nothing_and_are_named(
    edge_standin: EdgeStandin, seed_url: str, tmp_path: Path
) -> None:
    """Every request fails: the run names the failures and leaves no file."""
    edge_standin.set_faults(chooser=lambda _n, text: "close_before_audio" if text else None)
    settings = Settings(
        engine="edge", retries=1, backoff=0.01, cache_dir=tmp_path / "c", request_timeout=5
    )
    article = pipeline.load_article(seed_url, settings)
    script = pipeline.make_script(article, settings)
    out = tmp_path / "never.mp3"

    async def run() -> None:
        from newsreader.synth.edge import EdgeEngine

        rendered = await pipeline.render(script, settings, choice=EngineChoice(EdgeEngine()))
        pipeline.write_outputs(rendered, article, script, out)

    with pytest.raises(SegmentsFailed, match=r"segments failed after retries \(no audio"):
        asyncio.run(run())
    assert not out.exists()
    assert list(tmp_path.glob("*.mp3")) == []
